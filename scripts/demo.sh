#!/usr/bin/env bash
# moecap demo — the README's main job, end to end on this machine:
#   1. build (installing missing Debian packages),
#   2. measure this machine's peaks (moecap hwprobe) into a hardware profile,
#   3. generate a tiny Qwen2-MoE model (moe-ref gen),
#   4. run the reference engine under LD_PRELOAD=libmoecap.so with its exact ground truth,
#   5. moecap report: JSON, Markdown and HTML (S-MBU, S-MFU, expert load, ...),
#   6. show the report's figures next to the engine's ground truth.
# Output in $DEMO_OUT (default build/demo). Environment: BUILD, DEMO_OUT, DEMO_ARCH.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
out="${DEMO_OUT:-$BUILD/demo}"
arch="${DEMO_ARCH:-qwen2_moe}"
step() { printf '\n== %s\n' "$*"; }

step "build"
scripts/install-deps.sh
make -s -j"$(nproc)" all

rm -rf "$out"; mkdir -p "$out"
step "measure this machine (moecap hwprobe, ~4 s)"
"$BUILD/bin/moecap" hwprobe --seconds 1 --name this-machine --out "$out/this-machine.json"
/usr/bin/python3 -c "import json,sys; p=json.load(open(sys.argv[1])); print(f\"{p['model']}: {p['memory_bandwidth_Bps']/1e9:.1f} GB/s streaming, {p['peak_flops']['f32']/1e9:.0f} GFLOP/s sgemm (measured)\")" "$out/this-machine.json"

step "generate a tiny $arch model (moe-ref gen)"
model="$out/tiny-$arch"
"$BUILD/bin/moe-ref" gen --arch "$arch" --out "$model" --layers 4 --hidden 128 \
    --moe-intermediate 96 --experts 8 --top-k 2 --shared-experts 1 --vocab 512 --seed 1
echo "$model: $(du -h "$model/model.safetensors" | cut -f1)"

step "profile: LD_PRELOAD=libmoecap.so moe-ref run --batch 4 --prompt-len 16 --gen 8"
LD_PRELOAD="$PWD/$BUILD/lib/libmoecap.so" MOECAP_OUT="$out/run" \
    "$BUILD/bin/moe-ref" run --model "$model" --batch 4 --prompt-len 16 --gen 8 \
    --ground-truth "$out/ground-truth.jsonl" > "$out/generated.txt"
echo "generated token ids (one line per sequence): $out/generated.txt"
ls -l "$out"/run/*.mct | awk '{print $NF ": " $5 " bytes"}'
"$BUILD/bin/moecap" dump --summary "$out"/run/*.mct | head -20

step "report (moecap report --hw $out/this-machine.json)"
"$BUILD/bin/moecap" report "$out/run" --model "$model" --hw "$out/this-machine.json" --out "$out/report"
ls "$out/report"

step "report vs the engine's ground truth"
/usr/bin/python3 - "$out/report/report.json" "$out/ground-truth.jsonl" <<'PY'
import json, sys
rep = json.load(open(sys.argv[1]))
gt = [json.loads(l) for l in open(sys.argv[2])]
steps = rep["steps"]
print(f"{'step':>4} {'kind':<8} {'tok':>4} {'experts (report/truth)':>22} {'bytes (report/truth)':>24} "
      f"{'FLOPs equal':>11} {'time ms rep/gt':>15} {'S-MBU':>7} {'S-MFU':>7}")
same = True
for s, g in zip(steps, gt):
    ex_r = sum(len(l.get("experts", [])) for l in s["layers"])
    ex_g = sum(len(l.get("experts", [])) for l in g["layers"])
    b_r, b_g = s["bytes"]["total"], g["bytes"]["total"]
    f_ok = s["flops"]["total"] == g["flops"]["total"]
    same &= ex_r == ex_g and b_r == b_g and f_ok
    print(f"{s['step']:>4} {s['kind']:<8} {s['tokens']:>4} {ex_r:>10}/{ex_g:<11} {b_r:>11}/{b_g:<12} "
          f"{str(f_ok):>11} {s['time_s']*1e3:>7.3f}/{g['wall_ns']/1e6:<7.3f} "
          f"{s['s_mbu']*100:>6.2f}% {s['s_mfu']*100:>6.2f}%")
a = rep["aggregate"]
print(f"\nsteps {len(steps)} (ground truth {len(gt)}); S-MBU {a['s_mbu']*100:.2f} % vs dense MBU {a['mbu']*100:.2f} %;"
      f" S-MFU {a['s_mfu']*100:.2f} % vs dense MFU {a['mfu']*100:.2f} %; {a['tokens_per_s']['total']:.0f} tokens/s")
print("experts, bytes and FLOPs equal the ground truth in every step" if same and len(steps) == len(gt)
      else "MISMATCH between report and ground truth (see above)")
sys.exit(0 if same and len(steps) == len(gt) else 1)
PY
step "done: open $out/report/report.html (also report.md, report.json)"
