#!/usr/bin/env bash
# moecap demo (first version): build, generate a tiny MoE model, run the reference engine
# with exact ground truth, and print a per-step summary of what it did. Later versions
# profile the same run under libmoecap.so and compare the report with this ground truth.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
make -s "$BUILD/bin/moe-ref"
out="${DEMO_OUT:-$BUILD/demo}"
mkdir -p "$out"
model="$out/tiny-qwen2_moe"
"$BUILD/bin/moe-ref" gen --arch qwen2_moe --out "$model" --layers 4 --hidden 64 \
    --experts 8 --top-k 2 --shared-experts 1 --vocab 256 --seed 1
echo "== model: $model ($(du -h "$model/model.safetensors" | cut -f1))"
echo "== moe-ref run --batch 2 --prompt-len 8 --gen 6 (generated token ids per sequence):"
"$BUILD/bin/moe-ref" run --model "$model" --batch 2 --prompt-len 8 --gen 6 \
    --ground-truth "$out/ground-truth.jsonl"
echo "== ground truth: $out/ground-truth.jsonl"
/usr/bin/python3 - "$out/ground-truth.jsonl" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'step':>4} {'kind':<8} {'seqs':>4} {'tok':>4} {'experts/layer':>14} "
      f"{'weights MB':>10} {'KV kB':>7} {'MFLOP':>8} {'gemms':>6} {'wall us':>8}")
for s in steps:
    moe = [l for l in s["layers"] if not l.get("dense")]
    ex = sum(len(l["experts"]) for l in moe) / max(1, len(moe))
    b = s["bytes"]
    w = b["dense_weights"] + b["routed_expert_weights"] + b["shared_expert_weights"]
    print(f"{s['step']:>4} {s['kind']:<8} {s['sequences']:>4} {s['tokens']:>4} {ex:>14.2f} "
          f"{w/1e6:>10.3f} {(b['kv_read']+b['kv_written'])/1e3:>7.1f} "
          f"{s['flops']['total']/1e6:>8.2f} {s['gemm_calls']:>6} {s['wall_ns']/1e3:>8.1f}")
tot_b = sum(s["bytes"]["total"] for s in steps)
tot_f = sum(s["flops"]["total"] for s in steps)
tot_t = sum(s["wall_ns"] for s in steps) / 1e9
print(f"total: {len(steps)} steps, {tot_b/1e6:.2f} MB read, {tot_f/1e6:.1f} MFLOP, "
      f"{tot_t*1e3:.2f} ms")
PY
