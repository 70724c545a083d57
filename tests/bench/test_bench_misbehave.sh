#!/usr/bin/env bash
# `moecap bench` against a deliberately misbehaving mock server (tests/bench/mock_openai.py):
# dropped connections, garbage SSE, slow drip, no answer, HTTP 500, in-stream error, plus
# well-behaved streams with known timing (first chunk at 200 ms, then 100 ms gaps).
# Checks: one log line per request, each failure recorded with the right cause, nothing
# runs past its --timeout, latencies match the server's known schedule, summary counts.
set -u
cd "$(dirname "$0")/../.."
BUILD="${BUILD:-build}"
MOECAP="$BUILD/bin/moecap"
T=$(mktemp -d /tmp/mc-bench-test.XXXXXX)
cleanup() { [ -n "${SRV:-}" ] && kill "$SRV" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
/usr/bin/python3 tests/bench/mock_openai.py "$T/port" 90 &
SRV=$!
for _ in $(seq 50); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || { echo "not ok - mock server did not start"; exit 1; }
PORT=$(cat "$T/port")
modes=(good nousage nonstream drop drop0 garbage slow hang http500 error chunked)
for m in "${modes[@]}"; do
  printf '{"prompt": "MODE %s go", "expected": "42", "type": "gsm8k"}\n' "$m"
done > "$T/ds.jsonl"

# 22 requests (each mode twice), 11 in flight, 2 s limit: two waves -> must end by ~4 s
start=$(date +%s%N)
timeout 30 "$MOECAP" bench --url "http://127.0.0.1:$PORT/v1" --dataset "$T/ds.jsonl" -n 22 \
  --concurrency 11 --timeout 2 --goodput ttft:1000 --out "$T/run" >"$T/out.txt" 2>"$T/err.txt"
rc=$?
el_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "# bench exit $rc after $el_ms ms"
[ $rc -eq 0 ] && echo "ok - bench exits 0 when some requests succeed" || { echo "not ok - bench exit status $rc"; cat "$T/err.txt"; }
[ $el_ms -lt 7000 ] && echo "ok - bounded by timeouts ($el_ms ms for 2 waves of 2 s)" || echo "not ok - took $el_ms ms"

/usr/bin/python3 - "$T/run" "${modes[*]}" <<'PY'
import json, sys, math
run, modes = sys.argv[1], sys.argv[2].split()
recs = [json.loads(l) for l in open(run + "/requests.jsonl")]
summ = json.load(open(run + "/bench-summary.json"))
fails = []
def check(cond, name):
    print(("ok - " if cond else "not ok - ") + name)
    if not cond: fails.append(name)
check(len(recs) == 22 and sorted(r["id"] for r in recs) == list(range(22)), "log complete: 22 lines, ids 0..21")
expect_err = {"drop": ["without [DONE]", "transfer failed"], "drop0": ["transfer failed"],
              "garbage": ["malformed stream"], "slow": ["timeout"], "hang": ["timeout"],
              "http500": ["HTTP 500", "internal meltdown"], "error": ["server error: model overloaded"]}
for r in recs:
    m = modes[r["id"] % len(modes)]
    if m in ("good", "nousage", "nonstream", "chunked"):
        ok = r["ok"] and r["error"] is None and r["answer"] == "The answer is 42." and r["score"] == 1
        if m == "good":
            # usage: completion_tokens 6, prompt_tokens = prompt bytes
            ok = ok and r["output_tokens"] == 6 and r["output_tokens_source"] == "usage" and r["prompt_tokens"] == len("MODE good go")
            # server schedule: first chunk at 200 ms, then 5 gaps of 100 ms
            ok = ok and 180 <= r["ttft_ms"] <= 600 and len(r["itl_ms"]) == 5 and all(80 <= x <= 400 for x in r["itl_ms"])
            tp = (r["e2el_ms"] - r["ttft_ms"]) / 5
            ok = ok and abs(r["tpot_ms"] - tp) < 1e-6 and r["e2el_ms"] >= 680
        if m == "nousage":
            ok = ok and r["output_tokens"] == 6 and r["output_tokens_source"] == "chunks" and r["prompt_tokens"] is None
        if m == "chunked":
            ok = ok and r["output_tokens"] == 6 and r["output_tokens_source"] == "usage" and r["chunks"] == 6 and len(r["itl_ms"]) == 5
        if m == "nonstream":
            ok = ok and r["output_tokens"] == 6 and r["itl_ms"] == [] and r["ttft_ms"] == r["e2el_ms"]
        check(ok, "request %d (%s) recorded as success with the right numbers" % (r["id"], m))
    else:
        e = r["error"] or ""
        ok = (not r["ok"]) and any(s in e for s in expect_err[m]) and r["score"] is None
        if m in ("slow", "hang"):
            ok = ok and 1900 <= r["e2el_ms"] <= 3500
        check(ok, "request %d (%s) failed with its cause: %s" % (r["id"], m, e))
check(summ["requests"] == 22 and summ["completed"] == 8 and summ["failed"] == 14, "summary counts 8/14")
check(summ["ttft_ms"]["count"] == 8 and summ["accuracy"]["scored"] == 8 and summ["accuracy"]["correct"] == 8, "summary ttft count and accuracy 8/8")
# goodput ttft <= 1000 ms: every completed request qualifies (good ~200 ms, nonstream ~700 ms)
check(summ["goodput"]["good_requests"] == 8, "goodput counts requests meeting the SLO")
# total_input_tokens unknown: 'nousage' requests give none -> null, never invented
check(summ["total_input_tokens"] is None and summ["total_output_tokens"] == 48, "token totals")
sys.exit(1 if fails else 0)
PY

# non-tty progress: plain lines; usage errors: exit 2 with a message
grep -q "^moecap bench: 22/22 done" "$T/err.txt" && echo "ok - plain progress lines off a terminal" || echo "not ok - progress lines"
"$MOECAP" bench --url http://127.0.0.1:1/v1 --dataset "$T/ds.jsonl" 2>/dev/null; [ $? -eq 2 ] && echo "ok - missing --out is a usage error" || echo "not ok - missing --out"
"$MOECAP" bench --url http://127.0.0.1:1/v1 --dataset nonexistent.jsonl --out "$T/x" 2>"$T/e2"; [ $? -eq 2 ] && grep -q "cannot open" "$T/e2" && echo "ok - missing dataset explained" || echo "not ok - missing dataset"

# nothing listening: every request fails fast, exit 1, log complete
timeout 20 "$MOECAP" bench --url "http://127.0.0.1:1/v1" --dataset gsm8k -n 3 --model m --timeout 2 --out "$T/dead" >/dev/null 2>&1
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l < "$T/dead/requests.jsonl")" -eq 3 ] && echo "ok - connection refused: exit 1, 3 records" || echo "not ok - connection refused rc=$rc"

# chat endpoint + model discovery via GET /v1/models
timeout 20 "$MOECAP" bench --url "http://127.0.0.1:$PORT" --chat --dataset "$T/ds.jsonl" -n 1 --out "$T/chat" >/dev/null 2>&1
/usr/bin/python3 -c "
import json,sys
r=[json.loads(l) for l in open('$T/chat/requests.jsonl')]
s=json.load(open('$T/chat/bench-summary.json'))
ok = len(r)==1 and r[0]['ok'] and r[0]['answer']=='The answer is 42.' and s['config']['model']=='mock-model' and s['config']['endpoint'].endswith('/v1/chat/completions')
print(('ok' if ok else 'not ok') + ' - chat completions with the model id from /v1/models')
"

# --rate: Poisson arrivals. 40 requests at 50/s: gaps between sends have mean ~20 ms
# (std of the mean of 39 exponential gaps: ~3.2 ms) and a coefficient of variation near 1
# (evenly spaced sends would give ~0). Requests use the 'nonstream' mode (fast replies).
printf '{"prompt": "MODE nonstream", "expected": "42", "type": "gsm8k"}\n' > "$T/fast.jsonl"
timeout 30 "$MOECAP" bench --url "http://127.0.0.1:$PORT/v1" --dataset "$T/fast.jsonl" -n 40 --rate 50 --seed 7 \
  --model m --timeout 5 --quiet --out "$T/rate" >/dev/null 2>&1
/usr/bin/python3 - "$T/rate" <<'PY'
import json, sys, statistics as st
r = sorted((json.loads(l) for l in open(sys.argv[1] + "/requests.jsonl")), key=lambda x: x["id"])
t = [x["start_ms"] for x in r]
gaps = [b - a for a, b in zip(t, t[1:])]
m = st.mean(gaps); cv = st.pstdev(gaps) / m
ok = len(r) == 40 and all(x["ok"] for x in r) and 10 <= m <= 32 and 0.6 <= cv <= 1.6 and t == sorted(t)
print(("ok" if ok else "not ok") + " - --rate 50: Poisson sends (mean gap %.1f ms, cv %.2f)" % (m, cv))
PY

# closed loop: with --concurrency 1 the next request is sent as soon as one finishes
timeout 30 "$MOECAP" bench --url "http://127.0.0.1:$PORT/v1" --dataset "$T/fast.jsonl" -n 10 --concurrency 1 \
  --model m --timeout 5 --quiet --out "$T/closed" >/dev/null 2>&1
/usr/bin/python3 - "$T/closed" <<'PY'
import json, sys
r = sorted((json.loads(l) for l in open(sys.argv[1] + "/requests.jsonl")), key=lambda x: x["id"])
idle = [b["start_ms"] - (a["start_ms"] + a["e2el_ms"]) for a, b in zip(r, r[1:])]
ok = len(r) == 10 and all(x["ok"] for x in r) and all(-0.5 < g < 20 for g in idle)
print(("ok" if ok else "not ok") + " - --concurrency 1: next request sent right after the previous ends (max idle %.2f ms)" % max(idle))
PY
