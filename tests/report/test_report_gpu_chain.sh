#!/usr/bin/env bash
# The real GPU chain on the CPU emulation of CUDA (tests/cuda/emu): moe-ref --device cuda
# (emulated libcudart/libcublas) under libmoecap.so -> moecap report -> the engine's own
# ground truth (compare_gt.py), for loop|fused x f32|bf16, checking also WHICH naming rule of
# docs/attribution.md section 3b named the device weights: f32 = the shim's device file maps
# (1a), the same trace with those maps removed = host->device copies joined with the host file
# map (1b), bf16 and --no-names = expert device ranges (1c); qwen2_moe's shared expert shaped
# like a routed one (fs = f) in bf16. Fused traces also get kernel-parameter (top-k) tap records
# as CUPTI would write them on a GPU (inject_topk.py: counts from the ground truth, appended
# late): placed through their CUPTI API records with the router-logit taps removed, and by
# arrival time next to the router-logit taps (which must agree). Skips where the emulator is
# not built (no CUDA toolkit).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
EMU="$(realpath -m "$BUILD/tests/cuda/emu/libmoeref-cuda-emu.so")"
for f in "$BUILD/bin/moe-ref" "$BUILD/bin/moecap" "$BUILD/lib/libmoecap.so" "$EMU"; do
  [ -e "$f" ] || { echo "skip - GPU report chain on the CUDA emulation ($f not built)"; exit 0; }
done
PRE="$(realpath "$BUILD")/lib/libmoecap.so"
if [ "${SAN:-0}" = 1 ]; then PRE="$(cc -print-file-name=libasan.so) $PRE"; export ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# run NAME MODEL STYLE DTYPE: the emulated engine under the shim, then the report
run() {
  local name=$1 m=$2 st=$3 dt=$4 d="$tmp/$1"
  mkdir -p "$d"
  if ! MOE_REF_CUDA_LIB="$EMU" LD_PRELOAD="$PRE" MOECAP_OUT="$d/run" MOECAP_NVML=0 MOECAP_MODEL="$m/config.json" \
       "$BUILD/bin/moe-ref" run --device cuda --moe $st --dtype $dt --model "$m" --batch 2 --prompt-len 6 --gen 3 \
       --ground-truth "$d/gt.jsonl" >"$d/out" 2>"$d/err"; then
    echo "# $(tail -2 "$d/err")"; echo "not ok - $name: emulated moe-ref run"; return 1
  fi
}
# check NAME [report args] -- RULE-CHECK: report, compare with the ground truth, check the naming rule counts
check() {
  local name=$1 rule=$2; shift 2
  local d="$tmp/$name"
  if ! "$BUILD/bin/moecap" report "$d/run" --model "$M" --hw tests/report/hw-test.json --format json --quiet \
       --out "$d/rep" "$@" 2>"$d/rep.err"; then
    echo "# $(tail -3 "$d/rep.err")"; echo "not ok - $name: moecap report"; return
  fi
  $PY tests/report/compare_gt.py "$d/gt.jsonl" "$d/rep/report.json" "$name" --no-time | grep -v "^# .*wall"
  $PY - "$d/rep/report.json" "$name" "$rule" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1])); name, rule = sys.argv[2], sys.argv[3]
a = r['run']['attribution']; nb = a['named_by']
used = a['router_taps'] > 0 if rule == 'router_taps_only' else nb.get(rule, 0) > 0
ok = used and nb['expert_first_seen_order'] == 0 and a['expert_ids'] == 'exact'
print('# named_by %s, router taps %d' % (nb, a['router_taps']))
print('%s - %s: device weights named by %s, expert ids exact' % ('ok' if ok else 'not ok', name, rule))
PYEOF
}

for arch in mixtral qwen2_moe; do
  M="$tmp/model-$arch"
  "$BUILD/bin/moe-ref" gen --arch $arch --out "$M" >/dev/null || { echo "not ok - $arch: gen"; continue; }
  for st in loop fused; do
    for dt in f32 bf16; do
      n="$arch-$st-$dt"
      run $n "$M" $st $dt || continue
      if [ $st = loop ]; then
        [ $dt = f32 ] && check $n device_file_map || check $n expert_device_range
      else   # fused: experts from the router-logit tap; the dense weights are still named (f32)
        [ $dt = f32 ] && check $n device_file_map || check $n router_taps_only
      fi
    done
  done
  # the same f32 loop trace without the shim's device file maps: 1b, then no names at all: 1c
  n="$arch-loop-f32-join"; mkdir -p "$tmp/$n"; cp -r "$tmp/$arch-loop-f32/run" "$tmp/$n/run"; cp "$tmp/$arch-loop-f32/gt.jsonl" "$tmp/$n/"
  removed=0; for f in "$tmp/$n/run"/*.mct; do removed=$((removed + $($PY tests/report/strip_records.py "$f" device-maps))); done
  [ $removed -gt 0 ] && echo "ok - $n: $removed device file maps removed" || echo "not ok - $n: no device file maps to remove"
  check $n host_to_device_copy
  # fused + top-k taps: (a) through API records, router-logit taps removed; (b) by arrival time
  for dt in f32 bf16; do
    for v in api noapi; do
      n="$arch-fused-$dt-topk-$v"; mkdir -p "$tmp/$n"; cp -r "$tmp/$arch-fused-$dt/run" "$tmp/$n/run"; cp "$tmp/$arch-fused-$dt/gt.jsonl" "$tmp/$n/"
      f=$(ls "$tmp/$n/run"/*.mct | head -1)
      taps=$($PY tests/report/inject_topk.py "$f" "$tmp/$n/gt.jsonl" $([ $v = noapi ] && echo --no-api)) || { echo "not ok - $n: inject"; continue; }
      [ $v = api ] && for g in "$tmp/$n/run"/*.mct; do $PY tests/report/strip_records.py "$g" router-taps >/dev/null; done
      "$BUILD/bin/moecap" report "$tmp/$n/run" --model "$M" --hw tests/report/hw-test.json --format json --quiet \
          --out "$tmp/$n/rep" 2>"$tmp/$n/rep.err" || { echo "# $(tail -3 "$tmp/$n/rep.err")"; echo "not ok - $n: moecap report"; continue; }
      $PY tests/report/compare_gt.py "$tmp/$n/gt.jsonl" "$tmp/$n/rep/report.json" "$n" --no-time | grep -v "^# .*wall"
      $PY - "$tmp/$n/rep/report.json" "$n" "$v" "$taps" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1])); name, v, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
a = r['run']['attribution']; t = a.get('topk_taps', {})
want = {'records': n, 'used_for_layers': n, 'unplaced': 0, 'disagree_with_router_taps': 0,
        'placed_by_launch': n if v == 'api' else 0, 'placed_by_arrival_time': 0 if v == 'api' else n,
        'agree_with_router_taps': 0 if v == 'api' else n}
bad = {k: (t.get(k), w) for k, w in want.items() if t.get(k) != w}
if v == 'api' and a['router_taps'] != 0: bad['router_taps'] = (a['router_taps'], 0)
print('# topk_taps %s' % t)
print('%s - %s: %d top-k taps placed %s, used for every fused layer%s' % ('not ok' if bad or n == 0 else 'ok', name, n,
      'through their CUPTI API records' if v == 'api' else 'by arrival time', '' if v == 'api' else ', agreeing with the router-logit taps'))
for k, x in bad.items(): print('# %s: got %r want %r' % (k, x[0], x[1]))
PYEOF
    done
  done
  n="$arch-loop-f32-nonames"; mkdir -p "$tmp/$n"; cp -r "$tmp/$arch-loop-f32/run" "$tmp/$n/run"; cp "$tmp/$arch-loop-f32/gt.jsonl" "$tmp/$n/"
  check $n expert_device_range --no-names
done
