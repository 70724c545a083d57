#!/usr/bin/python3
"""moe-ref end-to-end tests against an independent oracle (tests/engine/oracle.py):

- logits of prefill and decode steps (batch 1, batch 3 with different prompt lengths,
  and staggered "mixed" steps) match the float64 oracle to 1e-4 relative, per arch;
- activated experts and tokens per expert in the ground truth equal the oracle's routing;
- ground-truth bytes, FLOPs and GEMM-call counts equal formulas written here from
  docs/ground-truth.md (not from the engine's code);
- gen is deterministic; bad input exits 2 with a message naming the problem.
Prints ok / not ok lines (tests/run-tests.sh protocol)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import numpy as np  # noqa: E402
import oracle  # noqa: E402
from tap import FAILS, check  # noqa: E402

ROOT = os.environ.get("MOECAP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD = os.environ.get("BUILD", "build")
MOEREF = os.path.join(ROOT, BUILD, "bin", "moe-ref")
RTOL = 1e-4


def moeref(*args, check=True, env=None):
    p = subprocess.run([MOEREF, *map(str, args)], capture_output=True, text=True, timeout=300,
                       env=env)
    if check and p.returncode != 0:
        raise RuntimeError(f"moe-ref {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}")
    return p


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------- independent ground-truth formulas (docs/ground-truth.md) ----------

def expected_counts(m, step, step_experts):
    """bytes / flops / gemm calls of one step from the config and the oracle's routing.
    step_experts[l] = {expert: tokens} for MoE layers, None for dense layers."""
    elt = 4
    d, H, HK, hd, V, L = m.d, m.H, m.HK, m.hd, m.V, m.L
    T, B = step["tokens"], step["sequences"]
    ctx_after = step["context"]
    seq_tokens = step["seq_tokens"]
    qwen_gate = m.type == "qwen2_moe" and m.fs > 0
    attn_w = d * H * hd + 2 * d * HK * hd + H * hd * d
    dense = routed = shared = 0
    gemm = calls = 0
    for l in range(L):
        dense += attn_w + 2 * d
        gemm += 2 * T * attn_w
        calls += 4
        if step_experts[l] is None:
            dense += 3 * d * m.fd
            gemm += 2 * T * 3 * d * m.fd
            calls += 3
            continue
        dense += m.E * d + (d if qwen_gate else 0)
        gemm += 2 * T * m.E * d + (2 * T * d if qwen_gate else 0)
        calls += 1 + (1 if qwen_gate else 0)
        for e, toks in step_experts[l].items():
            routed += 3 * d * m.f
            gemm += 2 * toks * 3 * d * m.f
            calls += 3
        if m.fs:
            shared += 3 * d * m.fs
            gemm += 2 * T * 3 * d * m.fs
            calls += 3
    dense += d + V * d + T * d           # final norm, lm_head, gathered embedding rows
    gemm += 2 * B * V * d
    calls += 1
    kv_read = L * sum(ctx_after) * 2 * HK * hd * elt
    kv_written = L * T * 2 * HK * hd * elt
    att = 0
    for n_new, ctx in zip(seq_tokens, ctx_after):
        for p in range(ctx - n_new, ctx):
            att += L * 4 * H * hd * (p + 1)
    b = {"dense_weights": dense * elt, "routed_expert_weights": routed * elt,
         "shared_expert_weights": shared * elt, "kv_read": kv_read, "kv_written": kv_written}
    b["total"] = sum(b.values())
    fl = {"gemm": gemm, "attention": att, "total": gemm + att}
    return b, fl, calls


# ---------- one engine run checked against the oracle ----------

def check_run(name, model_dir, m, prompts, gen, stagger=0, threads=1, extra=(), env=None):
    tmp = tempfile.mkdtemp(prefix="mr-run-", dir=WORK)
    pf, gt, lg = (os.path.join(tmp, x) for x in ("prompts.txt", "gt.jsonl", "logits.jsonl"))
    with open(pf, "w") as f:
        for p in prompts:
            f.write(" ".join(map(str, p)) + "\n")
    out = moeref("run", "--model", model_dir, "--prompts", pf, "--gen", gen,
                 "--stagger", stagger, "--threads", threads,
                 "--ground-truth", gt, "--dump-logits", lg, *extra, env=env).stdout
    steps, logit_steps = read_jsonl(gt), read_jsonl(lg)
    errs = {"logits": [], "routing": [], "gt": [], "argmax": []}
    seqs = [list(p) for p in prompts]
    done = [0] * len(prompts)
    gen_ids = [[] for _ in prompts]
    if len(steps) != len(logit_steps):
        errs["gt"].append(f"{len(steps)} ground-truth lines, {len(logit_steps)} logits lines")
    worst = 0.0
    for s, ls in zip(steps, logit_steps):
        act = ls["seqs"]
        # kind, seq_tokens, context from the driver's schedule
        new = [len(prompts[i]) if done[i] == 0 else 1 for i in act]
        before = [0 if done[i] == 0 else len(seqs[i]) - 1 for i in act]  # last sampled id is new
        ctx = [b + n for b, n in zip(before, new)]
        if all(b == 0 for b in before) and any(n > 1 for n in new):
            kind = "prefill"
        elif all(n == 1 for n in new):
            kind = "decode"
        else:
            kind = "mixed"
        exp_hdr = {"kind": kind, "sequences": len(act), "tokens": sum(new),
                   "seq_tokens": new, "context": ctx}
        got_hdr = {k: s[k] for k in exp_hdr}
        if got_hdr != exp_hdr:
            errs["gt"].append(f"step {s['step']}: header {got_hdr} != {exp_hdr}")
        step_experts = [None if m.dense[l] else {} for l in range(m.L)]
        for a, i in enumerate(act):
            toks = seqs[i][:ctx[a]] if done[i] == 0 else seqs[i]
            ref_logits, routing = m.forward(toks)
            got = np.asarray(ls["logits"][a])
            rel = np.max(np.abs(got - ref_logits)) / np.max(np.abs(ref_logits))
            worst = max(worst, rel)
            if rel > RTOL:
                errs["logits"].append(f"step {s['step']} seq {i}: max rel err {rel:.3g}")
            order = np.argsort(-ref_logits, kind="stable")
            if ref_logits[order[0]] - ref_logits[order[1]] > 1e-4 and s["sampled"][a] != order[0]:
                errs["argmax"].append(f"step {s['step']} seq {i}: sampled {s['sampled'][a]}, oracle {order[0]}")
            for l, r in enumerate(routing):
                if r is None:
                    continue
                sel, margin = r
                rows = range(len(toks) - new[a], len(toks))
                if np.min(margin[list(rows)]) < 1e-6:
                    print(f"# note: near-tie in routing at step {s['step']} layer {l}")
                for row in rows:
                    for e in sel[row]:
                        step_experts[l][int(e)] = step_experts[l].get(int(e), 0) + 1
        for l, lay in enumerate(s["layers"]):
            if step_experts[l] is None:
                if not lay.get("dense"):
                    errs["routing"].append(f"step {s['step']} layer {l}: expected dense")
                continue
            exp_e = sorted(step_experts[l])
            exp_c = [step_experts[l][e] for e in exp_e]
            if lay.get("experts") != exp_e or lay.get("tokens_per_expert") != exp_c:
                errs["routing"].append(f"step {s['step']} layer {l}: engine {lay.get('experts')} "
                                       f"{lay.get('tokens_per_expert')} != oracle {exp_e} {exp_c}")
        b, fl, calls = expected_counts(m, exp_hdr, step_experts)
        if s["bytes"] != b:
            errs["gt"].append(f"step {s['step']}: bytes {s['bytes']} != {b}")
        if s["flops"] != fl:
            errs["gt"].append(f"step {s['step']}: flops {s['flops']} != {fl}")
        if s["gemm_calls"] != calls:
            errs["gt"].append(f"step {s['step']}: gemm_calls {s['gemm_calls']} != {calls}")
        if not (s["t_end_ns"] >= s["t_begin_ns"] and s["wall_ns"] == s["t_end_ns"] - s["t_begin_ns"]):
            errs["gt"].append(f"step {s['step']}: inconsistent times")
        for a, i in enumerate(act):
            if done[i] == 0:
                seqs[i] = list(prompts[i])
            seqs[i].append(s["sampled"][a])
            gen_ids[i].append(s["sampled"][a])
            done[i] += 1
    lines = out.strip().split("\n")
    printed = [list(map(int, ln.split())) for ln in lines]
    if printed != gen_ids:
        errs["gt"].append(f"stdout {printed} != sampled {gen_ids}")
    if any(d != gen for d in done):
        errs["gt"].append(f"generated counts {done}, expected {gen} each")
    if len(prompts) == 3 and not stagger and not extra:
        # gen's scaling must give non-degenerate routing: in the prefill of 17 tokens every
        # MoE layer uses at least half of the experts and no expert takes every token
        dead = [f"layer {l['layer']}: experts {l['experts']} tokens {l['tokens_per_expert']}"
                for l in steps[0]["layers"] if not l.get("dense") and
                (len(l["experts"]) < m.E // 2 or max(l["tokens_per_expert"]) >= steps[0]["tokens"])]
        check(not dead, f"{name}: routing is diverse (prefill uses >= E/2 experts per layer)",
              "\n".join(dead))
    check(not errs["logits"] and not errs["argmax"],
          f"{name}: logits match oracle (max rel err {worst:.2e} <= {RTOL})",
          "\n".join(errs["logits"] + errs["argmax"]))
    check(not errs["routing"],
          f"{name}: activated experts and tokens per expert equal oracle routing", "\n".join(errs["routing"]))
    check(not errs["gt"],
          f"{name}: ground truth (kind, context, bytes, flops, gemm calls) equals formulas", "\n".join(errs["gt"]))
    shutil.rmtree(tmp)


def synthetic_prompts(vocab, lens, seed):
    rng = np.random.default_rng(seed)
    return [list(map(int, rng.integers(0, vocab, n))) for n in lens]


# ---------- bad input ----------

def expect_exit2(name, args, needle):
    p = moeref(*args, check=False)
    ok = p.returncode == 2 and needle in p.stderr and "Sanitizer" not in p.stderr
    check(ok, f"bad input: {name} -> exit 2 naming the problem",
          f"rc={p.returncode} stderr={p.stderr.strip()[:400]!r} (expected to contain {needle!r})")


def bad_input_tests(src):
    def copy(tag):
        d = os.path.join(WORK, "bad-" + tag)
        shutil.copytree(src, d)
        return d
    run = ["run", "--batch", "1", "--prompt-len", "3", "--gen", "2", "--model"]

    d = copy("cfg")
    cfg = json.load(open(f"{d}/config.json"))
    del cfg["hidden_size"]
    json.dump(cfg, open(f"{d}/config.json", "w"))
    expect_exit2("missing config field hidden_size", run + [d], "hidden_size")

    d = copy("cfg2")
    cfg = json.load(open(f"{d}/config.json"))
    del cfg["num_experts_per_tok"]
    json.dump(cfg, open(f"{d}/config.json", "w"))
    expect_exit2("missing config field num_experts_per_tok", run + [d], "num_experts_per_tok")

    # wrong shape: swap the dims of one expert's up projection in the header ([f,d] -> [d,f]);
    # same byte count, so only the shape check can catch it
    d = copy("shape")
    path = f"{d}/model.safetensors"
    blob = bytearray(open(path, "rb").read())
    hlen = int.from_bytes(blob[:8], "little")
    hdr = blob[8:8 + hlen].decode()
    name = "model.layers.1.block_sparse_moe.experts.3.w3.weight"
    i = hdr.index(f'"{name}"')
    old = '"shape":[32,64]'
    j = hdr.index(old, i)
    hdr = hdr[:j] + '"shape":[64,32]' + hdr[j + len(old):]
    blob[8:8 + hlen] = hdr.encode()
    open(path, "wb").write(blob)
    expect_exit2("wrong tensor shape", run + [d], name)

    d = copy("trunc")
    path = f"{d}/model.safetensors"
    size = os.path.getsize(path)
    os.truncate(path, size - 1000)
    expect_exit2("truncated safetensors", run + [d], "truncated")

    d = copy("trunc-header")
    os.truncate(f"{d}/model.safetensors", 100)
    expect_exit2("safetensors cut inside its header", run + [d], "truncated")

    d = copy("missing-tensor")
    path = f"{d}/model.safetensors"
    blob = bytearray(open(path, "rb").read())
    hlen = int.from_bytes(blob[:8], "little")
    hdr = blob[8:8 + hlen].decode().replace('"model.norm.weight"', '"model.nrom.weight"')
    blob[8:8 + hlen] = hdr.encode()
    open(path, "wb").write(blob)
    expect_exit2("missing tensor", run + [d], "model.norm.weight")

    def edit_header(tag, old, new):
        d = copy(tag)
        path = f"{d}/model.safetensors"
        blob = bytearray(open(path, "rb").read())
        hlen = int.from_bytes(blob[:8], "little")
        hdr = blob[8:8 + hlen].decode()
        assert old in hdr and len(old) == len(new)
        blob[8:8 + hlen] = hdr.replace(old, new, 1).encode()
        open(path, "wb").write(blob)
        return d

    # inconsistent: the first tensor (embed_tokens, 256x64 F32 = 65536 bytes) claims one byte less
    d = edit_header("offsets", '"data_offsets":[0,65536]', '"data_offsets":[0,65535]')
    expect_exit2("data_offsets inconsistent with shape", run + [d], "model.embed_tokens.weight")
    d = edit_header("dtype", '"dtype":"F32","shape":[256,64]', '"dtype":"I32","shape":[256,64]')
    expect_exit2("non-F32 tensor", run + [d], "I32")

    d = copy("badjson")
    open(f"{d}/config.json", "w").write('{"model_type": "mixtral", "hidden_size": ')
    expect_exit2("config.json not valid JSON", run + [d], "config.json")

    d = copy("badtype")
    cfg = json.load(open(f"{d}/config.json"))
    cfg["model_type"] = "llama"
    json.dump(cfg, open(f"{d}/config.json", "w"))
    expect_exit2("unsupported model_type", run + [d], "llama")

    d = copy("nofile")
    os.remove(f"{d}/model.safetensors")
    expect_exit2("missing safetensors file", run + [d], "safetensors")

    d = copy("nocfg")
    os.remove(f"{d}/config.json")
    expect_exit2("missing config.json", run + [d], "config.json")

    # header fuzz: random byte edits of the length field and JSON header must end in a
    # clean run (0) or a clean refusal (2), never a crash or a sanitizer report
    rng = np.random.default_rng(11)
    d = copy("fuzz")
    path = f"{d}/model.safetensors"
    orig = open(path, "rb").read()
    hlen = int.from_bytes(orig[:8], "little")
    bad = []
    for i in range(60):
        blob = bytearray(orig)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(0, 8 + hlen))
            blob[pos] = int(rng.integers(0, 256))
        open(path, "wb").write(blob)
        p = moeref(*run, d, check=False)
        if p.returncode not in (0, 2) or "Sanitizer" in p.stderr or "runtime error" in p.stderr:
            bad.append(f"mutation {i}: rc={p.returncode} {p.stderr.strip()[:200]}")
        elif p.returncode == 2 and not p.stderr.strip():
            bad.append(f"mutation {i}: exit 2 without a message")
    check(not bad,
          "bad input: 60 random header mutations -> exit 0 or 2 with a message, never a crash", "\n".join(bad))

    expect_exit2("missing model directory", run + [os.path.join(WORK, "does-not-exist")], "does-not-exist")
    expect_exit2("unsupported device", run + [src, "--device", "tpu"], "--device tpu")  # cuda: tests/cuda (may exist)


def main():
    global WORK
    if not os.access(MOEREF, os.X_OK):
        check(False, f"moe-ref binary missing at {MOEREF} (build it first)")
        return 1
    WORK = tempfile.mkdtemp(prefix="moecap-engine-test-")
    try:
        # gen determinism
        a, b, c = (os.path.join(WORK, x) for x in ("ga", "gb", "gc"))
        for d, seed in ((a, 5), (b, 5), (c, 6)):
            moeref("gen", "--arch", "qwen2_moe", "--out", d, "--seed", seed)
        same = all(open(f"{a}/{n}", "rb").read() == open(f"{b}/{n}", "rb").read()
                   for n in ("config.json", "model.safetensors"))
        differ = open(f"{a}/model.safetensors", "rb").read() != open(f"{c}/model.safetensors", "rb").read()
        check(same and differ, "gen: same seed gives identical bytes, another seed different weights")

        models = [
            ("mixtral", ["--layers", 2]),
            ("qwen2_moe", ["--layers", 3, "--dense-layers", 1, "--shared-experts", 2]),
            ("qwen2_moe-normtopk", ["--layers", 2, "--norm-topk-prob", 1, "--top-k", 3]),
            ("deepseek_v2", ["--layers", 3, "--dense-layers", 1, "--shared-experts", 2,
                             "--routed-scaling-factor", 2.5]),
            ("deepseek_v2-group", ["--layers", 2, "--dense-layers", 0, "--experts", 8,
                                   "--n-group", 4, "--topk-group", 2, "--norm-topk-prob", 1,
                                   "--top-k", 3]),
        ]
        for tag, extra in models:
            arch = tag.split("-")[0]
            d = os.path.join(WORK, tag)
            moeref("gen", "--arch", arch, "--out", d, "--hidden", 64, "--heads", 4, "--kv-heads", 2,
                   "--vocab", 256, "--seed", 7, *extra)
            m = oracle.Model(d)
            check_run(f"{tag} batch 1", d, m, synthetic_prompts(m.V, [6], 1), gen=4)
            check_run(f"{tag} batch 3", d, m, synthetic_prompts(m.V, [5, 9, 3], 2), gen=4)
            # helper threads: experts, shared expert, q/k/v as side-by-side BLAS calls
            check_run(f"{tag} batch 3, 2 threads", d, m, synthetic_prompts(m.V, [5, 9, 3], 2), gen=4,
                      threads=2)
            check_run(f"{tag} batch 1, 3 threads", d, m, synthetic_prompts(m.V, [6], 1), gen=4,
                      threads=3)
            if tag in ("mixtral", "deepseek_v2"):
                # MOE_REF_PAR_MIN_WORK=0: attention always runs on the OpenMP threads
                check_run(f"{tag} staggered (mixed steps, 2 threads)", d, m,
                          synthetic_prompts(m.V, [4, 7, 2], 3), gen=4, stagger=1, threads=2,
                          env=dict(os.environ, MOE_REF_PAR_MIN_WORK="0"))
            if tag in ("qwen2_moe", "deepseek_v2"):
                # single-row products through cblas_sgemm (the default calls cblas_sgemv):
                # same numbers, same ground truth
                check_run(f"{tag} --gemm batch 1", d, m, synthetic_prompts(m.V, [5], 4), gen=3,
                          extra=["--gemm"])
                check_run(f"{tag} --gemm staggered", d, m, synthetic_prompts(m.V, [3, 1, 6], 5),
                          gen=3, stagger=2, extra=["--gemm"])
        bad_input_tests(os.path.join(WORK, "mixtral"))
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
