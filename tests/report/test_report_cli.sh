#!/usr/bin/env bash
# `moecap report` on synthetic traces (tests/report/test_report_unit --write-trace: two
# processes, two forward steps each, figures derived by hand in that file) and bad input:
# wrong model for the trace, empty run dir, truncated trace, unknown hardware profile,
# unknown architecture -> a clear message and exit status 2.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
MC="$BUILD/bin/moecap"
PY=/usr/bin/python3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$BUILD/tests/test_report_unit" --write-trace "$tmp/s" || { echo "not ok - write synthetic trace"; exit 1; }
hw=tests/report/hw-test.json

expect_fail() {   # name pattern cmd...
  local name=$1 pat=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  if [ $rc -eq 2 ] && grep -qiE "$pat" "$tmp/err"; then echo "ok - $name (exit 2: $(head -1 "$tmp/err" | cut -c1-150))"
  else echo "# rc=$rc stderr: $(head -3 "$tmp/err")"; echo "not ok - $name"; fi
}

# 1. two processes merged; figures from the hand derivation in test_report_unit.c
if "$MC" report "$tmp/s/run" --model "$tmp/s/config.json" --hw $hw --quiet 2>"$tmp/err"; then
  $PY - "$tmp/s/run/report.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
a = r['aggregate']; bad = []
def eq(what, got, want):
    if got != want: bad.append('%s: got %r want %r' % (what, got, want))
eq('schema_version', r['schema_version'], 1)
eq('steps', a['steps'], 4); eq('prefill', a['prefill_steps'], 2); eq('decode', a['decode_steps'], 2)
# per process: step 0 = 2656 + 1536 + 384 + 384 = 4960 B, step 1 = 2528 + 1536 + 512 + 128 = 4704 B
eq('bytes.total', a['bytes']['total'], 2 * (4960 + 4704))
# FLOPs: step 0 10496 + 768, step 1 3456 + 512
eq('flops.total', a['flops']['total'], 2 * (10496 + 768 + 3456 + 512))
eq('pids', sorted({s['pid'] for s in r['steps']}), [100, 101])
eq('time order', [s['t_begin_ns'] for s in r['steps']], sorted(s['t_begin_ns'] for s in r['steps']))
# step 0: 23 GEMMs of 1000 ns with 100 ns gaps -> 25200 ns; bandwidth 1e10 B/s, peak 1e11 FLOP/s
s0 = r['steps'][0]
eq('step0 wall', s0['wall_ns'], 25200)
if abs(s0['s_mbu'] - 4960 / 25200e-9 / 1e10) > 1e-9: bad.append('s_mbu %r' % s0['s_mbu'])
if abs(s0['s_mfu'] - (10496 + 768) / 25200e-9 / 1e11) > 1e-9: bad.append('s_mfu %r' % s0['s_mfu'])
# all experts read: 2 layers x 4 experts x 96 x 4 B replace the 1536 routed bytes
if abs(s0['mbu'] - (4960 - 1536 + 2 * 4 * 96 * 4) / 25200e-9 / 1e10) > 1e-9: bad.append('mbu %r' % s0['mbu'])
# expert load, layer 0: expert 1 gets 5 + 1 tokens per process, expert 3 7 + 1
eq('load L0', r['expert_load']['tokens'][0], [0, 12, 0, 16])
eq('load L1', r['expert_load']['tokens'][1], [16, 4, 12, 0])  # e0 6+2, e1 2, e2 6 per process
eq('expert ids', r['expert_load']['expert_ids'], 'exact')
eq('ttft count', a['ttft_server_s']['count'], 2)
eq('layers', r['steps'][0]['layers'][0], {'layer': 0, 'experts': [1, 3], 'tokens_per_expert': [5, 7]})
eq('compat present', 'decode' in r['moecap_compat'], True)
# kernels [100,200] [150,300] [400,450] ns: 300 ns summed, 250 ns busy (union)
g = a.get('gpu_kernels', {})
eq('kernels', (g.get('count'), round(g.get('kernel_time_s', 0) * 1e9), round(g.get('busy_s', 0) * 1e9)), (3, 300, 250))
for b in bad: print('# ' + b)
print(('not ok' if bad else 'ok') + ' - synthetic two-process trace: merge, bytes, FLOPs, S-MBU/S-MFU/MBU, expert load')
PYEOF
  for f in report.md report.html; do
    [ -s "$tmp/s/run/$f" ] && echo "ok - $f written" || echo "not ok - $f written"
  done
else
  echo "# $(cat "$tmp/err")"; echo "not ok - synthetic two-process trace"
fi

# 1b. lm-evaluation-harness results joined as "lm_eval" (value copied from the hand-made file)
cat >"$tmp/lmeval.json" <<'JEOF'
{"results": {"gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.625, "exact_match_stderr,strict-match": 0.01}},
 "config": {"model_args": "pretrained=tiny"}, "n-samples": {"gsm8k": {"original": 8, "effective": 8}}}
JEOF
if "$MC" report "$tmp/s/run" --model "$tmp/s/config.json" --hw $hw --format json --quiet --lm-eval "$tmp/lmeval.json" 2>"$tmp/err" &&
   $PY -c "import json,sys; t=json.load(open('$tmp/s/run/report.json'))['lm_eval']['tasks'][0]; sys.exit(0 if (t['task'],t['value'])==('gsm8k',0.625) else 1)"; then
  echo "ok - --lm-eval results joined"
else echo "# $(head -3 "$tmp/err")"; echo "not ok - --lm-eval results joined"; fi
expect_fail "--lm-eval missing file" "lm-eval" "$MC" report "$tmp/s/run" --model "$tmp/s/config.json" --hw $hw --lm-eval "$tmp/nope.json"

# 2. --help
"$MC" report --help | grep -q -- "--model" && echo "ok - --help" || echo "not ok - --help"

# 3. wrong model: same architecture, other hidden size
sed 's/"hidden_size":8/"hidden_size":16/' "$tmp/s/config.json" >"$tmp/wrong.json"
expect_fail "wrong model for the trace" "does not match" "$MC" report "$tmp/s/run" --model "$tmp/wrong.json" --hw $hw
# ... and one more layer than the trace has (shapes agree, layer count does not)
sed 's/"num_hidden_layers":2/"num_hidden_layers":3/' "$tmp/s/config.json" >"$tmp/wrong3.json"
expect_fail "wrong layer count for the trace" "does not match.*router" "$MC" report "$tmp/s/run" --model "$tmp/wrong3.json" --hw $hw

# 4. empty run dir, missing run dir
mkdir -p "$tmp/empty"
expect_fail "empty run dir" "no trace files" "$MC" report "$tmp/empty" --model "$tmp/s/config.json" --hw $hw
expect_fail "missing run dir" "cannot open run directory" "$MC" report "$tmp/nope" --model "$tmp/s/config.json" --hw $hw

# 5. truncated traces: cut inside the first records -> no step -> exit 2; cut in the middle ->
#    whole records before the cut are used, the cut step dropped, a warning, exit 0
mkdir -p "$tmp/t1" "$tmp/t2"
head -c 100 "$tmp/s/run/host-100.mct" >"$tmp/t1/host-100.mct"
expect_fail "truncated trace (no complete step)" "truncated|no GEMM" "$MC" report "$tmp/t1" --model "$tmp/s/config.json" --hw $hw
sz=$(stat -c %s "$tmp/s/run/host-100.mct")
head -c $((sz - 1000)) "$tmp/s/run/host-100.mct" >"$tmp/t2/host-100.mct"
if "$MC" report "$tmp/t2" --model "$tmp/s/config.json" --hw $hw --format json --quiet 2>"$tmp/err" &&
   grep -q "warning" "$tmp/err" &&
   $PY -c "import json,sys; r=json.load(open('$tmp/t2/report.json')); sys.exit(0 if r['aggregate']['steps']==1 and r['run']['truncated_files']==['host-100.mct'] else 1)"; then
  echo "ok - truncated trace mid-step: earlier steps reported, warning given"
else
  echo "# $(head -3 "$tmp/err")"; echo "not ok - truncated trace mid-step"
fi
# a file that is not a trace at all
mkdir -p "$tmp/t3"; echo "hello" >"$tmp/t3/x.mct"
expect_fail "not a trace file" "x.mct" "$MC" report "$tmp/t3" --model "$tmp/s/config.json" --hw $hw

# 5b. corrupted traces (random bytes overwritten): never a crash, exit 0 or 2
crashes=0
for seed in $(seq 1 40); do
  mkdir -p "$tmp/f$seed"
  $PY - "$tmp/s/run/host-100.mct" "$tmp/f$seed/x.mct" $seed <<'PYEOF'
import random, sys
b = bytearray(open(sys.argv[1], 'rb').read())
r = random.Random(int(sys.argv[3]))
for _ in range(r.randint(1, 20)):
    i = r.randrange(24, len(b))
    b[i] = r.randrange(256)
open(sys.argv[2], 'wb').write(b)
PYEOF
  "$MC" report "$tmp/f$seed" --model "$tmp/s/config.json" --hw $hw --quiet >/dev/null 2>"$tmp/ferr"; rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 2 ]; then crashes=$((crashes + 1)); echo "# seed $seed: exit $rc: $(tail -1 "$tmp/ferr")"; fi
  rm -rf "$tmp/f$seed"
done
[ $crashes -eq 0 ] && echo "ok - 40 corrupted traces: exit 0 or 2, no crash" || echo "not ok - corrupted traces: $crashes crashes"

# 6. unknown hardware profile: lists the available ones
MOECAP_ROOT=$PWD expect_fail "unknown hardware profile" "unknown hardware profile 'no-such-gpu'.*available: .*h100" \
  "$MC" report "$tmp/s/run" --model "$tmp/s/config.json" --hw no-such-gpu

# 7. unknown architecture / missing fields
echo '{"model_type":"llama","hidden_size":8}' >"$tmp/llama.json"
expect_fail "unknown architecture" "unsupported model architecture 'llama'" "$MC" report "$tmp/s/run" --model "$tmp/llama.json" --hw $hw
echo '{"model_type":"qwen2_moe","hidden_size":8,"num_hidden_layers":2}' >"$tmp/partial.json"
expect_fail "missing config fields named" "lacks required fields: .*num_attention_heads.*num_experts" "$MC" report "$tmp/s/run" --model "$tmp/partial.json" --hw $hw
expect_fail "missing --hw" "required" "$MC" report "$tmp/s/run" --model "$tmp/s/config.json"
exit 0
