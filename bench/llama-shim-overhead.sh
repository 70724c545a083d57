#!/usr/bin/env bash
# libmoecap.so's cost on llama.cpp decode (npm prebuilt libllama, CPU), printed as Markdown
# (copy into bench/results/llama-shim-overhead.md).
# Program: build/tests/llama_truth --no-callback --time (a plain llama.cpp C program: batch 1,
# PROMPT tokens of prefill, then GEN greedy decode steps; it times its llama_decode calls).
# Model: a moe-ref mixtral-style F32 GGUF (default d=512, 8 layers, 8 experts top-2, f=512,
# vocab 2048: ~230 MB). Per round, in rotating order, four runs:
#   plain     no preload
#   shim      LD_PRELOAD=libmoecap.so, adapter on (steps, weight products, routing asks)
#   no-ask    adapter on, MOECAP_GGML_ROUTING=0 (no routing asks: no forced splits)
#   off       MOECAP_GGML_ACCEPT=none (adapter off: the shim's other interposers only)
#   no-writer adapter on, MOECAP_FLUSH_MS=0 (no writer thread: the program copies its own
#             ring when full; what the writer's wake-ups cost when it shares the core)
# Figures: decode tokens per second of wall time and per second of process CPU time (steadier
# on a shared machine: another process's time slices do not count); per round the ratio to
# `plain` of the same round; medians.
# usage: bench/llama-shim-overhead.sh [ROUNDS (7)]   env: GEN (128), PROMPT (16), THREADS (1),
#        DIMS (moe-ref gen options), BUILD (build), PIN_CPU=N (every run bound to CPU N:
#        this project's VM has vCPUs of different, changing speeds; see bench/shim-e2e.py)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROUNDS=${1:-7}
GEN=${GEN:-128}
PROMPT=${PROMPT:-16}
THREADS=${THREADS:-1}
DIMS=${DIMS:---layers 8 --hidden 512 --heads 8 --kv-heads 4 --experts 8 --top-k 2 --moe-intermediate 512 --vocab 2048}
SHIM=$(realpath "$BUILD/lib/libmoecap.so")
TRUTH=$BUILD/tests/llama_truth
for f in "$SHIM" "$TRUTH" "$BUILD/bin/moe-ref"; do
  [ -e "$f" ] || { echo "build first (make; llama.cpp via scripts/install-llama.sh): $f missing" >&2; exit 2; }
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2086
"$BUILD/bin/moe-ref" gen --arch mixtral --out "$tmp/m" $DIMS >/dev/null
"$BUILD/bin/moe-ref" gguf --model "$tmp/m" --out "$tmp/m.gguf"
/usr/bin/python3 -c "import random; random.seed(1); print(' '.join(str(random.randrange(256)) for _ in range($PROMPT)))" >"$tmp/p.txt"

one() {   # mode -> tokens/s
  local env=()
  case $1 in
    shim) env=(LD_PRELOAD="$SHIM" MOECAP_OUT="$tmp/out-$1") ;;
    no-ask) env=(LD_PRELOAD="$SHIM" MOECAP_OUT="$tmp/out-$1" MOECAP_GGML_ROUTING=0) ;;
    off) env=(LD_PRELOAD="$SHIM" MOECAP_OUT="$tmp/out-$1" MOECAP_GGML_ACCEPT=none) ;;
    no-writer) env=(LD_PRELOAD="$SHIM" MOECAP_OUT="$tmp/out-$1" MOECAP_FLUSH_MS=0) ;;
  esac
  rm -rf "$tmp/out-$1"
  env "${env[@]}" ${PIN_CPU:+taskset -c "$PIN_CPU"} "$TRUTH" "$tmp/m.gguf" --prompts "$tmp/p.txt" --gen "$GEN" --threads "$THREADS" \
      --no-callback --time 2>&1 >/dev/null | sed -n 's/.*= \([0-9.]*\) tokens\/s, \([0-9.]*\) tokens per CPU s/\1 \2/p'
}

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), host: $(hostname), $(nproc) CPUs, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model: mixtral-style F32 GGUF ($DIMS), $(du -m "$tmp/m.gguf" | cut -f1) MB; batch 1, prompt $PROMPT, $GEN decode steps, $THREADS thread(s)${PIN_CPU:+; every run bound to CPU $PIN_CPU}"
echo
one plain >/dev/null   # warm-up: page cache, CPU frequency
modes=(plain shim no-ask off no-writer)
declare -A all cpu
for r in $(seq 1 "$ROUNDS"); do
  line=""
  for i in 0 1 2 3 4; do
    m=${modes[$(( (i + r) % 5 ))]}
    read -r w c <<<"$(one "$m")"
    all[$m]+="$w "
    cpu[$m]+="$c "
    line+="$m=$w/$c "
  done
  echo "round $r: $line" >&2
done
/usr/bin/python3 - "${all[plain]}" "${all[shim]}" "${all[no-ask]}" "${all[off]}" "${all[no-writer]}" \
    "${cpu[plain]}" "${cpu[shim]}" "${cpu[no-ask]}" "${cpu[off]}" "${cpu[no-writer]}" <<'EOF'
import statistics, sys
v = [[float(x) for x in a.split()] for a in sys.argv[1:11]]
names = ("plain", "shim (adapter on)", "shim, MOECAP_GGML_ROUTING=0", "shim, adapter off",
         "shim, no writer thread (MOECAP_FLUSH_MS=0)")
for title, base in (("wall time", 0), ("process CPU time", 5)):
    print(f"\n{title}:\n")
    print("| run | decode tokens/s (median) | ratio to plain, same round (median) | min..max ratio |")
    print("| --- | --- | --- | --- |")
    plain = v[base]
    for i, name in enumerate(names):
        r = [a / b for a, b in zip(v[base + i], plain)]
        print(f"| {name} | {statistics.median(v[base + i]):.1f} | {statistics.median(r):.4f} | {min(r):.4f}..{max(r):.4f} |")
    ask = [a / b for a, b in zip(v[base + 1], v[base + 2])]
    print(f"\nrouting asks alone (adapter on / no asks, same round): median {statistics.median(ask):.4f}")
EOF
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
