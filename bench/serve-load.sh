#!/usr/bin/env bash
# Load benchmark of `moe-ref serve`'s HTTP layer: requests/s and latency at a few
# concurrencies, for one or more moe-ref binaries (e.g. before/after a change), same model,
# same machine, run alternately.
#   bench/serve-load.sh [MOE_REF ...]        (default: build/bin/moe-ref)
# Per binary and concurrency C in $CONCURRENCY (default "1 8 32 128"):
#   - completions: `moecap bench` with $N short requests (16 prompt bytes, 4 output tokens,
#     streamed) -> request throughput, p50/p99 end-to-end latency
#   - health: curl --parallel, $HEALTH_N GET /health at C in flight -> requests/s
# Appends a Markdown table to bench/results/serve-load.md (command, date, machine, load).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
MOECAP=$BUILD/bin/moecap
N=${N:-400}
HEALTH_N=${HEALTH_N:-2000}
CONCURRENCY=${CONCURRENCY:-"1 8 32 128"}
ROUNDS=${ROUNDS:-2}            # binaries alternate, ROUNDS times per concurrency (a loaded machine is noisy)
BINS=("$@"); [ ${#BINS[@]} -eq 0 ] && BINS=("$BUILD/bin/moe-ref")
T=$(mktemp -d /tmp/mc-serve-load.XXXXXX)
SRV=
cleanup() { [ -n "$SRV" ] && kill "$SRV" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
"${BINS[0]}" gen --arch qwen2_moe --out "$T/model" --seed 3 >/dev/null

run_one() {   # binary conc -> one table row
  local bin=$1 c=$2
  rm -f "$T/port"
  "$bin" serve --model "$T/model" --port 0 --port-file "$T/port" --quiet --max-connections 1024 2>/dev/null &
  SRV=$!
  for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
  local port; port=$(cat "$T/port")
  "$MOECAP" bench --url "http://127.0.0.1:$port/v1" --dataset synthetic:in=16,out=4 -n "$N" --concurrency "$c" \
      --timeout 60 --quiet --out "$T/run" >/dev/null 2>&1
  local stats
  stats=$(python3 -c "
import json; s=json.load(open('$T/run/bench-summary.json'))
print('%.1f %.2f %.2f %d' % (s['request_throughput'] or 0, s['e2el_ms']['p50'] or 0, s['e2el_ms']['p99'] or 0, s['failed']))")
  local t0 t1 hrps
  t0=$(date +%s%N)
  curl -s --no-progress-meter --parallel --parallel-max "$c" -o /dev/null "http://127.0.0.1:$port/health?[1-$HEALTH_N]" 2>/dev/null
  t1=$(date +%s%N)
  hrps=$(python3 -c "print('%.0f' % ($HEALTH_N / (($t1 - $t0) / 1e9)))")
  kill "$SRV"; wait "$SRV" 2>/dev/null; SRV=
  read -r rps p50 p99 failed <<<"$stats"
  printf '| %s | %d | %s | %s | %s | %s | %s |\n' "$bin" "$c" "$rps" "$p50" "$p99" "$failed" "$hrps"
}

out=bench/results/serve-load.md
{
  echo
  echo "## $(date -u +%FT%TZ) — \`bench/serve-load.sh ${BINS[*]}\`"
  echo
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average before: $(cut -d' ' -f1-3 /proc/loadavg). N=$N completions (16 B prompt, 4 tokens, streamed), $HEALTH_N GET /health."
  echo
  echo "| binary | concurrency | completions req/s | e2el p50 ms | e2el p99 ms | failed | /health req/s |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  for c in $CONCURRENCY; do
    for r in $(seq "$ROUNDS"); do for b in "${BINS[@]}"; do run_one "$b" "$c"; done; done
  done
  echo
  echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee -a "$out"
