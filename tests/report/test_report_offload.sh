#!/usr/bin/env bash
# Expert offloading (the MoE-CAP CA class) end to end against moe-ref's exact ground truth:
# for mixtral, qwen2_moe and deepseek_v2, moe-ref run --expert-budget (100 %, 50 %, 25 % of
# the routed expert bytes, and the smallest budget that holds one layer's top-k) with
# --offload ondemand, and swapmoe at 50 %, under libmoecap.so -> moecap report ->
#   - ondemand output ids equal the full-residency run's token for token;
#   - steps, experts, tokens per expert, bytes (what compute read) and FLOPs exact
#     (compare_gt.py), and the offload facts exact (compare_offload.py: experts read per
#     layer, bytes loaded, hits/misses, resident bytes; class CA when later steps load).
# The report learns the loads from the shim's FILE_MAP records of pread into the engine's
# expert slots, which are refilled with other experts (docs/attribution.md §7); the CUDA
# engine's loads (emulated CUDA, when built) from its host->device copies into device slots.
set -u
source "$(dirname "$0")/engine_run_env.sh" "offload report vs ground truth"
run="--batch 3 --prompt-len 8 --gen 6 --stagger 1"

case_one() {   # name model budget policy full-output
  local name=$1 model=$2 budget=$3 policy=$4 full=$5 d="$tmp/$1"
  profile "$name" "$d" run --model "$model" $run --expert-budget "$budget" --offload "$policy" || return
  if [ "$policy" = ondemand ]; then
    if cmp -s "$full" "$d/out.txt"; then echo "ok - $name: output equals full residency token for token"
    else echo "not ok - $name: output differs from full residency"; fi
  fi
  report_vs_gt "$name" "$d" "$model" compare_offload.py
}

for arch in mixtral qwen2_moe deepseek_v2; do
  m="$tmp/model-$arch"
  "$BUILD/bin/moe-ref" gen --arch $arch --out "$m" $dims >/dev/null || { echo "not ok - $arch: gen failed"; continue; }
  "$BUILD/bin/moe-ref" run --model "$m" $run >"$tmp/$arch-full.txt" || { echo "not ok - $arch: full run failed"; continue; }
  slot=$((3 * 128 * 64 * 4))
  for b in 100% 50% 25% $((2 * slot)); do
    case_one "$arch-ondemand-${b%\%}" "$m" "$b" ondemand "$tmp/$arch-full.txt"
  done
  case_one "$arch-swapmoe-50" "$m" 50% swapmoe "$tmp/$arch-full.txt"
  # one byte short of top-k experts: exit 2, a message that says why, nothing run or written
  out=$("$BUILD/bin/moe-ref" run --model "$m" $run --expert-budget $((2 * slot - 1)) \
        --ground-truth "$tmp/none.jsonl" 2>&1 >/dev/null); rc=$?
  if [ $rc = 2 ] && echo "$out" | grep -q "top-k = 2 experts must be resident" && [ ! -e "$tmp/none.jsonl" ]; then
    echo "ok - $arch: budget below one layer's top-k experts: exit 2, nothing run ($out)"
  else echo "# rc=$rc $out"; echo "not ok - $arch: budget below top-k"; fi
done

# The CUDA engine's offloading on the CPU emulation of CUDA (docs/gpu.md): experts pread into
# pinned host memory, device slots filled with cudaMemcpyAsync; the report learns the loads
# from the device file maps of those copies (the shim's, or host->device copies joined with
# the pinned buffer's read). Skipped where the emulation is not built.
EMU="$BUILD/tests/cuda/emu/libmoeref-cuda-emu.so"
if [ ! -e "$EMU" ]; then echo "skip - CUDA offloading under the emulation (make emu)"; exit 0; fi
# bf16: the engine converts the checkpoint once into a BF16 safetensors file and reads every
# weight from it, so the loads are file bytes in the GEMMs' dtype (an expert's three tensors
# read one by one into pinned memory, then one copy per expert); ondemand's output must equal
# the bf16 engine with every expert on the device.
mkdir -p "$tmp/t"
cuda() { TMPDIR="$tmp/t" MOE_REF_CUDA_LIB="$EMU" MOECAP_NVML=0 "$@"; }
for arch in mixtral qwen2_moe deepseek_v2; do
  m="$tmp/model-$arch"
  for dt in f32 bf16; do
    cuda "$BUILD/bin/moe-ref" run --model "$m" --device cuda --moe loop --dtype $dt --batch 3 --prompt-len 8 --gen 5 \
      >"$tmp/$arch-cuda-$dt-full.txt" 2>/dev/null || { echo "not ok - $arch cuda $dt: full residency run failed"; continue; }
    for pol in "ondemand 25%" "swapmoe 50%"; do
      set -- $pol; name="$arch-cuda-$dt-$1-${2%\%}" d="$tmp/$arch-cuda-$dt-$1"
      cuda profile "$name" "$d" run --model "$m" --device cuda --moe loop --dtype $dt \
        --batch 3 --prompt-len 8 --gen 5 --expert-budget "$2" --offload "$1" || continue
      if [ "$1" = ondemand ]; then
        if cmp -s "$tmp/$arch-cuda-$dt-full.txt" "$d/out.txt"; then echo "ok - $name: output equals full device residency"
        else echo "not ok - $name: output differs from full device residency"; fi
      fi
      report_vs_gt "$name" "$d" "$m" compare_offload.py
    done
  done
done
# the converted weights file lives only while the engine runs
left=$(ls "$tmp/t" | wc -l)
if [ "$left" = 0 ]; then echo "ok - no bf16 weights file left behind in TMPDIR"; else echo "not ok - left in TMPDIR: $(ls "$tmp/t")"; fi
