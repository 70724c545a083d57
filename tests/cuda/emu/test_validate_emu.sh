#!/usr/bin/env bash
# bench/gpu/validate.sh's moe-ref part (the script the GPU session runs) in CI, against the
# CPU emulation of CUDA (MOECAP_GPU_EMU=1): moe-ref --device cuda loop|fused x f32|bf16
# under libmoecap.so -> moecap report == ground truth, CUDA f32 loop == CPU engine; the
# GPU-only checks print skip. Prints validate.sh's ok / not ok / skip lines.
set -u
cd "$(dirname "$0")/../../.."
B="${BUILD:-build}"
if [ "${HAVE_CUDA:-1}" != 1 ] || [ ! -e "$B/tests/cuda/emu/libmoeref-cuda-emu.so" ]; then
  echo "skip - bench/gpu/validate.sh on the CUDA emulation (no CUDA toolkit: emulation not built)"
  exit 0
fi
if [ "${SAN:-0}" = 1 ]; then
  # validate.sh preloads the shim alone; an ASan build needs libasan first (the same chain
  # runs under ASan in test_cuda_emu_chain.py)
  echo "skip - bench/gpu/validate.sh on the CUDA emulation (sanitizer build; chain covered by test_cuda_emu_chain.py)"
  exit 0
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
MOECAP_GPU_EMU=1 BUILD="$B" bench/gpu/validate.sh "$out/v" > "$out/log" 2>&1
rc=$?
if [ -s "$out/v/results.txt" ]; then cat "$out/v/results.txt"; else echo "not ok - validate.sh wrote results"; fi
if [ $rc -ne 0 ]; then tail -20 "$out/log" | sed 's/^/# /'; echo "not ok - validate.sh (MOECAP_GPU_EMU=1) exit status $rc"; fi
exit $rc
