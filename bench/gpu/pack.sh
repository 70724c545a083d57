#!/usr/bin/env bash
# Prepare a build for the GPU machine (run HERE, where the Debian packages are installed):
# builds everything, then copies the shared libraries our binaries need that a bare GPU
# image may lack (cJSON, OpenBLAS, libunwind, PAPI, libcurl and their dependencies; never
# glibc, libstdc++ or CUDA) into $BUILD/gpu-libs. validate.sh puts that folder on
# LD_LIBRARY_PATH. Then, with the device tool:
#   run(command="bench/gpu/validate.sh $OUT", carry=["build/bin", "build/lib", "build/gpu-libs"])
# (those three must stay under the tool's 64 MiB carry limit; the total is printed below).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${BUILD:-build}"
make -j2 BUILD="$BUILD" >/dev/null
dst="$BUILD/gpu-libs"
rm -rf "$dst"; mkdir -p "$dst"
skip='^(libc|libm|libdl|libpthread|librt|libresolv|ld-linux-x86-64|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libcupti|libnvidia-ml)\.so'
for f in "$BUILD"/bin/* "$BUILD"/lib/*.so; do
  ldd "$f" 2>/dev/null | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
  base=$(basename "$lib")
  [[ "$base" =~ $skip ]] && continue
  cp -L "$lib" "$dst/$base"
done
echo "pack: $(ls "$dst" | wc -l) libraries in $dst; carry $BUILD/bin $BUILD/lib $BUILD/gpu-libs:" \
     "$(du -scm "$BUILD/bin" "$BUILD/lib" "$dst" | tail -1 | cut -f1) MiB (limit 64)"
