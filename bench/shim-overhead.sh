#!/usr/bin/env bash
# libmoecap.so overhead, printed as Markdown (copy into bench/results/shim-overhead.md).
#  1. Added time per intercepted call: a tight loop of 2x2x2 cblas_sgemm calls issued 12
#     frames below main (bench/shim-loop.c), against a no-op BLAS (bench/shim-nullblas.c:
#     isolates the shim's own cost) and OpenBLAS; without the shim, with MOECAP_STACK=0,
#     with the default call sites (8 frames, cached per call position) and with
#     MOECAP_STACK_EXACT=1 (unwind every call); and the calling thread's own cost: 200000
#     calls timed in 200 batches (median batch) with a 64 MiB ring and no writer thread,
#     so nothing is written during the loop (at 10-30 M calls/s the trace outruns the
#     page cache and the program's thread ends up writing too).
#     Runs alternate; medians; added = shim - plain.
#  2. End to end: moe-ref decode, batch 1, on a tiny (d=64) and a small (d=256) synthetic
#     model; pairs of runs (order alternating), each timed by the engine's own per-step
#     wall_ns (decode steps only) and by process wall time; ratio = shim / plain per pair.
#     The tiny model's runs take ~0.1 s: it gets TINY_REPS rounds (default 10 x REPS),
#     which its noise needs.
# usage: bench/shim-overhead.sh [REPS (default 7)] [loop|e2e|all]
# env: SHIM=path/libmoecap.so (default $BUILD/lib/libmoecap.so); BASELINE_SHIM=another
#      build (absolute path) that joins the loop runs and the e2e rounds (before/after,
#      interleaved); BASELINES="name=/path/libmoecap.so ..." more builds in the e2e rounds;
#      PIN_CPU=N binds every e2e run to CPU N (bench/shim-e2e.py says why);
#      VARIANTS="name=MOECAP_X:value,... ..." this build with other settings in the e2e rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
REPS=${1:-7}
WHAT=${2:-all}
PY=/usr/bin/python3
SHIM=$(realpath "${SHIM:-$BUILD/lib/libmoecap.so}")
TINY_REPS=${TINY_REPS:-$((REPS * 10))}
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
      res[s8r]+=" $(MOECAP_OUT=$tmp/o MOECAP_BUF_KB=65536 MOECAP_FLUSH_MS=0 LD_PRELOAD=$SHIM "$prog" 200000 cblas 12 200)"; rm -rf "$tmp/o"
      res[s0r]+=" $(MOECAP_OUT=$tmp/o MOECAP_BUF_KB=65536 MOECAP_FLUSH_MS=0 MOECAP_STACK=0 LD_PRELOAD=$SHIM "$prog" 200000 cblas 12 200)"; rm -rf "$tmp/o"
      res[plainb]+=" $("$prog" 200000 cblas 12 200)"
      if [ -n "${BASELINE_SHIM:-}" ]; then
        res[b8]+=" $(MOECAP_OUT=$tmp/o LD_PRELOAD=$BASELINE_SHIM "$prog" $N cblas 12)"; rm -rf "$tmp/o"
        res[b8r]+=" $(MOECAP_OUT=$tmp/o MOECAP_BUF_KB=65536 MOECAP_FLUSH_MS=0 LD_PRELOAD=$BASELINE_SHIM "$prog" 200000 cblas 12 200)"; rm -rf "$tmp/o"
        res[b0r]+=" $(MOECAP_OUT=$tmp/o MOECAP_BUF_KB=65536 MOECAP_FLUSH_MS=0 MOECAP_STACK=0 LD_PRELOAD=$BASELINE_SHIM "$prog" 200000 cblas 12 200)"; rm -rf "$tmp/o"
      fi
    done
    p=$(median ${res[plain]})
    name=$([ $blas = null ] && echo "no-op" || echo "OpenBLAS")
    echo "| $name | no shim | $p | - |"
    configs="s0 s8 s8x s8r s0r"
    [ -n "${BASELINE_SHIM:-}" ] && configs="$configs b8 b8r b0r"
    for c in $configs; do
      m=$(median ${res[$c]})
      base=$p
      case $c in s8r|s0r|b8r|b0r) base=$(median ${res[plainb]});; esac
      label=$(case $c in s0) echo "MOECAP_STACK=0";; s8) echo "default (8 frames, cached)";; s8x) echo "8 frames, MOECAP_STACK_EXACT=1";;
              s8r) echo "default, in-thread only (64 MiB ring, median of 200 batches; no shim: $base)";;
              s0r) echo "MOECAP_STACK=0, in-thread only (as above)";;
              b8) echo "baseline build (BASELINE_SHIM), default";;
              b8r) echo "baseline build, default, in-thread only";;
              b0r) echo "baseline build, MOECAP_STACK=0, in-thread only";; esac)
      echo "| $name | $label | $m | $("$PY" -c "print('%.1f' % ($m - $base))") |"
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
  echo "### End to end: moe-ref decode, batch 1 (prompt 16, 512 new tokens), order rotating; rounds: tiny $TINY_REPS, small $REPS${PIN_CPU:+; every run bound to CPU $PIN_CPU}"
  echo
  echo "Per round every configuration runs once (rotating order); ratios against the plain run of the"
  echo "same round. Decode = sum of the engine's per-step wall_ns over decode steps; CPU = user+sys of the process."
  echo
  echo "| model | GEMMs/decode step | plain decode ms (median) | configuration | decode ratio: median [95 % CI] (IQR) | best-of-N decode ratio | median-step ratio: median [95 % CI] | wall ratio (median) | CPU ratio (median, min..max) |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  "$PY" bench/shim-e2e.py "$MR" "$SHIM" "$tmp/tiny" tiny "$TINY_REPS" "$tmp"
  "$PY" bench/shim-e2e.py "$MR" "$SHIM" "$tmp/small" small "$REPS" "$tmp"
  echo
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
