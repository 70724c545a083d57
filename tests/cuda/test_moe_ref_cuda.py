#!/usr/bin/python3
"""`moe-ref run --device cuda` from the command line. Without a GPU (CI): option errors exit
2 with a message, a run without a usable device exits 2 ("--device cuda is not available:
CUDA engine: no usable CUDA device ..."), a missing CUDA engine library is reported with
exit 2, and the CPU path is unchanged. With a GPU: f32 loop's
ground truth equals the CPU engine's accounting and routing (bench/gpu/compare_engines.py);
the full GPU validation is bench/gpu/validate.sh."""
import os, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import FAILS, check, skip  # noqa: E402

ROOT = os.environ.get("MOECAP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
MOEREF = os.path.join(BUILD, "bin", "moe-ref")


def run(*args, env=None):
    e = dict(os.environ)
    e.pop("LD_PRELOAD", None)
    e.update(env or {})
    return subprocess.run([MOEREF, *args], capture_output=True, text=True, env=e, timeout=300)


with tempfile.TemporaryDirectory() as d:
    model = os.path.join(d, "m")
    p = run("gen", "--arch", "qwen2_moe", "--out", model, "--layers", "2", "--experts", "8", "--top-k", "2")
    check(p.returncode == 0, "gen", p.stderr)
    base = ["run", "--model", model, "--batch", "2", "--prompt-len", "4", "--gen", "3"]
    p = run(*base, "--device", "cuda", "--moe", "sideways")
    check(p.returncode == 2 and "--moe must be loop or fused" in p.stderr, "bad --moe: exit 2 with a message", p.stderr)
    p = run(*base, "--device", "cuda", "--dtype", "f8")
    check(p.returncode == 2 and "--dtype must be f32 or bf16" in p.stderr, "bad --dtype: exit 2 with a message",
          p.stderr)
    p = run(*base, "--device", "cuda", env={"MOE_REF_CUDA_LIB": os.path.join(d, "none.so")})
    check(p.returncode == 2 and "--device cuda is not available" in p.stderr,
          "missing CUDA engine library: exit 2 with a message", p.stderr)
    p = run(*base, "--device", "tpu")
    check(p.returncode == 2, "unknown device: exit 2", p.stderr)
    cpu = run(*base, "--ground-truth", os.path.join(d, "cpu.jsonl"))
    check(cpu.returncode == 0 and len(cpu.stdout.split("\n")) >= 2, "CPU path unchanged", cpu.stderr)
    gt = os.path.join(d, "cuda.jsonl")
    p = run(*base, "--device", "cuda", "--ground-truth", gt)
    if p.returncode == 2 and "--device cuda is not available: CUDA engine: no usable CUDA device" in p.stderr:
        check(True, "no GPU: clean failure with a message")
        skip("moe-ref --device cuda ground truth vs CPU engine", "no GPU: %s" % p.stderr.strip().splitlines()[-1][:80])
    else:
        check(p.returncode == 0, "CUDA run succeeds", p.stderr)
        c = subprocess.run([sys.executable, os.path.join(ROOT, "bench/gpu/compare_engines.py"),
                            os.path.join(d, "cpu.jsonl"), gt, "cuda-f32-loop"], capture_output=True, text=True)
        check(c.returncode == 0, "CUDA f32 loop ground truth = CPU engine's", c.stdout)
sys.exit(1 if FAILS else 0)
