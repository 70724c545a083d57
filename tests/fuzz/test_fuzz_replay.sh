#!/usr/bin/env bash
# Replays every kept fuzz input (tests/fuzz/corpus/<name>/, tests/fuzz/crashes/<name>/) through
# its target, built with the project compiler ($BUILD/tests/fuzz/replay_<name>; under
# `make check-san` with ASan/UBSan): an input that once crashed a parser must not again.
set -u
cd "$(dirname "$0")/../.."
B=${BUILD:-build}
export TMPDIR=$(mktemp -d); trap 'rm -rf "$TMPDIR"' EXIT
for f in tests/fuzz/fuzz_*.c; do
  n=$(basename "$f" .c); n=${n#fuzz_}
  bin="$B/tests/fuzz/replay_$n"
  [ -x "$bin" ] || { echo "not ok - replay_$n not built"; continue; }
  for d in corpus crashes; do
    [ -d "tests/fuzz/$d/$n" ] || continue
    out=$("$bin" "tests/fuzz/$d/$n" 2>"$TMPDIR/err"); st=$?
    if [ $st -eq 0 ] && echo "$out" | grep -q '^ok '; then echo "ok - $n $d: ${out#ok - }"
    else tail -20 "$TMPDIR/err" | sed 's/^/# /'; echo "not ok - $n $d (status $st)"; fi
  done
done
