#!/usr/bin/python3
"""The CUDA reference engine (reference-engine/cuda/cuda_engine.cu: its own kernels and host
code, compiled by g++ with tests/cuda/emu/simt_emu.h) run on the CPU emulation of CUDA,
against the CPU engine and against formulas written here from docs/ground-truth.md:

- mixtral, qwen2_moe (shared expert + gate), deepseek_v2 (dense first layer, shared
  experts, group-limited routing, routed scaling) x --moe loop|fused x --dtype f32|bf16,
  three prompts of unequal length (prefill, then decode steps);
- f32: sampled tokens equal the CPU engine's, --dump-logits within 1e-4 (relative to the
  step's largest logit), routing (experts, tokens per expert), kinds, contexts, bytes and
  FLOPs equal the CPU engine's; loop: also bench/gpu/compare_engines.py (what the GPU
  session runs) says ok;
- every run: bytes, FLOPs and GEMM calls of each step equal the formulas with the run's own
  routing and elt = 4 (f32) or 2 (bf16: weights and KV cache in bf16); fused runs issue no
  cuBLAS call for experts (docs/gpu.md);
- deepseek_v2 f32: logits bit-identical when the emulator runs blocks and threads in
  reverse order (SIMT_EMU_ORDER=reverse: no race between threads or blocks);
- bf16: dense, shared-expert and KV bytes are exactly half the CPU engine's; the share of
  sampled tokens equal to the CPU engine's is printed (rounding may flip a near-tie).
Prints ok / not ok / skip lines (tests/run-tests.sh protocol)."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
from tap import FAILS, check, skip  # noqa: E402

ROOT = os.environ.get("MOECAP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
MOEREF = os.path.join(BUILD, "bin", "moe-ref")
EMU_LIB = os.path.join(BUILD, "tests", "cuda", "emu", "libmoeref-cuda-emu.so")
PROMPTS = [[5, 17, 99, 3, 42], [7, 7, 250, 31, 8, 64, 1, 200], [12, 130, 77]]
GEN = 4


def moeref(*args, env=None):
    e = dict(os.environ)
    e.pop("LD_PRELOAD", None)
    e["MOE_REF_CUDA_LIB"] = EMU_LIB
    e.update(env or {})
    return subprocess.run([MOEREF, *map(str, args)], capture_output=True, text=True, env=e, timeout=300)


def jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


class Geometry:
    """The model's shape from config.json (HF field names, docs/reference-engine.md)."""
    def __init__(self, cfg):
        self.arch = cfg["model_type"]
        self.d, self.H, self.HK = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.hd = cfg.get("head_dim", self.d // self.H)
        self.V, self.L = cfg["vocab_size"], cfg["num_hidden_layers"]
        self.E = cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts")
        if self.arch == "mixtral":
            self.f, self.fd, self.fs = cfg["intermediate_size"], 0, 0
        else:
            self.f, self.fd = cfg["moe_intermediate_size"], cfg["intermediate_size"]
            self.fs = (cfg.get("shared_expert_intermediate_size", 0) if self.arch == "qwen2_moe"
                       else cfg.get("n_shared_experts", 0) * self.f)
        if self.arch == "deepseek_v2":
            k0, freq = cfg.get("first_k_dense_replace", 0), cfg.get("moe_layer_freq", 1)
            self.dense = [l < k0 or l % freq != 0 for l in range(self.L)]
        elif self.arch == "qwen2_moe":
            step = cfg.get("decoder_sparse_step", 1)
            self.dense = [l in cfg.get("mlp_only_layers", []) or (l + 1) % step != 0 for l in range(self.L)]
        else:
            self.dense = [False] * self.L


def expected(g, step, elt, fused):
    """bytes, FLOPs and GEMM calls of one ground-truth step, from docs/ground-truth.md with
    the step's own routing; fused: expert products are not cuBLAS calls (docs/gpu.md)."""
    d, T, B = g.d, step["tokens"], step["sequences"]
    qgate = g.arch == "qwen2_moe" and g.fs > 0
    attn = d * g.H * g.hd + 2 * d * g.HK * g.hd + g.H * g.hd * d
    layers = {l["layer"]: l for l in step["layers"]}
    dense = routed = shared = gemm = calls = 0
    for l in range(g.L):
        dense += attn + 2 * d
        gemm += 2 * T * attn
        calls += 4
        if g.dense[l]:
            dense += 3 * d * g.fd
            gemm += 2 * T * 3 * d * g.fd
            calls += 3
            continue
        dense += g.E * d + (d if qgate else 0)
        gemm += 2 * T * g.E * d + (2 * T * d if qgate else 0)
        calls += 1 + (1 if qgate else 0)
        for toks in layers[l]["tokens_per_expert"]:
            routed += 3 * d * g.f
            gemm += 2 * toks * 3 * d * g.f
            calls += 0 if fused else 3
        if g.fs:
            shared += 3 * d * g.fs
            gemm += 2 * T * 3 * d * g.fs
            calls += 3
    dense += d + g.V * d + T * d
    gemm += 2 * B * g.V * d
    calls += 1
    kvd = g.HK * g.hd
    att = sum(g.L * 4 * g.H * g.hd * (p + 1)
              for n, ctx in zip(step["seq_tokens"], step["context"]) for p in range(ctx - n, ctx))
    by = {"dense_weights": dense * elt, "routed_expert_weights": routed * elt, "shared_expert_weights": shared * elt,
          "kv_read": g.L * sum(step["context"]) * 2 * kvd * elt, "kv_written": g.L * T * 2 * kvd * elt}
    by["total"] = sum(by.values())
    return by, {"gemm": gemm, "attention": att, "total": gemm + att}, calls


def check_formulas(g, gt, elt, fused):
    bad = []
    for s in gt:
        by, fl, calls = expected(g, s, elt, fused)
        for k, v in by.items():
            if s["bytes"][k] != v:
                bad.append("step %d bytes.%s: engine %d formula %d" % (s["step"], k, s["bytes"][k], v))
        for k, v in fl.items():
            if s["flops"][k] != v:
                bad.append("step %d flops.%s: engine %d formula %d" % (s["step"], k, s["flops"][k], v))
        if s["gemm_calls"] != calls:
            bad.append("step %d gemm_calls: engine %d formula %d" % (s["step"], s["gemm_calls"], calls))
        for l in s["layers"]:
            if not l.get("dense") and sum(l["tokens_per_expert"]) != s["tokens"] * g.K:
                bad.append("step %d layer %d: tokens per expert sum %d" % (s["step"], l["layer"],
                                                                           sum(l["tokens_per_expert"])))
    return bad


def max_rel_logit_diff(a, b):
    worst = 0.0
    for x, y in zip(a, b):
        for u, v in zip(x["logits"], y["logits"]):
            scale = max(1.0, max(abs(t) for t in u))
            worst = max(worst, max(abs(p - q) for p, q in zip(u, v)) / scale)
    return worst


def main():
    if os.environ.get("HAVE_CUDA", "1") != "1" or not os.path.exists(EMU_LIB):
        skip("CUDA engine on the CPU emulation", "no CUDA toolkit: %s not built" % EMU_LIB)
        return 0
    models = {
        "mixtral": ["--arch", "mixtral"],
        "qwen2_moe": ["--arch", "qwen2_moe", "--shared-experts", "2"],
        "deepseek_v2": ["--arch", "deepseek_v2", "--n-group", "4", "--topk-group", "2", "--top-k", "3",
                        "--routed-scaling-factor", "2.5"],
    }
    with tempfile.TemporaryDirectory(prefix="emu-engine-") as tmp:
        pf = os.path.join(tmp, "prompts.txt")
        with open(pf, "w") as f:
            f.write("".join(" ".join(map(str, p)) + "\n" for p in PROMPTS))
        for arch, genargs in models.items():
            mdir = os.path.join(tmp, arch)
            p = moeref("gen", *genargs, "--out", mdir)
            if p.returncode != 0:
                check(False, "%s: gen" % arch, p.stderr)
                continue
            with open(os.path.join(mdir, "config.json")) as f:
                cfg = json.load(f)
            g = Geometry(cfg)
            g.K = cfg["num_experts_per_tok"]
            base = ["run", "--model", mdir, "--prompts", pf, "--gen", GEN]
            cpu_gt, cpu_lg = os.path.join(tmp, arch + ".cpu.gt"), os.path.join(tmp, arch + ".cpu.lg")
            cpu = moeref(*base, "--ground-truth", cpu_gt, "--dump-logits", cpu_lg)
            if cpu.returncode != 0:
                check(False, "%s: CPU engine runs" % arch, cpu.stderr)
                continue
            cg, cl = jsonl(cpu_gt), jsonl(cpu_lg)
            for style in ("loop", "fused"):
                for dtype in ("f32", "bf16"):
                    name = "%s %s %s" % (arch, style, dtype)
                    gt, lg = (os.path.join(tmp, "%s.%s.%s.%s" % (arch, style, dtype, x)) for x in ("gt", "lg"))
                    r = moeref(*base, "--device", "cuda", "--moe", style, "--dtype", dtype, "--ground-truth", gt,
                               "--dump-logits", lg)
                    check(r.returncode == 0, "%s: emulated CUDA engine runs" % name, r.stderr)
                    if r.returncode != 0:
                        continue
                    eg, el = jsonl(gt), jsonl(lg)
                    ok = len(eg) == len(cg) == GEN and len(el) == GEN and all(
                        s["device"] == "cuda" and s["moe"] == style and s["dtype"] == dtype for s in eg)
                    check(ok, "%s: %d ground-truth and logits lines labelled cuda/%s/%s" % (name, GEN, style, dtype))
                    bad = check_formulas(g, eg, 4 if dtype == "f32" else 2, style == "fused")
                    check(not bad,
                          "%s: bytes, FLOPs, GEMM calls = docs/ground-truth.md formulas (elt %d)"
                          % (name, 4 if dtype == "f32" else 2), "\n".join(bad))
                    same = sum(a == b for a, b in zip(cpu.stdout.split(), r.stdout.split()))
                    total = len(cpu.stdout.split())
                    if dtype == "f32":
                        check(r.stdout == cpu.stdout, "%s: sampled tokens = CPU engine's" % name,
                              "cpu:\n%s\nemulated cuda:\n%s" % (cpu.stdout, r.stdout))
                        w = max_rel_logit_diff(cl, el)
                        print("# %s: largest logit difference to the CPU engine %.2e (relative to the step's largest)"
                              % (name, w))
                        check(w <= 1e-4, "%s: logits within 1e-4 of the CPU engine's" % name, "max diff %.3g" % w)
                        bad = []
                        for c, e in zip(cg, eg):
                            for k in ("kind", "tokens", "sequences", "seq_tokens", "context", "layers", "bytes",
                                      "flops", "sampled"):
                                if c[k] != e[k]:
                                    bad.append("step %d %s: cpu %s cuda %s" % (c["step"], k, c[k], e[k]))
                        check(not bad, "%s: routing, kinds, contexts, bytes, FLOPs = CPU engine's" % name,
                              "\n".join(bad))
                        if style == "loop":
                            c = subprocess.run([sys.executable, os.path.join(ROOT, "bench/gpu/compare_engines.py"),
                                                cpu_gt, gt, name], capture_output=True, text=True)
                            check(c.returncode == 0, "%s: bench/gpu/compare_engines.py ok" % name, c.stdout)
                        if arch == "deepseek_v2":
                            # the same run with blocks and threads in reverse order: a race
                            # (missing barrier, blocks depending on each other) would show
                            rv = os.path.join(tmp, "reverse.lg")
                            r2 = moeref(*base, "--device", "cuda", "--moe", style, "--dtype", dtype,
                                        "--dump-logits", rv, env={"SIMT_EMU_ORDER": "reverse"})
                            same_bits = r2.returncode == 0 and open(rv).read() == open(lg).read()
                            check(same_bits,
                                  "%s: logits bit-identical with blocks and threads in reverse order" % name, r2.stderr)
                    else:
                        print("# %s: %d of %d sampled tokens equal the CPU engine's (f32 weights)" % (name, same, total))
                        bad = []
                        for c, e in zip(cg, eg):
                            for k in ("dense_weights", "shared_expert_weights", "kv_read", "kv_written"):
                                if c["bytes"][k] != 2 * e["bytes"][k]:
                                    bad.append("step %d bytes.%s: cpu %d bf16 %d" % (c["step"], k, c["bytes"][k],
                                                                                   e["bytes"][k]))
                            if (c["kind"], c["context"]) != (e["kind"], e["context"]):
                                bad.append("step %d kind/context differ" % c["step"])
                        check(not bad, "%s: dense, shared and KV bytes = half the CPU engine's (bf16)" % name,
                              "\n".join(bad))
                        w = max_rel_logit_diff(cl[:1], el[:1])
                        print("# %s: prefill logits differ from the CPU engine's by %.2e (relative)" % (name, w))
                        check(w <= 0.1, "%s: prefill logits within 0.1 of the CPU engine's (bf16 weights)" % name,
                              "max diff %.3g" % w)
    return 1 if FAILS else 0


sys.exit(main())
