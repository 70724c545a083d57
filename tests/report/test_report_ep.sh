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
source "$(dirname "$0")/engine_run_env.sh" "expert-parallel report vs ground truth"
run="--batch 3 --prompt-len 8 --gen 5 --stagger 1"
for arch in mixtral qwen2_moe deepseek_v2; do
  m="$tmp/model-$arch"
  "$BUILD/bin/moe-ref" gen --arch $arch --out "$m" $dims >/dev/null || { echo "not ok - $arch: gen failed"; continue; }
  "$BUILD/bin/moe-ref" run --model "$m" $run --dump-logits "$tmp/$arch-full.logits" >"$tmp/$arch-full.txt" ||
    { echo "not ok - $arch: single-process run failed"; continue; }
  for n in 2 4; do
    name="$arch-ep$n" d="$tmp/$arch-ep$n"
    profile "$name" "$d" run --model "$m" $run --expert-parallel $n --dump-logits "$d/logits" || continue
    if cmp -s "$tmp/$arch-full.txt" "$d/out.txt" && cmp -s "$tmp/$arch-full.logits" "$d/logits"; then
      echo "ok - $name: output ids and every step's logits equal the single-process engine's"
    else echo "not ok - $name: output differs from the single-process engine"; fi
    files=$(ls "$d/run"/*.mct | wc -l)
    [ "$files" = $((n + 1)) ] && echo "ok - $name: $files trace files (coordinator + $n workers)" ||
      echo "not ok - $name: $files trace files, expected $((n + 1))"
    report_vs_gt "$name" "$d" "$m" compare_ep.py
    # --devices N overrides the trace's count: S-MBU by hand = ground-truth bytes / the
    # report's step time / (N x the test profile's 10 GB/s)
    if "$BUILD/bin/moecap" report "$d/run" --model "$m" --hw $hw --format json --quiet --devices $n --out "$d/dev" 2>/dev/null; then
      $PY - "$d/gt.jsonl" "$d/dev/report.json" $n "$name" <<'PYEOF'
import json, sys
gt = [json.loads(l) for l in open(sys.argv[1])]
rep = json.load(open(sys.argv[2]))
n, name = int(sys.argv[3]), sys.argv[4]
bad = [(g['step'], s['s_mbu'], g['bytes']['total'] / (s['wall_ns'] / 1e9) / (n * 1e10))
       for g, s in zip(gt, rep['steps'])]
bad = [b for b in bad if abs(b[1] - b[2]) > 1e-8 * b[2]]
ok = not bad and len(gt) == len(rep['steps']) and rep['hardware']['devices'] == n and \
    rep['hardware']['devices_from'] == '--devices'
print('%s - %s --devices %d: S-MBU of %d steps = bytes / time / (%d x bandwidth)%s'
      % ('ok' if ok else 'not ok', name, n, len(gt), n, '' if ok else ' %r %r' % (bad[:3], rep['hardware'])))
PYEOF
    else echo "not ok - $name --devices $n: moecap report failed"; fi
  done
done
