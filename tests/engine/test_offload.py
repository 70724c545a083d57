#!/usr/bin/python3
"""moe-ref expert offloading (--expert-budget, --offload; docs/reference-engine.md):

- ondemand: logits of every step bit-identical to full residency (staggered batch of 3,
  budgets 100 %, 50 %, 25 %, top-k experts exactly) on mixtral, qwen2_moe, deepseek_v2;
  the experts read per step and layer ("loaded") equal an independent LRU simulation
  written here from the ground truth's computed experts (layers ascending, experts
  ascending in a layer, one slot per expert, least recently used evicted); hits + misses =
  experts computed, loaded bytes = loaded experts x 3·d·f·4, resident bytes <= budget;
- swapmoe: every step computes at most budget/(MoE layers) experts per layer, routing keeps
  top-k distinct experts per token (Σ tokens_per_expert = K·T), reroutes happen at 25 %
  and none at 100 %, and at 100 % the outputs equal full residency;
- bad arguments exit 2 with a message: --offload without a budget, an unknown policy, a
  malformed budget, offloading with --expert-parallel, a budget below top-k experts.
Prints ok / not ok lines (tests/run-tests.sh protocol)."""
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
BUILD = os.environ.get("BUILD", "build")
MOEREF = os.path.join(ROOT, BUILD, "bin", "moe-ref")
D, F, L, E, K = 64, 32, 3, 8, 2
SLOT = 3 * D * F * 4


def run(*args):
    return subprocess.run([MOEREF, *map(str, args)], capture_output=True, text=True, timeout=300)


def main():
    if not os.path.exists(MOEREF):
        skip("moe-ref not built")
        return
    tmp = tempfile.mkdtemp()
    base = ["--batch", 3, "--prompt-len", 7, "--gen", 6, "--stagger", 1]
    for arch in ("mixtral", "qwen2_moe", "deepseek_v2"):
        m = os.path.join(tmp, arch)
        run("gen", "--arch", arch, "--out", m, "--layers", L, "--hidden", D, "--moe-intermediate", F,
            "--experts", E, "--top-k", K)
        moe_layers = L - (1 if arch == "deepseek_v2" else 0)
        full = run("run", "--model", m, *base, "--dump-logits", os.path.join(tmp, "full.logits"))
        full_logits = open(os.path.join(tmp, "full.logits")).read()
        all_bytes = moe_layers * E * SLOT
        for budget in ("100%", "50%", "25%", str(K * SLOT)):
            ondemand_case(run, tmp, f"{arch} ondemand {budget}", ("run", "--model", m, *base), full,
                          full_logits, SLOT, all_bytes, budget, "file")
        for budget, expect_reroute in (("100%", False), ("25%", True)):
            name = f"{arch} swapmoe {budget}"
            gtp = os.path.join(tmp, "sw.jsonl")
            p = run("run", "--model", m, *base, "--expert-budget", budget, "--offload", "swapmoe", "--ground-truth", gtp)
            if p.returncode:
                check(False, name, p.stderr)
                continue
            gt = [json.loads(x) for x in open(gtp)]
            b = budget_bytes(budget, all_bytes)
            per_layer = min(b // SLOT, all_bytes // SLOT) // moe_layers
            bad = []
            for g in gt:
                for lay in g["layers"]:
                    if lay.get("dense"): continue
                    if len(lay["experts"]) > per_layer: bad.append(f"step {g['step']} layer {lay['layer']}: {lay['experts']}")
                    if sum(lay["tokens_per_expert"]) != K * g["tokens"]: bad.append(f"step {g['step']}: pairs")
            rer = sum(g["offload"]["rerouted_pairs"] for g in gt)
            check(not bad and (rer > 0) == expect_reroute,
                  f"{name}: <= {per_layer} experts per layer, K·T pairs, reroutes {rer} ({'some' if expect_reroute else 'none'} expected)", "\n".join(bad))
            if not expect_reroute:
                check(p.stdout == full.stdout, f"{name}: output equals full residency")
        # bad arguments
        cases = [(["--offload", "ondemand"], "needs --expert-budget"), (["--expert-budget", "1%", "--offload", "lru"], "expected ondemand or swapmoe"),
                 (["--expert-budget", "12abc"], "expected a number of bytes"), (["--expert-budget", "50%", "--expert-parallel", 2], "cannot be combined"),
                 (["--expert-budget", K * SLOT - 1], "must be resident together"),
                 (["--expert-budget", K * SLOT * moe_layers - 1, "--offload", "swapmoe"], "in each of the")]
        for extra, msg in cases:
            p = run("run", "--model", m, *base, *extra)
            check(p.returncode == 2 and msg in p.stderr, f"{arch}: {' '.join(map(str, extra))}: exit 2 naming the problem",
                  f"rc {p.returncode}: {p.stderr}")
    sys.exit(1 if FAILS else 0)


main()
