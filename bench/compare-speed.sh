#!/usr/bin/env bash
# moecap compare speed: 10 reports of runs of >= 1 M records each (bench/report-gen.c traces,
# Mixtral-8x7B geometry), compared at once. Target: under 2 s once the reports exist.
# The reports are one report copied 10 times (compare's work does not depend on the figures).
#   bench/compare-speed.sh [RECORDS]    (default 1000000)
set -eu
cd "$(dirname "$0")/.."
N=${1:-1000000}
BUILD=${BUILD:-build}
make -s "$BUILD/bin/moecap" "$BUILD/obj/postproc/trace/trace_synth.o" >/dev/null
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -std=c11 -O2 -Iinclude -Ipostproc -o "$tmp/report-gen" bench/report-gen.c "$BUILD/obj/postproc/trace/trace_synth.o"
"$tmp/report-gen" "$tmp/d" "$N" >/dev/null
"$BUILD/bin/moecap" report "$tmp/d/run" --model "$tmp/d/model" --hw h100-sxm --format json --quiet
recs=$(/usr/bin/python3 -c "import json;r=json.load(open('$tmp/d/run/report.json'));print(r['run']['records'], r['aggregate']['steps'])")
for i in $(seq 1 10); do mkdir -p "$tmp/r$i"; cp "$tmp/d/run/report.json" "$tmp/r$i/report.json"; done
echo "date: $(date -u +%FT%TZ)  machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "report.json: $(du -h "$tmp/d/run/report.json" | cut -f1) each; records, steps: $recs"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for rep in 1 2 3; do
  /usr/bin/time -f "%e %U %S %M" -o "$tmp/time" "$BUILD/bin/moecap" compare "$tmp"/r{1..10} --out "$tmp/out" >/dev/null 2>&1
  read -r wall user sys rss < "$tmp/time"
  echo "run $rep: compare of 10 reports: wall ${wall}s user ${user}s sys ${sys}s peak_rss $((rss / 1024)) MB"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
