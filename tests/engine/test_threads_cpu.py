#!/usr/bin/python3
"""moe-ref --threads: no thread burns CPU while it waits (docs/reference-engine.md, "Threads").
Both checks look from outside the engine, through a library preloaded into moe-ref, at the
CPU time the process uses while its threads have nothing to do but wait.

1. OpenBLAS's workers sleep right after moe-ref's threaded BLAS call (lm_head). They spin
   2^28 cycles (~0.1 s) after each threaded call unless OPENBLAS_THREAD_TIMEOUT says
   otherwise, taking a core from the engine's helpers for most of the next step; moe-ref
   sets the variable to 4 when the user has not. The probe tests/engine/blas_idle_probe.c
   measures the process's CPU time over 100 ms of idleness at exit, after the last lm_head:
   - default environment: a few ms at most, also under libmoecap.so;
   - OPENBLAS_THREAD_TIMEOUT=28 set by the user is kept: the workers spin (the probe sees
     them, so the first check is not vacuous).
2. A task that waits for other tasks' products sleeps rather than spins: an expert's down
   product waits until its gate and up (run by other threads) are done. When those threads
   have lost their CPU (more threads than free cores), a spinning waiter holds a core they
   need. The probe tests/engine/slow_product_probe.c makes every gate and up product sleep
   50 ms off the CPU first; CPU time with 3 threads (one thread waits ~50 ms per layer and
   step) is compared with 1 thread (no waits, same sleeps):
   - the waits cost < 100 ms of CPU in all (spinning through them: ~50 ms each, 8 of them);
   - the generated tokens equal the 1-thread run's."""
import os
import resource
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import preload  # noqa: E402
from tap import BUILD, ROOT, check, finish, skip  # noqa: E402

MOEREF = os.path.join(ROOT, BUILD, "bin", "moe-ref")
IDLE_PROBE = os.path.join(ROOT, BUILD, "tests", "libblas_idle_probe.so")
SLOW_PROBE = os.path.join(ROOT, BUILD, "tests", "libslow_product_probe.so")
SHIM = os.path.join(ROOT, BUILD, "lib", "libmoecap.so")
# the environment a user would have: no OpenBLAS thread settings
BLAS_VARS = ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS",
             "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
F = 48          # moe_intermediate of the waits' model: only gate and up have this output width
SLOW_MS = 50
WAITS = 2 * 4   # layers x steps (prompt of 1 token, 4 tokens: prefill + 3 decode steps)


def children_cpu_s():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)   # finished children, accumulated
    return ru.ru_utime + ru.ru_stime


def moeref(args, env):
    """(stdout, stderr, CPU seconds) of one moe-ref run."""
    before = children_cpu_s()
    p = subprocess.run([MOEREF] + [str(a) for a in args], env=env, capture_output=True, text=True,
                       timeout=300)
    if p.returncode != 0:
        raise RuntimeError("moe-ref %s exited %d: %s" % (" ".join(map(str, args)), p.returncode, p.stderr[-2000:]))
    return p.stdout, p.stderr, children_cpu_s() - before


def gen(tmp, name, *opts):
    model = os.path.join(tmp, name)
    moeref(["gen", "--arch", "mixtral", "--out", model] + list(opts), None)
    return model


def idle_cpu_ms(model, tmp, extra_env, preloads):
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARS}
    env.update(extra_env)
    env = preload.preload_env(":".join(preloads), env)
    env["MOECAP_OUT"] = os.path.join(tmp, "trace")
    _, err, _ = moeref(["run", "--model", model, "--batch", 2, "--prompt-len", 4, "--gen", 3,
                        "--threads", 2], env)
    lines = [l for l in err.splitlines() if l.startswith("blas-idle-cpu-ms ")]
    if len(lines) != 1:
        raise RuntimeError("no probe line from moe-ref: %s" % err[-2000:])
    return float(lines[0].split()[1])


def blas_workers(tmp):
    # lm_head 16384 x 256 = 4 Mi elements: the engine calls it with the library's threads
    model = gen(tmp, "lm", "--layers", 1, "--hidden", 256, "--vocab", 16384, "--experts", 4,
                "--moe-intermediate", 64)
    for name, pre in (("default environment", [IDLE_PROBE]),
                      ("default environment, under libmoecap.so", [IDLE_PROBE, SHIM])):
        if not os.path.exists(pre[-1]):
            skip("OpenBLAS workers asleep (%s)" % name, "%s not built" % pre[-1])
            continue
        ms = idle_cpu_ms(model, tmp, {}, pre)
        check(ms < 20, "OpenBLAS workers asleep after moe-ref --threads 2 (%s): %.1f ms CPU in "
              "100 ms idle (< 20)" % (name, ms))
    if (os.cpu_count() or 1) < 2:
        skip("OPENBLAS_THREAD_TIMEOUT=28 kept", "one CPU: OpenBLAS starts no workers")
        return
    ms = idle_cpu_ms(model, tmp, {"OPENBLAS_THREAD_TIMEOUT": "28"}, [IDLE_PROBE])
    check(ms > 30, "OPENBLAS_THREAD_TIMEOUT=28 set by the user is kept: workers spin, %.1f ms "
          "CPU in 100 ms idle (> 30)" % ms)


def task_waits(tmp):
    # one expert per token (top-k 1): per layer the tasks are gate, up, down of one expert,
    # so with 3 threads one of them takes the down product and waits
    model = gen(tmp, "waits", "--layers", 2, "--experts", 4, "--top-k", 1, "--moe-intermediate", F)
    env = preload.preload_env(SLOW_PROBE)
    env.update(MR_TEST_SLOW_N=str(F), MR_TEST_SLOW_MS=str(SLOW_MS))
    args = ["run", "--model", model, "--batch", 1, "--prompt-len", 1, "--gen", 4, "--gemm", "--threads"]
    out1, _, cpu1 = moeref(args + [1], env)
    out3, _, cpu3 = moeref(args + [3], env)
    extra = (cpu3 - cpu1) * 1e3
    check(extra < 100, "waits for slow gate/up products cost %.0f ms of CPU with 3 threads (< 100; "
          "%d waits of ~%d ms; 1 thread %.0f ms, 3 threads %.0f ms)"
          % (extra, WAITS, SLOW_MS, cpu1 * 1e3, cpu3 * 1e3))
    check(out1 == out3 and out1.strip() != "", "3 threads generate the 1-thread tokens (%s)" % out3.strip())


def main():
    for f in (MOEREF, IDLE_PROBE, SLOW_PROBE):
        if not os.path.exists(f):
            skip("moe-ref threads' CPU while waiting", "%s not built" % f)
            return 0
    tmp = tempfile.mkdtemp()
    blas_workers(tmp)
    task_waits(tmp)
    return finish(tmp)


if __name__ == "__main__":
    sys.exit(main())
