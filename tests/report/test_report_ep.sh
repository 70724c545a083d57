#!/usr/bin/env bash
# Expert parallelism (the MoE-CAP PA class) end to end against moe-ref's exact ground truth:
# for mixtral, qwen2_moe and deepseek_v2, moe-ref run --expert-parallel 2 and 4 under
# libmoecap.so (one trace per process: the coordinator and its forked workers) ->
# moecap report merges the workers' expert GEMMs into the coordinator's steps ->
#   - output ids and every step's logits equal the single-process engine's;
#   - steps, experts, tokens per expert, bytes and FLOPs of all processes together exact
#     (compare_gt.py); per worker process: experts, weight bytes, FLOPs, GEMM calls, the
#     activation bytes exchanged, and the per-process expert-load heatmap exact
#     (compare_ep.py); class PA.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
for f in "$BUILD/bin/moe-ref" "$BUILD/bin/moecap" "$BUILD/lib/libmoecap.so"; do
  [ -e "$f" ] || { echo "skip - expert-parallel report vs ground truth ($f not built)"; exit 0; }
done
PRE="$(realpath "$BUILD")/lib/libmoecap.so"
if [ "${SAN:-0}" = 1 ]; then
  PRE="$(cc -print-file-name=libasan.so) $PRE"; export ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
hw=tests/report/hw-test.json
dims="--hidden 128 --moe-intermediate 64 --intermediate 256 --heads 4 --kv-heads 2 --vocab 300 --layers 3 --experts 8 --top-k 2"
run="--batch 3 --prompt-len 8 --gen 5 --stagger 1"
for arch in mixtral qwen2_moe deepseek_v2; do
  m="$tmp/model-$arch"
  "$BUILD/bin/moe-ref" gen --arch $arch --out "$m" $dims >/dev/null || { echo "not ok - $arch: gen failed"; continue; }
  "$BUILD/bin/moe-ref" run --model "$m" $run --dump-logits "$tmp/$arch-full.logits" >"$tmp/$arch-full.txt" ||
    { echo "not ok - $arch: single-process run failed"; continue; }
  for n in 2 4; do
    name="$arch-ep$n" d="$tmp/$arch-ep$n"
    mkdir -p "$d"
    if ! LD_PRELOAD="$PRE" MOECAP_OUT="$d/run" "$BUILD/bin/moe-ref" run --model "$m" $run --expert-parallel $n \
         --ground-truth "$d/gt.jsonl" --dump-logits "$d/logits" >"$d/out.txt" 2>"$d/err.txt"; then
      echo "# $(tail -3 "$d/err.txt")"; echo "not ok - $name: moe-ref run failed"; continue
    fi
    if cmp -s "$tmp/$arch-full.txt" "$d/out.txt" && cmp -s "$tmp/$arch-full.logits" "$d/logits"; then
      echo "ok - $name: output ids and every step's logits equal the single-process engine's"
    else echo "not ok - $name: output differs from the single-process engine"; fi
    files=$(ls "$d/run"/*.mct | wc -l)
    [ "$files" = $((n + 1)) ] && echo "ok - $name: $files trace files (coordinator + $n workers)" ||
      echo "not ok - $name: $files trace files, expected $((n + 1))"
    if ! "$BUILD/bin/moecap" report "$d/run" --model "$m" --hw $hw --format json --quiet 2>"$d/rep.err"; then
      echo "# $(tail -5 "$d/rep.err")"; echo "not ok - $name: moecap report failed"; continue
    fi
    $PY tests/report/compare_gt.py "$d/gt.jsonl" "$d/run/report.json" "$name" --no-time
    $PY tests/report/compare_ep.py "$d/gt.jsonl" "$d/run/report.json" "$name"
  done
done
