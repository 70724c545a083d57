#!/usr/bin/python3
"""Capture under faults: SIGKILL at random instants, a full disk, relative MOECAP_OUT with a
child in another directory, file permissions, processes that record nothing.

SIGKILL: kill_prog's threads call cblas_sgemm without end; after each call returns (its
record committed) a thread stores its call count in a file it maps shared (kept by the
kernel when the process dies, independently of the shim). Each run is killed at a random
instant; `moecap dump` must then read the trace to its end (exit 0) and hold every call
the program counted, each exactly once (plus at most the one call in flight per thread).
Records are told apart by their lda (2 + call number) and n (thread + 1).

Full disk: RLIMIT_FSIZE (SIGXFSZ ignored) makes the trace file's growth fail as on a full
disk (fallocate EFBIG); the program must run on unaffected and the trace must read whole,
its calls a gapless prefix 0..n-1 per thread.

Environment: KILLS (default 60) random kills."""
import glob
import json
import os
import random
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from preload import preload_env  # noqa: E402
from tap import FAILS, check_problems, skip  # noqa: E402

ROOT = os.environ.get("MOECAP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
SHIM = os.path.join(BUILD, "lib", "libmoecap.so")
MOECAP = os.path.join(BUILD, "bin", "moecap")
PROG = os.path.join(BUILD, "tests", "shim_kill_prog")
SHIM_PROG = os.path.join(BUILD, "tests", "shim_prog")
THREADS = 3


def env_for(out, **extra):
    env = preload_env(SHIM)
    for k in list(env):
        if k.startswith("MOECAP_") and k != "MOECAP_ROOT":
            del env[k]
    env["MOECAP_OUT"] = out
    env["OPENBLAS_NUM_THREADS"] = "1"
    for k, v in extra.items():
        env[k] = str(v)
    return env


def counts_of(path):
    data = open(path, "rb").read(8 * THREADS)
    return list(struct.unpack("<%dQ" % THREADS, data)) if len(data) == 8 * THREADS else [0] * THREADS


def calls_in(trace):
    """{thread index: [call numbers in file order]} and dump's exit status / stderr."""
    p = subprocess.run([MOECAP, "dump", trace], capture_output=True, text=True)
    seqs = {}
    for line in p.stdout.splitlines():
        r = json.loads(line)
        if r["type"] == "gemm" and r["m"] == 1 and r["k"] == 2:
            seqs.setdefault(r["n"] - 1, []).append(r["lda"] - 2)
    return seqs, p.returncode, p.stderr


def check_run(out, counts, allow_extra=1):
    """Problems with one killed run: every counted call present once, nothing beyond."""
    files = glob.glob(os.path.join(out, "*.mct"))
    if not any(counts):
        return [], 0
    if len(files) != 1:
        return ["%d trace files for counts %r" % (len(files), counts)], 0
    seqs, rc, err = calls_in(files[0])
    probs = []
    if rc != 0:
        probs.append("dump exit %d: %s" % (rc, err.strip()))
    recorded = 0
    for t in range(THREADS):
        s = seqs.get(t, [])
        recorded += len(s)
        if len(set(s)) != len(s):
            probs.append("thread %d: duplicate calls" % t)
        missing = set(range(counts[t])) - set(s)
        if missing:
            probs.append("thread %d: %d of %d counted calls missing (first %d)" % (t, len(missing), counts[t], min(missing)))
        beyond = [x for x in s if x >= counts[t] + allow_extra]
        if beyond:
            probs.append("thread %d: calls %r beyond the count %d" % (t, beyond[:3], counts[t]))
    return probs, recorded


def case_sigkill(tmp, kills):
    rng = random.Random(int(os.environ.get("KILL_SEED", "12345")))
    probs, total_counted, total_lost, lost_runs, delays = [], 0, 0, 0, []
    for i in range(kills):
        out = os.path.join(tmp, "kill%d" % i)
        side = os.path.join(tmp, "counts%d" % i)
        # Mostly anywhere in the first 0.25 s; every fifth run in the first 60 ms (start-up,
        # file creation, first segments). Every record is checked in Python, and an idle
        # machine makes about a million calls per thread per second: longer runs made this
        # test take over 10 minutes there.
        delay = rng.uniform(0.001, 0.06) if i % 5 == 0 else rng.uniform(0.06, 0.25)
        delays.append(delay)
        extra = {"MOECAP_FLUSH_MS": 0} if i % 4 == 1 else {}
        p = subprocess.Popen([PROG, side, str(THREADS)], env=env_for(out, **extra),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        counts = counts_of(side) if os.path.exists(side) else [0] * THREADS
        pr, recorded = check_run(out, counts)
        counted = sum(counts)
        total_counted += counted
        lost = max(0, counted - recorded)
        total_lost += lost
        if pr:
            lost_runs += 1
            probs += ["kill %d after %.3f s (counts %r): %s" % (i, delay, counts, x) for x in pr]
    print("# %d kills (%.3f-%.3f s after start), %d calls counted by the program, %d lost, %d runs with problems"
          % (kills, min(delays), max(delays), total_counted, total_lost, lost_runs))
    check_problems("SIGKILL at %d random instants: every committed call in the trace, dump reads to the end" % kills, probs)


def case_flush0_kill(tmp):
    out = os.path.join(tmp, "flush0")
    side = os.path.join(tmp, "counts-flush0")
    # At most 300,000 calls per thread, then the threads wait to be killed: every record is
    # checked in Python, and an idle machine makes millions of calls in 1.3 s.
    p = subprocess.Popen([PROG, side, str(THREADS), "300000", "hold"], env=env_for(out, MOECAP_FLUSH_MS=0),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    counts = counts_of(side)
    probs, recorded = check_run(out, counts)
    if not glob.glob(os.path.join(out, "*.mct")):
        probs.append("no trace file")
    if not all(counts):
        probs.append("the program made no calls in 1.3 s? counts %r" % counts)
    print("# MOECAP_FLUSH_MS=0, killed at 1.3 s: %d calls counted, %d recorded" % (sum(counts), recorded))
    check_problems("MOECAP_FLUSH_MS=0 and SIGKILL at 1.3 s leave a whole trace", probs)


def case_full_disk(tmp):
    out = os.path.join(tmp, "full")
    side = os.path.join(tmp, "counts-full")
    limit = (3 << 20) // 2   # the file may not grow past 1.5 MiB

    def limit_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    calls = 40000     # ~13 MiB of records per thread at 112 bytes each: far past the limit
    p = subprocess.run([PROG, side, str(THREADS), str(calls)], env=env_for(out), capture_output=True,
                       text=True, timeout=300, preexec_fn=limit_size)
    probs = []
    if p.returncode != 0 or p.stdout != "done\n":
        probs.append("program rc %d out %r err %r" % (p.returncode, p.stdout, p.stderr[-300:]))
    if "capture disabled" not in p.stderr:
        probs.append("no 'capture disabled' line on stderr: %r" % p.stderr[-300:])
    files = glob.glob(os.path.join(out, "*.mct"))
    if len(files) != 1:
        probs.append("%d trace files" % len(files))
    else:
        size = os.path.getsize(files[0])
        if size > limit:
            probs.append("trace is %d bytes, over the %d limit" % (size, limit))
        seqs, rc, err = calls_in(files[0])
        if rc != 0:
            probs.append("dump exit %d: %s" % (rc, err.strip()))
        n = sum(len(s) for s in seqs.values())
        for t, s in seqs.items():
            if s != list(range(len(s))):
                probs.append("thread %d: calls not a gapless prefix" % t)
        if not 0 < n < THREADS * calls:
            probs.append("%d calls recorded" % n)
        print("# full disk at %d bytes: %d of %d calls recorded, file %d bytes" % (limit, n, THREADS * calls, size))
    check_problems("full disk (file size limit): program unaffected, trace whole up to the last record", probs)


def case_relative_out(tmp):
    """A relative MOECAP_OUT is resolved once: a child started in another directory writes
    to the same run directory (the shell records nothing and leaves no file)."""
    work = os.path.join(tmp, "rel")
    os.makedirs(os.path.join(work, "sub"))
    env = env_for("run-rel")
    p = subprocess.run(["/bin/sh", "-c", "cd sub && exec %s shapes 2" % SHIM_PROG], cwd=work, env=env,
                       capture_output=True, text=True, timeout=60)
    top = glob.glob(os.path.join(work, "run-rel", "*.mct"))
    sub = glob.glob(os.path.join(work, "sub", "run-rel", "*"))
    probs = []
    if p.returncode != 0:
        probs.append("rc %d %s" % (p.returncode, p.stderr))
    if len(top) != 1 or sub:
        probs.append("traces in run dir %r, in the child's directory %r" % (top, sub))
    check_problems("relative MOECAP_OUT: a child in another directory writes to the same run directory", probs)
    if len(top) == 1:
        mode = os.stat(top[0]).st_mode & 0o777
        check_problems("trace files are private (0600)", [] if mode == 0o600 else ["mode %o" % mode])


def case_records_nothing(tmp):
    """Processes that record nothing leave no file, however long they live (the counter
    sampler samples only processes that recorded an event)."""
    out = os.path.join(tmp, "nothing")
    p = subprocess.run(["/bin/sh", "-c", "sleep 0.5; /bin/true"], env=env_for(out, MOECAP_SAMPLE_MS=20),
                       capture_output=True, text=True, timeout=60)
    left = os.listdir(out) if os.path.isdir(out) else []
    check_problems("a process that records nothing leaves no file (0.5 s, sampler at 20 ms)",
                   [] if p.returncode == 0 and not left else ["rc %d files %r" % (p.returncode, left)])


def case_tsc_times(tmp):
    """CPU GEMM times stamped in TSC ticks (MOECAP_TSC=1 forces the TSC) come out of the
    reader as CLOCK_MONOTONIC ns: inside the window the test saw the process live in, for a
    clean exit and for a SIGKILL (converted with the clock pair the file holds then)."""
    if "constant_tsc" not in open("/proc/cpuinfo").read():
        skip("TSC tick conversion", "no invariant TSC on this machine")
        return
    for how in ("exit", "kill"):
        out = os.path.join(tmp, "tsc-" + how)
        side = os.path.join(tmp, "counts-tsc-" + how)
        t0 = time.monotonic_ns()
        if how == "exit":
            subprocess.run([PROG, side, str(THREADS), "2000"], env=env_for(out, MOECAP_TSC=1),
                           capture_output=True, timeout=120)
        else:
            # bounded per thread and killed early: every record is dumped and parsed below,
            # and an unbounded run on a fast idle machine leaves millions of them
            p = subprocess.Popen([PROG, side, str(THREADS), "1000000"], env=env_for(out, MOECAP_TSC=1),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # killed once every thread has committed calls (a fixed 0.15 s came before the
            # first call under ASan on a loaded machine: no trace to check), then 0.05 s on
            deadline = time.monotonic() + 30
            while (not os.path.exists(side) or min(counts_of(side)) == 0) and p.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(0.05)
            p.send_signal(signal.SIGKILL)
            p.wait()
        t1 = time.monotonic_ns()
        probs = []
        files = glob.glob(os.path.join(out, "*.mct"))
        if len(files) != 1:
            probs.append("%d traces" % len(files))
        else:
            d = subprocess.run([MOECAP, "dump", files[0]], capture_output=True, text=True)
            recs = [json.loads(line) for line in d.stdout.splitlines()]
            clock = [r for r in recs if r["type"] == "clock"]
            gemms = [r for r in recs if r["type"] == "gemm"]
            if not clock or not clock[0]["tsc0"] or clock[0]["tsc1"] <= clock[0]["tsc0"]:
                probs.append("no usable clock record: %r" % clock)
            bad = [g for g in gemms if not t0 <= g["t_begin_ns"] <= g["t_end_ns"] <= t1]
            if not gemms or bad:
                probs.append("%d of %d GEMMs outside [%d, %d]: %r" % (len(bad), len(gemms), t0, t1, bad[:1]))
        check_problems("TSC-stamped GEMM times convert into the process's lifetime (%s)" % how, probs)


def main():
    if not os.path.exists(SHIM) or not os.path.exists(PROG):
        skip("capture faults", "build first")
        return 0
    tmp = tempfile.mkdtemp(prefix="mc-faults-")
    case_sigkill(tmp, int(os.environ.get("KILLS", "30")))
    case_flush0_kill(tmp)
    case_full_disk(tmp)
    case_tsc_times(tmp)
    case_relative_out(tmp)
    case_records_nothing(tmp)
    subprocess.run(["rm", "-rf", tmp])
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
