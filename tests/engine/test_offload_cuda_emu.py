#!/usr/bin/python3
"""Expert offloading in the CUDA reference engine (--device cuda --moe loop --expert-budget,
docs/reference-engine.md), run on the CPU emulation of CUDA (tests/cuda/emu, docs/gpu.md):
routed experts in pinned host memory, device slots filled with cudaMemcpyAsync.

- ondemand, f32 and bf16, budgets 50 %, 25 % and exactly top-k experts, on mixtral,
  qwen2_moe and deepseek_v2: generated ids and every step's logits equal the CUDA engine
  with every expert on the device; the experts loaded per step and layer equal an
  independent LRU simulation from the ground truth (tests/engine/offload_sim.py); slot bytes
  = 3·d·f·elt, hits + misses = experts computed, loaded_from "pinned_host";
- swapmoe: at 100 % equal to full residency, at 25 % some (token, slot) pairs rerouted and at
  most budget/(MoE layers) experts computed per layer;
- --moe fused with offloading, and a budget below top-k experts: exit 2 with a message.
Skips where the emulation is not built. Prints ok / not ok / skip lines."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import FAILS, check, skip  # noqa: E402
from offload_sim import budget_bytes, ondemand_case  # noqa: E402

ROOT = os.environ.get("MOECAP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
MOEREF = os.path.join(BUILD, "bin", "moe-ref")
EMU_LIB = os.path.join(BUILD, "tests", "cuda", "emu", "libmoeref-cuda-emu.so")
D, F, L, E, K = 64, 32, 3, 8, 2


def moeref(*args):
    e = dict(os.environ)
    e.pop("LD_PRELOAD", None)
    e["MOE_REF_CUDA_LIB"] = EMU_LIB
    return subprocess.run([MOEREF, *map(str, args)], capture_output=True, text=True, env=e, timeout=600)


def main():
    if not os.path.exists(EMU_LIB) or not os.path.exists(MOEREF):
        skip("CUDA emulation not built", "make emu")
        return
    tmp = tempfile.mkdtemp()
    base = ["--device", "cuda", "--moe", "loop", "--batch", 3, "--prompt-len", 6, "--gen", 4]
    for arch in ("mixtral", "qwen2_moe", "deepseek_v2"):
        m = os.path.join(tmp, arch)
        moeref("gen", "--arch", arch, "--out", m, "--layers", L, "--hidden", D, "--moe-intermediate", F,
               "--experts", E, "--top-k", K)
        moe_layers = L - (1 if arch == "deepseek_v2" else 0)
        for dtype, elt in (("f32", 4), ("bf16", 2)):
            slot = 3 * D * F * elt
            full_lg = os.path.join(tmp, "full.logits")
            full = moeref("run", "--model", m, *base, "--dtype", dtype, "--dump-logits", full_lg)
            if full.returncode:
                check(False, f"{arch} {dtype}: full residency run", full.stderr)
                continue
            full_logits = open(full_lg).read()
            all_bytes = moe_layers * E * slot
            budgets = ("50%", "25%", str(K * slot)) if dtype == "f32" else ("25%",)
            for budget in budgets:
                ondemand_case(moeref, tmp, f"{arch} cuda {dtype} ondemand {budget}",
                              ("run", "--model", m, *base, "--dtype", dtype), full, full_logits, slot, all_bytes,
                              budget, "pinned_host")
            for budget, expect in (("100%", False), ("25%", True)):
                name = f"{arch} cuda {dtype} swapmoe {budget}"
                gtp = os.path.join(tmp, "sw.jsonl")
                p = moeref("run", "--model", m, *base, "--dtype", dtype, "--expert-budget", budget,
                           "--offload", "swapmoe", "--ground-truth", gtp)
                if p.returncode:
                    check(False, name, p.stderr)
                    continue
                gt = [json.loads(x) for x in open(gtp)]
                per_layer = min(budget_bytes(budget, all_bytes) // slot, all_bytes // slot) // moe_layers
                rer = sum(g["offload"]["rerouted_pairs"] for g in gt)
                worst = max(len(lay["experts"]) for g in gt for lay in g["layers"] if not lay.get("dense"))
                check((rer > 0) == expect and worst <= per_layer,
                      f"{name}: reroutes {rer} ({'some' if expect else 'none'} expected), <= {per_layer} experts per layer", f"worst {worst}")
                if not expect:
                    check(p.stdout == full.stdout, f"{name}: output equals full residency")
        p = moeref("run", "--model", m, *base[:2], "--moe", "fused", *base[4:], "--expert-budget", "50%")
        check(p.returncode == 2 and "--moe loop" in p.stderr, f"{arch}: --moe fused with offloading exits 2", p.stderr)
        p = moeref("run", "--model", m, *base, "--expert-budget", K * 3 * D * F * 4 - 1)
        check(p.returncode == 2 and "must be resident" in p.stderr, f"{arch}: cuda budget below top-k exits 2", p.stderr)
    sys.exit(1 if FAILS else 0)


main()
