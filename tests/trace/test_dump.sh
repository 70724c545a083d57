#!/usr/bin/env bash
# `moecap dump`: JSON lines with strings resolved, --summary counts, exit 2 with a clear
# message on truncated / corrupt / missing files, unknown record types noted.
set -u
B="${BUILD:-build}"
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
"$B/tests/test_trace_reader" --write-sample "$d/a.mct" || { echo "not ok - write sample"; exit 1; }
M="$B/bin/moecap"
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; fi; }

"$M" dump "$d/a.mct" >"$d/out.jsonl" 2>"$d/err"; rc=$?
check "dump exit 0" '[ $rc -eq 0 ]'
check "unknown type noted" 'grep -q "skipped 1 record" "$d/err"'
/usr/bin/python3 - "$d/out.jsonl" <<'PY' && echo "ok - dump json content" || echo "not ok - dump json content"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
types = [r["type"] for r in recs]
assert types == ["process", "string", "string"] + ["gemm"] * 5, types
p = recs[0]
assert p["pid"] == 42 and p["argv"] == ["a", "b"] and p["host_str_text"] == "hostA" and p["exe_str_text"] == "/bin/exe", p
g = [r for r in recs if r["type"] == "gemm"]
assert [(x["m"], x["n"], x["k"]) for x in g] == [(1, 10, 100), (2, 20, 200), (3, 30, 300), (7, 8, 9), (11, 12, 13)]
assert g[0]["api"] == "cblas_sgemm" and g[0]["alpha"] == 1.5 and g[3]["api"] == "unknown" and g[4]["api"] == "sgemm_"
PY
"$M" dump --summary "$d/a.mct" >"$d/sum.json" 2>/dev/null
/usr/bin/python3 - "$d/sum.json" <<'PY' && echo "ok - summary counts" || echo "not ok - summary counts"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["types"] == {"process": 1, "string": 2, "gemm": 5}, s
assert s["gemm_apis"] == {"cblas_sgemm": 3, "unknown": 1, "sgemm_": 1}, s
# 2*m*n*k summed: 2*(1*10*100 + 2*20*200 + 3*30*300 + 7*8*9 + 11*12*13)
assert s["gemm_flops"] == 2 * (1000 + 8000 + 27000 + 504 + 1716), s
assert s["unknown_records"] == 1 and s["complete"] is True
PY
size=$(stat -c %s "$d/a.mct")
head -c $((size - 5)) "$d/a.mct" >"$d/t.mct"
"$M" dump "$d/t.mct" >"$d/t.out" 2>"$d/t.err"; rc=$?
check "truncated: exit 2, message, earlier records printed" '[ $rc -eq 2 ] && grep -q truncated "$d/t.err" && [ $(wc -l <"$d/t.out") -eq 7 ]'
printf 'garbage!garbage!garbage!' >"$d/g.mct"
"$M" dump "$d/g.mct" >/dev/null 2>"$d/g.err"; rc=$?
check "not a trace: exit 2" '[ $rc -eq 2 ] && grep -q "not a moecap trace" "$d/g.err"'
"$M" dump "$d/missing.mct" >/dev/null 2>"$d/m.err"; rc=$?
check "missing file: exit 2" '[ $rc -eq 2 ] && grep -q "cannot open" "$d/m.err"'
# random garbage after a valid header: never a crash (exit 0 or 2 only)
crash=0
for i in $(seq 1 30); do
  head -c 24 "$d/a.mct" >"$d/r.mct"; head -c $((RANDOM % 600)) /dev/urandom >>"$d/r.mct"
  "$M" dump "$d/r.mct" >/dev/null 2>&1; rc=$?
  [ $rc -eq 0 ] || [ $rc -eq 2 ] || { crash=1; echo "# rc $rc on random input"; cp "$d/r.mct" /tmp/moecap-dump-crash.mct; }
done
check "random bytes never crash dump" '[ $crash -eq 0 ]'
# A 1.1 (segmented) trace the earlier shim left when killed (tests/trace/data: kill_prog, 2
# threads x 700 cblas_sgemm with lda = 2 + call number and n = thread + 1, MOECAP_BUF_KB=64,
# SIGKILL while the threads waited): unwritten segment ends and zero extents skipped, every
# call there once.
gunzip -c tests/trace/data/killed-1.1-segmented.mct.gz >"$d/seg.mct"
"$M" dump "$d/seg.mct" >"$d/seg.jsonl" 2>"$d/seg.err"; rc=$?
check "1.1 segmented trace of a killed process: exit 0" '[ $rc -eq 0 ]'
/usr/bin/python3 - "$d/seg.jsonl" <<'PY' && echo "ok - 1.1 segmented trace: every call once, in order" || echo "not ok - 1.1 segmented trace: every call once, in order"
import json, sys
calls = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["type"] == "gemm":
        calls.setdefault(r["n"], []).append(r["lda"] - 2)
assert sorted(calls) == [1, 2] and all(v == list(range(700)) for v in calls.values()), {k: len(v) for k, v in calls.items()}
PY
