#!/usr/bin/python3
"""End-to-end shim overhead on moe-ref decode (called by bench/shim-overhead.sh).

usage: shim-e2e.py MOE_REF LIBMOECAP MODEL_DIR LABEL ROUNDS TMPDIR

Each round runs every configuration once, in rotating order; ratios are taken against
the plain run of the same round (paired), then summarised by median and range. Three
measures per run: decode time (sum of the engine's own per-step wall_ns over decode
steps, from --ground-truth), process wall time, and process CPU time (user + sys of the
process and all its threads, from wait4 — less sensitive to other load on the machine).
Medians come with a 95 % bootstrap interval (of the median over rounds). Also the ratio
of the fastest decode of each configuration (best of ROUNDS): on a
machine shared with other work the least disturbed runs compare best; and the median over
rounds of the ratio of each run's median decode step (a run whose process was preempted
for a few steps keeps its typical step time, so this one moves least with other load).
With BASELINE_SHIM set in the environment (another build of libmoecap.so, e.g. before a
change), its default configuration runs in the same rounds: a paired before/after;
BASELINES="name=/path/libmoecap.so ..." adds more builds the same way, and
VARIANTS="name=MOECAP_X:value,... ..." this build with other settings.
With PIN_CPU=N in the environment every run is bound to CPU N (sched_setaffinity), the
shim's writer and sampler threads included: on a VM whose vCPUs run at different and
changing speeds (this project's 2-vCPU machine: the same tiny decode takes 23 or 37-41 ms
depending on the vCPU it lands on), an unpinned pair of runs compares two vCPUs as often
as two builds.
Prints Markdown table rows."""
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchstats import median_ci, pin_preexec  # noqa: E402

mr, shim, model, label, rounds, tmp = sys.argv[1:7]
rounds = int(rounds)
if rounds < 2:
    sys.exit("ROUNDS: at least 2 (quartiles and intervals need two rounds)")
configs = [
    ("plain", {}),
    ("shim, all modules (default)", {"LD_PRELOAD": shim}),
    ("shim, cpuprof sampler off (MOECAP_SAMPLE_MS=0)", {"LD_PRELOAD": shim, "MOECAP_SAMPLE_MS": "0"}),
    ("shim, no call sites, cpuprof off (MOECAP_STACK=0 MOECAP_SAMPLE_MS=0)",
     {"LD_PRELOAD": shim, "MOECAP_SAMPLE_MS": "0", "MOECAP_STACK": "0"}),
]
if os.environ.get("BASELINE_SHIM"):
    configs.append(("baseline build (BASELINE_SHIM), default", {"LD_PRELOAD": os.environ["BASELINE_SHIM"]}))
# BASELINES="name=/path/libmoecap.so ...": more builds in the same rounds, default settings
for item in os.environ.get("BASELINES", "").split():
    name, _, path = item.partition("=")
    if not path or not os.path.exists(path):
        sys.exit("BASELINES: want name=/path/libmoecap.so, got %r" % item)
    configs.append(("build %s, default" % name, {"LD_PRELOAD": os.path.abspath(path)}))
# VARIANTS="name=KEY:VALUE,KEY:VALUE ...": this build with other settings in the same rounds
# (e.g. tsc=MOECAP_TSC:1 to see what the clock reads cost where the kernel keeps time with
# another clock source)
for item in os.environ.get("VARIANTS", "").split():
    name, _, rest = item.partition("=")
    extra = {"LD_PRELOAD": shim}
    for kv in filter(None, rest.split(",")):
        k, sep, v = kv.partition(":")
        if not sep or not k.startswith("MOECAP_"):
            sys.exit("VARIANTS: want name=MOECAP_X:value,..., got %r" % item)
        extra[k] = v
    configs.append(("shim, %s (%s)" % (name, " ".join("%s=%s" % kv for kv in list(extra.items())[1:])), extra))
names = [c for c, _ in configs]
if len(set(names)) != len(names):   # one result list per name: a repeated name would mix runs
    sys.exit("BASELINES/VARIANTS: each name once, got %s" % ", ".join(sorted(n for n in set(names) if names.count(n) > 1)))
args = [mr, "run", "--model", model, "--batch", "1", "--prompt-len", "16", "--gen", "512"]


def one(extra):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("BASELINE_SHIM", None)
    env.pop("BASELINES", None)
    env["MOECAP_OUT"] = os.path.join(tmp, "o")
    env.update(extra)
    gt = os.path.join(tmp, "gt.jsonl")
    t0 = time.monotonic_ns()
    p = subprocess.Popen(args + ["--ground-truth", gt], env=env, stdout=subprocess.DEVNULL,
                         preexec_fn=pin_preexec())
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic_ns() - t0
    if status != 0:
        sys.exit("moe-ref failed (%d)" % status)
    steps = [json.loads(l) for l in open(gt)]
    dec = [s for s in steps if s["kind"] == "decode"]
    subprocess.run(["rm", "-rf", env["MOECAP_OUT"]])
    return (sum(s["wall_ns"] for s in dec), wall, ru.ru_utime + ru.ru_stime, dec[0]["gemm_calls"],
            statistics.median(s["wall_ns"] for s in dec))


res = {c: [] for c, _ in configs}
for r in range(rounds):
    for i in range(len(configs)):
        name, extra = configs[(i + r) % len(configs)]
        res[name].append(one(extra))
plain = res["plain"]
calls = plain[0][3]
for name, _ in configs[1:]:
    dec = [x[0] / p[0] for x, p in zip(res[name], plain)]
    wall = [x[1] / p[1] for x, p in zip(res[name], plain)]
    cpu = [x[2] / p[2] for x, p in zip(res[name], plain)]
    step = [x[4] / p[4] for x, p in zip(res[name], plain)]
    best = min(x[0] for x in res[name]) / min(p[0] for p in plain)
    q1, _, q3 = statistics.quantiles(dec, n=4)
    lo, hi = median_ci(dec)
    slo, shi = median_ci(step)
    print("| %s | %d | %.2f | %s | %.4f [%.3f, %.3f] (IQR %.3f..%.3f) | %.4f | %.4f [%.3f, %.3f] | %.4f | %.4f (%.3f..%.3f) |" % (
        label, calls, statistics.median(p[0] for p in plain) / 1e6, name, statistics.median(dec), lo, hi, q1, q3,
        best, statistics.median(step), slo, shi, statistics.median(wall), statistics.median(cpu), min(cpu), max(cpu)))
