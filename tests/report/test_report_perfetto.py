#!/usr/bin/python3
"""The documented way to profile a server, end to end, and the two views of its report:

  moecap record -o RUN -- moe-ref serve ...   (SIGTERM to `moecap record` drains the server)
  moecap bench --out RUN ...
  moecap report RUN --format json,perfetto    -> report.json, report.perfetto.json, cap_metrics.json

The Perfetto file (Trace Event Format) is read with Python's own json module and checked
against report.json, which is written independently of it (the steps come from the
attributor, the timeline's layers and GEMMs from the raw GEMM records):
  - schema: traceEvents, every event has the fields its phase needs (X: ts, dur, pid, tid;
    C: numeric args; M: args.name), X events on one track nest properly (Perfetto's rule);
  - per step: an X event whose ts/dur are the step's t_begin_ns/wall_ns (exact ns), the
    counters "tokens per step", "S-MBU per step" and "activated experts per layer" at its
    start equal the step's tokens, s_mbu and per-layer expert counts; the layer and GEMM
    events inside it number the step's layers and gemm_calls;
  - client requests: one X per request of requests.jsonl (duration = e2el_ms), on lanes
    where no two overlap, placed within the server's timeline;
  - bounded size: with --perfetto-max 100 exactly 100 GEMM events are drawn, otherData says
    how many were aggregated, layer events still count every GEMM, steps are unchanged.
cap_metrics.json (MoE-CAP's result shape): every field equals the report value it views,
and kv_size / throughputs equal MoE-CAP's formulas evaluated here on report.json's steps."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from preload import preload_env  # noqa: E402
from tap import check, finish, skip  # noqa: E402
BUILD = os.environ.get("BUILD", "build")
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
MC, REF = os.path.join(BUILD, "bin", "moecap"), os.path.join(BUILD, "bin", "moe-ref")
HW = os.path.join(ROOT, "tests", "report", "hw-test.json")


def near(a, b, rel=1e-9):
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= rel * max(1e-30, abs(b))


def env():
    """for programs run under `moecap record` (the ASan runtime preloaded under SAN=1)"""
    return preload_env("")


def plain_env():
    """for moecap itself (it has no child to preload): the sanitizers' leak check stays on"""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def ns(us):
    """µs with 3 decimals as written -> integer ns"""
    return int(round(us * 1000))


tmp = tempfile.mkdtemp(prefix="mc-perfetto-")
model, run, portf = os.path.join(tmp, "model"), os.path.join(tmp, "run"), os.path.join(tmp, "port")
subprocess.run([REF, "gen", "--arch", "mixtral", "--out", model, "--seed", "5"], check=True, capture_output=True)

# --- record the server, drive it with bench, stop it through `moecap record`
rec = subprocess.Popen([MC, "record", "-o", run, "--", REF, "serve", "--model", model, "--port", "0", "--port-file", portf,
                        "--max-batch", "8", "--quiet"], env=env(), stderr=subprocess.PIPE, text=True)
for _ in range(300):
    if os.path.exists(portf) or rec.poll() is not None:
        break
    time.sleep(0.05)
if not check(os.path.exists(portf), "server starts under moecap record"):
    rec.kill()
    sys.exit(1)
time.sleep(0.05)
port = int(open(portf).read())
N = 10
ds = os.path.join(tmp, "q.jsonl")
with open(ds, "w") as f:
    for k in range(N):
        f.write(json.dumps({"prompt": ("Item %02d: what is 6 times 7?" % k).ljust(64, "."), "expected": "42",
                            "type": "gsm8k", "ignore_eos": True}) + "\n")
b = subprocess.run([MC, "bench", "--url", "http://127.0.0.1:%d/v1" % port, "--dataset", ds, "-n", str(N), "--concurrency",
                    "3", "--max-tokens", "6", "--timeout", "60", "--quiet", "--out", run], capture_output=True, text=True,
                   timeout=120)
check(b.returncode == 0, "bench runs against the recorded server", b.stderr)
rec.send_signal(signal.SIGTERM)
try:
    _, err = rec.communicate(timeout=60)
except subprocess.TimeoutExpired:
    rec.kill()
    _, err = rec.communicate()
check(rec.returncode == 0 and "moe-ref exited with status 0" in err and "0 dropped" in err,
      "SIGTERM to moecap record drains the server: exit 0 and a summary line", (rec.returncode, err))

r = subprocess.run([MC, "report", run, "--model", model, "--hw", HW, "--format", "json,perfetto", "--quiet"], env=plain_env(),
                   capture_output=True, text=True)
if not check(r.returncode == 0, "moecap report --format json,perfetto", r.stderr):
    sys.exit(1)
rep = json.load(open(os.path.join(run, "report.json")))
pf = json.load(open(os.path.join(run, "report.perfetto.json")))
steps = rep["steps"]
check({"prefill", "decode"} <= {s["kind"] for s in steps}, "report has prefill and decode steps")

# --- schema
ev = pf.get("traceEvents")
bad = []
for e in ev if isinstance(ev, list) else []:
    ph = e.get("ph")
    ok = isinstance(e.get("name"), str) and ph in ("X", "C", "M") and isinstance(e.get("pid"), int)
    if ph == "X":
        ok = ok and isinstance(e.get("tid"), int) and isinstance(e.get("ts"), (int, float)) and \
            isinstance(e.get("dur"), (int, float)) and e["dur"] >= 0 and isinstance(e.get("args"), dict)
    elif ph == "C":
        ok = ok and isinstance(e.get("ts"), (int, float)) and isinstance(e.get("args"), dict) and e["args"] and \
            all(isinstance(v, (int, float)) for v in e["args"].values())
    elif ph == "M":
        ok = ok and e["name"] in ("process_name", "thread_name") and isinstance(e.get("args", {}).get("name"), str)
    if not ok:
        bad.append(e)
check(isinstance(ev, list) and ev and not bad, "traceEvents: every event has the fields of its phase", bad[:3])
check(pf.get("displayTimeUnit") == "ns" and isinstance(pf.get("otherData"), dict), "displayTimeUnit and otherData present")

def crossings(events):
    """X events of one track that overlap without nesting (Perfetto does not draw those)"""
    tracks = {}
    for e in events:
        if e["ph"] == "X":
            tracks.setdefault((e["pid"], e["tid"]), []).append((ns(e["ts"]), ns(e["ts"]) + ns(e["dur"]), e["name"]))
    out = []
    for key, xs in tracks.items():
        xs.sort(key=lambda x: (x[0], -x[1]))
        stack = []
        for b0, b1, name in xs:
            while stack and stack[-1][1] <= b0:
                stack.pop()
            if stack and b1 > stack[-1][1]:
                out.append((key, stack[-1], (b0, b1, name)))
            stack.append((b0, b1, name))
    return out


crossing = crossings(ev)
check(not crossing, "X events of every track nest properly", crossing[:3])

names = {(e["pid"], e.get("tid")) for e in ev if e["ph"] == "M" and e["name"] == "process_name"}
check(all((s["pid"], 0) in names for s in steps), "every profiled process is named", names)

# --- steps, rebuilt from the timeline
X = [e for e in ev if e["ph"] == "X"]
step_ev = {(e["pid"], e["tid"], ns(e["ts"])): e for e in X if e.get("cat") == "step"}
counters = {}
for e in ev:
    if e["ph"] == "C":
        counters[(e["name"], e["pid"], ns(e["ts"]))] = e["args"]
mism = []
for s in steps:
    e = step_ev.get((s["pid"], s["tid"], s["t_begin_ns"]))
    if not e or ns(e["dur"]) != s["wall_ns"] or not e["name"].startswith(s["kind"]):
        mism.append(("step", s["step"], e and ns(e["dur"]), s["wall_ns"]))
        continue
    t0, t1 = s["t_begin_ns"], s["t_end_ns"]
    tok = counters.get(("tokens per step", s["pid"], t0))
    smbu = counters.get(("S-MBU per step", s["pid"], t0))
    act = counters.get(("activated experts per layer", s["pid"], t0))
    want_act = {"layer %d" % l["layer"]: len(l["experts"]) for l in s["layers"] if "experts" in l}
    if not tok or tok.get("tokens") != s["tokens"]:
        mism.append(("tokens", s["step"], tok, s["tokens"]))
    if not smbu or not near(smbu.get("s_mbu"), s["s_mbu"], 1e-8):
        mism.append(("s_mbu", s["step"], smbu, s["s_mbu"]))
    if act != want_act or sum(act.values()) != s["activated_experts"]:
        mism.append(("activated", s["step"], act, want_act))
    inside = [x for x in X if x["pid"] == s["pid"] and x["tid"] == s["tid"] and t0 <= ns(x["ts"]) and
              ns(x["ts"]) + ns(x["dur"]) <= t1]
    layers = [x for x in inside if x.get("cat") == "layer"]
    gemms = [x for x in inside if x.get("cat") == "gemm"]
    if len(layers) != len(s["layers"]) or sorted(x["args"]["layer"] for x in layers) != sorted(l["layer"] for l in s["layers"]):
        mism.append(("layers", s["step"], [x["name"] for x in layers], s["layers"]))
    if len(gemms) != s["gemm_calls"]:
        mism.append(("gemm events", s["step"], len(gemms), s["gemm_calls"]))
check(not mism,
      "per step: duration, tokens, S-MBU, activated experts per layer, layers, GEMMs = report.json (%d steps)"
      % len(steps), mism[:4])
check(len(step_ev) == len(steps), "one step event per report step", (len(step_ev), len(steps)))

# --- client requests
reqs = [json.loads(l) for l in open(os.path.join(run, "requests.jsonl")) if l.strip()]
rq = [e for e in X if e.get("cat") == "request" and e["name"].startswith("request ")]
check(len(rq) == len(reqs) == N and all(abs(ns(e["dur"]) - e["args"]["e2el_ms"] * 1e6) <= 1 for e in rq),
      "one request event per logged request, duration = e2el_ms", (len(rq), len(reqs)))
lanes = {}
for e in rq:
    lanes.setdefault(e["tid"], []).append((ns(e["ts"]), ns(e["ts"]) + ns(e["dur"])))
overlap = [t for t, xs in lanes.items() if any(a[1] > b[0] for a, b in zip(sorted(xs), sorted(xs)[1:]))]
check(not overlap and len(lanes) >= 2, "requests on %d lane(s), none overlapping within a lane" % len(lanes), lanes)
first_send = min([ns(e["ts"]) for e in rq] or [0])
last_end = max([ns(e["ts"]) + ns(e["dur"]) for e in rq] or [0])
check(all(first_send <= s["t_begin_ns"] and s["t_end_ns"] <= last_end for s in steps),
      "requests placed on the server's clock: every step between the first send and the last reply",
      (first_send, last_end, steps[0]["t_begin_ns"], steps[-1]["t_end_ns"]))
check(any(e["ph"] == "C" and e["name"] == "proc.rss" for e in ev), "a sampled counter of the shim (RSS) drawn")

# --- bounded size
small = os.path.join(tmp, "small")
r = subprocess.run([MC, "report", run, "--model", model, "--hw", HW, "--format", "json,perfetto", "--quiet",
                    "--perfetto-max", "100", "--out", small], env=plain_env(), capture_output=True, text=True)
if check(r.returncode == 0, "report with --perfetto-max 100", r.stderr):
    sp = json.load(open(os.path.join(small, "report.perfetto.json")))
    sev = sp["traceEvents"]
    g = [e for e in sev if e.get("cat") == "gemm"]
    total_gemms = sum(s["gemm_calls"] for s in steps)
    agg = " ".join(sp["otherData"].get("aggregated", []))
    check(len(g) == 100 and ("%d gemm event" % (total_gemms - 100)) in agg,
          "only 100 GEMM events drawn, otherData says %d were aggregated" % (total_gemms - 100), (len(g), agg))
    lay = [e for e in sev if e.get("cat") == "layer"]
    check(sum(e["args"]["gemms"] for e in lay) + len(steps) == total_gemms,
          "layer events still count every GEMM of their layer (+ one lm_head per step)",
          (sum(e["args"]["gemms"] for e in lay), total_gemms))
    check(sum(1 for e in sev if e.get("cat") == "step") == len(steps), "every step still drawn")
    check(os.path.getsize(os.path.join(small, "report.perfetto.json")) <
          os.path.getsize(os.path.join(run, "report.perfetto.json")),
          "smaller file")

# --- cap_metrics.json (MoE-CAP's result shape)
cm = json.load(open(os.path.join(run, "cap_metrics.json")))
comp, agg = rep["moecap_compat"], rep["aggregate"]
m = rep["model"]
kv_tok = 2 * m["num_layers"] * m["head_dim"] * m["num_kv_heads"]      # MoE-CAP's _calculate_kv_size
pre = [s for s in steps if s["kind"] == "prefill"]
dec = [s for s in steps if s["kind"] == "decode"]
mean = lambda xs: sum(xs) / len(xs)
want = {
    "prefill_smbu": comp["prefill"]["s_mbu"], "prefill_smfu": comp["prefill"]["s_mfu"],
    "decoding_smbu": comp["decode"]["s_mbu"], "decoding_smfu": comp["decode"]["s_mfu"],
    "ttft": agg["ttft_server_s"]["mean"], "tpot": agg["tpot_server_s"]["mean"],
    "decoding_throughput": mean([s["sequences"] / s["time_s"] for s in dec]),
    "prefill_tp": mean([sum(s["context"]) / s["time_s"] for s in pre]),
    "kv_size": mean([(sum(s["context"]) + 1) * kv_tok / 1e9 * 1e3 for s in pre + dec]),
    "total_requests": N, "successful_requests": N, "failed_requests": 0,
    "e2e_s": round(json.load(open(os.path.join(run, "bench-summary.json")))["duration_s"], 2),
    "gpu_type": "1x" + rep["hardware"]["name"], "precision": "float32", "batch_size": 3, "method": "moe-ref",
    "model_name": rep["model"]["path"][:-len("/config.json")] if rep["model"]["path"].endswith("/config.json") else
    rep["model"]["path"],
}
diff = {k: (cm.get(k), v) for k, v in want.items()
        if not (cm.get(k) == v or (isinstance(v, float) and near(cm.get(k), v, 1e-6)))}
check(not diff, "cap_metrics fields = the report values they view (and MoE-CAP's formulas on its steps)", diff)

# --- GPU kernels: moe-ref on the CPU emulation of CUDA, recorded with --report
EMU_DIR = os.path.join(BUILD, "tests", "cuda", "emu")
EMU_LIB = os.path.join(EMU_DIR, "libmoeref-cuda-emu.so")
needed = [EMU_LIB, os.path.join(EMU_DIR, "libcupti.so.13"), os.path.join(EMU_DIR, "libcuda.so.1"),
          os.path.join(BUILD, "lib", "libmoecap-cupti.so")]
if not all(os.path.exists(x) for x in needed):
    skip("GPU kernel tracks", "the CUDA emulation is not built")
else:
    gdir, stats = os.path.join(tmp, "gpu"), os.path.join(tmp, "emu.stats")
    e = env()
    e.update(MOE_REF_CUDA_LIB=EMU_LIB, LD_LIBRARY_PATH=EMU_DIR, MOECAP_NVML="0", SIMT_EMU_STATS=stats)
    p = subprocess.run([MC, "record", "-o", gdir, "--report", "--model", model, "--hw", HW, "--format", "json,perfetto",
                        "--quiet", "--", REF, "run", "--device", "cuda", "--moe", "loop", "--dtype", "f32", "--model",
                        model, "--batch", "2", "--prompt-len", "6", "--gen", "3"], env=e, capture_output=True, text=True,
                       timeout=300)
    if check(p.returncode == 0 and os.path.exists(os.path.join(gdir, "report.perfetto.json")),
             "moecap record --report of the emulated CUDA engine", p.stderr[-1500:]):
        emu_kernels = dict(l.split() for l in open(stats) if l.strip()).get("kernels")
        recs = []
        for f in os.listdir(gdir):
            if f.endswith(".mct"):
                d = subprocess.run([MC, "dump", os.path.join(gdir, f)], capture_output=True, text=True)
                recs += [json.loads(l) for l in d.stdout.splitlines() if l.strip()]
        kr = {r["correlation_id"]: r for r in recs if r["type"] == "kernel" and r["source"] == 0}
        gp = json.load(open(os.path.join(gdir, "report.perfetto.json")))
        ke = [x for x in gp["traceEvents"] if x.get("cat") == "kernel"]
        named = {(x["pid"], x["tid"]) for x in gp["traceEvents"] if x["ph"] == "M" and x["name"] == "thread_name" and
                 x["args"]["name"].startswith("GPU ")}
        same = all(x["args"]["correlation_id"] in kr and
                   ns(x["ts"]) == kr[x["args"]["correlation_id"]]["start_ns"] and
                   ns(x["ts"]) + ns(x["dur"]) == kr[x["args"]["correlation_id"]]["end_ns"] and
                   x["name"] == kr[x["args"]["correlation_id"]].get("name_str_text") for x in ke)
        check(len(ke) == len(kr) == int(emu_kernels or -1) and same,
              "one kernel event per CUPTI kernel record (%s run by the emulator), same interval and name" % emu_kernels,
              (len(ke), len(kr), emu_kernels))
        gc = crossings(gp["traceEvents"])
        check(not gc, "GPU run: X events of every track nest properly (steps, layers, GEMM launches)", gc[:3])
        check(ke and all((x["pid"], x["tid"]) in named and x["tid"] >= 1 << 30 for x in ke),
              "kernels on named GPU stream tracks of their own", named)

sys.exit(finish(tmp))
