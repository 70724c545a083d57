#!/usr/bin/env bash
# Installs llama.cpp's prebuilt CPU libraries (npm: node-llama-cpp + @node-llama-cpp/linux-x64,
# pinned) into DEST (default build/llama), once: nothing global, nothing but those npm packages
# (optional dependencies — the GPU variants — are omitted; install scripts are not run: the
# prebuilt binaries are used as shipped). Then extracts llama.h / ggml*.h of exactly that
# llama.cpp release from the git bundle the package ships, for C programs linking the libraries.
#
#   scripts/install-llama.sh [DEST]
#
# Prints DEST on success. Exit 0 when installed (or already there), 3 when npm/node/git is
# missing or the install failed (callers turn that into a "skip"), 2 on usage errors.
set -euo pipefail
VERSION=3.22.1          # node-llama-cpp and @node-llama-cpp/linux-x64 (llama.cpp 0.5.0)
case "${1:-}" in -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -le 1 ] || { echo "usage: scripts/install-llama.sh [DEST]" >&2; exit 2; }
DEST=${1:-build/llama}
stamp="$DEST/.installed-$VERSION"
if [ -e "$stamp" ]; then echo "$DEST"; exit 0; fi
for tool in npm node git; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "install-llama: '$tool' not found: install Node.js 20+ with npm (Debian: apt-get install nodejs npm) and git; llama.cpp tests are skipped without them" >&2
    exit 3; }
done
[ "$(uname -m)" = x86_64 ] || { echo "install-llama: prebuilt llama.cpp is used for linux x64 only (this is $(uname -m))" >&2; exit 3; }
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
# A private package.json keeps npm from looking for one in the parent directories.
[ -e "$DEST/package.json" ] || printf '{ "name": "moecap-llama", "private": true }\n' >"$DEST/package.json"
echo "install-llama: npm install node-llama-cpp@$VERSION @node-llama-cpp/linux-x64@$VERSION -> $DEST" >&2
start=$(date +%s)
if ! (cd "$DEST" && npm install --no-save --omit=optional --ignore-scripts --no-audit --no-fund \
        --loglevel=error "node-llama-cpp@$VERSION" "@node-llama-cpp/linux-x64@$VERSION" >&2); then
  echo "install-llama: npm install failed (registry unreachable?)" >&2
  exit 3
fi
bins="$DEST/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
ls "$bins"/libllama*.so >/dev/null 2>&1 || { echo "install-llama: no libllama*.so under $bins" >&2; exit 3; }
# headers of the same release (the package's git bundle of llama.cpp)
bundle="$DEST/node_modules/node-llama-cpp/llama/gitRelease.bundle"
src="$DEST/src.git"
rm -rf "$src" "$DEST/include"
git clone -q --bare "$bundle" "$src" 2>/dev/null || { echo "install-llama: cannot read $bundle" >&2; exit 3; }
mkdir -p "$DEST/include"
for f in include/llama.h ggml/include/ggml.h ggml/include/ggml-backend.h ggml/include/ggml-alloc.h \
         ggml/include/ggml-cpu.h ggml/include/ggml-opt.h ggml/include/gguf.h; do
  git --git-dir="$src" show "HEAD:$f" >"$DEST/include/$(basename "$f")"
done
rm -rf "$src"
ln -sfn "$bins" "$DEST/lib"
touch "$stamp"
echo "install-llama: done in $(( $(date +%s) - start )) s ($(du -sh "$DEST" | cut -f1))" >&2
echo "$DEST"
