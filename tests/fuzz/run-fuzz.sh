#!/usr/bin/env bash
# Runs each named fuzz target (build-fuzz/fuzz_<name>, see tests/fuzz/README.md) for
# FUZZ_SECONDS, seeded from tests/fuzz/corpus/<name> (read only: new inputs go to
# build-fuzz/corpus/<name>), crashes to build-fuzz/crashes/<name>/. Prints one line per target:
# executions, cov/ft of libFuzzer's last status line, crash files. Exit 1 when any crashed.
set -u
cd "$(dirname "$0")/../.."
B=${FUZZ_BUILD:-build-fuzz}
secs=${FUZZ_SECONDS:-60}
rc=0
printf '%-16s %10s %8s %8s %8s  %s\n' target execs cov ft crashes "log ($(date -u +%FT%TZ), ${secs}s each, load $(cut -d' ' -f1-3 /proc/loadavg))"
for n in "$@"; do
  mkdir -p "$B/corpus/$n" "$B/crashes/$n" "$B/logs"
  log="$B/logs/$n.log"
  seeds=()
  [ -d "tests/fuzz/corpus/$n" ] && seeds+=("tests/fuzz/corpus/$n")
  [ -d "tests/fuzz/crashes/$n" ] && seeds+=("tests/fuzz/crashes/$n")
  # -close_fd_mask=1: the targets' stdout is noise here (fuzz_report silences its own stderr)
  "$B/fuzz_$n" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -close_fd_mask=1 \
      -artifact_prefix="$B/crashes/$n/" -print_final_stats=1 "$B/corpus/$n" "${seeds[@]}" >"$log" 2>&1
  st=$?
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
  cov=$(echo "$last" | grep -oE 'cov: [0-9]+' | cut -d' ' -f2)
  ft=$(echo "$last" | grep -oE 'ft: [0-9]+' | cut -d' ' -f2)
  crashes=$(find "$B/crashes/$n" -type f | wc -l)
  printf '%-16s %10s %8s %8s %8s  %s\n' "$n" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$crashes" "$log"
  if [ $st -ne 0 ] || [ "$crashes" -gt 0 ]; then rc=1; grep -E 'ERROR|SUMMARY|runtime error' "$log" | head -5 | sed 's/^/    /'; fi
done
exit $rc
