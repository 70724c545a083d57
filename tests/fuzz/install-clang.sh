#!/usr/bin/env bash
# clang with libFuzzer for `make fuzz`: Debian's clang package only recommends the runtime
# (libclang-rt-N-dev) that holds libFuzzer, so install it explicitly when it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v clang >/dev/null || scripts/install-deps.sh clang
rt=$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a)
if [ ! -f "$rt" ]; then
  major=$(clang -dumpversion | cut -d. -f1)
  scripts/install-deps.sh "libclang-rt-$major-dev"
fi
