#!/usr/bin/env bash
# The PA side of MoE-CAP on moe-ref: decode tokens/s and S-MBU of the single-process engine
# vs --expert-parallel 1 and 2 (forked workers computing the routed experts, activations
# exchanged through shared memory), measured by `moecap report` on the traces of all
# processes, at batch 1 and batch 8, plus the bytes exchanged per decode step.
# On a 2-core machine N = 1 measures the cost of the exchange (copies, wake-ups) without any
# parallelism, N = 2 two workers that can at best use both cores for the experts while the
# coordinator waits (it computes nothing meanwhile) — and the cores are shared with other load.
#
# usage: bench/expert-parallel.sh [--gen N] [--reps R] [--out FILE]   (default bench/results/expert-parallel.md)
# Timed figures are medians of R runs per configuration (default 3; rounds interleave the
# configurations). One command on an idle machine: bench/expert-parallel.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
gen=32; reps=3; out=bench/results/expert-parallel.md
while [ $# -gt 0 ]; do
  case "$1" in
    --gen) gen="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 [--gen N] [--reps R] [--out FILE]" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d /tmp/moecap-ep.XXXXXX)
trap 'rm -rf "$work"' EXIT
source bench/cap-model.sh
for r in $(seq "$reps"); do
  for batch in 1 8; do
    for n in 0 1 2; do
      d="$work/b$batch-n$n"; ep=(); [ "$n" = 0 ] || ep=(--expert-parallel "$n")
      LD_PRELOAD="$PRE" MOECAP_OUT="$d/run$r" "$BUILD/bin/moe-ref" run --model "$model" --batch "$batch" \
        --prompt-len 16 --gen "$gen" --gemv "${ep[@]}" >"$d.out$r"
      "$BUILD/bin/moecap" report "$d/run$r" --model "$model" --hw "$work/hw.json" --format json --quiet
    done
  done
done
rows=()
for batch in 1 8; do
  for n in 0 1 2; do
    d="$work/b$batch-n$n"
    same=yes
    for r in $(seq "$reps"); do [ "$n" = 0 ] || cmp -s "$work/b$batch-n0.out1" "$d.out$r" || same=NO; done
    rows+=("$(python3 - "$d" "$batch" "$n" "$same" "$reps" <<'PY'
import json, statistics, sys
reps = [json.load(open('%s/run%d/report.json' % (sys.argv[1], k))) for k in range(1, int(sys.argv[5]) + 1)]
r = reps[0]
dec = {'tokens': 1, 'time_s': statistics.median(x['aggregate']['decode']['time_s'] / x['aggregate']['decode']['tokens']
                                                  for x in reps),
       's_mbu': statistics.median(x['aggregate']['decode']['s_mbu'] for x in reps)}
ep = r.get('expert_parallel', {})
steps = [s for s in r['steps'] if s['kind'] == 'decode']
comm = sum(s.get('expert_parallel', {}).get('comm_bytes', 0) for s in steps) / max(1, len(steps))
print('| %s | %s | %.1f | %.3f | %.1f | %s | %s |' % (sys.argv[2], sys.argv[3] if sys.argv[3] != '0' else '- (one process)',
      dec['tokens'] / dec['time_s'], dec['s_mbu'], comm / 1024, ep.get('processes_used', 0) or 1, sys.argv[4]))
PY
)")
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$(dirname "$out")"
{
  echo "# Expert parallelism on moe-ref (bench/expert-parallel.sh)"
  echo
  echo "- command: \`bench/expert-parallel.sh --gen $gen --reps $reps\`"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average before $load_before, after $load_after"
  echo "- model: \`moe-ref gen ${gen_args[*]}\`, --gemv, $gen tokens after 16-token prompts; S-MBU against \`moecap hwprobe --threads 1\` triad bandwidth (one device: the workers share the memory system)"
  echo "- what it measures here: N = 1 is the cost of the exchange alone (copies into shared memory, semaphore wake-ups, no parallelism); N = 2 lets two workers compute experts on the two cores while the coordinator waits. Decode tok/s and S-MBU: medians of $reps runs (rounds interleaved); with the machine loaded by other jobs, differences of tens of per cent are within noise."
  echo
  echo "| batch | workers | decode tok/s | decode S-MBU | KiB exchanged / decode step | processes computing experts | ids equal one process |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
} >"$out"
cat "$out"
