#!/usr/bin/python3
"""`moecap report`'s energy, cost and what-if sections end to end:
1. RAPL through the shim and a fake powercap tree whose package counter wraps around while
   the program runs (a writer thread advances it at a known 10 W, the DRAM zone at 2 W): the
   report's measured energy over the step span equals power x span.
2. No energy counter: the estimate idle + (TDP - idle) x utilisation, labelled "estimated"
   in report.json, report.md and report.html; cost figures recomputed from the printed
   parameters; --cost overrides shown with their source; bad --cost exits 2.
3. What-if on the synthetic trace (known bytes and FLOPs per step): the predicted times at
   100 % equal max(bytes / bandwidth, FLOPs / peak) computed here from the steps, the run's own
   hardware at the achieved efficiency gives the measured times back."""
import json, os, subprocess, sys, tempfile, threading, time

root = os.environ.get("MOECAP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
B = os.path.join(root, os.environ.get("BUILD", "build"))
sys.path.insert(0, os.path.join(root, "tests"))
from preload import preload_env
from tap import FAILS, check_problems, skip

MC, REF, SHIM = B + "/bin/moecap", B + "/bin/moe-ref", B + "/lib/libmoecap.so"
HW = os.path.join(root, "tests/report/hw-test.json")
tmp = tempfile.mkdtemp(prefix="mc-cost-")


def near(a, b, rel=1e-9):
    return a is not None and abs(a - b) <= rel * max(1.0, abs(b))


# ---- 1. fake powercap tree, wrapping package counter ----
# The package counter advances at 10 W and wraps (range 20 J) 0.3 s after the program starts
# and every 2 s after that, inside its sampled life; the DRAM zone advances at 2 W. A real counter wraps after minutes,
# so the shim's 20 ms sampler never misses a wrap; here a sampler starved by machine load for
# 2 s could, so the test reads the sample times from the trace and skips (saying so) when that
# happened. The writer thread's own stalls leave the file stale: each end of the window can be
# off by power x the longest gap between writes, which sets the tolerance.
pc = os.path.join(tmp, "powercap")
PKG_W, DRAM_W, PKG_RANGE, WRAP_AFTER_S = 10.0, 2.0, 20_000_000, 0.3
zones = {"intel-rapl:0": ("package-0", PKG_RANGE, PKG_W, PKG_RANGE - int(PKG_W * WRAP_AFTER_S * 1e6)),
         "intel-rapl:0:0": ("dram", 10**12, DRAM_W, 0)}
for d, (name, rng, _, start) in zones.items():
    os.makedirs(os.path.join(pc, d))
    for f, v in (("name", name), ("max_energy_range_uj", str(rng)), ("energy_uj", str(start))):
        open(os.path.join(pc, d, f), "w").write(v + "\n")
stop = threading.Event()
writes = []


def writer(t0):
    while not stop.is_set():
        el = time.monotonic() - t0
        for d, (_, rng, watts, start) in zones.items():
            p = os.path.join(pc, d, "energy_uj")
            with open(p + ".tmp", "w") as f:
                f.write("%d\n" % ((start + int(watts * el * 1e6)) % rng))
            os.replace(p + ".tmp", p)                      # the shim never reads half a number
        writes.append(time.monotonic_ns())
        time.sleep(0.002)


model = os.path.join(tmp, "m")
subprocess.run([REF, "gen", "--arch", "qwen2_moe", "--out", model, "--layers", "2", "--hidden", "128",
                "--moe-intermediate", "96", "--experts", "8", "--top-k", "2", "--vocab", "512", "--seed", "3"],
               check=True, stdout=subprocess.DEVNULL)
run = os.path.join(tmp, "rapl-run")
env = preload_env(SHIM, dict(os.environ, MOECAP_OUT=run, MOECAP_SAMPLE_MS="20", MOECAP_POWERCAP_ROOT=pc,
                             MOECAP_PAPI_EVENTS="none"))
t_start = time.monotonic()
wrap_ns = int((t_start + WRAP_AFTER_S) * 1e9)
th = threading.Thread(target=writer, args=(t_start,))
th.start()
r = subprocess.run([REF, "run", "--model", model, "--batch", "4", "--prompt-len", "64", "--gen", "640"], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
stop.set()
th.join()
probs = [] if r.returncode == 0 else ["moe-ref under the shim: rc %d %s" % (r.returncode, r.stderr[-300:])]
rep = subprocess.run([MC, "report", run, "--model", model, "--hw", HW, "--quiet", "--whatif-hw", "none"],
                     capture_output=True, text=True)
skip_why = None
if rep.returncode != 0:
    probs.append("report rc %d: %s" % (rep.returncode, rep.stderr[-300:]))
else:
    j = json.load(open(os.path.join(run, "report.json")))
    e, span = j["energy"], j["run"]["span_s"]
    first = min(s["t_begin_ns"] for s in j["steps"])
    last = first + int(span * 1e9)
    # RAPL sample times, from the trace itself
    ts = []
    for f in j["run"]["trace_files"]:
        d = subprocess.run([MC, "dump", os.path.join(run, f)], capture_output=True, text=True).stdout
        for line in d.splitlines():
            if '"rapl.package-0"' in line and '"counter"' in line:
                ts.append(json.loads(line)["t_ns"])
    ts.sort()
    gap_s = max((b - a for a, b in zip(ts, ts[1:])), default=10**12) / 1e9
    w = [t for t in writes if first - 10**9 <= t <= last + 10**9]
    wgap_s = max((b - a for a, b in zip(w, w[1:])), default=0) / 1e9
    dev, host = e["devices"], e["host"]
    print("# span %.3f s, %d RAPL samples (longest gap %.3f s), wrap at %+.3f s from the first step, writer's longest "
          "stall %.3f s: package %.3f J (want %.3f), DRAM %.3f J (want %.3f)" %
          (span, len(ts), gap_s, (wrap_ns - first) / 1e9, wgap_s, dev["joules"], PKG_W * span, host["joules"], DRAM_W * span))
    if gap_s >= 0.9 * PKG_RANGE / 1e6 / PKG_W:
        skip_why = "the shim's sampler was starved for %.2f s by machine load: about the fake counter's 2 s wrap period" % gap_s
    else:
        period_ns = int(PKG_RANGE / 1e6 / PKG_W * 1e9)   # it wraps again every 2 s
        if not ts or not any(ts[0] < wrap_ns + k * period_ns < ts[-1] for k in range(100)):
            probs.append("no wrap between two RAPL samples: wraps not tested")
        if (e["method"], dev["method"], host["method"], e["estimated"]) != ("measured", "measured", "measured", False):
            probs.append("labels %r %r %r %r" % (e["method"], dev["method"], host["method"], e["estimated"]))
        for what, got, watts in (("package", dev["joules"], PKG_W), ("DRAM", host["joules"], DRAM_W)):
            tol = max(0.03 * watts * span, 2.2 * watts * (wgap_s + 0.003))
            if not abs(got - watts * span) <= tol:
                probs.append("%s energy %.4f J, want %.4f +- %.4f J (a mishandled wrap is 20 J)" % (what, got, watts * span, tol))
if skip_why:
    skip("measured energy through the shim", skip_why)
else:
    check_problems("measured energy: RAPL package (wrapping) and DRAM through the shim = power x step span", probs)

# ---- 2. no counters: the estimate, labelled; cost from the printed parameters ----
syn = os.path.join(tmp, "s")
subprocess.run([B + "/tests/test_report_unit", "--write-trace", syn], check=True, stdout=subprocess.DEVNULL)
out = os.path.join(tmp, "est")
rep = subprocess.run([MC, "report", syn + "/run", "--model", syn + "/config.json", "--hw", HW, "--out", out, "--quiet",
                      "--cost", "usd_per_kwh=0.3", "--cost", "cloud_usd_per_hour=2", "--whatif-hw", "none"],
                     capture_output=True, text=True)
probs = []
if rep.returncode != 0:
    probs.append("report rc %d %s" % (rep.returncode, rep.stderr))
else:
    j = json.load(open(os.path.join(out, "report.json")))
    e, c, a = j["energy"], j["cost"], j["aggregate"]
    P = {k: v["value"] for k, v in c["parameters"].items()}
    span = j["run"]["span_s"]
    # hw-test.json: tdp 100 W, no idle_w -> 30 W; utilisation = step time / span (no CPU
    # counters), at most 1 (the two processes' steps overlap)
    u = min(1.0, a["time_s"] / span)
    want_J = 30 + (100 - 30) * u
    want_J *= span
    if not (e["method"] == "estimated" and e["estimated"] is True and e["devices"]["method"] == "estimated"):
        probs.append("labels %r" % e)
    if not near(e["devices"]["joules"], want_J, 1e-6) or not near(e.get("utilisation"), u, 1e-6):
        probs.append("estimate %r J, want %r (u %r)" % (e["devices"]["joules"], want_J, u))
    if c["parameters"]["usd_per_kwh"]["source"] != "--cost" or P["usd_per_kwh"] != 0.3:
        probs.append("override %r" % c["parameters"]["usd_per_kwh"])
    if c["parameters"]["idle_w"]["source"].find("30 %") < 0: probs.append("idle source %r" % c["parameters"]["idle_w"])
    o = c["owned"]
    energy_usd = e["joules"] / 3.6e6 * 0.3
    amort = P["devices"] * (P["price_usd"] + P["host_cpu_usd"] + P["host_dram_usd"]) / (P["lifetime_years"] * 365.25 * 86400) * span / P["utilisation"]
    w = c["work"]
    if not near(o["energy_usd"], energy_usd, 1e-9) or not near(o["amortised_usd"], amort, 1e-9):
        probs.append("energy/amortised %r %r want %r %r" % (o["energy_usd"], o["amortised_usd"], energy_usd, amort))
    run_usd = energy_usd + amort
    toks = w["input_tokens"] + w["output_tokens"]
    if toks != a["tokens"] - a["decode_tokens"] + a["output_tokens"] - 0 and w["input_tokens"] != a["prefill_tokens"]:
        probs.append("tokens %r vs aggregate %r" % (w, a))
    busy = w["input_time_s"] + w["output_time_s"]
    if not near(busy, a["time_s"], 1e-9): probs.append("phase times %r vs %r" % (busy, a["time_s"]))
    for k, want in (("per_1m_tokens_usd", run_usd / toks * 1e6),
                    ("per_1m_input_tokens_usd", run_usd * w["input_time_s"] / busy / w["input_tokens"] * 1e6),
                    ("per_1m_output_tokens_usd", run_usd * w["output_time_s"] / busy / w["output_tokens"] * 1e6)):
        if not near(o[k], want, 1e-9): probs.append("%s %r want %r" % (k, o[k], want))
    cl = c.get("cloud", {})
    if not near(cl.get("run_usd"), 2 * span / 3600, 1e-9): probs.append("cloud %r" % cl)
    mc = c["moecap_compat_cost"]
    if not near(mc["total_usd"], 1.25 * (1000 + 7214) + 1.2 * (100 + 350) * span / 3600 / 1000 * 0.15, 1e-9):
        probs.append("moecap_compat_cost %r" % mc)
    md = open(os.path.join(out, "report.md")).read()
    html = open(os.path.join(out, "report.html")).read()
    for name, text, mark in (("report.md", md.replace("\\_", "_"), "## Energy"), ("report.html", html, 'id="energy"')):
        sec = text.split(mark, 1)[-1][:3000] if mark in text else ""
        if "J (estimated)" not in sec: probs.append("%s: energy section missing or not labelled estimated" % name)
        if "usd_per_kwh" not in sec or "--cost" not in sec: probs.append("%s: parameters not printed with their source" % name)
        want_p = "mean power %.4g W over the step span, %.4g s" % (e["joules"] / e["window_s"], e["window_s"])
        if want_p not in sec: probs.append("%s: %r not shown" % (name, want_p))
check_problems("estimated energy labelled, cost from the printed parameters, --cost overrides", probs)

probs = []
for args, pat in ((["--cost", "price_usd=-3"], "price_usd"), (["--cost", "watts=3"], "bad item"),
                  (["--cost", "utilisation=0"], "utilisation"), (["--whatif-hw", "no-such-part"], "unknown hardware profile"),
                  (["--cost"], "needs a value")):
    rr = subprocess.run([MC, "report", syn + "/run", "--model", syn + "/config.json", "--hw", HW, "--out", out, "--quiet"] + args,
                        capture_output=True, text=True)
    if rr.returncode != 2 or pat not in rr.stderr: probs.append("%r: rc %d %r" % (args, rr.returncode, rr.stderr[:200]))
check_problems("bad --cost / --whatif-hw values exit 2 with the reason", probs)

# ---- 3. what-if on steps of known bytes and FLOPs ----
tgt = os.path.join(tmp, "fast.json")
json.dump({"name": "fast", "kind": "gpu", "model": "test target", "memory_bandwidth_Bps": 4e10, "memory_bytes": 1e9,
           "peak_flops": {"f32": 1e12}, "tdp_w": 200, "price_usd": 5000, "source": {}, "measured": False}, open(tgt, "w"))
out = os.path.join(tmp, "wi")
rep = subprocess.run([MC, "report", syn + "/run", "--model", syn + "/config.json", "--hw", HW, "--out", out, "--quiet",
                      "--whatif-hw", HW + "," + tgt], capture_output=True, text=True)
probs = []
if rep.returncode != 0:
    probs.append("report rc %d %s" % (rep.returncode, rep.stderr))
else:
    j = json.load(open(os.path.join(out, "report.json")))
    wi = j["whatif"]
    if wi["label"] != "prediction": probs.append("label %r" % wi["label"])
    hw = {"hw-test": (1e10, 1e11), "fast": (4e10, 1e12)}
    roof = {n: {"prefill": 0.0, "decode": 0.0} for n in hw}
    meas = {"prefill": 0.0, "decode": 0.0}
    for s in j["steps"]:
        for n, (bw, pk) in hw.items():
            roof[n][s["kind"]] += max(s["bytes"]["total"] / bw, s["flops"]["total"] / pk)
        meas[s["kind"]] += s["time_s"]
    eff = {k: roof["hw-test"][k] / meas[k] for k in meas}
    for k in meas:
        if not near(wi["achieved_efficiency"][k], eff[k], 1e-9): probs.append("efficiency %s %r want %r" % (k, wi["achieved_efficiency"][k], eff[k]))
    by = {t["hardware"]: t for t in wi["targets"]}
    for n in hw:
        for k in meas:
            got = by[n]["at_roofline"][k + "_s"]
            if not near(got, roof[n][k], 1e-9): probs.append("%s %s at roofline %r want %r" % (n, k, got, roof[n][k]))
            got = by[n]["at_achieved_efficiency"][k + "_s"]
            if not near(got, roof[n][k] / eff[k], 1e-9): probs.append("%s %s at efficiency %r want %r" % (n, k, got, roof[n][k] / eff[k]))
    if not near(by["hw-test"]["at_achieved_efficiency"]["decode_s"], meas["decode"], 1e-9): probs.append("own hardware != measured")
    if wi["ranking"]["by_tpot"] != ["fast", "hw-test"]: probs.append("ranking %r" % wi["ranking"])
check_problems("what-if: predicted step times = roofline from the steps' bytes and FLOPs", probs)
sys.exit(1 if FAILS else 0)
