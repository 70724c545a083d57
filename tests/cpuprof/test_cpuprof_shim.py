#!/usr/bin/python3
"""cpuprof inside libmoecap.so, end to end on this machine: a program run under the shim
prints exactly what it prints without it; its trace holds one cpuprof note naming the
unavailable sources and /proc samples that agree with what the kernel reports to the
parent (rusage); RAPL totals are wrap-corrected (fake powercap tree); short-lived
processes leave no trace; MOECAP_SAMPLE_MS=0 turns the module off; a forked child gets
its own /proc samples. The trace is parsed here from include/moecap/trace_format.h's
layout, independently of the project's reader."""
import os, re, struct, subprocess, sys, tempfile, glob, resource
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hwctr
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from preload import preload_line  # noqa: E402
from tap import FAILS, check_problems, skip  # noqa: E402

root = os.environ.get("MOECAP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
build = os.path.join(root, os.environ.get("BUILD", "build"))
shim = os.path.join(build, "lib", "libmoecap.so")
busy = os.path.join(build, "tests", "cpuprof_busy")

if not os.path.exists(shim):
    skip("cpuprof under the shim", "%s not built" % shim); sys.exit(0)
# Under SAN=1 the shim carries ASan/UBSan: its runtime must be preloaded first.
preload = preload_line(shim)

REC_STRING, REC_COUNTER, REC_NOTE = 2, 11, 17
SRC = {1: "papi", 2: "rapl", 3: "nvml", 4: "proc"}

def read_trace(path):
    data = open(path, "rb").read()
    assert data[:8] == b"MOECAPT\0", "bad magic"
    hsize = struct.unpack_from("<I", data, 12)[0]
    hflags = struct.unpack_from("<Q", data, 16)[0]
    # segmented (the shim's files): a size-0 header is unwritten space up to the next segment boundary
    seg = 1 << ((hflags >> 8) & 0xff) if hflags & 1 else 0
    off, strings, notes, counters = hsize, {}, [], []
    while off + 8 <= len(data):
        typ, _fl, size = struct.unpack_from("<HHI", data, off)
        if size == 0 and seg:
            off = (off // seg + 1) * seg
            continue
        if size < 8 or off + size > len(data): break
        body = off + 8
        if typ == REC_STRING:
            sid, ln = struct.unpack_from("<II", data, body)
            strings[sid] = data[body + 8: body + 8 + ln].decode("utf-8", "replace")
        elif typ == REC_NOTE:
            t, sid, lvl = struct.unpack_from("<QII", data, body)
            notes.append((sid, lvl))
        elif typ == REC_COUNTER:
            t, v, nm, un, tid, dev, src, cum = struct.unpack_from("<QdIIiiHH", data, body)
            counters.append(dict(t=t, v=v, name=nm, unit=un, tid=tid, dev=dev, src=SRC.get(src, src), cum=cum))
        off += size
    notes = [(strings.get(s, "?"), l) for s, l in notes]
    for c in counters:
        c["name"] = strings.get(c["name"], "?"); c["unit"] = strings.get(c["unit"], "?")
    # Each thread's records reach the file in flush order, not time order.
    counters.sort(key=lambda c: c["t"])
    return notes, counters

def run(args, env_extra, outdir):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("MOECAP_") and k != "MOECAP_ROOT": del env[k]
    # busy makes one BLAS call (cpuprof samples processes that record): no OpenBLAS pool
    # threads, so the thread count stays the program's own.
    env.update({"LD_PRELOAD": preload, "MOECAP_OUT": outdir, "OPENBLAS_NUM_THREADS": "1"})
    if os.environ.get("SAN") == "1":
        env["ASAN_OPTIONS"] = "detect_leaks=0:" + env.get("ASAN_OPTIONS", "")
    env.update(env_extra)
    p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=60)
    return p.returncode, out.decode(), err.decode()

# Reference run without the shim, and the child's CPU time as the kernel reports it.
before = resource.getrusage(resource.RUSAGE_CHILDREN)
ref = subprocess.run([busy], capture_output=True, text=True)
d = tempfile.mkdtemp(prefix="mc-cpuprof-")
before = resource.getrusage(resource.RUSAGE_CHILDREN)
rc, out, err = run([busy], {"MOECAP_SAMPLE_MS": "20"}, d)
after = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu_kernel = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
maxrss = after.ru_maxrss * 1024  # max over children so far (KiB -> bytes)
check_problems("program output unchanged under the shim",
               [] if rc == 0 and out == ref.stdout and out.startswith("checksum") else ["rc %d out %r vs %r" % (rc, out, ref.stdout)])
check_problems("nothing on stderr without MOECAP_LOG", [] if err == "" else ["stderr: %r" % err])

files = glob.glob(os.path.join(d, "*.mct"))
if len(files) != 1:
    check_problems("one trace file", ["files: %r" % files]); sys.exit(1)
notes, ctr = read_trace(files[0])
cp = [n for n in notes if n[0].startswith("cpuprof")]
probs = []
if len(cp) != 1: probs.append("cpuprof notes: %r" % cp)
else:
    text = cp[0][0]
    papi_live = any(c["src"] == "papi" for c in ctr)
    rapl_live = any(c["src"] == "rapl" for c in ctr)
    has_pmu = os.path.isdir("/sys/bus/event_source/devices/cpu") and os.path.exists("/sys/bus/event_source/devices/cpu/events")
    if ("PAPI: unavailable" in text) == papi_live: probs.append("note and PAPI records disagree: %r" % text)
    if ("RAPL: unavailable" in text) == rapl_live: probs.append("note and RAPL records disagree: %r" % text)
    if not os.path.isdir("/sys/class/powercap") and "RAPL: unavailable (no powercap directory" not in text:
        probs.append("no /sys/class/powercap here, note says %r" % text)
    if "/proc: sampled every 20 ms" not in text: probs.append("note lacks /proc: %r" % text)
    # Where the kernel refuses hardware events, the note gives its error (libpapi is then
    # never loaded); the kernel is asked here independently (hwctr.py).
    usable, e = hwctr.probe()
    if usable is False and "PAPI: unavailable (perf_event_open(instructions): %s" % os.strerror(e) not in text:
        probs.append("kernel refuses perf_event_open (%s), note says %r" % (os.strerror(e), text))
    print("# note: " + text)
check_problems("one note naming the unavailable sources", probs)

proc = {}
for c in ctr:
    if c["src"] == "proc": proc.setdefault(c["name"], []).append(c)
probs = []
want = {"proc.cpu_user": ("s", 1), "proc.cpu_system": ("s", 1), "proc.rss": ("bytes", 0),
        "proc.threads": ("count", 0), "proc.minor_faults": ("count", 1), "proc.major_faults": ("count", 1)}
for n, (unit, cum) in want.items():
    s = proc.get(n, [])
    if len(s) < 8: probs.append("%s: %d samples in ~0.5 s at 20 ms" % (n, len(s))); continue
    if any(c["unit"] != unit or c["cum"] != cum or c["tid"] != -1 or c["dev"] != -1 for c in s): probs.append("%s fields %r" % (n, s[0]))
    if len({c["t"] for c in s}) != len(s): probs.append("%s: two samples with one timestamp" % n)
    if cum and any(b["v"] < a["v"] for a, b in zip(s, s[1:])): probs.append("%s cumulative but decreases" % n)
check_problems("proc samples: all six series, units, monotonic", probs)

probs = []
if proc.get("proc.cpu_user") and proc.get("proc.cpu_system"):
    last = proc["proc.cpu_user"][-1]["v"] + proc["proc.cpu_system"][-1]["v"]
    # The last sample is taken at exit: only the tail after it is missing. Tick = 10 ms.
    if not (cpu_kernel - 0.06 <= last <= cpu_kernel + 0.02):
        probs.append("last sampled CPU %.3f s vs rusage %.3f s" % (last, cpu_kernel))
    print("# CPU time: sampled %.3f s, rusage %.3f s" % (last, cpu_kernel))
    rss = max(c["v"] for c in proc["proc.rss"])
    if not (64 << 20) <= rss <= maxrss * 1.05 + (4 << 20):
        probs.append("max sampled RSS %.1f MiB: want >= 64 MiB touched, <= ru_maxrss %.1f MiB" % (rss / 2**20, maxrss / 2**20))
    thr = {c["v"] for c in proc["proc.threads"]}
    if not thr <= {2.0, 3.0}: probs.append("threads %r: want program + sampler (+ writer)" % thr)
check_problems("proc samples agree with the kernel's rusage", probs)

rc, out, err = run([busy], {"MOECAP_SAMPLE_MS": "20", "MOECAP_LOG": "info"}, tempfile.mkdtemp(prefix="mc-cpuprof-"))
lines = [l for l in err.splitlines() if re.match(r"moecap\[\d+\]: cpuprof", l)]
check_problems("MOECAP_LOG=info: exactly one cpuprof line", [] if len(lines) == 1 else ["lines %r" % lines])

# Fake powercap tree: the program rewrites energy_uj from 1000 to 500 halfway (a wrap with
# range 10000), so the final total must be (10000 - 1000) + 500 = 9500 uJ exactly.
pc = tempfile.mkdtemp(prefix="mc-powercap-")
os.makedirs(os.path.join(pc, "intel-rapl:0"))
for f, v in (("name", "package-0"), ("energy_uj", "1000"), ("max_energy_range_uj", "10000")):
    open(os.path.join(pc, "intel-rapl:0", f), "w").write(v + "\n")
d2 = tempfile.mkdtemp(prefix="mc-cpuprof-")
rc, out, err = run([busy, "wrap", os.path.join(pc, "intel-rapl:0", "energy_uj"), "500"],
                   {"MOECAP_SAMPLE_MS": "20", "MOECAP_POWERCAP_ROOT": pc}, d2)
probs = [] if rc == 0 else ["rc %d %s" % (rc, err)]
f2 = glob.glob(os.path.join(d2, "*.mct"))
if f2:
    notes, ctr = read_trace(f2[0])
    r = [c for c in ctr if c["src"] == "rapl"]
    if not r: probs.append("no RAPL records; notes %r" % notes)
    else:
        if {c["name"] for c in r} != {"rapl.package-0"} or {c["unit"] for c in r} != {"uJ"}: probs.append("names/units %r" % r[0])
        if r[0]["v"] != 0: probs.append("first total %r, want 0 (baseline)" % r[0]["v"])
        if r[-1]["v"] != 9500: probs.append("final total %r, want 9500" % r[-1]["v"])
        if not any("RAPL: 1 zone(s) package-0" in n for n, _ in notes): probs.append("note %r" % notes)
else: probs.append("no trace")
check_problems("RAPL totals through the shim are wrap-corrected", probs)

d3 = tempfile.mkdtemp(prefix="mc-cpuprof-")
rc, out, err = run(["/bin/true"], {}, d3)
check_problems("short-lived process (< one period) leaves no trace", [] if rc == 0 and not os.listdir(d3) else ["rc %d files %r" % (rc, os.listdir(d3))])

d4 = tempfile.mkdtemp(prefix="mc-cpuprof-")
rc, out, err = run([busy], {"MOECAP_SAMPLE_MS": "0"}, d4)
probs = [] if rc == 0 and out == ref.stdout else ["rc %d" % rc]
for f in glob.glob(os.path.join(d4, "*.mct")):
    notes, ctr = read_trace(f)
    if any(c["src"] in ("proc", "rapl", "papi") for c in ctr) or any(n.startswith("cpuprof") for n, _ in notes):
        probs.append("cpuprof recorded with MOECAP_SAMPLE_MS=0")
check_problems("MOECAP_SAMPLE_MS=0 turns cpuprof off", probs)

d5 = tempfile.mkdtemp(prefix="mc-cpuprof-")
rc, out, err = run([busy, "fork"], {"MOECAP_SAMPLE_MS": "20"}, d5)
probs = [] if rc == 0 and out == ref.stdout else ["rc %d out %r" % (rc, out)]
traces = [read_trace(f) for f in glob.glob(os.path.join(d5, "*.mct"))]
child = [t for t in traces if any(n.startswith("cpuprof (forked child)") for n, _ in t[0])]
if len(traces) != 2 or len(child) != 1: probs.append("%d traces, %d with the forked-child note" % (len(traces), len(child)))
else:
    cu = [c for c in child[0][1] if c["name"] == "proc.cpu_user"]
    cs = [c for c in child[0][1] if c["name"] == "proc.cpu_system"]
    # The child lives 0.3 s and spins 0.1 s of it; on a loaded 2-core machine it gets less
    # CPU, but its counters start from zero at fork (not the parent's 64 MiB touch and
    # spin) and must show it ran.
    tot = (cu[-1]["v"] if cu else 0) + (cs[-1]["v"] if cs else 0)
    print("# child: %d samples, CPU %.2f s" % (len(cu), tot))
    if len(cu) < 5 or not 0.02 <= tot <= 0.35: probs.append("child proc samples: %d, CPU %.2f s (child lives 0.3 s, spins 0.1 s)" % (len(cu), tot))
    if any(c["src"] in ("rapl", "papi") for c in child[0][1]): probs.append("child recorded RAPL/PAPI")
check_problems("fork child: own /proc samples, PAPI/RAPL left to the parent", probs)
sys.exit(1 if FAILS else 0)
