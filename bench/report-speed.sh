#!/usr/bin/env bash
# moecap report speed and memory on a synthetic trace of >= 10 M records (bench/report-gen.c:
# Mixtral-8x7B geometry, batch-8 decode with a prefill every 200 steps, named weights).
# Prints records/s by wall clock and by CPU time (the report is single-threaded: one core) and peak RSS (/usr/bin/time -v)
# for --format json and for json,md,html. Targets: >= 2 M records/s, <= 500 MB.
#   bench/report-speed.sh [RECORDS]    (default 10000000)
set -eu
cd "$(dirname "$0")/.."
. bench/synthetic-trace.sh "$@"
ls -l "$tmp/d/run"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for fmt in json json,md,html; do
  for rep in 1 2; do
    /usr/bin/time -v "$BUILD/bin/moecap" report "$tmp/d/run" --model "$tmp/d/model" \
        --hw h100-sxm --format $fmt --quiet 2>"$tmp/time.txt" || { cat "$tmp/time.txt"; exit 1; }
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/{print $2}' "$tmp/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$tmp/time.txt")
    user=$(awk -F': ' '/User time/{print $2}' "$tmp/time.txt")
    sys=$(awk -F': ' '/System time/{print $2}' "$tmp/time.txt")
    recs=$(/usr/bin/python3 -c "import json;print(json.load(open('$tmp/d/run/report.json'))['run']['records'])")
    steps=$(/usr/bin/python3 -c "import json;print(json.load(open('$tmp/d/run/report.json'))['aggregate']['steps'])")
    secs=$(echo "$wall" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
    echo "format=$fmt run=$rep records=$recs steps=$steps wall=${secs}s user=${user}s sys=${sys}s" \
         "records/s=$(awk -v r=$recs -v s=$secs 'BEGIN{printf "%.2f M", r/s/1e6}')" \
         "records/cpu-s=$(awk -v r=$recs -v u=$user -v y=$sys 'BEGIN{printf "%.2f M", r/(u+y)/1e6}')" \
         "peak_rss=$(awk -v k=$rss 'BEGIN{printf "%.1f MB", k/1024}')" \
         "report.json=$(du -h "$tmp/d/run/report.json" | cut -f1)"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
