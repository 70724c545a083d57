# Sourced by the end-to-end report tests that profile moe-ref (test_report_offload.sh,
# test_report_ep.sh): skips (exit 0) when moe-ref, moecap or the shim is not built; sets
# BUILD, PY, PRE (the LD_PRELOAD line; the ASan runtime first under SAN=1), hw (the test
# hardware profile), dims (a small model's gen arguments) and tmp (removed at exit).
# $1: what the test checks, for the skip line.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
for f in "$BUILD/bin/moe-ref" "$BUILD/bin/moecap" "$BUILD/lib/libmoecap.so"; do
  [ -e "$f" ] || { echo "skip - $1 ($f not built)"; exit 0; }
done
PRE="$(realpath "$BUILD")/lib/libmoecap.so"
if [ "${SAN:-0}" = 1 ]; then
  PRE="$(cc -print-file-name=libasan.so) $PRE"; export ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
hw=tests/report/hw-test.json
dims="--hidden 128 --moe-intermediate 64 --intermediate 256 --heads 4 --kv-heads 2 --vocab 300 --layers 3 --experts 8 --top-k 2"

# profile NAME DIR ARGS...: `moe-ref ARGS` under the shim, traces in DIR/run, ground truth
# DIR/gt.jsonl, output DIR/out.txt; a "not ok" line and status 1 when it fails.
profile() {
  local name=$1 d=$2
  shift 2
  mkdir -p "$d"
  if ! LD_PRELOAD="$PRE" MOECAP_OUT="$d/run" "$BUILD/bin/moe-ref" "$@" --ground-truth "$d/gt.jsonl" \
       >"$d/out.txt" 2>"$d/err.txt"; then
    echo "# $(tail -3 "$d/err.txt")"; echo "not ok - $name: moe-ref run failed"; return 1
  fi
}

# report_vs_gt NAME DIR MODEL COMPARER: moecap report on DIR/run, then compare_gt.py (every
# step's experts, bytes, FLOPs) and tests/report/COMPARER against DIR/gt.jsonl.
report_vs_gt() {
  local name=$1 d=$2 model=$3 cmp=$4
  if ! "$BUILD/bin/moecap" report "$d/run" --model "$model" --hw $hw --format json --quiet 2>"$d/rep.err"; then
    echo "# $(tail -5 "$d/rep.err")"; echo "not ok - $name: moecap report failed"; return 1
  fi
  $PY tests/report/compare_gt.py "$d/gt.jsonl" "$d/run/report.json" "$name" --no-time
  $PY "tests/report/$cmp" "$d/gt.jsonl" "$d/run/report.json" "$name"
}
