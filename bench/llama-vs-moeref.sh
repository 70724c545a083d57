#!/usr/bin/env bash
# moe-ref and llama.cpp (npm prebuilt libllama, CPU) side by side on the same model, both
# profiled by libmoecap.so and measured by `moecap report`: decode tokens/s (decode tokens /
# decode step time, from the report) and the decode steps' S-MBU (bytes / step time / the
# hardware profile's bandwidth). Printed as Markdown (bench/results/llama-vs-moeref.md).
# Model: bench/engine-bandwidth.sh's geometry (mixtral-style, d=1024, 8 layers, 8 experts
# f=1536, top-2, GQA 16/4, vocab 32000: 1.55 GB F32), as safetensors for moe-ref and as an
# F32 GGUF (moe-ref gguf) for llama.cpp. Same prompt ids (B prompts of 16), greedy, same
# thread count. moe-ref runs with --gemv at batch 1 (its faster batch-1 form).
# usage: bench/llama-vs-moeref.sh [--gen N (32)] [--threads "1 2"] [--batches "1 8"] [--hw NAME (epyc-7763)]
#        [--model-dir DIR] [--keep-model]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
gen=32; threads_list="1 2"; batches="1 8"; hw=epyc-7763; model=/tmp/moecap-bench-model; keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --gen) gen=$2; shift 2 ;;
    --threads) threads_list=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --hw) hw=$2; shift 2 ;;
    --model-dir) model=$2; shift 2 ;;
    --keep-model) keep=1; shift ;;
    *) echo "usage: $0 [--gen N] [--threads LIST] [--batches LIST] [--hw NAME] [--model-dir DIR] [--keep-model]" >&2; exit 2 ;;
  esac
done
SHIM=$(realpath "$BUILD/lib/libmoecap.so")
for f in "$SHIM" "$BUILD/bin/moe-ref" "$BUILD/bin/moecap" "$BUILD/tests/llama_truth"; do
  [ -e "$f" ] || { echo "build first (make; llama.cpp: scripts/install-llama.sh): $f missing" >&2; exit 2; }
done
work=$(mktemp -d /tmp/moecap-llama-vs.XXXXXX)
trap 'rm -rf "$work"; [ "$keep" = 1 ] || rm -rf "$model"' EXIT
if ! [ -f "$model/model.safetensors" ] || ! grep -q '"hidden_size": 1024' "$model/config.json"; then
  "$BUILD/bin/moe-ref" gen --arch mixtral --layers 8 --hidden 1024 --heads 16 --kv-heads 4 --experts 8 \
      --top-k 2 --moe-intermediate 1536 --vocab 32000 --seed 1 --out "$model"
fi
[ -f "$model/model.gguf" ] || "$BUILD/bin/moe-ref" gguf --model "$model" --out "$model/model.gguf"

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), host: $(hostname), $(nproc) CPUs, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "model: $(du -m "$model/model.safetensors" | cut -f1) MB F32 (safetensors for moe-ref, GGUF for llama.cpp); prompt 16, $gen generated tokens per sequence; hardware profile $hw"
echo
echo "| threads | batch | engine | decode tok/s | decode S-MBU (median) | decode step ms (median) |"
echo "| --- | --- | --- | --- | --- | --- |"
summary() {   # report.json -> "tok/s smbu ms"
  /usr/bin/python3 - "$1" <<'PY'
import json, statistics, sys
s = [x for x in json.load(open(sys.argv[1]))["steps"] if x["kind"] == "decode"]
t = sum(x["time_s"] for x in s)
print(f"{sum(x['tokens'] for x in s) / t:.1f} {statistics.median(x['s_mbu'] for x in s):.3f} "
      f"{1000 * statistics.median(x['time_s'] for x in s):.1f}")
PY
}
for T in $threads_list; do
  for B in $batches; do
    /usr/bin/python3 -c "import random; random.seed($B); [print(' '.join(str(random.randrange(256)) for _ in range(16))) for _ in range($B)]" >"$work/p.txt"
    extra=(); [ "$B" = 1 ] && extra=(--gemv)
    rm -rf "$work/ref" "$work/llama"
    LD_PRELOAD="$SHIM" MOECAP_OUT="$work/ref" "$BUILD/bin/moe-ref" run --model "$model" --prompts "$work/p.txt" \
        --gen "$gen" --threads "$T" "${extra[@]}" >"$work/ref.out"
    "$BUILD/bin/moecap" report "$work/ref" --model "$model" --hw "$hw" --format json --quiet
    LD_PRELOAD="$SHIM" MOECAP_OUT="$work/llama" "$BUILD/tests/llama_truth" "$model/model.gguf" --prompts "$work/p.txt" \
        --gen "$gen" --threads "$T" --no-callback >"$work/llama.out"
    "$BUILD/bin/moecap" report "$work/llama" --model "$model/model.gguf" --hw "$hw" --format json --quiet
    read -r rt rs rm <<<"$(summary "$work/ref/report.json")"
    read -r lt ls lm <<<"$(summary "$work/llama/report.json")"
    same=$(cmp -s "$work/ref.out" "$work/llama.out" && echo "same tokens" || echo "tokens differ")
    echo "| $T | $B | moe-ref${extra[*]:+ --gemv} | $rt | $rs | $rm |"
    echo "| $T | $B | llama.cpp ($same) | $lt | $ls | $lm |"
    /usr/bin/python3 -c "print(f'| $T | $B | ratio moe-ref / llama.cpp | {$rt / $lt:.2f} | | |')"
  done
done
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
