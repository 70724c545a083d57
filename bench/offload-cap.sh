#!/usr/bin/env bash
# The CA side of MoE-CAP on moe-ref: decode tokens/s and S-MBU for full residency vs expert
# offloading (--offload ondemand, --offload swapmoe) at budgets of 100 %, 50 % and 25 % of the
# routed expert bytes, with what each moved (bytes read from the weights file per decode step,
# hit rate), how far swapmoe's outputs drift from full residency (token agreement), and the
# accuracy `moecap bench` scores on the bundled multiple-choice set through `moe-ref serve`.
# Each configuration runs under libmoecap.so and is measured by `moecap report` against a
# hardware profile measured here first (`moecap hwprobe`).
#
# usage: bench/offload-cap.sh [--gen N] [--requests N] [--reps R] [--out FILE]
# Writes a Markdown table to FILE (default bench/results/offload-cap.md) with command, date,
# machine and load average. Timed figures are medians of R runs per configuration (default 3;
# the runs of all configurations interleave, so a burst of other load hits them evenly); the
# counts come from the first run (they are exact and the same every run). The model is
# generated under /tmp and removed afterwards. One command on an idle machine:
#   bench/offload-cap.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
gen=48; nreq=20; reps=3; out=bench/results/offload-cap.md
while [ $# -gt 0 ]; do
  case "$1" in
    --gen) gen="$2"; shift 2 ;;
    --requests) nreq="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--gen N] [--requests N] [--reps R] [--out FILE]" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d /tmp/moecap-offload-cap.XXXXXX)
srv=
trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$work"' EXIT
source bench/cap-model.sh
runargs=(--batch 1 --prompt-len 16 --gen "$gen" --gemv)

configs=("full|" "ondemand 100%|--expert-budget 100% --offload ondemand"
         "ondemand 50%|--expert-budget 50% --offload ondemand" "ondemand 25%|--expert-budget 25% --offload ondemand"
         "swapmoe 100%|--expert-budget 100% --offload swapmoe" "swapmoe 50%|--expert-budget 50% --offload swapmoe"
         "swapmoe 25%|--expert-budget 25% --offload swapmoe")
# timed runs: every configuration once per round, R rounds
for r in $(seq "$reps"); do
  i=0
  for c in "${configs[@]}"; do
    args=${c#*|}; d="$work/c$i"; i=$((i + 1))
    LD_PRELOAD="$PRE" MOECAP_OUT="$d/run$r" "$BUILD/bin/moe-ref" run --model "$model" "${runargs[@]}" $args \
      --ground-truth "$d/gt$r.jsonl" >"$d.out$r"
    "$BUILD/bin/moecap" report "$d/run$r" --model "$model" --hw "$work/hw.json" --format json --quiet
  done
done
rows=()
i=0
for c in "${configs[@]}"; do
  name=${c%%|*}; args=${c#*|}; d="$work/c$i"; i=$((i + 1))
  mkdir -p "$d"; ln -sfn "$d/run1" "$d/run"; cp "$d/gt1.jsonl" "$d/gt.jsonl"; cp "$d.out1" "$d.out"
  # accuracy through the server (same policy), multiple-choice set, greedy
  "$BUILD/bin/moe-ref" serve --model "$model" --port 0 --port-file "$d.port" --quiet $args & srv=$!
  for _ in $(seq 100); do [ -s "$d.port" ] && break; sleep 0.1; done
  "$BUILD/bin/moecap" bench --url "http://127.0.0.1:$(cat "$d.port")/v1" --dataset mc -n "$nreq" \
    --max-tokens 8 --out "$d/bench" --quiet || true
  kill "$srv"; wait "$srv" 2>/dev/null || true; srv=
  rows+=("$(python3 - "$d" "$work/c0.out" "$d.out" "$name" "$reps" <<'PY'
import json, statistics, sys
d, full, mine, name, reps = sys.argv[1:6]
r = json.load(open(d + '/run/report.json'))
a = r['aggregate']
decs = [json.load(open('%s/run%d/report.json' % (d, k)))['aggregate']['decode'] for k in range(1, int(reps) + 1)]
steps = [s for s in r['steps'] if s['kind'] == 'decode']
off = [s.get('offload', {}) for s in steps]
moved = sum(o.get('loaded_bytes', 0) for o in off) / max(1, len(steps))
hits = sum(o.get('hits', 0) for o in off); miss = sum(o.get('misses', 0) for o in off)
gt = [json.loads(l) for l in open(d + '/gt.jsonl')]
rer = sum(g.get('offload', {}).get('rerouted_pairs', 0) for g in gt)
pairs = sum(g['tokens'] for g in gt) * 2 * 4
x, y = open(full).read().split(), open(mine).read().split()
agree = sum(p == q for p, q in zip(x, y)) / max(1, len(x))
first = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), None)
acc = 'n/a'
try:
    s = json.load(open(d + '/bench/bench-summary.json'))
    acc = '%.2f' % s['accuracy']['accuracy']
except Exception:
    pass
tps = statistics.median(x['tokens'] / x['time_s'] if x['time_s'] else 0 for x in decs)
smbu = statistics.median(x['s_mbu'] for x in decs)
dtime = statistics.median(x['time_s'] for x in decs)
moved_util = (moved * len(steps) / dtime / r['hardware']['memory_bandwidth_Bps']) if dtime and 'memory_bandwidth_Bps' in r.get('hardware', {}) else float('nan')
print('| %s | %.1f | %.3f | %.3f | %.1f | %s | %.3f | %s | %s | %s |' % (
    name, tps, smbu, moved_util, moved / 2**20,
    '%.3f' % (hits / (hits + miss)) if hits + miss and off[0] else '-',
    agree, '-' if first is None else first, '%d/%d' % (rer, pairs) if rer else '0', acc))
PY
)")
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
bw=$(python3 -c "import json;print('%.2f' % (json.load(open('$work/hw.json'))['memory_bandwidth_Bps']/1e9))")
mkdir -p "$(dirname "$out")"
{
  echo "# Expert offloading on moe-ref: the CA trade-off (bench/offload-cap.sh)"
  echo
  echo "- command: \`bench/offload-cap.sh --gen $gen --requests $nreq --reps $reps\`"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average before $load_before, after $load_after"
  echo "- model: \`moe-ref gen ${gen_args[*]}\` (192 MiB routed experts, F32), decode at batch 1, --gemv, $gen tokens after a 16-token prompt"
  echo "- S-MBU: bytes the step's compute read / step time / measured triad bandwidth ($bw GB/s, \`moecap hwprobe --threads 1\`);"
  echo "  moved BW: bytes read from the weights file into expert slots per decode second / the same bandwidth (the cost S-MBU does not show)"
  echo "- decode tok/s, S-MBU and moved BW: medians of $reps runs per configuration (rounds interleaved); the other columns from the first run"
  echo "- timings are taken under the load average above (on $(nproc) CPUs; on a machine shared with other jobs compare rows only for effects far larger than run-to-run noise); the counts (bytes moved, hit rate, agreement, reroutes) are exact and load-independent"
  echo "- agreement: generated ids equal to full residency's, position by position; accuracy: \`moecap bench --dataset mc -n $nreq --max-tokens 8\` through \`moe-ref serve\` with the same policy (a random-weight model: chance-level by construction, the change is what matters)"
  echo
  echo "| config | decode tok/s | decode S-MBU | moved BW util | MiB moved / decode step | hit rate | agreement | first differing id | rerouted (token,slot) pairs | mc accuracy |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
} >"$out"
cat "$out"
