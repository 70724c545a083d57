#!/usr/bin/env bash
# libmoecap.so overhead, printed as Markdown (copy into bench/results/shim-overhead.md).
#  1. Added time per intercepted call: a tight loop of 2x2x2 cblas_sgemm calls issued 12
#     frames below main (bench/shim-loop.c), against a no-op BLAS (bench/shim-nullblas.c:
#     isolates the shim's own cost) and OpenBLAS; without the shim, with MOECAP_STACK=0,
#     with the default call sites (8 frames, cached per call position) and with
#     MOECAP_STACK_EXACT=1 (unwind every call). Runs alternate; medians; added = shim - plain.
#  2. End to end: moe-ref decode, batch 1, on a tiny (d=64) and a small (d=256) synthetic
#     model; pairs of runs (order alternating), each timed by the engine's own per-step
#     wall_ns (decode steps only) and by process wall time; ratio = shim / plain per pair.
# usage: bench/shim-overhead.sh [REPS (default 7)] [loop|e2e|all]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
REPS=${1:-7}
WHAT=${2:-all}
PY=/usr/bin/python3
SHIM=$PWD/$BUILD/lib/libmoecap.so
[ -f "$SHIM" ] || { echo "build first: make" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

median() { "$PY" -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:]]; print("%.1f" % statistics.median(v))' "$@"; }

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), host: $(hostname), $(nproc) CPUs, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

if [ "$WHAT" = all ] || [ "$WHAT" = loop ]; then
  cc -O2 -shared -fPIC -o "$tmp/libnullblas.so" bench/shim-nullblas.c
  cc -O2 -o "$tmp/loop-null" bench/shim-loop.c -L"$tmp" -lnullblas -Wl,-rpath,"$tmp"
  cc -O2 -o "$tmp/loop-blas" bench/shim-loop.c -lopenblas
  N=2000000
  echo "### Added time per intercepted call (cblas_sgemm 2x2x2, $N calls, 12 frames deep, median of $REPS)"
  echo
  echo "| BLAS | configuration | ns/call | added ns/call |"
  echo "| --- | --- | --- | --- |"
  for blas in null blas; do
    prog="$tmp/loop-$blas"
    declare -A res=()
    for r in $(seq 1 "$REPS"); do
      res[plain]+=" $("$prog" $N cblas 12)"
      res[s0]+=" $(MOECAP_OUT=$tmp/o MOECAP_STACK=0 LD_PRELOAD=$SHIM "$prog" $N cblas 12)"; rm -rf "$tmp/o"
      res[s8]+=" $(MOECAP_OUT=$tmp/o LD_PRELOAD=$SHIM "$prog" $N cblas 12)"; rm -rf "$tmp/o"
      res[s8x]+=" $(MOECAP_OUT=$tmp/o MOECAP_STACK_EXACT=1 LD_PRELOAD=$SHIM "$prog" $N cblas 12)"; rm -rf "$tmp/o"
    done
    p=$(median ${res[plain]})
    name=$([ $blas = null ] && echo "no-op" || echo "OpenBLAS")
    echo "| $name | no shim | $p | - |"
    for c in s0 s8 s8x; do
      m=$(median ${res[$c]})
      label=$(case $c in s0) echo "MOECAP_STACK=0";; s8) echo "default (8 frames, cached)";; s8x) echo "8 frames, MOECAP_STACK_EXACT=1";; esac)
      echo "| $name | $label | $m | $("$PY" -c "print('%.1f' % ($m - $p))") |"
    done
    unset res
  done
  echo
fi

if [ "$WHAT" = all ] || [ "$WHAT" = e2e ]; then
  MR=$BUILD/bin/moe-ref
  [ -x "$MR" ] || { echo "moe-ref not built" >&2; exit 2; }
  "$MR" gen --arch mixtral --out "$tmp/tiny" >/dev/null
  "$MR" gen --arch mixtral --out "$tmp/small" --hidden 256 --moe-intermediate 256 --layers 4 --vocab 2048 >/dev/null
  echo "### End to end: moe-ref decode, batch 1 (prompt 16, 256 new tokens), $REPS pairs, order alternating"
  echo
  echo "| model | GEMMs/decode step | plain decode ms (median) | shim/plain decode time (median, min..max) | shim/plain process wall (median) |"
  echo "| --- | --- | --- | --- | --- |"
  for model in tiny small; do
    args=(run --model "$tmp/$model" --batch 1 --prompt-len 16 --gen 256)
    : >"$tmp/pairs"
    for r in $(seq 1 "$REPS"); do
      for order in a b; do
        if { [ $order = a ] && [ $((r % 2)) -eq 1 ]; } || { [ $order = b ] && [ $((r % 2)) -eq 0 ]; }; then
          s=$(date +%s%N); "$MR" "${args[@]}" --ground-truth "$tmp/gt-plain" >/dev/null; e=$(date +%s%N); wp=$((e - s))
        else
          s=$(date +%s%N); MOECAP_OUT=$tmp/o LD_PRELOAD=$SHIM "$MR" "${args[@]}" --ground-truth "$tmp/gt-shim" >/dev/null; e=$(date +%s%N); ws=$((e - s))
          rm -rf "$tmp/o"
        fi
      done
      "$PY" - "$tmp/gt-plain" "$tmp/gt-shim" "$wp" "$ws" >>"$tmp/pairs" <<'PY'
import json, sys
def dec(p):
    L = [json.loads(l) for l in open(p)]
    d = [s for s in L if s["kind"] == "decode"]
    return sum(s["wall_ns"] for s in d), d[0]["gemm_calls"]
a, calls = dec(sys.argv[1]); b, _ = dec(sys.argv[2])
print(a, b, sys.argv[3], sys.argv[4], calls)
PY
    done
    "$PY" - "$tmp/pairs" "$model" <<'PY'
import statistics, sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1])]
r = [b / a for a, b, _, _, _ in rows]
w = [ws / wp for _, _, wp, ws, _ in rows]
print("| %s | %d | %.2f | %.4f (%.4f..%.4f) | %.4f |" % (sys.argv[2], rows[0][4], statistics.median(a for a, *_ in rows) / 1e6,
      statistics.median(r), min(r), max(r), statistics.median(w)))
PY
  done
  echo
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
