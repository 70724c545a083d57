#!/usr/bin/env bash
# Runs every registered test and prints one closing line: "N passed, N failed[, N skipped]".
# A test is an executable (C binary, shell or Python script). It reports cases on stdout as
#   ok - NAME            a passed case
#   not ok - NAME        a failed case (details on the lines before, or on stderr)
#   skip - NAME (why)    a case that cannot run on this machine (e.g. needs a GPU)
# A test that prints no case lines counts as one case, passed iff it exits 0. A test that
# exits non-zero without printing "not ok" counts one extra failure (crash, assertion).
# Environment: BUILD (build dir), TEST_TIMEOUT (seconds per test, default 900), TEST_FILTER (substring).
set -u
cd "$(dirname "$0")/.."
export BUILD="${BUILD:-build}"
export MOECAP_ROOT="$PWD"
timeout_s="${TEST_TIMEOUT:-900}"
pass=0; fail=0; skip=0; failed_names=()
logdir="$BUILD/test-logs"; mkdir -p "$logdir"
for t in "$@"; do
  [ -n "${TEST_FILTER:-}" ] && [[ "$t" != *"$TEST_FILTER"* ]] && continue
  name="${t#"$BUILD"/}"; log="$logdir/$(echo "$name" | tr '/' '_').log"
  start=$(date +%s%N)
  timeout -k 10 "$timeout_s" "$t" >"$log" 2>&1; rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 )); dur="$((ms / 1000)).$(( (ms % 1000) / 100 ))"
  p=$(grep -c '^ok ' "$log"); f=$(grep -c '^not ok ' "$log"); s=$(grep -c '^skip ' "$log")
  if [ $((p + f + s)) -eq 0 ]; then
    if [ $rc -eq 0 ]; then p=1; else f=1; fi
  elif [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1; echo "not ok - $name exited with status $rc" >>"$log"
  fi
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
  if [ "$f" -gt 0 ]; then
    failed_names+=("$name")
    echo "FAIL $name ($p ok, $f failed, ${dur}s) — log: $log"
    grep -E '^(not ok|#)' "$log" | head -20 | sed 's/^/    /'
    [ $rc -ne 0 ] && tail -15 "$log" | sed 's/^/    | /'
  else
    echo "PASS $name ($p ok${s:+, $s skipped}, ${dur}s)"
  fi
done
[ ${#failed_names[@]} -gt 0 ] && printf 'failed: %s\n' "${failed_names[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
