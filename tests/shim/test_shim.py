#!/usr/bin/python3
"""libmoecap.so end-to-end tests: programs run under LD_PRELOAD, traces read back with
`moecap dump` (itself tested in tests/trace/), and checked against what each program is
known to do (shapes derived here or by the program from its own arrays, never taken from
the shim). Prints ok / not ok / skip lines for tests/run-tests.sh.

Under SAN=1 the shim is built with ASan; preloading it then needs the ASan runtime first
in LD_PRELOAD, which this script does."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from preload import preload_env as _preload_env  # noqa: E402
from tap import FAILS, check, skip  # noqa: E402

ROOT = os.environ.get("MOECAP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
SAN = os.environ.get("SAN", "0") == "1"
SHIM = os.path.join(BUILD, "lib", "libmoecap.so")
MOECAP = os.path.join(BUILD, "bin", "moecap")
TB = os.path.join(BUILD, "tests")
PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))


def preload_env(out, **extra):
    env = _preload_env(SHIM)
    env["MOECAP_OUT"] = out
    env.pop("MOECAP_DISABLE", None)
    env.pop("MOECAP_STACK", None)
    # The default configuration, cpuprof's sampler thread included (tests/cpuprof).
    for k, v in extra.items():
        env[k] = str(v)
    return env


def plain_env():
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    return env


def dump(path):
    """Records of a trace, plus dump's exit code and stderr."""
    p = subprocess.run([MOECAP, "dump", path], capture_output=True, text=True)
    recs = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return recs, p.returncode, p.stderr


def traces(out):
    return sorted(glob.glob(os.path.join(out, "*.mct")))


def gemms(recs):
    return [r for r in recs if r["type"] == "gemm"]


def normalized(g):
    """Row-major (M, N, K) of the product a GEMM/GEMV record computes (independent of how
    the caller expressed it): a column-major C(m x n) is the row-major C^T(n x m); a GEMV
    with A stored rows x cols computes 1 x out with inner size in."""
    if g["api"].endswith("gemv_") or "gemv" in g["api"]:
        rows, cols = g["m"], g["k"]
        return (1, cols, rows) if g["trans_a"] else (1, rows, cols)
    if g["layout"] == "col":
        return (g["n"], g["m"], g["k"])
    return (g["m"], g["n"], g["k"])


def check_trace_sane(recs, name):
    """Every string/callsite id used is defined; process record first."""
    problems = []
    if not recs or recs[0]["type"] != "process":
        problems.append("first record is not the process record")
    strings = {r["id"] for r in recs if r["type"] == "string"}
    callsites = set()
    for r in recs:
        if r["type"] == "callsite":
            callsites.add(r["id"])
        for k, v in r.items():
            if k.endswith("_str") and v and v not in strings:
                problems.append("%s: string id %d undefined" % (r["type"], v))
        if r["type"] == "gemm" and r["callsite"] and r["callsite"] not in callsites:
            problems.append("gemm uses callsite %d before its definition" % r["callsite"])
    return problems


def run(cmd, env, **kw):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)


# --------------------------------------------------------------------------- cases

def case_shapes(tmp):
    out = os.path.join(tmp, "shapes")
    prog = os.path.join(TB, "shim_prog")
    ref = run([prog, "shapes", "5"], plain_env())
    p = run([prog, "shapes", "5"], preload_env(out))
    check(p.returncode == 0 and ref.returncode == 0 and p.stdout == ref.stdout and p.stdout.startswith("checksum"),
          "shapes: program output identical with and without the shim",
          "with: %r %r\nwithout: %r" % (p.stdout, p.stderr, ref.stdout))
    files = traces(out)
    check(len(files) == 1 and files[0].endswith(".mct"), "shapes: one trace file named <host>-<pid>.mct", files)
    if not files:
        return
    recs, rc, err = dump(files[0])
    check(rc == 0, "shapes: trace reads completely", err)
    g = gemms(recs)
    # (api, layout, trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha) from shim_prog.c's calls
    exp = [("cblas_sgemm", "row", 0, 0, i, 2 * i + 1, 3 * i + 2, 3 * i + 2, 2 * i + 1, 2 * i + 1, 1.0) for i in range(1, 6)]
    exp += [("sgemm_", "col", 0, 1, 5, 6, 7, 5, 6, 5, 1.0),
            ("dgemm_", "col", 0, 0, 2, 3, 4, 2, 4, 2, 1.0),
            ("cblas_sgemv", "row", 0, 0, 9, 1, 11, 11, 1, 1, 1.0),
            ("cblas_dgemv", "col", 0, 0, 3, 1, 5, 3, 1, 1, 1.0),
            ("sgemv_", "col", 1, 0, 4, 1, 6, 4, 1, 1, 1.0),
            ("cblas_dgemm", "col", 1, 0, 4, 5, 6, 6, 6, 4, 2.0)]
    got = [(r["api"], r["layout"], r["trans_a"], r["trans_b"], r["m"], r["n"], r["k"], r["lda"], r["ldb"], r["ldc"], r["alpha"]) for r in g]
    check(got == exp, "shapes: every call recorded once, in order, with exact arguments",
          "got %s\nexpected %s" % (got, exp))
    dts = [(r["dtype_a"], r["dtype_c"]) for r in g]
    exp_dt = [("f32", "f32")] * 6 + [("f64", "f64"), ("f32", "f32"), ("f64", "f64"), ("f32", "f32"), ("f64", "f64")]
    check(dts == exp_dt, "shapes: dtypes", dts)
    proc = recs[0] if recs else {}
    ok = (proc.get("type") == "process" and proc.get("pid") == p_pid(files[0]) and proc.get("argv") == [prog, "shapes", "5"]
          and proc.get("exe_str_text") == os.path.realpath(prog))
    ok = ok and all(r["tid"] == proc.get("pid") and r["device"] == -1 and 0 < r["t_begin_ns"] <= r["t_end_ns"] for r in g)
    check(ok, "shapes: process record (pid, argv, exe) and per-call tid/times", json.dumps(proc)[:400])
    probs = check_trace_sane(recs, "shapes")
    check(not probs, "shapes: every referenced string and callsite defined before use", "\n".join(probs[:10]))
    # Call sites: innermost return address lies in an executable mapping of shim_prog itself.
    cs = {r["id"]: r for r in recs if r["type"] == "callsite"}
    maps = [r for r in recs if r["type"] == "mapping"]
    exe = os.path.realpath(prog)
    ok = bool(g) and all(r["callsite"] in cs for r in g)
    bad = []
    for r in g:
        c = cs.get(r["callsite"])
        pc = int(c["pcs"][0], 16) if c and c["pcs"] else 0
        inside = [m for m in maps if int(m["start"], 16) <= pc < int(m["end"], 16)]
        if not inside or inside[0]["path_str_text"] != exe:
            bad.append((r["api"], hex(pc), [m["path_str_text"] for m in inside]))
    check(ok and not bad, "shapes: call sites point into the calling program (mapping records)", bad[:5])
    # 5 cblas_sgemm calls come from one source line (a loop): one call-site id
    check(len({r["callsite"] for r in g[:5]}) == 1 and len({r["callsite"] for r in g}) == 7,
          "shapes: one call-site id per distinct call chain", [r["callsite"] for r in g])


def p_pid(path):
    base = os.path.basename(path)[:-4]
    return int(base.rsplit("-", 1)[1].split(".")[0])


def case_stack_off(tmp):
    out = os.path.join(tmp, "nostack")
    p = run([os.path.join(TB, "shim_prog"), "shapes", "3"], preload_env(out, MOECAP_STACK=0))
    files = traces(out)
    recs = dump(files[0])[0] if files else []
    g = gemms(recs)
    check(p.returncode == 0 and len(g) == 9 and
          all(r["callsite"] == 0 for r in g) and not any(r["type"] == "callsite" for r in recs),
          "MOECAP_STACK=0: no call sites recorded", len(g))


def case_callers(tmp):
    for exact in (0, 1):
        out = os.path.join(tmp, "callers%d" % exact)
        p = run([os.path.join(TB, "shim_prog"), "callers"], preload_env(out, MOECAP_STACK_EXACT=exact))
        files = traces(out)
        recs = dump(files[0])[0] if files else []
        g = gemms(recs)
        ids = {}
        for r in g:
            ids.setdefault(r["m"], set()).add(r["callsite"])
        cs = {r["id"]: r["pcs"] for r in recs if r["type"] == "callsite"}
        ok = (p.returncode == 0 and [r["m"] for r in g] == [1, 2] * 10 and len(ids.get(1, ())) == 1 and
              len(ids.get(2, ())) == 1 and ids[1] != ids[2] and 0 not in ids[1] | ids[2])
        if ok:
            a, b = cs[next(iter(ids[1]))], cs[next(iter(ids[2]))]
            ok = a[0] == b[0] and a[1] != b[1]  # same call instruction, different callers
        check(ok,
              "call sites: two callers at the same depth through one helper get two ids (%s)" %
              ("exact unwinding" if exact else "cached fast path"), "%s %s" % (ids, [r["callsite"] for r in g]))
        if exact == 0 and ok:
            # offline symbolisation from the trace's mappings + the program's ELF symbols
            sp = subprocess.run([MOECAP, "dump", "--symbolize", files[0]], capture_output=True, text=True)
            fr = {r["id"]: r.get("frames", []) for r in map(json.loads, sp.stdout.splitlines()) if r["type"] == "callsite"}
            fa, fb = fr.get(next(iter(ids[1])), []), fr.get(next(iter(ids[2])), [])
            check(sp.returncode == 0 and len(fa) > 2 and fa[0].startswith("do_gemm+") and fa[1].startswith("caller_a+")
                  and fb[1].startswith("caller_b+") and fa[2].startswith("main+") and "(shim_prog)" in fa[0],
                  "moecap dump --symbolize names the call chain (do_gemm <- caller_a / caller_b <- main)",
                  "%s\n%s" % (fa, fb))


def case_helper16(tmp):
    """A GEMM helper called from 16 places of one function: 16 chains share the BLAS call's
    return address and frame. Each must keep its own id, and once seen each must be answered
    by the call-site cache (tens of ns) rather than by an unwind (~20 us here): the gap
    between one call's end and the next one's start holds the capture."""
    out = os.path.join(tmp, "helper16")
    p = run([os.path.join(TB, "shim_prog"), "helper16", "50"], preload_env(out))
    files = traces(out)
    g = gemms(dump(files[0])[0]) if files else []
    ids = {}
    for r in g:
        ids.setdefault(r["m"], set()).add(r["callsite"])
    ok = (p.returncode == 0 and [r["m"] for r in g] == list(range(1, 17)) * 50 and
          all(len(v) == 1 and 0 not in v for v in ids.values()) and len(set().union(*ids.values())) == 16)
    check(ok, "call sites: one helper called from 16 places, 16 ids, each call its own",
          {m: sorted(v) for m, v in ids.items()})
    gaps = sorted(b["t_begin_ns"] - a["t_end_ns"] for a, b in zip(g[16:], g[17:]))
    med = gaps[len(gaps) // 2] if gaps else None
    check(med is not None and med < 2000,
          "call sites: 16 chains through one (return address, frame) hit the cache "
          "(median gap between calls %s ns, an unwind is ~20000)" % med, gaps[-5:])


def case_dlopen_local(tmp):
    out = os.path.join(tmp, "dl")
    p = run([os.path.join(TB, "shim_dl_main"), os.path.join(TB, "libshim_dl_lib.so")], preload_env(out))
    files = traces(out)
    recs = dump(files[0])[0] if files else []
    got = [(r["m"], r["n"], r["k"]) for r in gemms(recs)]
    check(p.returncode == 0 and "result 16" in p.stdout and got == [(i, 64, 32) for i in range(1, 7)],
          "dlopen(RTLD_LOCAL) BLAS: calls forwarded (correct result) and recorded",
          "rc %d out %r err %r got %s" % (p.returncode, p.stdout, p.stderr[-500:], got))
    # the library loaded at run time is in the mapping records, and the call sites point into it
    lib = os.path.realpath(os.path.join(TB, "libshim_dl_lib.so"))
    maps = [r for r in recs if r["type"] == "mapping" and r["path_str_text"] == lib]
    cs = {r["id"]: r["pcs"] for r in recs if r["type"] == "callsite"}
    inside = [any(int(m["start"], 16) <= int(cs[g["callsite"]][0], 16) < int(m["end"], 16) for m in maps)
              for g in gemms(recs) if g["callsite"] in cs]
    check(bool(maps) and len(inside) == 6 and all(inside),
          "dlopen'ed library: its mappings recorded after start-up, call sites point into it",
          "maps %d inside %s" % (len(maps), inside))


def case_fork(tmp):
    out = os.path.join(tmp, "fork")
    p = run([os.path.join(TB, "shim_prog"), "fork"], preload_env(out))
    files = traces(out)
    check(p.returncode == 0 and len(files) == 2, "fork: program ok, two trace files", "%r %s" % (p.stdout, files))
    if len(files) != 2:
        return
    by = {}
    for f in files:
        recs, rc, err = dump(f)
        by[p_pid(f)] = (recs, rc)
    child_pid = int(p.stdout.split()[1])
    parent_pid = [k for k in by if k != child_pid]
    if child_pid not in by or len(parent_pid) != 1:
        check(False, "fork: files belong to parent and child", "%s %s" % (by.keys(), child_pid))
        return
    prec, crec = by[parent_pid[0]][0], by[child_pid][0]
    pm = [r["m"] for r in gemms(prec)]
    cm = [r["m"] for r in gemms(crec)]
    check(pm == [1, 1, 1] + list(range(200, 207)), "fork: parent has its 3 + 7 calls only", pm)
    check(cm == list(range(100, 105)), "fork: child has its 5 calls only (nothing inherited twice)", cm)
    ok = crec[0]["type"] == "process" and crec[0]["pid"] == child_pid and crec[0]["ppid"] == parent_pid[0]
    ok = ok and all(r["tid"] == child_pid for r in gemms(crec))
    probs = check_trace_sane(crec, "child")
    check(ok and not probs,
          "fork: child file has its own process record, tid, and every definition it uses",
          "\n".join(probs[:5]) + json.dumps(crec[0])[:300])


def case_forkstress(tmp):
    out = os.path.join(tmp, "forkstress")
    p = run([os.path.join(TB, "shim_prog"), "forkstress"], preload_env(out, MOECAP_BUF_KB=64), timeout=120)
    files = traces(out)
    ok = p.returncode == 0 and p.stdout.startswith("workers") and len(files) == 11
    why = "rc %d out %r files %d" % (p.returncode, p.stdout, len(files))
    if ok:
        counts = list(map(int, p.stdout.split()[1:4]))
        children, parent = [], None
        for f in files:
            recs, rc, err = dump(f)
            ms = [r["m"] for r in gemms(recs)]
            if rc != 0:
                ok, why = False, "%s: %s" % (f, err)
            if any(m >= 100 for m in ms):
                children.append(sorted(ms))
            else:
                parent = ms
        exp_children = sorted([[100 + k] * 5 for k in range(10)])
        got_workers = [parent.count(50 + t) for t in range(3)] if parent is not None else None
        ok = ok and sorted(children) == exp_children and got_workers == counts
        why += "\nchildren %s\nworkers trace %s vs program %s" % (sorted(children)[:3], got_workers, counts)
    check(ok, "fork while 3 threads call BLAS (10 children): no deadlock, exact counts in every file", why)


def case_exec(tmp):
    out = os.path.join(tmp, "exec")
    p = run([os.path.join(TB, "shim_prog"), "exec"], preload_env(out, MOECAP_FLUSH_MS=0))
    files = traces(out)
    first = [f for f in files if not f.endswith(".1.mct")]
    second = [f for f in files if f.endswith(".1.mct")]
    ok = p.returncode == 0 and p.stdout.startswith("checksum") and len(first) == 1 and len(second) == 1
    if ok:
        r1, r2 = dump(first[0])[0], dump(second[0])[0]
        m1 = [r["m"] for r in gemms(r1)]
        m2 = [r["m"] for r in gemms(r2)]
        # shapes 2: cblas_sgemm m=1,2, then sgemm_ 5, dgemm_ 2, sgemv 9, dgemv 3, sgemv_ 4, dgemm 4
        ok = m1 == [7] * 5 and m2 == [1, 2, 5, 2, 9, 3, 4, 4] and r1[0]["pid"] == r2[0]["pid"]
    check(ok, "exec: events before execl() flushed to the first file, the new image writes <host>-<pid>.1.mct",
          "rc %d files %s" % (p.returncode, [os.path.basename(f) for f in files]))


def case_underscore_exit(tmp):
    out = os.path.join(tmp, "uexit")
    p = run([os.path.join(TB, "shim_prog"), "_exit"], preload_env(out, MOECAP_FLUSH_MS=0))
    files = traces(out)
    n = len([r for r in gemms(dump(files[0])[0]) if r["m"] == 6]) if files else 0
    check(p.returncode == 4 and n == 5, "_exit(): exit status kept, events flushed",
          "rc %d gemms %d" % (p.returncode, n))


def case_subprocess(tmp):
    """Python's subprocess (vfork + exec on Linux) from a recording process: the parent's
    trace stays whole and complete, children that record nothing leave no file."""
    script = ("import subprocess, numpy as np\n"
              "a = np.ones((3, 3), dtype=np.float32)\n"
              "for i in range(3): a @ a\n"
              "for i in range(20): subprocess.run(['/bin/true'], check=True)\n"
              "for i in range(3): a @ a\n")
    out = os.path.join(tmp, "subproc")
    p = run([PY, "-c", script], preload_env(out, MOECAP_FLUSH_MS=20))
    files = traces(out)
    recs, rc, err = dump(files[0]) if len(files) == 1 else ([], 1, "files: %s" % files)
    check(p.returncode == 0 and len(files) == 1 and rc == 0 and len(gemms(recs)) == 6,
          "subprocess (vfork+exec) children: parent's trace whole and complete, no files for silent children",
          "rc %d files %s dump %d %s gemms %d" % (p.returncode, files, rc, err, len(gemms(recs))))


def case_threads(tmp):
    out = os.path.join(tmp, "threads")
    T, N = 8, 4000
    p = run([os.path.join(TB, "shim_prog"), "threads", str(T), str(N)], preload_env(out, MOECAP_BUF_KB=64))
    files = traces(out)
    recs, rc, err = dump(files[0]) if files else ([], 1, "no file")
    g = gemms(recs)
    by_tid = {}
    for r in g:
        by_tid.setdefault(r["tid"], []).append(r)
    ms = sorted((len(v), sorted({r["m"] for r in v})) for v in by_tid.values())
    exp = sorted((N, [t + 1]) for t in range(T))
    torn = [r for r in g if not (r["n"] == 8 and r["k"] == 16 and r["lda"] == 16 and r["api"] == "cblas_sgemm")]
    drops = sum(r["count"] for r in recs if r["type"] == "dropped")
    check(p.returncode == 0 and rc == 0 and ms == exp and not torn and drops == 0,
          "threads: %d threads x %d calls, exact per-thread counts, no torn records (64 KiB rings)" % (T, N),
          "rc %d dump rc %d %s\ngot %s\ntorn %d drops %d" % (p.returncode, rc, err[-300:], ms[:10], len(torn), drops))
    threads = [r for r in recs if r["type"] == "thread"]
    check(len({r["tid"] for r in threads}) >= T and set(by_tid) <= {r["tid"] for r in threads},
          "threads: one thread record per recording thread", len(threads))


def case_short_threads(tmp):
    """A server-like program running many short-lived threads: every call recorded, and
    memory stays bounded (rings and call-site caches of exited threads are reused/freed)."""
    N, K = 300, 20
    prog = os.path.join(TB, "shim_prog")
    ref = run([prog, "shortthreads", str(N), str(K)], plain_env())
    out = os.path.join(tmp, "short")
    p = run([prog, "shortthreads", str(N), str(K)], preload_env(out))
    files = traces(out)
    recs = dump(files[0])[0] if files else []
    g = gemms(recs)
    per_m = {}
    for r in g:
        per_m[r["m"]] = per_m.get(r["m"], 0) + 1
    rss = lambda s: int(s.split()[1]) if s.startswith("rss_kb") else 10 ** 9
    extra_mb = (rss(p.stdout) - rss(ref.stdout)) / 1024.0
    # ASan keeps freed memory in quarantine: the RSS bound means nothing there.
    bounded = extra_mb < 24 or SAN
    check(p.returncode == 0 and per_m == {m: N // 4 * K for m in (1, 2, 3, 4)} and bounded,
          "%d short-lived threads: all %d calls recorded, memory bounded (+%.1f MiB RSS vs no shim%s)" % (
              N, N * K, extra_mb, "; not checked under ASan" if SAN else ""),
          "per m %s, rss %r vs %r" % (per_m, p.stdout, ref.stdout))


def case_sigkill(tmp):
    out = os.path.join(tmp, "kill")
    env = preload_env(out, MOECAP_FLUSH_MS=100)
    proc = subprocess.Popen([os.path.join(TB, "shim_prog"), "loop"], env=env, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    time.sleep(0.6)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    files = traces(out)
    if not files:
        check(False, "SIGKILL: trace exists", "no file (ready line %r)" % line)
        return
    recs, rc, err = dump(files[0])
    g = gemms(recs)
    bad = [r for r in g if (r["m"], r["n"], r["k"]) != (1, 8, 8)]
    # dump exits 2 only if the file ends inside a record; every earlier record must be whole
    ok = line.strip() == "ready" and len(g) > 20000 and not bad and (rc == 0 or "truncated" in err)
    check(ok, "SIGKILL mid-run: trace readable up to its last whole record (%d GEMMs)" % len(g),
          "rc %d err %r gemms %d bad %d" % (rc, err[-300:], len(g), len(bad)))


def case_sigterm(tmp):
    prog = os.path.join(TB, "shim_prog")
    for mode in ("sigterm", "sigterm-signal"):
        out = os.path.join(tmp, mode)
        marker = os.path.join(tmp, "handled-" + mode)
        proc = subprocess.Popen([prog, mode, marker], env=preload_env(out, MOECAP_FLUSH_MS=0),
                                stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        files = traces(out)
        recs = dump(files[0])[0] if files else []
        n = len([r for r in gemms(recs) if r["m"] == 3])
        check(line.strip() == "ready" and rc == 3 and os.path.exists(marker) and n == 50,
              "SIGTERM, program's own handler installed with %s(): handler ran, exit status kept, trace flushed" %
              ("sigaction" if mode == "sigterm" else "signal"),
              "rc %s marker %s gemms %d" % (rc, os.path.exists(marker), n))
    out2 = os.path.join(tmp, "term2")
    proc = subprocess.Popen([prog, "sigterm-dfl"], env=preload_env(out2, MOECAP_FLUSH_MS=0), stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=30)
    files = traces(out2)
    recs = dump(files[0])[0] if files else []
    n = len(gemms(recs))
    check(rc == -signal.SIGTERM and n == 50, "SIGTERM, default action: still killed by SIGTERM, trace flushed",
          "rc %s gemms %d" % (rc, n))


def case_unwritable(tmp):
    blocker = os.path.join(tmp, "not-a-dir")
    open(blocker, "w").close()
    out = os.path.join(blocker, "sub")
    prog = os.path.join(TB, "shim_prog")
    ref = run([prog, "shapes", "3"], plain_env())
    p = run([prog, "shapes", "3"], preload_env(out))
    lines = [l for l in p.stderr.splitlines() if l.strip() and "moecap" in l]
    check(p.returncode == 0 and p.stdout == ref.stdout and len(lines) == 1 and "MOECAP_OUT" in lines[0]
          and len(p.stderr.splitlines()) == 1,
          "unwritable MOECAP_OUT: program succeeds unchanged, one clear stderr line",
          "rc %d stderr %r" % (p.returncode, p.stderr))
    out2 = os.path.join(tmp, "disabled")
    p = run([prog, "shapes", "3"], preload_env(out2, MOECAP_DISABLE=1))
    check(p.returncode == 0 and p.stdout == ref.stdout and not os.path.exists(out2) and p.stderr == "",
          "MOECAP_DISABLE=1: no trace, no output change", p.stderr)


def case_python(tmp, script, label, needs):
    try:
        subprocess.run([PY, "-c", "import " + needs], check=True, capture_output=True, timeout=120)
    except Exception:
        skip(label, "Debian %s not importable by %s" % (needs, PY))
        return
    out = os.path.join(tmp, label)
    exp_ref = os.path.join(tmp, label + "-ref.json")
    exp = os.path.join(tmp, label + ".json")
    ref = run([PY, os.path.join(HERE, script), exp_ref], plain_env())
    p = run([PY, os.path.join(HERE, script), exp], preload_env(out))
    check(p.returncode == 0 and ref.returncode == 0 and p.stdout == ref.stdout,
          "%s: runs under the shim, output identical" % label,
          "rc %d\n%s\n%s" % (p.returncode, p.stdout, p.stderr[-1500:]))
    if p.returncode != 0:
        return
    expected = [tuple(x) for x in json.load(open(exp))]
    got = []
    for f in traces(out):
        recs, rc, err = dump(f)
        got += [normalized(r) for r in gemms(recs)]
    missing = list(expected)
    for s in got:
        if s in missing:
            missing.remove(s)
    check(not missing and got == expected,
          "%s: every matmul the script performed is in the trace (%d), in order" % (label, len(expected)),
          "missing %s\ngot %s\nexpected %s" % (missing[:10], got[:20], expected[:20]))


def case_safetensors(tmp):
    """A weight file written here with a hand-made header; a Python reader (os.open, mmap,
    os.pread, like safetensors loaders) under the shim. Offsets computed here."""
    path = os.path.join(tmp, "model.safetensors")
    tensors = [("model.layers.0.mlp.experts.0.up_proj.weight", "F32", [4, 8]),
               ("model.layers.0.mlp.gate.weight", "BF16", [2, 8]),
               ("lm_head.weight", "F16", [16, 8])]
    esz = {"F32": 4, "BF16": 2, "F16": 2}
    hdr, off = {"__metadata__": {"format": "pt"}}, 0
    for name, dt, shape in tensors:
        n = esz[dt]
        for s in shape:
            n *= s
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    hj = json.dumps(hdr).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(hj).to_bytes(8, "little") + hj + bytes(range(256)) * (off // 256 + 1))
    data0 = 8 + len(hj)
    script = ("import mmap, os, sys\n"
              "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
              "m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)\n"
              "b = os.pread(fd, 64, %d)\n"
              "print(len(m), len(b))\n" % data0)
    out = os.path.join(tmp, "st")
    p = run([PY, "-c", script, path], preload_env(out))
    recs = []
    for f in traces(out):
        recs += dump(f)[0]
    tens = {r["name_str_text"]: r for r in recs if r["type"] == "tensor" and r["path_str_text"] == os.path.realpath(path)}
    bad = []
    o = 0
    for name, dt, shape in tensors:
        n = esz[dt]
        for s in shape:
            n *= s
        t = tens.get(name)
        if not t or t["file_begin"] != data0 + o or t["file_end"] != data0 + o + n or t["shape"] != shape or t["dtype"] != dt.lower():
            bad.append((name, t))
        o += n
    check(p.returncode == 0 and len(tens) == 3 and not bad, "safetensors: tensor table recorded with absolute file offsets",
          "rc %d %s %s" % (p.returncode, p.stderr[-300:], bad))
    size = os.path.getsize(path)
    maps = [(r["how"], r["file_offset"], r["length"]) for r in recs if r["type"] == "file_map"]
    check((0, 0, size) in maps and (2, data0, 64) in maps,
          "safetensors: mmap and pread of the file recorded (offset, length)", maps)


def case_close_all(tmp, raw_syscall=False):
    """A daemon-style program closes every descriptor, then reuses the numbers: its own file
    must hold only its data, and the trace stays complete. raw_syscall: close_range(2)
    called directly (not through libc, so the shim cannot see it and must reopen)."""
    closer = ("import ctypes; ctypes.CDLL(None, use_errno=True).syscall(436, 3, 0xffffffff, 0)\n" if raw_syscall
              else "os.closerange(3, 4096)\n")
    script = ("import os, sys, time, numpy as np\n"
              "a = np.ones((4, 4), dtype=np.float32)\n"
              "for i in range(3): a @ a\n"
              "time.sleep(0.3)\n" +                    # the writer thread has opened the trace by now
              closer +
              "fds = [os.open(sys.argv[1] + str(i), os.O_WRONLY | os.O_CREAT | os.O_TRUNC) for i in range(600)]\n"
              "[os.write(fd, b'program data') for fd in fds]\n"
              "for i in range(4): a @ a\n"
              "print(all(open(sys.argv[1] + str(i)).read() == 'program data' for i in range(600)))\n")
    out = os.path.join(tmp, "closeall%d" % raw_syscall)
    p = run([PY, "-c", script, os.path.join(tmp, "f%d" % raw_syscall)], preload_env(out, MOECAP_FLUSH_MS=50))
    files = traces(out)
    recs, rc, err = dump(files[0]) if files else ([], 1, "no trace")
    check(p.returncode == 0 and p.stdout.strip() == "True" and rc == 0 and len(gemms(recs)) == 7,
          "program closing all descriptors (%s): its files hold only its data, trace complete" %
          ("raw close_range syscall" if raw_syscall else "os.closerange"),
          "rc %d out %r err %r dump %d %s gemms %d" % (p.returncode, p.stdout, p.stderr[-300:], rc, err, len(gemms(recs))))


def case_sigint_python(tmp):
    """Python installs its SIGINT handler after the shim started: Ctrl-C must still raise
    KeyboardInterrupt in the script, with the same exit status as without the shim."""
    script = ("import sys, time, numpy as np\n"
              "a = np.ones((3, 5), dtype=np.float32)\n"
              "a @ a.T.copy()\n"
              "try:\n"
              "    print('ready', flush=True); time.sleep(30)\n"
              "except KeyboardInterrupt:\n"
              "    print('interrupted', flush=True); sys.exit(7)\n")
    res = []
    for env in (plain_env(), preload_env(os.path.join(tmp, "sigint"), MOECAP_FLUSH_MS=0)):
        proc = subprocess.Popen([PY, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        rest = proc.stdout.read()
        res.append((line.strip(), rest.strip(), proc.wait(timeout=30)))
    files = traces(os.path.join(tmp, "sigint"))
    n = len(gemms(dump(files[0])[0])) if files else 0
    check(res[0] == res[1] == ("ready", "interrupted", 7) and n == 1,
          "SIGINT to Python: its KeyboardInterrupt handler runs, same exit status, trace flushed",
          "%s gemms %d" % (res, n))


def write_gguf(path, alignment):
    """A GGUF v3 file written from the format description (ggml docs/gguf.md): metadata
    with a string array and the alignment key, then three tensors. Returns
    [(name, shape outermost-first, dtype name, absolute begin, bytes)]."""
    import struct
    def gstr(b):
        return struct.pack("<Q", len(b)) + b
    kv = [(b"general.architecture", 8, gstr(b"llama")),
          (b"general.alignment", 4, struct.pack("<I", alignment)),
          (b"tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + gstr(b"<s>") + gstr(b"a") + gstr(b"bc")),
          (b"llama.block_count", 4, struct.pack("<I", 1)),
          (b"some.floats", 9, struct.pack("<IQ", 6, 2) + struct.pack("<ff", 1.0, 2.0)),
          (b"flag", 7, b"\x01")]
    # (name, ne innermost-first, ggml type, bytes): F32 8x16 -> 512 B; Q4_0 ne=[32,4]:
    # 4 rows of one 32-element block of 18 B = 72 B; F16 [8] -> 16 B
    tens = [(b"token_embd.weight", [8, 16], 0, 512), (b"blk.0.ffn_up.weight", [32, 4], 2, 72),
            (b"output_norm.weight", [8], 1, 16)]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tens), len(kv))
    for k, t, v in kv:
        head += gstr(k) + struct.pack("<I", t) + v
    rel, infos, out = 0, b"", []
    for name, ne, t, nbytes in tens:
        infos += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        infos += struct.pack("<IQ", t, rel)
        out.append([name.decode(), list(reversed(ne)), {0: "f32", 1: "f16", 2: "unknown"}[t], rel, nbytes])
        rel += (nbytes + alignment - 1) // alignment * alignment
    head += infos
    data0 = (len(head) + alignment - 1) // alignment * alignment
    with open(path, "wb") as f:
        f.write(head + b"\0" * (data0 - len(head)) + bytes(rel))
    for o in out:
        o[3] += data0
    return out


def case_gguf(tmp):
    path = os.path.join(tmp, "tiny-q4.gguf")
    exp = write_gguf(path, 64)
    script = "import mmap, os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\nm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)\nprint(len(m))\n"
    out = os.path.join(tmp, "gguf")
    p = run([PY, "-c", script, path], preload_env(out))
    recs = []
    for f in traces(out):
        recs += dump(f)[0]
    real = os.path.realpath(path)
    got = sorted([r["name_str_text"], r["shape"], r["dtype"], r["file_begin"], r["file_end"] - r["file_begin"]]
                 for r in recs if r["type"] == "tensor" and r["path_str_text"] == real)
    maps = [(r["how"], r["file_offset"], r["length"]) for r in recs if r["type"] == "file_map"]
    check(p.returncode == 0 and got == sorted(exp) and (0, 0, os.path.getsize(path)) in maps,
          "gguf: tensor table (names, shapes, types, absolute offsets, sizes) and mmap recorded",
          "got %s\nexpected %s\nmaps %s %s" % (got, sorted(exp), maps, p.stderr[-300:]))
    # Truncated and corrupted headers (weight files and safetensors alike): never a crash.
    blob = open(path, "rb").read()
    bad = os.path.join(tmp, "bad")
    os.makedirs(bad)
    import random
    rnd = random.Random(5)
    names = []
    for i, cut in enumerate(range(0, 480, 5)):
        b = bytearray(blob[:cut])
        if i % 3 == 0 and b:
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        for ext in (".gguf", ".safetensors"):
            n = os.path.join(bad, "w%03d%s" % (i, ext))
            open(n, "wb").write(bytes(b) if ext == ".gguf" else (len(b)).to_bytes(8, "little") + bytes(b))
            names.append(n)
    script = "import os, sys\nfor n in sys.argv[1:]:\n    os.close(os.open(n, os.O_RDONLY))\nprint('done')\n"
    p = run([PY, "-c", script] + names, preload_env(os.path.join(tmp, "badw")))
    check(p.returncode == 0 and p.stdout.strip() == "done",
          "corrupt/truncated weight-file headers (%d files): program unaffected" % len(names),
          "rc %d %s" % (p.returncode, p.stderr[-500:]))


def find_moe_ref():
    exe = os.path.join(BUILD, "bin", "moe-ref")
    return exe if os.path.exists(exe) else None


def case_moe_ref(tmp):
    exe = find_moe_ref()
    if not exe:
        skip("moe-ref under the shim", "build/bin/moe-ref not built")
        return
    sys.path.insert(0, HERE)
    import moe_ref_check  # noqa: E402  (kept separate: depends on the engine's CLI)
    for name, ok, why in moe_ref_check.run_checks(exe, tmp, preload_env, plain_env, dump, gemms, normalized):
        if ok is None:
            skip(name, why)
        else:
            check(ok, name, why)


def main():
    for f in (SHIM, MOECAP, os.path.join(TB, "shim_prog")):
        if not os.path.exists(f):
            check(False, "prerequisites built (%s missing; run make)" % f)
            return 1
    tmp = tempfile.mkdtemp(prefix="mc-shim-")
    try:
        case_shapes(tmp)
        case_stack_off(tmp)
        case_callers(tmp)
        case_helper16(tmp)
        case_dlopen_local(tmp)
        case_fork(tmp)
        case_forkstress(tmp)
        case_exec(tmp)
        case_subprocess(tmp)
        case_underscore_exit(tmp)
        case_threads(tmp)
        case_short_threads(tmp)
        case_sigkill(tmp)
        case_sigterm(tmp)
        case_unwritable(tmp)
        case_close_all(tmp)
        case_close_all(tmp, raw_syscall=True)
        case_sigint_python(tmp)
        case_safetensors(tmp)
        case_gguf(tmp)
        case_python(tmp, "moe_numpy.py", "numpy-moe", "numpy")
        case_python(tmp, "moe_torch.py", "torch-moe", "torch")
        case_moe_ref(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
