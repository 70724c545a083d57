#!/usr/bin/python3
"""A moe-ref pool task that waits for other tasks' products sleeps rather than spins.

With --threads T a MoE layer's expert down product is a task that waits until the same
expert's gate and up products (earlier tasks, run by other threads) are done
(docs/reference-engine.md, "Threads"). When the threads running those have lost their CPU
(more threads than free cores: a loaded machine, T above the core count, a pinned run), a
waiter that spins holds a core they need. Made visible from outside: a preloaded probe
(tests/engine/slow_product_probe.c) makes every gate and up product sleep 50 ms off the CPU
before it runs, and the process's CPU time with 3 threads (one thread waits ~50 ms per
layer and step) is compared with 1 thread (no waits, same sleeps):
- the waits cost < 100 ms of CPU in all (spinning through them: ~50 ms each, 8 of them);
- the generated tokens equal the 1-thread run's."""
import os
import resource
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import preload  # noqa: E402

ROOT = os.environ.get("MOECAP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD = os.environ.get("BUILD", "build")
MOEREF = os.path.join(ROOT, BUILD, "bin", "moe-ref")
PROBE = os.path.join(ROOT, BUILD, "tests", "libslow_product_probe.so")
F = 48          # moe_intermediate: the gate and up products' output width, no other product's
SLOW_MS = 50
WAITS = 2 * 4   # layers x steps (prompt of 1 token, 4 tokens: prefill + 3 decode steps)


def children_cpu_s():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)   # finished children, accumulated
    return ru.ru_utime + ru.ru_stime


def run(model, threads):
    """(stdout, CPU seconds) of one moe-ref run with slow gate/up products."""
    before = children_cpu_s()
    env = preload.preload_env(PROBE)
    env.update(MR_TEST_SLOW_N=str(F), MR_TEST_SLOW_MS=str(SLOW_MS))
    p = subprocess.Popen([MOEREF, "run", "--model", model, "--batch", "1", "--prompt-len", "1",
                          "--gen", "4", "--threads", str(threads), "--gemm"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=300)
    if p.returncode != 0:
        raise RuntimeError("moe-ref run --threads %d exited %d: %s" % (threads, p.returncode, err[-2000:]))
    return out, children_cpu_s() - before


def main():
    for f in (MOEREF, PROBE):
        if not os.path.exists(f):
            print("skip - pool waits (%s not built)" % f)
            return 0
    tmp = tempfile.mkdtemp()
    try:
        model = os.path.join(tmp, "m")
        # one expert per token (top-k 1): per layer the tasks are gate, up, down of one
        # expert, so with 3 threads one of them takes the down product and waits
        subprocess.run([MOEREF, "gen", "--arch", "mixtral", "--out", model, "--layers", "2",
                        "--experts", "4", "--top-k", "1", "--moe-intermediate", str(F)],
                       check=True, capture_output=True, timeout=300)
        out1, cpu1 = run(model, 1)
        out3, cpu3 = run(model, 3)
        extra = (cpu3 - cpu1) * 1e3
        ok = extra < 100
        print("%s - waits for slow gate/up products cost %.0f ms of CPU with 3 threads (< 100; "
              "%d waits of ~%d ms; 1 thread %.0f ms, 3 threads %.0f ms)"
              % ("ok" if ok else "not ok", extra, WAITS, SLOW_MS, cpu1 * 1e3, cpu3 * 1e3))
        same = out1 == out3 and out1.strip() != ""
        print("%s - 3 threads generate the 1-thread tokens (%s)" % ("ok" if same else "not ok", out3.strip()))
        return 0 if ok and same else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
