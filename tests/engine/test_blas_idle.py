#!/usr/bin/python3
"""OpenBLAS's worker threads sleep right after moe-ref's threaded BLAS calls.

moe-ref --threads T runs lm_head as one BLAS call with the library's T threads
(docs/reference-engine.md, "Threads"). OpenBLAS's workers spin 2^28 cycles (~0.1 s) after
each threaded call unless OPENBLAS_THREAD_TIMEOUT says otherwise, taking a core from the
engine's helper threads for most of the next step; moe-ref sets the variable to 4 when the
user has not set it. Checked from outside the engine: a preloaded probe
(tests/engine/blas_idle_probe.c) measures the process's CPU time over 100 ms of idleness
at exit, after the last lm_head; only the library's workers can use CPU then.
- default environment: the workers sleep (a few ms at most), also under libmoecap.so;
- OPENBLAS_THREAD_TIMEOUT=28 set by the user is kept: the workers spin (the probe sees
  them, so the first check is not vacuous)."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import preload  # noqa: E402

ROOT = os.environ.get("MOECAP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD = os.environ.get("BUILD", "build")
MOEREF = os.path.join(ROOT, BUILD, "bin", "moe-ref")
PROBE = os.path.join(ROOT, BUILD, "tests", "libblas_idle_probe.so")
SHIM = os.path.join(ROOT, BUILD, "lib", "libmoecap.so")
# the environment a user would have: no OpenBLAS thread settings
BLAS_VARS = ("OPENBLAS_THREAD_TIMEOUT", "GOTO_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS",
             "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


def idle_cpu_ms(model, tmp, extra_env, preloads):
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARS}
    env.update(extra_env)
    env = preload.preload_env(":".join(preloads), env)
    env["MOECAP_OUT"] = os.path.join(tmp, "trace")
    p = subprocess.run([MOEREF, "run", "--model", model, "--batch", "2", "--prompt-len", "4",
                        "--gen", "3", "--threads", "2"], env=env, capture_output=True, text=True,
                       timeout=300)
    lines = [l for l in p.stderr.splitlines() if l.startswith("blas-idle-cpu-ms ")]
    if p.returncode != 0 or len(lines) != 1:
        raise RuntimeError("moe-ref run exited %d: %s" % (p.returncode, p.stderr[-2000:]))
    return float(lines[0].split()[1])


def main():
    for f in (MOEREF, PROBE):
        if not os.path.exists(f):
            print("skip - OpenBLAS workers after threaded calls (%s not built)" % f)
            return 0
    tmp = tempfile.mkdtemp()
    try:
        model = os.path.join(tmp, "m")
        # lm_head 16384 x 256 = 4 Mi elements: the engine calls it with the library's threads
        subprocess.run([MOEREF, "gen", "--arch", "mixtral", "--out", model, "--layers", "1",
                        "--hidden", "256", "--vocab", "16384", "--experts", "4",
                        "--moe-intermediate", "64"], check=True, capture_output=True, timeout=300)
        fails = 0
        cases = [("default environment", {}, [PROBE]),
                 ("default environment, under libmoecap.so", {}, [PROBE, SHIM])]
        for name, extra, pre in cases:
            if not all(os.path.exists(f) for f in pre):
                print("skip - %s (libmoecap.so not built)" % name)
                continue
            ms = idle_cpu_ms(model, tmp, extra, pre)
            ok = ms < 20
            fails += not ok
            print("%s - OpenBLAS workers asleep after moe-ref --threads 2 (%s): %.1f ms CPU in "
                  "100 ms idle (< 20)" % ("ok" if ok else "not ok", name, ms))
        if (os.cpu_count() or 1) < 2:
            print("skip - OPENBLAS_THREAD_TIMEOUT=28 kept (one CPU: OpenBLAS starts no workers)")
        else:
            ms = idle_cpu_ms(model, tmp, {"OPENBLAS_THREAD_TIMEOUT": "28"}, [PROBE])
            ok = ms > 30
            fails += not ok
            print("%s - OPENBLAS_THREAD_TIMEOUT=28 set by the user is kept: workers spin, %.1f ms "
                  "CPU in 100 ms idle (> 30)" % ("ok" if ok else "not ok", ms))
        return 1 if fails else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
