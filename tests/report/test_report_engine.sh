#!/usr/bin/env bash
# End to end against the reference engine's exact ground truth: for mixtral, qwen2_moe and
# deepseek_v2 (leading dense layer + shared experts) x batch 1, 4, 16 (prefill + decode):
# moe-ref gen -> moe-ref run under libmoecap.so with --ground-truth -> moecap report ->
# per step: kind, tokens, sequences, contexts, activated experts, tokens per expert, every
# bytes and FLOPs field equal; wall times within 2 %. Also: the shape-only path
# (--no-names), mixed continuous-batching steps (--stagger), sgemv for single-row products
# (the engine's default; the timed cases use --gemm) and helper threads (--threads 2: experts
# and q/k/v of a step issued from two threads, long enough that the threads' trace segments
# interleave).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
for f in "$BUILD/bin/moe-ref" "$BUILD/bin/moecap" "$BUILD/lib/libmoecap.so"; do
  [ -e "$f" ] || { echo "skip - report vs ground truth ($f not built)"; exit 0; }
done
PRE="$(realpath "$BUILD")/lib/libmoecap.so"
if [ "${SAN:-0}" = 1 ]; then   # sanitized build: the ASan runtime must come first
  PRE="$(cc -print-file-name=libasan.so) $PRE"; export ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
hw=tests/report/hw-test.json
# big enough that a step takes milliseconds (the times compared are then not dominated by
# the few microseconds of embedding/norm before the first GEMM and sampling after lm_head)
dims="--hidden 512 --moe-intermediate 512 --intermediate 1024 --heads 8 --kv-heads 4 --vocab 512 --layers 3 --experts 8 --top-k 2"

run_case() {   # name model extra-run-args extra-report-args compare-args
  local out
  out=$(run_case_once "$@")
  # Wall time is the one measured (not counted) figure: a run preempted outside its GEMMs on a
  # busy machine makes the engine's step longer than the GEMM span the trace shows. When only
  # that check fails, measure once more (a new run and trace); counts must pass both times.
  if echo "$out" | grep -q "^not ok - .*: wall time off" && [ "$(echo "$out" | grep -c "^not ok")" = 1 ]; then
    echo "$out" | grep -E "^(#|not ok)" | sed 's/^\(not ok - .*\)$/# first run: \1 (load: '"$(cut -d' ' -f1-3 /proc/loadavg)"'), measured again/'
    out=$(run_case_once "$@")
  fi
  echo "$out"
}

run_case_once() {
  local name=$1 model=$2 runargs=$3 repargs=$4 cmpargs=$5 d="$tmp/$1"
  rm -rf "$d"; mkdir -p "$d"
  if ! LD_PRELOAD="${PRE_RUN:-$PRE}" MOECAP_OUT="$d/run" \
       "$BUILD/bin/moe-ref" run --model "$model" $runargs --ground-truth "$d/gt.jsonl" >"$d/out.txt" 2>"$d/err.txt"; then
    echo "# $(tail -3 "$d/err.txt")"; echo "not ok - $name: moe-ref run failed"; return
  fi
  if ! "$BUILD/bin/moecap" report "$d/run" --model "$model" --hw $hw --format json --quiet $repargs 2>"$d/rep.err"; then
    echo "# $(tail -5 "$d/rep.err")"; echo "not ok - $name: moecap report failed"; return
  fi
  $PY tests/report/compare_gt.py "$d/gt.jsonl" "$d/run/report.json" "$name" $cmpargs
}

# shape-only attribution needs distinct shapes for router, experts, shared experts, dense
# FFN, attention and lm_head (true of real models; see docs/attribution.md)
sdims="--hidden 256 --moe-intermediate 96 --shared-experts 2 --intermediate 512 --heads 8 --kv-heads 4 --vocab 1000 --layers 3 --experts 8 --top-k 2"
for arch in mixtral qwen2_moe deepseek_v2; do
  m="$tmp/model-$arch"
  "$BUILD/bin/moe-ref" gen --arch $arch --out "$m" $dims >/dev/null || { echo "not ok - $arch: gen failed"; continue; }
  # --gemm: one-row products as sgemm, whose longer steps keep the 2 % wall-time bound about
  # GEMM spans rather than the ~50 us of host work around them (the default sgemv form
  # halves a batch-1 step here; it is checked below, exactly and, with threads, timed)
  for b in 1 4 16; do
    run_case "$arch-b$b" "$m" "--batch $b --prompt-len 16 --gen 5 --gemm" "" ""
  done
  # continuous batching: sequences join one per step (mixed steps), then leave oldest first
  run_case "$arch-stagger" "$m" "--batch 4 --prompt-len 8 --gen 5 --stagger 1" "" "--no-time"
  run_case "$arch-gemv" "$m" "--batch 1 --prompt-len 6 --gen 4" "" "--no-time"
  run_case "$arch-b1-threads2" "$m" "--batch 1 --prompt-len 16 --gen 24 --threads 2 --gemm" "" "--helpers"
  run_case "$arch-b4-threads2" "$m" "--batch 4 --prompt-len 16 --gen 12 --threads 2" "" "--helpers"
  ms="$tmp/model-$arch-s"; sd=$sdims
  [ $arch = mixtral ] && sd=${sdims/--shared-experts 2 /}
  "$BUILD/bin/moe-ref" gen --arch $arch --out "$ms" $sd >/dev/null || { echo "not ok - $arch: gen failed"; continue; }
  run_case "$arch-b4-shape-only" "$ms" "--batch 4 --prompt-len 8 --gen 4" "--no-names" "--order-ids --no-time"
  # (its products take microseconds: the step thread may finish a list before a helper wakes,
  # so this case checks exactness with threads, not that helpers took part)
  run_case "$arch-b4-shape-only-threads2" "$ms" "--batch 4 --prompt-len 8 --gen 16 --threads 2" "--no-names" "--order-ids --no-time"
done
# Shape-only with a shared expert of 2f (fs = 192 = 2 x 96): its [2f, d] gate is told from a
# fused routed gate_up only because a routed gate came first in the layer. With 8 threads
# for 7 tasks (batch 1, top-2: gate, up, down of two experts, then the shared expert) every
# task is claimed at once; the routed gate/up products start 30 ms late
# (tests/engine/slow_product_probe.c, preloaded in front of the shim), so only the engine's
# ordering of the shared task keeps the shared gate behind them.
probe="$(realpath "$BUILD")/tests/libslow_product_probe.so"
if [ -e "$probe" ]; then
  slow_pre="$probe $(realpath "$BUILD")/lib/libmoecap.so"
  [ "${SAN:-0}" = 1 ] && slow_pre="$(cc -print-file-name=libasan.so) $slow_pre"
  for arch in qwen2_moe deepseek_v2; do
    [ -d "$tmp/model-$arch-s" ] || continue
    PRE_RUN="$slow_pre" MR_TEST_SLOW_N=96 MR_TEST_SLOW_MS=30 run_case "$arch-shape-only-shared-gate-after-routed" \
      "$tmp/model-$arch-s" "--batch 1 --prompt-len 1 --gen 3 --threads 8 --gemm" "--no-names" "--order-ids --no-time"
  done
else
  echo "skip - shared gate after routed gates ($probe not built)"
fi
# wrong model: a mixtral trace reported with a qwen2_moe model of the same sizes (names and
# shapes of the shared weights agree; the predicted shared expert never runs) -> exit 2
d="$tmp/mixtral-b4/run"
if [ -d "$d" ]; then
  "$BUILD/bin/moecap" report "$d" --model "$tmp/model-qwen2_moe" --hw $hw --format json --quiet 2>"$tmp/wrong.err"; rc=$?
  if [ $rc -eq 2 ] && grep -q "does not match" "$tmp/wrong.err"; then echo "ok - mixtral trace with a qwen2_moe model: exit 2 ($(head -c 160 "$tmp/wrong.err"))"
  else echo "# rc=$rc $(head -3 "$tmp/wrong.err")"; echo "not ok - mixtral trace with a qwen2_moe model"; fi
fi
# the engine's default tiny mixtral has 2f = d = H*hd and f = HK*hd: this checks the
# positional rules of the shape-only attribution (q after experts, o after q/k/v)
m="$tmp/model-tiny"
"$BUILD/bin/moe-ref" gen --arch mixtral --out "$m" >/dev/null
run_case "tiny-mixtral-shape-only" "$m" "--batch 4 --prompt-len 8 --gen 4" "--no-names" "--order-ids --no-time"
run_case "tiny-mixtral-named" "$m" "--batch 4 --prompt-len 8 --gen 4" "" "--no-time"
# Weight-file maps after the GEMMs in the file (as in `moe-ref serve` traces: the main
# thread maps the weights, its ring is flushed after the scheduler thread's GEMMs). The
# engine's default tiny qwen2_moe has a shared expert shaped like a routed one (fs = f), so
# only names separate them: shape-only attribution must refuse (exit 2), and the named
# report must be exact although the names arrive last.
m="$tmp/model-tiny-qwen"
"$BUILD/bin/moe-ref" gen --arch qwen2_moe --out "$m" >/dev/null
d="$tmp/tiny-qwen"
mkdir -p "$d"
if LD_PRELOAD="$PRE" MOECAP_OUT="$d/run" "$BUILD/bin/moe-ref" run --model "$m" --batch 4 --prompt-len 8 --gen 4 \
     --ground-truth "$d/gt.jsonl" >/dev/null 2>"$d/err.txt"; then
  "$BUILD/bin/moecap" report "$d/run" --model "$m" --hw $hw --format json --quiet --no-names --out "$d/nn" 2>"$d/nn.err"; rc=$?
  if [ $rc -eq 2 ] && grep -q "does not match" "$d/nn.err"; then echo "ok - tiny qwen2_moe (fs = f) without names: exit 2"
  else echo "# rc=$rc $(head -3 "$d/nn.err")"; echo "not ok - tiny qwen2_moe (fs = f) without names: exit 2"; fi
  moved=$($PY tests/report/reorder_trace.py "$d"/run/*.mct 8)
  if [ "${moved%% *}" -ge 1 ] && [ "${moved##* }" -ge 1 ]; then echo "ok - trace rewritten: $moved (file maps, GEMMs before them)"
  else echo "not ok - trace rewritten: $moved (file maps, GEMMs before them)"; fi
  if "$BUILD/bin/moecap" report "$d/run" --model "$m" --hw $hw --format json --quiet 2>"$d/rep.err"; then
    $PY tests/report/compare_gt.py "$d/gt.jsonl" "$d/run/report.json" "tiny-qwen2_moe-maps-last" --no-time
  else echo "# $(tail -5 "$d/rep.err")"; echo "not ok - tiny-qwen2_moe-maps-last: moecap report failed"; fi
else
  echo "# $(tail -3 "$d/err.txt")"; echo "not ok - tiny qwen2_moe: moe-ref run failed"
fi
exit 0
