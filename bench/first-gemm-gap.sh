#!/usr/bin/env bash
# Time between moe-ref's step start (its ground truth t_begin_ns) and the first GEMM the trace
# shows for that step, per decode step, with libmoecap.so preloaded: the host work before a
# step's first GEMM plus whatever the shim spends before stamping that GEMM (its call-site
# capture). Also the gap at the step's end (lm_head end -> t_end_ns). Medians and maxima over
# the decode steps of R runs; deepseek_v2, hidden 256, batch 1 (a ~1 ms decode step).
# usage: bench/first-gemm-gap.sh [R (default 3)]
# env: SHIM=another libmoecap.so to compare (default $BUILD/lib/libmoecap.so); MOECAP_STACK
#      as for any run (0: no call sites).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
R=${1:-3}
make -s "$BUILD/bin/moe-ref" "$BUILD/bin/moecap" "$BUILD/lib/libmoecap.so"
SHIM=$(realpath "${SHIM:-$BUILD/lib/libmoecap.so}")
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
"$BUILD/bin/moe-ref" gen --arch deepseek_v2 --out "$t/m" --hidden 256 --moe-intermediate 256 --intermediate 512 \
  --heads 8 --kv-heads 4 --vocab 512 --layers 3 --experts 8 --top-k 2 >/dev/null
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), shim $SHIM"
for i in $(seq "$R"); do
  LD_PRELOAD="$SHIM" MOECAP_OUT="$t/run$i" "$BUILD/bin/moe-ref" run --model "$t/m" --batch 1 --prompt-len 16 --gen 20 \
    --ground-truth "$t/gt$i.jsonl" >/dev/null
  "$BUILD/bin/moecap" report "$t/run$i" --model "$t/m" --hw tests/report/hw-test.json --format json --quiet
  python3 - "$t/gt$i.jsonl" "$t/run$i/report.json" <<'PY'
import json, statistics, sys
gt = [json.loads(l) for l in open(sys.argv[1])]
rep = json.load(open(sys.argv[2]))['steps']
pairs = [(g, s) for g, s in zip(gt, rep) if g['kind'] == 'decode']
b = [(s['t_begin_ns'] - g['t_begin_ns']) / 1e3 for g, s in pairs]
e = [(g['t_end_ns'] - s['t_end_ns']) / 1e3 for g, s in pairs]
w = [g['wall_ns'] / 1e3 for g, _ in pairs]
print('run: %d decode steps; before first GEMM us: median %.1f max %.1f; after last GEMM us: median %.1f max %.1f; '
      'step wall us: median %.0f' % (len(pairs), statistics.median(b), max(b), statistics.median(e), max(e),
                                      statistics.median(w)))
PY
done
