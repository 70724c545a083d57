#!/usr/bin/python3
"""A small Hugging Face style Mixtral MoE written with Debian's python3-torch, for the
`moecap report` end-to-end test on a framework that is not moe-ref.

  torch_moe.py gen DIR                 write DIR/config.json + DIR/model.safetensors
  torch_moe.py run DIR --batch B --prompt-len P --gen N --expected FILE

`run` loads the weights by mmap (numpy.memmap -> torch.from_numpy, as safetensors' own
loader does), runs batched prefill + greedy decode with float32 nn.Linear modules (one
linear call per activated expert per projection, like transformers' eager Mixtral), and
writes what it did per forward step, in moe-ref's ground-truth format (docs/ground-truth.md):
activated experts and tokens per expert per layer, GEMM calls, and bytes / FLOPs by the
definitions of that document, counted here from the calls this script made — independently
of moecap. Attention is computed elementwise (no matmul), so every BLAS call is a weight
product."""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CFG = {
    "architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
    "hidden_size": 128, "intermediate_size": 96, "num_local_experts": 8, "num_experts_per_tok": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 300,
    "num_hidden_layers": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "max_position_embeddings": 512, "tie_word_embeddings": False, "torch_dtype": "float32",
}


def tensor_specs(c):
    d, f, E, V = c["hidden_size"], c["intermediate_size"], c["num_local_experts"], c["vocab_size"]
    H, HK, hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    specs = [("model.embed_tokens.weight", (V, d))]
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l
        specs += [(p + "input_layernorm.weight", (d,)), (p + "post_attention_layernorm.weight", (d,)),
                  (p + "self_attn.q_proj.weight", (H * hd, d)), (p + "self_attn.k_proj.weight", (HK * hd, d)),
                  (p + "self_attn.v_proj.weight", (HK * hd, d)), (p + "self_attn.o_proj.weight", (d, H * hd)),
                  (p + "block_sparse_moe.gate.weight", (E, d))]
        for e in range(E):
            q = p + "block_sparse_moe.experts.%d." % e
            specs += [(q + "w1.weight", (f, d)), (q + "w2.weight", (d, f)), (q + "w3.weight", (f, d))]
    specs += [("model.norm.weight", (d,)), ("lm_head.weight", (V, d))]
    return specs


def gen(out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as fh:
        json.dump(CFG, fh, indent=2)
    rng = np.random.default_rng(7)
    header, blobs, off = {}, [], 0
    for name, shape in tensor_specs(CFG):
        if name.endswith("norm.weight"):
            a = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            a = (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as fh:
        fh.write(len(h).to_bytes(8, "little"))
        fh.write(h)
        for b in blobs:
            fh.write(b)


def load(dirname):
    path = os.path.join(dirname, "model.safetensors")
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
    mm = np.memmap(path, dtype=np.uint8, mode="c")       # copy-on-write mmap: weights stay file-backed
    w = {}
    for name, spec in header.items():
        b, e = spec["data_offsets"]
        arr = mm[8 + n + b: 8 + n + e].view(np.float32).reshape(spec["shape"])
        w[name] = torch.from_numpy(arr)
    return w


class Acct:
    """What the step did, by docs/ground-truth.md's definitions."""

    def __init__(self):
        self.calls = 0
        self.flops = 0
        self.dense = 0
        self.routed = 0

    def linear(self, mod, x, kind):
        m = x.shape[0]
        out, inn = mod.weight.shape
        self.calls += 1
        self.flops += 2 * m * out * inn
        if kind == "dense":
            self.dense += mod.weight.numel() * 4
        elif kind == "routed":
            self.routed += mod.weight.numel() * 4
        return mod(x)


def make_linear(w):
    lin = nn.Linear(w.shape[1], w.shape[0], bias=False)
    lin.weight = nn.Parameter(w, requires_grad=False)
    return lin


class RMSNorm(nn.Module):
    def __init__(self, w, eps):
        super().__init__()
        self.weight, self.eps = w, eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, pos, theta):
    hd = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = pos[:, None].float() * inv[None, :]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class MixtralSparseMoeBlock(nn.Module):
    def __init__(self, w, p, c):
        super().__init__()
        self.E, self.K = c["num_local_experts"], c["num_experts_per_tok"]
        self.gate = make_linear(w[p + "block_sparse_moe.gate.weight"])
        self.experts = nn.ModuleList()
        for e in range(self.E):
            q = p + "block_sparse_moe.experts.%d." % e
            ex = nn.Module()
            ex.w1, ex.w2, ex.w3 = (make_linear(w[q + "w1.weight"]), make_linear(w[q + "w2.weight"]),
                                   make_linear(w[q + "w3.weight"]))
            self.experts.append(ex)

    def forward(self, x, acct, rec):
        logits = acct.linear(self.gate, x, "dense")
        probs = F.softmax(logits, dim=-1)
        topw, topi = torch.topk(probs, self.K, dim=-1)
        topw = topw / topw.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        experts, tokens = [], []
        for e in range(self.E):                         # eager loop over activated experts
            tok, slot = torch.where(topi == e)
            if tok.numel() == 0:
                continue
            ex = self.experts[e]
            xe = x[tok]
            h = F.silu(acct.linear(ex.w1, xe, "routed")) * acct.linear(ex.w3, xe, "routed")
            y = acct.linear(ex.w2, h, "routed")
            out.index_add_(0, tok, y * topw[tok, slot][:, None])
            experts.append(e)
            tokens.append(int(tok.numel()))
        rec.append({"experts": experts, "tokens_per_expert": tokens})
        return out


class Layer(nn.Module):
    def __init__(self, w, l, c):
        super().__init__()
        p = "model.layers.%d." % l
        eps = c["rms_norm_eps"]
        self.ln1, self.ln2 = RMSNorm(w[p + "input_layernorm.weight"], eps), RMSNorm(w[p + "post_attention_layernorm.weight"], eps)
        self.q, self.k, self.v, self.o = (make_linear(w[p + "self_attn.%s_proj.weight" % n]) for n in "qkvo")
        self.moe = MixtralSparseMoeBlock(w, p, c)
        self.c = c


class MixtralForCausalLM(nn.Module):
    def __init__(self, dirname):
        super().__init__()
        self.c = c = json.load(open(os.path.join(dirname, "config.json")))
        w = load(dirname)
        self.embed = w["model.embed_tokens.weight"]
        self.layers = nn.ModuleList(Layer(w, l, c) for l in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(w["model.norm.weight"], c["rms_norm_eps"])
        self.lm_head = make_linear(w["lm_head.weight"])

    def step(self, seqs, new_tokens, cache, acct, rec):
        """One forward step over sequences `seqs` (indices) each bringing new_tokens[i]."""
        c = self.c
        H, HK, hd, d = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["hidden_size"]
        toks = torch.tensor([t for ts in new_tokens for t in ts])
        pos = torch.tensor([cache["len"][s] + j for s, ts in zip(seqs, new_tokens) for j in range(len(ts))])
        owner = [s for s, ts in zip(seqs, new_tokens) for _ in ts]
        T = len(toks)
        x = self.embed[toks].clone()
        acct.dense += T * d * 4
        for li, L in enumerate(self.layers):
            acct.dense += (L.ln1.weight.numel() + L.ln2.weight.numel()) * 4
            xn = L.ln1(x)
            q = rope(acct.linear(L.q, xn, "dense").view(T, H, hd), pos, c["rope_theta"])
            k = rope(acct.linear(L.k, xn, "dense").view(T, HK, hd), pos, c["rope_theta"])
            v = acct.linear(L.v, xn, "dense").view(T, HK, hd)
            att = torch.empty(T, H, hd)
            for t in range(T):                          # append to the cache, then attend (causal)
                s = owner[t]
                cache["k"][li][s].append(k[t])
                cache["v"][li][s].append(v[t])
            for t in range(T):
                s, p = owner[t], int(pos[t])
                K = torch.stack(cache["k"][li][s][: p + 1])      # (ctx, HK, hd)
                V = torch.stack(cache["v"][li][s][: p + 1])
                Kx = K.repeat_interleave(H // HK, dim=1)         # (ctx, H, hd)
                Vx = V.repeat_interleave(H // HK, dim=1)
                sc = (q[t][None, :, :] * Kx).sum(-1) / hd ** 0.5  # (ctx, H): elementwise, no BLAS
                pr = F.softmax(sc, dim=0)
                att[t] = (pr[:, :, None] * Vx).sum(0)
            x = x + acct.linear(L.o, att.view(T, H * hd), "dense")
            x = x + L.moe(L.ln2(x), acct, rec)
        last, i = [], 0
        for ts in new_tokens:
            i += len(ts)
            last.append(i - 1)
        acct.dense += self.norm.weight.numel() * 4
        logits = acct.linear(self.lm_head, self.norm(x[last]), "dense")
        for s, ts in zip(seqs, new_tokens):
            cache["len"][s] += len(ts)
        return logits.argmax(-1).tolist()


def run(dirname, B, P, N, expected):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = MixtralForCausalLM(dirname)
    c = model.c
    L, HK, hd, H = c["num_hidden_layers"], c["num_key_value_heads"], c["head_dim"], c["num_attention_heads"]
    cache = {"len": [0] * B, "k": [[[] for _ in range(B)] for _ in range(L)], "v": [[[] for _ in range(B)] for _ in range(L)]}
    rng = np.random.default_rng(3)
    prompts = [[int(t) for t in rng.integers(0, c["vocab_size"], P)] for _ in range(B)]
    out = open(expected, "w")
    new = prompts
    with torch.no_grad():
        for step in range(N):
            before = list(cache["len"])
            acct, rec = Acct(), []
            t0 = time.monotonic_ns()
            nxt = model.step(list(range(B)), new, cache, acct, rec)
            t1 = time.monotonic_ns()
            T = sum(len(t) for t in new)
            ctx = list(cache["len"])
            kvb = 2 * HK * hd * 4
            att = sum(4 * H * hd * (before[s] + j + 1) for s in range(B) for j in range(len(new[s]))) * L
            kind = "prefill" if all(b == 0 for b in before) and T > B else ("decode" if T == B else "mixed")
            line = {"step": step, "kind": kind, "sequences": B, "tokens": T,
                    "seq_tokens": [len(t) for t in new], "context": ctx,
                    "t_begin_ns": t0, "t_end_ns": t1, "wall_ns": t1 - t0,
                    "layers": [dict(layer=l, **r) for l, r in enumerate(rec)],
                    "bytes": {"dense_weights": acct.dense, "routed_expert_weights": acct.routed,
                              "shared_expert_weights": 0, "kv_read": L * sum(ctx) * kvb,
                              "kv_written": L * T * kvb},
                    "flops": {"gemm": acct.flops, "attention": att},
                    "gemm_calls": acct.calls, "sampled": nxt}
            line["bytes"]["total"] = sum(line["bytes"].values())
            line["flops"]["total"] = acct.flops + att
            out.write(json.dumps(line) + "\n")
            new = [[t] for t in nxt]
    out.close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "gen":
        gen(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "run":
        a = sys.argv
        get = lambda k: a[a.index(k) + 1]
        run(a[2], int(get("--batch")), int(get("--prompt-len")), int(get("--gen")), get("--expected"))
    else:
        sys.exit(__doc__)
