"""What the tests of the CPU emulation of CUDA share: build paths, the preload line (ASan's
runtime first in sanitizer builds), running a command with the emulated engine library, and
reading a run's traces back with `moecap dump`. It puts tests/ on sys.path, so the tests
import tests/tap.py (their ok / not ok / skip lines) after it."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
from preload import preload_line  # noqa: E402

ROOT = os.environ.get("MOECAP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
MOEREF = os.path.join(BUILD, "bin", "moe-ref")
MOECAP = os.path.join(BUILD, "bin", "moecap")
SHIM = os.path.join(BUILD, "lib", "libmoecap.so")
EMU_DIR = os.path.join(BUILD, "tests", "cuda", "emu")
EMU_LIB = os.path.join(EMU_DIR, "libmoeref-cuda-emu.so")
PRELOAD = preload_line(SHIM)
if os.environ.get("SAN") == "1":   # the traced engine's leaks are not the shim's
    os.environ["ASAN_OPTIONS"] = "detect_leaks=0:" + os.environ.get("ASAN_OPTIONS", "")


def run(cmd, env=None, timeout=300, drop=("LD_PRELOAD",)):
    """Run cmd with the emulated CUDA engine library; the variables in `drop` are removed
    from the environment first (a preload from outside would trace the test's tools)."""
    e = dict(os.environ)
    for k in drop:
        e.pop(k, None)
    e["MOE_REF_CUDA_LIB"] = EMU_LIB
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout)


def dump(run_dir):
    """Every record of every trace in run_dir, as `moecap dump` prints them."""
    recs = []
    for f in sorted(os.listdir(run_dir)):
        if f.endswith(".mct"):
            p = run([MOECAP, "dump", os.path.join(run_dir, f)])
            recs += [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    return recs
