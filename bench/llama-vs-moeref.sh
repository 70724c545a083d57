#!/usr/bin/env bash
# moe-ref and llama.cpp (npm prebuilt libllama, CPU) side by side on the same model, both
# profiled by libmoecap.so and measured by `moecap report`: decode tokens/s (decode tokens /
# decode step time, from the report), the median decode step and the decode steps' S-MBU
# (bytes / step time / the hardware profile's bandwidth). Printed as Markdown
# (bench/results/llama-vs-moeref.md).
#
# Paired and alternating, for a shared machine: for each thread count and batch size the two
# engines run R rounds back to back, in the order moe-ref, llama.cpp, then llama.cpp, moe-ref
# (ABBA), so slow drifts of the machine's load hit both alike; each run's load average is
# recorded with its figure, the table gives each engine's median over the rounds and the
# median of the per-round ratios (moe-ref / llama.cpp).
#
# Model: bench/engine-bandwidth.sh's geometry (mixtral-style, d=1024, 8 layers, 8 experts
# f=1536, top-2, GQA 16/4, vocab 32000: 1.55 GB F32), as safetensors for moe-ref and as an
# F32 GGUF (moe-ref gguf) for llama.cpp. Same prompt ids (B prompts of 16), greedy, same
# thread count; the token ids both engines generate are compared.
#
# usage: bench/llama-vs-moeref.sh [--gen N (32)] [--threads "1 2"] [--batches "1 8"] [--rounds R (3)]
#        [--hw NAME (epyc-7763)] [--model-dir DIR] [--keep-model] [--moeref-args "ARGS"]
# Needs: make (build/), scripts/install-llama.sh (build/llama) and build/tests/llama_truth
# (make build/tests/llama_truth).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
gen=32; threads_list="1 2"; batches="1 8"; rounds=3; hw=epyc-7763; model=/tmp/moecap-bench-model; keep=0
moeref_args=""
usage() { sed -n '19,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --gen) gen=$2; shift 2 ;;
    --threads) threads_list=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --hw) hw=$2; shift 2 ;;
    --model-dir) model=$2; shift 2 ;;
    --keep-model) keep=1; shift ;;
    --moeref-args) moeref_args=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
done
SHIM=$(realpath "$BUILD/lib/libmoecap.so")
for f in "$SHIM" "$BUILD/bin/moe-ref" "$BUILD/bin/moecap" "$BUILD/tests/llama_truth"; do
  [ -e "$f" ] || { echo "build first (make; llama.cpp: scripts/install-llama.sh; make $BUILD/tests/llama_truth): $f missing" >&2; exit 2; }
done
work=$(mktemp -d /tmp/moecap-llama-vs.XXXXXX)
trap 'rm -rf "$work"; [ "$keep" = 1 ] || rm -rf "$model"' EXIT
if ! [ -f "$model/model.safetensors" ] || ! grep -q '"hidden_size": 1024' "$model/config.json"; then
  "$BUILD/bin/moe-ref" gen --arch mixtral --layers 8 --hidden 1024 --heads 16 --kv-heads 4 --experts 8 \
      --top-k 2 --moe-intermediate 1536 --vocab 32000 --seed 1 --out "$model" >/dev/null
fi
[ -f "$model/model.gguf" ] || "$BUILD/bin/moe-ref" gguf --model "$model" --out "$model/model.gguf" >/dev/null

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), host: $(hostname), $(nproc) CPUs ($cpu), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model: $(du -m "$model/model.safetensors" | cut -f1) MB F32 (safetensors for moe-ref, GGUF for llama.cpp); prompt 16, $gen generated tokens per sequence; $rounds ABBA rounds per row; hardware profile $hw"
echo "moe-ref: $BUILD/bin/moe-ref run --threads T${moeref_args:+ $moeref_args}; llama.cpp: $BUILD/tests/llama_truth --threads T --no-callback (node-llama-cpp 3.22.1's libllama)"
echo

summary() {   # report.json -> "tok/s smbu ms"
  /usr/bin/python3 - "$1" <<'PY'
import json, statistics, sys
s = [x for x in json.load(open(sys.argv[1]))["steps"] if x["kind"] == "decode"]
t = sum(x["time_s"] for x in s)
print(f"{sum(x['tokens'] for x in s) / t:.2f} {statistics.median(x['s_mbu'] for x in s):.3f} "
      f"{1000 * statistics.median(x['time_s'] for x in s):.2f}")
PY
}
run_ref() {   # T B round -> appends a line to $work/rows
  local T=$1 B=$2 r=$3 load; load=$(cut -d' ' -f1 /proc/loadavg)
  rm -rf "$work/ref"
  # shellcheck disable=SC2086
  LD_PRELOAD="$SHIM" MOECAP_OUT="$work/ref" "$BUILD/bin/moe-ref" run --model "$model" --prompts "$work/p$B.txt" \
      --gen "$gen" --threads "$T" $moeref_args >"$work/ref-$T-$B.out"
  "$BUILD/bin/moecap" report "$work/ref" --model "$model" --hw "$hw" --format json --quiet
  echo "$T $B $r moe-ref $(summary "$work/ref/report.json") $load" >>"$work/rows"
}
run_llama() {
  local T=$1 B=$2 r=$3 load; load=$(cut -d' ' -f1 /proc/loadavg)
  rm -rf "$work/llama"
  LD_PRELOAD="$SHIM" MOECAP_OUT="$work/llama" "$BUILD/tests/llama_truth" "$model/model.gguf" --prompts "$work/p$B.txt" \
      --gen "$gen" --threads "$T" --no-callback >"$work/llama-$T-$B.out"
  "$BUILD/bin/moecap" report "$work/llama" --model "$model/model.gguf" --hw "$hw" --format json --quiet
  echo "$T $B $r llama.cpp $(summary "$work/llama/report.json") $load" >>"$work/rows"
}
: >"$work/rows"
for B in $batches; do
  /usr/bin/python3 -c "import random; random.seed($B); [print(' '.join(str(random.randrange(256)) for _ in range(16))) for _ in range($B)]" >"$work/p$B.txt"
done
for T in $threads_list; do
  for B in $batches; do
    for r in $(seq 1 "$rounds"); do
      if [ $((r % 2)) = 1 ]; then run_ref "$T" "$B" "$r"; run_llama "$T" "$B" "$r"
      else run_llama "$T" "$B" "$r"; run_ref "$T" "$B" "$r"; fi
    done
    cmp -s "$work/ref-$T-$B.out" "$work/llama-$T-$B.out" && echo "$T $B same" >>"$work/same" || echo "$T $B differ" >>"$work/same"
  done
done

/usr/bin/python3 - "$work/rows" "$work/same" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
same = dict(((a, b), c) for a, b, c in (l.split() for l in open(sys.argv[2])))
print("| threads | batch | engine | decode tok/s (median of rounds) | per round (load average) | decode S-MBU | decode step ms |")
print("| --- | --- | --- | --- | --- | --- | --- |")
keys = []
for r in rows:
    if (r[0], r[1]) not in keys: keys.append((r[0], r[1]))
for T, B in keys:
    by = {}
    for r in rows:
        if (r[0], r[1]) == (T, B): by.setdefault(r[3], []).append(r)
    for eng in ("moe-ref", "llama.cpp"):
        rs = by.get(eng, [])
        if not rs: continue
        tok = statistics.median(float(x[4]) for x in rs)
        per = ", ".join(f"{float(x[4]):.1f} ({x[7]})" for x in rs)
        name = eng if eng == "moe-ref" else f"llama.cpp ({'same tokens' if same.get((T, B)) == 'same' else 'tokens differ'})"
        print(f"| {T} | {B} | {name} | {tok:.1f} | {per} | {statistics.median(float(x[5]) for x in rs):.3f} | "
              f"{statistics.median(float(x[6]) for x in rs):.1f} |")
    ratios = [float(a[4]) / float(b[4]) for a, b in zip(by.get("moe-ref", []), by.get("llama.cpp", []))]
    if ratios:
        print(f"| {T} | {B} | ratio moe-ref / llama.cpp | {statistics.median(ratios):.2f} | "
              f"{', '.join(f'{x:.2f}' for x in ratios)} | | |")
PY
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
