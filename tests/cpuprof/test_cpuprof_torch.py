#!/usr/bin/python3
"""Regression test: python3 importing numpy and torch under the shim in its DEFAULT
configuration (cpuprof's sampler on, default PAPI events) must never crash. It used to
crash in about 1 run in 4 (SIGSEGV, "malloc(): corrupted top size"): PAPI_library_init
ran on the sampler thread while Python dlopen'ed torch, and PAPI reads /proc/self/maps in
two passes (count, allocate, fill) without a bound, so libraries mapped in between
overflowed its array. 15 runs, each must exit 0 with the output of a run without the shim
and leave a complete trace. Also: libpapi is mapped into the program exactly when the
kernel says hardware events can be counted (hwctr.py, the kernel's answer asked
independently), and libmoecap.so does not link it."""
import concurrent.futures, glob, json, os, shutil, subprocess, sys, tempfile

here = os.path.dirname(os.path.abspath(__file__))
root = os.environ.get("MOECAP_ROOT", os.path.join(here, "..", ".."))
build = os.path.join(root, os.environ.get("BUILD", "build"))
shim = os.path.join(build, "lib", "libmoecap.so")
moecap = os.path.join(build, "bin", "moecap")
PY = "/usr/bin/python3"
RUNS = 15
sys.path.insert(0, here)
import hwctr
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from preload import preload_line  # noqa: E402
from tap import FAILS, check_problems, skip  # noqa: E402


if not os.path.exists(shim) or not os.path.exists(moecap):
    skip("numpy+torch under the shim", "%s or moecap not built" % shim); sys.exit(0)
if subprocess.run([PY, "-c", "import numpy, torch"], capture_output=True).returncode != 0:
    skip("numpy+torch under the shim", "%s lacks numpy or torch" % PY); sys.exit(0)

preload = preload_line(shim)

# A few float32 matmuls through torch (sgemm_) and float64 ones through numpy; the last
# line says whether libpapi is mapped (checked separately, not compared).
PROG = r'''
import numpy, torch
torch.manual_seed(0)
a = torch.randn(64, 48); b = torch.randn(48, 32); w = torch.randn(48, 32)
c = a @ b
d = torch.nn.functional.linear(c, w)
x = numpy.arange(48 * 40, dtype=numpy.float64).reshape(48, 40) / 7.0
y = x @ x.T
print("%.6f %.6f %.6f %.6f" % (float(c.sum()), float((c @ c.T).trace()), float(d.abs().sum()), float(y.sum())))
print("papi-mapped=%d" % ("libpapi" in open("/proc/self/maps").read()))
'''

def run(shimmed):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOECAP_") and k != "LD_PRELOAD"}
    out_dir = None
    if shimmed:
        out_dir = tempfile.mkdtemp(prefix="mc-cpuprof-torch-")
        env.update({"LD_PRELOAD": preload, "MOECAP_OUT": out_dir})
        if os.environ.get("SAN") == "1":
            env["ASAN_OPTIONS"] = "detect_leaks=0:" + env.get("ASAN_OPTIONS", "")
    p = subprocess.run([PY, "-c", PROG], env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr, out_dir

rc, ref, err, _ = run(False)
if rc != 0:
    check_problems("reference run without the shim", ["rc %d: %s" % (rc, err[-300:])]); sys.exit(1)
ref_result = ref.splitlines()[0]

# Two at a time (2-core machine): ~10 s in all.
with concurrent.futures.ThreadPoolExecutor(2) as ex:
    runs = list(ex.map(lambda _: run(True), range(RUNS)))

probs, mapped = [], set()
for i, (rc, out, err, d) in enumerate(runs):
    lines = out.splitlines()
    if rc != 0: probs.append("run %d: exit %d, stderr %r" % (i, rc, err[-200:]))
    elif not lines or lines[0] != ref_result: probs.append("run %d: output %r, want %r" % (i, lines[:1], ref_result))
    elif err: probs.append("run %d: stderr %r" % (i, err[-200:]))
    if len(lines) > 1: mapped.add(lines[1])
check_problems("%d runs of import numpy, torch + matmuls under the default shim: all exit 0, same output" % RUNS, probs)

probs = []
for i, (rc, out, err, d) in enumerate(runs):
    files = glob.glob(os.path.join(d, "*.mct"))
    if len(files) != 1: probs.append("run %d: trace files %r" % (i, files)); continue
    p = subprocess.run([moecap, "dump", "--summary", files[0]], capture_output=True, text=True)
    try: s = json.loads(p.stdout.splitlines()[0])
    except (ValueError, IndexError): probs.append("run %d: dump --summary %r" % (i, p.stdout[:200])); continue
    t = s.get("types", {})
    if not s.get("complete") or s.get("dropped_events"): probs.append("run %d: incomplete or dropped: %r" % (i, s))
    # torch's two sgemm_ calls at least (c = a @ b, linear, c @ c.T) and cpuprof's samples
    if s.get("gemm_apis", {}).get("sgemm_", 0) < 3 or not t.get("counter") or t.get("note", 0) < 1:
        probs.append("run %d: summary %r" % (i, s))
check_problems("each run left one complete trace with its GEMMs and cpuprof's samples", probs)

usable, e = hwctr.probe()
if usable is None:
    skip("libpapi mapped iff the kernel counts hardware events", "unknown syscall number here")
else:
    want = "papi-mapped=%d" % int(usable)
    print("# kernel: hardware counters %s (errno %d); programs saw %r" % ("usable" if usable else "unusable", e, sorted(mapped)))
    check_problems("libpapi mapped into the program iff the kernel counts hardware events",
                   [] if mapped == {want} else ["want %s, saw %r" % (want, sorted(mapped))])

needed = subprocess.run(["readelf", "-d", shim], capture_output=True, text=True).stdout
check_problems("libmoecap.so does not link libpapi (dlopen'ed on demand)",
               [] if "NEEDED" in needed and "libpapi" not in needed else ["readelf -d: " + " ".join(l.split()[-1] for l in needed.splitlines() if "NEEDED" in l)])
if not FAILS:
    for r in runs: shutil.rmtree(r[3], ignore_errors=True)
sys.exit(1 if FAILS else 0)
