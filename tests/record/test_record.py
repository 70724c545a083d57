#!/usr/bin/python3
"""`moecap record -- CMD`: CMD's exit status (0, 3, killed by a signal -> 128+N), SIGINT and
SIGTERM sent to `moecap record` reach CMD and its trace still ends with a whole record, a
library already in LD_PRELOAD stays loaded next to the shim, a missing CMD is a usage error
(exit 2 + usage line), and the summary line's figures equal an independent count of the
trace (`moecap dump` lines; the GEMMs tests/shim/shim_prog is known to make)."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from preload import preload_env  # noqa: E402
BUILD = os.environ.get("BUILD", "build")
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
MC = os.path.join(BUILD, "bin", "moecap")
PROG = os.path.join(BUILD, "tests", "shim_prog")
MARKER_LIB = os.path.join(BUILD, "tests", "libpreload_marker.so")
SHIM = os.path.realpath(os.path.join(BUILD, "lib", "libmoecap.so"))
fails = 0


def check(name, cond, detail=""):
    global fails
    if cond:
        print("ok - " + name)
    else:
        fails += 1
        if detail:
            print("# " + str(detail).replace("\n", "\n# "))
        print("not ok - " + name)


def base_env():
    """The environment a user would have, without the shim; under SAN=1 the ASan runtime is
    preloaded (the shim carries ASan there) and `moecap record` must keep it first."""
    e = preload_env("")
    e.pop("MOECAP_OUT", None)
    return e


def record(args, env=None, **kw):
    return subprocess.run([MC, "record"] + args, env=env or base_env(), capture_output=True, text=True,
                          timeout=120, **kw)


def traces(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".mct"))


def dump(path):
    """Records of one trace through `moecap dump` (exit 0 = read to a clean end)."""
    p = subprocess.run([MC, "dump", path], capture_output=True, text=True)
    return p.returncode, [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def gemm_ms(recs):
    return [r.get("m") for r in recs if r.get("type") == "gemm"]


def summary(stderr):
    m = re.search(r"(\d+) trace files?, (\d+) records, (\d+) dropped", stderr)
    return tuple(int(x) for x in m.groups()) if m else None


tmp = tempfile.mkdtemp(prefix="mc-record-")

# 1. exit 0, known GEMMs, summary figures = independent count
d = os.path.join(tmp, "ok")
p = record(["-o", d, "--", PROG, "shapes", "3"])
check("exit status 0 passed through", p.returncode == 0, p.stderr)
files = traces(d) if os.path.isdir(d) else []
check("one trace in the run directory", len(files) == 1, files)
if files:
    rc, recs = dump(files[0])
    check("trace reads to a clean end", rc == 0)
    # shapes 3: cblas_sgemm i=1..3, then sgemm_, dgemm_, cblas_sgemv, cblas_dgemv, sgemv_, cblas_dgemm
    check("the program's 9 BLAS calls recorded", len(gemm_ms(recs)) == 9, gemm_ms(recs))
    s = summary(p.stderr)
    check("summary line: files, records (= dump lines), dropped",
          s == (1, len(recs), sum(r.get("count", 0) for r in recs if r.get("type") == "dropped")),
          "%r vs %d records: %s" % (s, len(recs), p.stderr))
    check("summary names the command and its status", "exited with status 0" in p.stderr and d in p.stderr, p.stderr)

# 2. exit 3; and a fresh directory is required
d3 = os.path.join(tmp, "three")
p = record(["-o", d3, "--", "/bin/sh", "-c", "exit 3"])
check("exit status 3 passed through", p.returncode == 3, p.stderr)
p = record(["-o", d, "--", PROG, "shapes", "1"])
check("a run directory that holds traces is refused (exit 2)", p.returncode == 2 and "already holds" in p.stderr,
      p.stderr)
p = record(["--force", "-o", d, "--", PROG, "shapes", "1"])
check("--force adds to it", p.returncode == 0 and len(traces(d)) == 2, p.stderr)

# children followed: shim_prog fork makes 3 calls, forks a child (5 calls), parent 7 more
dfk = os.path.join(tmp, "fork")
p = record(["-o", dfk, "--", PROG, "fork"])
per_file = sorted(len(gemm_ms(dump(f)[1])) for f in traces(dfk)) if os.path.isdir(dfk) else []
check("a forked child writes its own trace (GEMMs per file: child 5, parent 3+7)",
      p.returncode == 0 and per_file == [5, 10] and summary(p.stderr)[0] == 2, (per_file, p.stderr))

# 3. killed by a signal -> 128 + N, like a shell
p = record(["-o", os.path.join(tmp, "kill"), "--", "/bin/sh", "-c", "kill -KILL $$"])
check("CMD killed by SIGKILL -> exit 137", p.returncode == 128 + signal.SIGKILL, (p.returncode, p.stderr))
check("summary says which signal", "killed by signal 9" in p.stderr, p.stderr)


def run_and_signal(dirname, prog_args, sig):
    """Starts `moecap record -- shim_prog ...`, waits for "ready", sends sig to moecap
    record only (not to the process group), returns (exit status, stderr, run dir)."""
    rd = os.path.join(tmp, dirname)
    pr = subprocess.Popen([MC, "record", "-o", rd, "--", PROG] + prog_args, env=base_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    line = pr.stdout.readline()
    if line.strip() != "ready":
        pr.kill()
        return None, "no ready line: %r" % line, rd
    time.sleep(0.1)
    pr.send_signal(sig)
    try:
        _, err = pr.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        pr.kill()
        return None, "did not end after the signal", rd
    return pr.returncode, err, rd


def check_trace_after(signame, rd, err):
    """The program's trace after the signal: one file, read to a clean end, its 50 GEMMs (m=3)."""
    files = traces(rd) if os.path.isdir(rd) else []
    trc, recs = dump(files[0]) if files else (None, [])
    check("trace after %s: clean end and the 50 GEMMs (m=3)" % signame, trc == 0 and gemm_ms(recs) == [3] * 50,
          (files, trc, len(gemm_ms(recs)), err))


# 4. SIGTERM to moecap record reaches CMD's own handler (writes a file, exits 3)
mark = os.path.join(tmp, "got-term")
rc, err, rd = run_and_signal("term", ["sigterm", mark], signal.SIGTERM)
check("SIGTERM passed to CMD (its handler ran)", os.path.exists(mark), err)
check("CMD's exit status after its SIGTERM handler (3)", rc == 3, (rc, err))
check_trace_after("SIGTERM", rd, err)

# 5. SIGINT to moecap record reaches CMD, which has no handler: it dies by SIGINT -> 130
rc, err, rd = run_and_signal("int", ["sigterm-dfl"], signal.SIGINT)
check("SIGINT passed to CMD: killed by it -> exit 130", rc == 128 + signal.SIGINT, (rc, err))
check_trace_after("SIGINT", rd, err)

# 6. an LD_PRELOAD entry the user had stays (and is loaded), the shim is added
env = base_env()
env["LD_PRELOAD"] = (env["LD_PRELOAD"] + ":" if env.get("LD_PRELOAD") else "") + MARKER_LIB
env["RECORD_MARKER"] = os.path.join(tmp, "marker")
dp = os.path.join(tmp, "preload")
show = os.path.join(tmp, "preload-line")
p = record(["-o", dp, "--", "/bin/sh", "-c", 'echo "$LD_PRELOAD" > %s && exec %s shapes 1' % (show, PROG)], env=env)
line = open(show).read().strip() if os.path.exists(show) else ""
parts = line.split(":")
check("LD_PRELOAD keeps the user's entry and adds the shim", MARKER_LIB in parts and SHIM in parts, line)
if os.environ.get("SAN") == "1":
    check("ASan runtime stays first", "libasan" in parts[0], line)
check("the user's preloaded library was loaded", os.path.exists(env["RECORD_MARKER"]))
check("and the shim too (a trace of shim_prog)", p.returncode == 0 and len(traces(dp)) >= 1, p.stderr)

# 7. CUDA's CUPTI injection points at the collector when it was built; --no-cupti leaves it unset
cupti = os.path.realpath(os.path.join(BUILD, "lib", "libmoecap-cupti.so"))
for flag in ([], ["--no-cupti"]):
    out = os.path.join(tmp, "inj%d" % len(flag))
    e = base_env()
    e.pop("CUDA_INJECTION64_PATH", None)
    p = record(flag + ["-o", out, "--", "/bin/sh", "-c", 'echo "$CUDA_INJECTION64_PATH" > %s/inj' % out], env=e)
    got = open(os.path.join(out, "inj")).read().strip() if os.path.exists(os.path.join(out, "inj")) else None
    want = cupti if os.path.exists(cupti) and not flag else ""
    check("CUDA_INJECTION64_PATH %s" % ("unset with --no-cupti" if flag else "= libmoecap-cupti.so when built"),
          got == want, (got, want))

# 8. usage errors: exit 2 and a usage line
for name, args in [("missing CMD after --", ["-o", os.path.join(tmp, "u1"), "--"]),
                   ("no arguments at all", []),
                   ("unknown option", ["--bogus", "--", "true"]),
                   ("--report without --model/--hw", ["--report", "--", "true"])]:
    p = record(args)
    check("usage error (%s): exit 2 + usage line" % name,
          p.returncode == 2 and "usage: moecap record" in p.stderr, (p.returncode, p.stderr))
afile = os.path.join(tmp, "a-file")
open(afile, "w").close()
p = record(["-o", afile, "--", "true"])
check("-o naming a file: exit 2, says so", p.returncode == 2 and "Not a directory" in p.stderr, (p.returncode, p.stderr))
p = record(["--help"])
check("--help: exit 0, options described", p.returncode == 0 and "--report" in p.stdout and "-o, --out" in p.stdout)
p = record(["-o", os.path.join(tmp, "nx"), "--", os.path.join(tmp, "no-such-program")])
check("CMD that cannot run -> 127", p.returncode == 127 and "cannot run" in p.stderr, (p.returncode, p.stderr))

# 9. default run directory: moecap-YYYYmmdd-HHMMSS in the current directory
cwd = os.path.join(tmp, "cwd")
os.mkdir(cwd)
p = record(["--", PROG, "shapes", "1"], cwd=cwd)
made = [x for x in os.listdir(cwd) if re.fullmatch(r"moecap-\d{8}-\d{6}(-\d+)?", x)]
check("default timestamped run directory holds the trace",
      p.returncode == 0 and len(made) == 1 and traces(os.path.join(cwd, made[0])), (made, p.stderr))

# 10. bash completion (scripts/moecap-completion.bash): subcommands and options from --help
comp = os.path.join(ROOT, "scripts", "moecap-completion.bash")
script = ('source %s; complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _moecap; echo "${COMPREPLY[*]}"; }; '
          'complete_words %s rec; complete_words %s record --no; complete_words %s report --perfetto' % (comp, MC, MC, MC))
p = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
check("bash completion: subcommand, record and report options", p.stdout.split("\n")[:3] ==
      ["record", "--no-cupti", "--perfetto-max"], (p.stdout, p.stderr))

subprocess.run(["rm", "-rf", tmp])
sys.exit(1 if fails else 0)
