#!/usr/bin/env bash
# Where a traced call's cost goes, seen from the calling thread (bench/shim-hotpath.c),
# printed as Markdown (bench/results/shim-hotpath.md): a no-op cblas_sgemm (bench/
# shim-nullblas.c, so only the shim is measured) called
#   - flat out: N calls back to back (the trace is produced faster than any writer can
#     write it: this shows what a full ring costs the program),
#   - paced: one call every PACE_NS of spinning (default 2000 ns: a tiny MoE decode step
#     makes about one GEMM per 2.5 us), the realistic case where the writer keeps up,
# without the shim, with this build and with the BASELINES builds (e.g. the previous
# writers), runs interleaved, medians of REPS. Per configuration: wall and CPU ns
# per call of the calling thread, its minor page faults, voluntary and involuntary context
# switches per 1000 calls, and (one run under strace, which follows that thread only: the
# writer thread runs at full speed) the system calls that thread made
# inside the loop, per 1000 calls, by name. Then what one page costs on this machine
# (bench/page-touch.c: fresh file page, populated page, anonymous page, pwrite).
# usage: bench/shim-hotpath.sh [REPS (default 5)]
# env: SHIM (default $BUILD/lib/libmoecap.so), BASELINES="name=/path/libmoecap.so ..."
#      (other builds, interleaved with this one), N (default 2000000),
#      PACED_N (default 200000), PACE_NS (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
REPS=${1:-5}
N=${N:-2000000}
PACED_N=${PACED_N:-200000}
PACE_NS=${PACE_NS:-2000}
PY=/usr/bin/python3
SHIM=$(realpath "${SHIM:-$BUILD/lib/libmoecap.so}")
[ -f "$SHIM" ] || { echo "build first: make" >&2; exit 2; }
case "$REPS" in ''|*[!0-9]*) echo "usage: bench/shim-hotpath.sh [REPS]" >&2; exit 2;; esac
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -O2 -shared -fPIC -o "$tmp/libnullblas.so" bench/shim-nullblas.c
cc -O2 -o "$tmp/hot" bench/shim-hotpath.c -L"$tmp" -lnullblas -Wl,-rpath,"$tmp"

configs="plain shim shim-nostack"
declare -A libs=([shim]=$SHIM [shim-nostack]=$SHIM)
for b in ${BASELINES:-}; do
  name=${b%%=*}; path=${b#*=}
  [ -f "$path" ] && [ "$name" != "$b" ] || { echo "BASELINES: want name=/path/libmoecap.so, got '$b'" >&2; exit 2; }
  libs[$name]=$(realpath "$path"); configs="$configs $name"
done
lib_of() { echo "${libs[$1]:-}"; }
stack_of() { [ "$1" = shim-nostack ] && echo 0 || echo 8; }   # shim-nostack: no call sites

# one run: prints the key=value line of shim-hotpath
run_one() {  # config n pace
  local lib; lib=$(lib_of "$1")
  if [ -n "$lib" ]; then MOECAP_OUT=$tmp/o MOECAP_STACK=$(stack_of "$1") LD_PRELOAD=$lib "$tmp/hot" "$2" "$3"
  else "$tmp/hot" "$2" "$3"; fi
  rm -rf "$tmp/o"
}

# system calls of the calling thread between the two markers, per 1000 calls
syscalls_of() {  # config n pace
  local lib; lib=$(lib_of "$1")
  if [ -n "$lib" ]; then MOECAP_OUT=$tmp/o MOECAP_STACK=$(stack_of "$1") LD_PRELOAD=$lib strace -qq -o "$tmp/st" "$tmp/hot" "$2" "$3" >/dev/null
  else strace -qq -o "$tmp/st" "$tmp/hot" "$2" "$3" >/dev/null; fi
  rm -rf "$tmp/o"
  "$PY" - "$tmp/st" "$2" <<'EOF'
import collections, re, sys
lines = open(sys.argv[1]).read().splitlines()   # the calling thread's only (no -f)
n = int(sys.argv[2])
inside, count = False, collections.Counter()
for rest in lines:
    if 'shim-hotpath: loop' in rest:
        inside = 'begins' in rest
        continue
    if inside:
        m = re.match(r'(?:<\.\.\. )?(\w+)', rest)
        if m and 'resumed' not in rest:
            count[m.group(1)] += 1
total = sum(count.values())
print("%.3f (%s)" % (total * 1000.0 / n, ", ".join("%s %.3f" % (k, v * 1000.0 / n) for k, v in count.most_common()) or "none"))
EOF
}

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), host: $(hostname), $(nproc) CPUs, clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "shim: $SHIM${BASELINES:+; baselines: $BASELINES}"
echo
for mode in flat paced; do
  if [ $mode = flat ]; then n=$N; pace=0; else n=$PACED_N; pace=$PACE_NS; fi
  declare -A res=()
  for r in $(seq 1 "$REPS"); do
    for c in $configs; do res[$c]+="$(run_one "$c" "$n" "$pace")"$'\n'; done
  done
  echo "### $mode: $n calls$([ "$pace" != 0 ] && echo ", one every $pace ns of spinning"), median of $REPS (load now: $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  echo "| configuration | wall ns/call | CPU ns/call | minor faults /1000 calls | voluntary switches /1000 | involuntary /1000 | system calls /1000 calls (strace, 1 run) |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  for c in $configs; do
    sc=$(syscalls_of "$c" "$n" "$pace")
    printf '%s' "${res[$c]}" | "$PY" -c '
import statistics, sys
rows = [dict(kv.split("=") for kv in l.split()) for l in sys.stdin if l.strip()]
med = lambda k: statistics.median(float(r[k]) for r in rows)
cpu = med("cpu_ns_call")
print("| %s | %.1f | %s | %.3f | %.3f | %.3f | %s |" % (sys.argv[1], med("ns_call"), "%.1f" % cpu if cpu >= 0 else "-", med("minflt_k"),
      med("vcsw_k"), med("ivcsw_k"), sys.argv[2]))' "$c" "$sc"
  done
  unset res
  echo
done
echo "### What a page costs here (bench/page-touch.c, 64 MiB each, in $tmp)"
echo
cc -O2 -o "$tmp/page-touch" bench/page-touch.c
"$tmp/page-touch" "$tmp" 64
echo
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
