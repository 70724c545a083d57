#!/usr/bin/python3
"""`moecap hwprobe`: the profile it writes parses, follows the schema, and its figures agree
with independent measurements taken here (numpy timings, /proc files read directly)."""
import json, os, subprocess, sys, tempfile, time
import numpy as np

root = os.environ.get("MOECAP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
moecap = os.path.join(root, os.environ.get("BUILD", "build"), "bin", "moecap")
fails = 0
def case(name, probs):
    global fails
    for p in probs: print("# " + p)
    print(("ok" if not probs else "not ok") + " - " + name)
    fails += bool(probs)

tmp = tempfile.mkdtemp()
out = os.path.join(tmp, "thisbox.json")
r = subprocess.run([moecap, "hwprobe", "--seconds", "0.5", "--out", out], capture_output=True, text=True)
probs = []
if r.returncode != 0: probs.append("exit %d: %s" % (r.returncode, r.stderr))
if "GB/s" not in r.stderr or "GFLOPS" not in r.stderr: probs.append("no progress on stderr: %r" % r.stderr)
if r.stdout: probs.append("stdout not empty with --out")
case("hwprobe runs", probs)
try:
    p = json.load(open(out))
except Exception as e:
    case("profile parses", ["%s" % e]); sys.exit(1)
case("profile parses", [])

probs = []
for k in ("name", "kind", "vendor", "model", "memory_bandwidth_Bps", "memory_bytes", "peak_flops", "source", "measured"):
    if k not in p: probs.append("missing " + k)
if p.get("name") != "thisbox": probs.append("name %r, want file stem 'thisbox'" % p.get("name"))
if p.get("kind") != "cpu": probs.append("kind %r" % p.get("kind"))
if p.get("measured") is not True: probs.append("measured must be true")
for k in ("memory_bandwidth_Bps", "peak_flops"):
    if "measured by moecap hwprobe on " + time.strftime("%Y-%m-%d", time.gmtime()) not in p.get("source", {}).get(k, ""):
        probs.append("source.%s does not say measured today: %r" % (k, p.get("source", {}).get(k)))
case("schema", probs)

# /proc read independently of the C parser.
model = None; memtotal = None
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"): model = line.split(":", 1)[1].strip(); break
for line in open("/proc/meminfo"):
    if line.startswith("MemTotal:"): memtotal = int(line.split()[1]) * 1024; break
probs = []
if model and p.get("model") != model: probs.append("model %r, /proc/cpuinfo says %r" % (p.get("model"), model))
if p.get("memory_bytes") != memtotal: probs.append("memory_bytes %r, MemTotal %r" % (p.get("memory_bytes"), memtotal))
case("model and memory from /proc", probs)

ncpu = os.cpu_count()
bw = p["memory_bandwidth_Bps"]; fl = p["peak_flops"]["f32"]
# Independent single-thread triad-ish timing with numpy: a = b + c over 64 MiB arrays.
n = 8 << 20
b = np.ones(n); c = np.full(n, 2.0); a = np.empty(n)
best = 1e9
for _ in range(5):
    t = time.perf_counter(); np.add(b, c, out=a); best = min(best, time.perf_counter() - t)
bw_np = 24.0 * n / best
probs = []
if not 1e9 <= bw <= 2e12: probs.append("bandwidth %.3g B/s outside 1 GB/s..2 TB/s" % bw)
# hwprobe uses every CPU, numpy one thread: it must not be much slower, nor absurdly faster.
if not 0.3 * bw_np <= bw <= 10 * bw_np * ncpu:
    probs.append("hwprobe %.2f GB/s vs numpy single-thread %.2f GB/s" % (bw / 1e9, bw_np / 1e9))
print("# hwprobe bandwidth %.2f GB/s, numpy 1-thread add %.2f GB/s" % (bw / 1e9, bw_np / 1e9))
case("bandwidth plausible", probs)

m = 1024
x = np.random.rand(m, m).astype(np.float32); y = np.random.rand(m, m).astype(np.float32)
x @ y
best = 1e9
for _ in range(5):
    t = time.perf_counter(); x @ y; best = min(best, time.perf_counter() - t)
fl_np = 2.0 * m ** 3 / best
probs = []
# Physical ceiling: every CPU at 5 GHz issuing two 512-bit FMAs per cycle (64 FLOP/clk).
if not 1e9 <= fl <= ncpu * 5e9 * 64: probs.append("sgemm %.3g FLOPS outside 1 GFLOPS..%g" % (fl, ncpu * 5e9 * 64))
if not 0.25 * fl_np <= fl <= 4 * fl_np:
    probs.append("hwprobe %.1f GFLOPS vs numpy float32 matmul %.1f GFLOPS" % (fl / 1e9, fl_np / 1e9))
print("# hwprobe sgemm %.1f GFLOPS, numpy 1024^3 matmul %.1f GFLOPS" % (fl / 1e9, fl_np / 1e9))
case("sgemm plausible", probs)

r = subprocess.run([moecap, "hwprobe", "--seconds", "-1"], capture_output=True, text=True)
case("bad argument exits 2 with a message",
     [] if r.returncode == 2 and "--seconds" in r.stderr else ["rc %d stderr %r" % (r.returncode, r.stderr)])
sys.exit(1 if fails else 0)
