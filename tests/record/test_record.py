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
from tap import FAILS, check  # noqa: E402
BUILD = os.environ.get("BUILD", "build")
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
MC = os.path.join(BUILD, "bin", "moecap")
PROG = os.path.join(BUILD, "tests", "shim_prog")
MARKER_LIB = os.path.join(BUILD, "tests", "libpreload_marker.so")
SHIM = os.path.realpath(os.path.join(BUILD, "lib", "libmoecap.so"))


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
check(p.returncode == 0, "exit status 0 passed through", p.stderr)
files = traces(d) if os.path.isdir(d) else []
check(len(files) == 1, "one trace in the run directory", files)
if files:
    rc, recs = dump(files[0])
    check(rc == 0, "trace reads to a clean end")
    # shapes 3: cblas_sgemm i=1..3, then sgemm_, dgemm_, cblas_sgemv, cblas_dgemv, sgemv_, cblas_dgemm
    check(len(gemm_ms(recs)) == 9, "the program's 9 BLAS calls recorded", gemm_ms(recs))
    s = summary(p.stderr)
    check(s == (1, len(recs), sum(r.get("count", 0) for r in recs if r.get("type") == "dropped")),
          "summary line: files, records (= dump lines), dropped",
          "%r vs %d records: %s" % (s, len(recs), p.stderr))
    check("exited with status 0" in p.stderr and d in p.stderr, "summary names the command and its status", p.stderr)

# 2. exit 3; and a fresh directory is required
d3 = os.path.join(tmp, "three")
p = record(["-o", d3, "--", "/bin/sh", "-c", "exit 3"])
check(p.returncode == 3, "exit status 3 passed through", p.stderr)
p = record(["-o", d, "--", PROG, "shapes", "1"])
check(p.returncode == 2 and "already holds" in p.stderr, "a run directory that holds traces is refused (exit 2)",
      p.stderr)
p = record(["--force", "-o", d, "--", PROG, "shapes", "1"])
check(p.returncode == 0 and len(traces(d)) == 2, "--force adds to it", p.stderr)

# children followed: shim_prog fork makes 3 calls, forks a child (5 calls), parent 7 more
dfk = os.path.join(tmp, "fork")
p = record(["-o", dfk, "--", PROG, "fork"])
per_file = sorted(len(gemm_ms(dump(f)[1])) for f in traces(dfk)) if os.path.isdir(dfk) else []
check(p.returncode == 0 and per_file == [5, 10] and summary(p.stderr)[0] == 2,
      "a forked child writes its own trace (GEMMs per file: child 5, parent 3+7)", (per_file, p.stderr))

# 3. killed by a signal -> 128 + N, like a shell
p = record(["-o", os.path.join(tmp, "kill"), "--", "/bin/sh", "-c", "kill -KILL $$"])
check(p.returncode == 128 + signal.SIGKILL, "CMD killed by SIGKILL -> exit 137", (p.returncode, p.stderr))
check("killed by signal 9" in p.stderr, "summary says which signal", p.stderr)


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
    check(trc == 0 and gemm_ms(recs) == [3] * 50, "trace after %s: clean end and the 50 GEMMs (m=3)" % signame,
          (files, trc, len(gemm_ms(recs)), err))


# 4. SIGTERM to moecap record reaches CMD's own handler (writes a file, exits 3)
mark = os.path.join(tmp, "got-term")
rc, err, rd = run_and_signal("term", ["sigterm", mark], signal.SIGTERM)
check(os.path.exists(mark), "SIGTERM passed to CMD (its handler ran)", err)
check(rc == 3, "CMD's exit status after its SIGTERM handler (3)", (rc, err))
check_trace_after("SIGTERM", rd, err)

# 5. SIGINT to moecap record reaches CMD, which has no handler: it dies by SIGINT -> 130
rc, err, rd = run_and_signal("int", ["sigterm-dfl"], signal.SIGINT)
check(rc == 128 + signal.SIGINT, "SIGINT passed to CMD: killed by it -> exit 130", (rc, err))
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
check(MARKER_LIB in parts and SHIM in parts, "LD_PRELOAD keeps the user's entry and adds the shim", line)
if os.environ.get("SAN") == "1":
    check("libasan" in parts[0], "ASan runtime stays first", line)
check(os.path.exists(env["RECORD_MARKER"]), "the user's preloaded library was loaded")
check(p.returncode == 0 and len(traces(dp)) >= 1, "and the shim too (a trace of shim_prog)", p.stderr)

# 7. CUDA's CUPTI injection points at the collector when it was built; --no-cupti leaves it unset
cupti = os.path.realpath(os.path.join(BUILD, "lib", "libmoecap-cupti.so"))
for flag in ([], ["--no-cupti"]):
    out = os.path.join(tmp, "inj%d" % len(flag))
    e = base_env()
    e.pop("CUDA_INJECTION64_PATH", None)
    p = record(flag + ["-o", out, "--", "/bin/sh", "-c", 'echo "$CUDA_INJECTION64_PATH" > %s/inj' % out], env=e)
    got = open(os.path.join(out, "inj")).read().strip() if os.path.exists(os.path.join(out, "inj")) else None
    want = cupti if os.path.exists(cupti) and not flag else ""
    check(got == want,
          "CUDA_INJECTION64_PATH %s" % ("unset with --no-cupti" if flag else "= libmoecap-cupti.so when built"),
          (got, want))

# 8. usage errors: exit 2 and a usage line
for name, args in [("missing CMD after --", ["-o", os.path.join(tmp, "u1"), "--"]),
                   ("no arguments at all", []),
                   ("unknown option", ["--bogus", "--", "true"]),
                   ("--report without --model/--hw", ["--report", "--", "true"])]:
    p = record(args)
    check(p.returncode == 2 and "usage: moecap record" in p.stderr,
          "usage error (%s): exit 2 + usage line" % name, (p.returncode, p.stderr))
afile = os.path.join(tmp, "a-file")
open(afile, "w").close()
p = record(["-o", afile, "--", "true"])
check(p.returncode == 2 and "Not a directory" in p.stderr, "-o naming a file: exit 2, says so",
      (p.returncode, p.stderr))
p = record(["--help"])
check(p.returncode == 0 and "--report" in p.stdout and "-o, --out" in p.stdout, "--help: exit 0, options described")
p = record(["-o", os.path.join(tmp, "nx"), "--", os.path.join(tmp, "no-such-program")])
check(p.returncode == 127 and "cannot run" in p.stderr, "CMD that cannot run -> 127", (p.returncode, p.stderr))

# 9. default run directory: moecap-YYYYmmdd-HHMMSS in the current directory
cwd = os.path.join(tmp, "cwd")
os.mkdir(cwd)
p = record(["--", PROG, "shapes", "1"], cwd=cwd)
made = [x for x in os.listdir(cwd) if re.fullmatch(r"moecap-\d{8}-\d{6}(-\d+)?", x)]
check(p.returncode == 0 and len(made) == 1 and traces(os.path.join(cwd, made[0])),
      "default timestamped run directory holds the trace", (made, p.stderr))

# 10. bash completion (scripts/moecap-completion.bash): subcommands and options from --help
comp = os.path.join(ROOT, "scripts", "moecap-completion.bash")
script = ('source %s; complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _moecap; echo "${COMPREPLY[*]}"; }; '
          'complete_words %s rec; complete_words %s record --no; complete_words %s report --perfetto' % (comp, MC, MC, MC))
p = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
check(p.stdout.split("\n")[:3] == ["record", "--no-cupti", "--perfetto-max"],
      "bash completion: subcommand, record and report options", (p.stdout, p.stderr))

subprocess.run(["rm", "-rf", tmp])
sys.exit(1 if FAILS else 0)
