#!/usr/bin/env bash
# Cost and size of the Perfetto timeline export (`moecap report --format json,perfetto`)
# against the report alone, on the synthetic trace of bench/report-gen.c (Mixtral-8x7B
# geometry, batch-8 decode, a prefill every 200 steps). Prints wall/CPU time, peak RSS and
# the timeline's size and event counts for the default budget and a small one.
#   bench/perfetto-export.sh [RECORDS]    (default 10000000)
set -eu
cd "$(dirname "$0")/.."
. bench/synthetic-trace.sh "$@"
echo "date: $(date -u +%FT%TZ)  machine: $(nproc) cores, $(uname -r)  load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "trace: $(du -h "$tmp/d/run"/*.mct | cut -f1) in $(ls "$tmp/d/run" | wc -l) file(s)"
for args in "--format json" "--format json,perfetto" "--format json,perfetto --perfetto-max 10000"; do
  for rep in 1 2; do
    /usr/bin/time -f "%e %U %S %M" -o "$tmp/t" "$BUILD/bin/moecap" report "$tmp/d/run" --model "$tmp/d/model" \
        --hw h100-sxm --quiet $args
    read -r wall user sys rss <"$tmp/t"
    line="$args run=$rep wall=${wall}s user=${user}s sys=${sys}s peak_rss=$((rss / 1024))MB"
    if [ -f "$tmp/d/run/report.perfetto.json" ]; then
      line="$line $(/usr/bin/python3 - "$tmp/d/run/report.perfetto.json" <<'PYEOF'
import json, os, sys
from collections import Counter
d = json.load(open(sys.argv[1]))
c = Counter(e.get("cat") or e["ph"] for e in d["traceEvents"])
print("timeline=%.0fMB events=%d %s aggregated=%d" % (os.path.getsize(sys.argv[1]) / 1e6, len(d["traceEvents"]),
      " ".join("%s:%d" % kv for kv in sorted(c.items())), len(d["otherData"]["aggregated"])))
PYEOF
)"
      rm -f "$tmp/d/run/report.perfetto.json"
    fi
    echo "$line"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
