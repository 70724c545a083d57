#!/usr/bin/env bash
# moecap demo — the README's main job, end to end on this machine:
#   1. build (installing missing Debian packages),
#   2. measure this machine's peaks (moecap hwprobe) into a hardware profile,
#   3. generate a tiny Qwen2-MoE model (moe-ref gen),
#   4. run the reference engine under LD_PRELOAD=libmoecap.so with its exact ground truth,
#   5. moecap report: JSON, Markdown and HTML (S-MBU, S-MFU, expert load, ...),
#   6. show the report's figures next to the engine's ground truth,
#   7. compare: the engine in three configurations (1 thread, 2 threads, 2 threads with mixed
#      batching) and, when it can be installed, llama.cpp on the same model as GGUF (f32 and
#      q8_0), each serving the same load (moecap bench, multiple-choice set, so accuracy is
#      scored), one report each, `moecap compare` with the CAP radar.
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
# Price and power cannot be measured; the demo assumes this machine's CPUs are its share of an
# AMD EPYC 7763 server part ($7,890 list, 280 W TDP, ~85 W idle for 64 cores): scaled by the
# online CPUs. Pass your own figures with hwprobe --price-usd/--tdp-w/--idle-w or report --cost.
ncpu=$(nproc)
share() { awk -v x="$1" -v n="$ncpu" 'BEGIN{printf "%.4g", x * n / 64}'; }
"$BUILD/bin/moecap" hwprobe --seconds 1 --name this-machine --out "$out/this-machine.json" \
    --price-usd "$(share 7890)" --tdp-w "$(share 280)" --idle-w "$(share 85)"
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
step "compare: one load, several systems (serve + moecap bench under the shim, a report each, moecap compare)"
# One load for every system: the 20 multiple-choice questions, 4 in flight, 4 tokens each.
# measure NAME MODEL_FOR_REPORT -- SERVER COMMAND (with PORT where the port goes)
measure() {
  local name=$1 report_model=$2; shift 3
  local run="$out/cmp-$name" port
  port=$(/usr/bin/python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  rm -rf "$run"
  LD_PRELOAD="$PWD/$BUILD/lib/libmoecap.so" MOECAP_OUT="$run" "${@//PORT/$port}" 2>"$out/cmp-$name.log" &
  local pid=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null && break; sleep 0.1; done
  "$BUILD/bin/moecap" bench --url "http://127.0.0.1:$port/v1" --dataset mc -n 20 --concurrency 4 \
      --max-tokens 4 --out "$run" --quiet || { echo "demo: $name: bench failed (server log $out/cmp-$name.log)" >&2; }
  kill -TERM "$pid"; wait "$pid" || true
  "$BUILD/bin/moecap" report "$run" --model "$report_model" --hw "$out/this-machine.json" --out "$run/report" \
      --format json,html --whatif-hw none --quiet
  systems+=("$run"); labels+=("$name")
  /usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); c=r['client']['summary']; a=r['aggregate']; \
print(f\"  {sys.argv[2]:<28} accuracy {c['accuracy']['accuracy']*100:5.1f} %  output {c['output_throughput']:7.1f} tok/s (client)  \" \
      f\"TPOT {a['tpot_server_s']['mean']*1e3:6.2f} ms  USD/1M tokens {r['cost']['owned']['per_1m_tokens_usd']:.3g} ({r['energy']['method']} energy)\")" \
      "$run/report/report.json" "$name"
}
systems=(); labels=()
ref=("$BUILD/bin/moe-ref" serve --model "$model" --port PORT --quiet)
measure "moe-ref 1 thread" "$model" -- "${ref[@]}" --threads 1
measure "moe-ref 2 threads" "$model" -- "${ref[@]}" --threads 2
measure "moe-ref 2 threads mixed" "$model" -- "${ref[@]}" --threads 2 --mixed
# llama.cpp (unmodified, through node-llama-cpp) on the same model exported as GGUF, f32 and
# 8-bit quantized (a PC system), when it can be installed (npm registry reachable)
if scripts/install-llama.sh >"$out/install-llama.log" 2>&1; then
  for ty in f32 q8_0; do
    "$BUILD/bin/moe-ref" gguf --model "$model" --out "$out/tiny-$ty.gguf" --type $ty >/dev/null
    measure "llama.cpp $ty" "$out/tiny-$ty.gguf" -- node engines/llama/serve.mjs --model "$out/tiny-$ty.gguf" \
        --port PORT --sequences 4
  done
else
  echo "  llama.cpp left out: scripts/install-llama.sh failed ($(tail -1 "$out/install-llama.log"))"
fi
( IFS=,; "$BUILD/bin/moecap" compare "${systems[@]}" --labels "${labels[*]}" --title "one load, $(nproc) CPUs: CAP radar" \
    --out "$out/compare" > "$out/compare.txt" )
sed -n '1,/^Not measured/p' "$out/compare.txt"
chrome=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$chrome" ]; then
  prof=$(mktemp -d)
  timeout 90 "$chrome" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$prof" \
      --screenshot="$out/compare/compare.png" --window-size=1100,1400 "file://$(realpath "$out/compare/compare.html")" >/dev/null 2>&1 || true
  rm -rf "$prof"
  [ -s "$out/compare/compare.png" ] && echo "screenshot: $out/compare/compare.png"
fi

step "done: open $out/report/report.html and $out/compare/compare.html (also .md, .json)"
