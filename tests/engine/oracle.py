"""Test-only oracle for moe-ref: an independent float64 numpy implementation of the
Hugging Face forward passes of Mixtral, Qwen2-MoE and (GQA-attention) DeepSeek-V2.

It reads config.json and model.safetensors itself (own safetensors parser) and recomputes
each sequence from scratch at every step (no KV cache), so it shares no code or state with
the engine. Routing follows the HF modelling code of each architecture."""
import json
import struct

import numpy as np


def load_safetensors(path):
    """Returns {name: float64 array} from an F32 safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, ent in header.items():
        if name == "__metadata__":
            continue
        assert ent["dtype"] == "F32", name
        b, e = ent["data_offsets"]
        arr = np.frombuffer(blob, dtype="<f4", count=(e - b) // 4, offset=base + b)
        out[name] = arr.reshape(ent["shape"]).astype(np.float64)
    return out


class Model:
    def __init__(self, model_dir):
        with open(f"{model_dir}/config.json") as f:
            self.cfg = c = json.load(f)
        self.w = load_safetensors(f"{model_dir}/model.safetensors")
        self.type = c["model_type"]
        self.d = c["hidden_size"]
        self.L = c["num_hidden_layers"]
        self.H = c["num_attention_heads"]
        self.HK = c.get("num_key_value_heads", self.H)
        self.hd = c.get("head_dim", self.d // self.H)
        self.V = c["vocab_size"]
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        t = self.type
        if t == "mixtral":
            self.E, self.K = c["num_local_experts"], c["num_experts_per_tok"]
            self.f, self.fd, self.fs = c["intermediate_size"], 0, 0
            self.dense = [False] * self.L
            self.mlp = "block_sparse_moe"
        elif t == "qwen2_moe":
            self.E, self.K = c["num_experts"], c["num_experts_per_tok"]
            self.f, self.fd = c["moe_intermediate_size"], c["intermediate_size"]
            self.fs = c["shared_expert_intermediate_size"]
            step = c.get("decoder_sparse_step", 1)
            mlo = c.get("mlp_only_layers", [])
            self.dense = [(l in mlo) or not ((l + 1) % step == 0) for l in range(self.L)]
            self.mlp = "mlp"
        elif t == "deepseek_v2":
            self.E, self.K = c["n_routed_experts"], c["num_experts_per_tok"]
            self.f, self.fd = c["moe_intermediate_size"], c["intermediate_size"]
            self.fs = (c.get("n_shared_experts") or 0) * self.f
            fk, freq = c.get("first_k_dense_replace", 0), c.get("moe_layer_freq", 1)
            self.dense = [not (l >= fk and l % freq == 0) for l in range(self.L)]
            self.mlp = "mlp"
        else:
            raise ValueError(t)

    def W(self, name):
        return self.w[name]

    def rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos):
        # x: [n, heads, hd]; HF rotate_half convention
        hd = self.hd
        inv = self.theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
        ang = np.outer(pos, inv)                      # [n, hd/2]
        cos = np.concatenate([np.cos(ang)] * 2, axis=-1)[:, None, :]
        sin = np.concatenate([np.sin(ang)] * 2, axis=-1)[:, None, :]
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        rot = np.concatenate([-x2, x1], axis=-1)
        return x * cos + rot * sin

    def route(self, logits):
        """logits [n, E] -> (experts [n, K], weights [n, K], margin [n])."""
        c = self.cfg
        z = logits - logits.max(axis=-1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=-1, keepdims=True)
        scores = p.copy()
        if self.type == "deepseek_v2" and c.get("topk_method") == "group_limited_greedy":
            ng, tg = c["n_group"], c["topk_group"]
            gs = self.E // ng
            gmax = p.reshape(len(p), ng, gs).max(axis=-1)
            for i in range(len(p)):
                keep = np.argsort(-gmax[i], kind="stable")[:tg]
                mask = np.zeros(ng, bool)
                mask[keep] = True
                scores[i] = np.where(np.repeat(mask, gs), p[i], 0.0)
        order = np.argsort(-scores, axis=-1, kind="stable")  # ties -> lower index
        sel = order[:, : self.K]
        w = np.take_along_axis(scores, sel, axis=-1)
        if self.K < self.E:
            nxt = np.take_along_axis(scores, order[:, self.K:self.K + 1], axis=-1)[:, 0]
            margin = w[:, -1] - nxt
        else:
            margin = np.full(len(p), np.inf)
        if self.type == "mixtral":
            w = w / w.sum(axis=-1, keepdims=True)
        elif self.type == "qwen2_moe":
            if c.get("norm_topk_prob", False):
                w = w / w.sum(axis=-1, keepdims=True)
        else:
            if self.K > 1 and c.get("norm_topk_prob", False):
                w = w / (w.sum(axis=-1, keepdims=True) + 1e-20)
            else:
                w = w * c.get("routed_scaling_factor", 1.0)
        return sel, w, margin

    def swiglu(self, x, g, u, dn):
        a = x @ g.T
        return ((a / (1 + np.exp(-a))) * (x @ u.T)) @ dn.T

    def forward(self, tokens):
        """Full causal forward over one sequence. Returns (last-token logits [V],
        routing: list per layer of None (dense) or (experts [n,K], margins [n]))."""
        n = len(tokens)
        pos = np.arange(n)
        x = self.W("model.embed_tokens.weight")[np.asarray(tokens)]
        routing = []
        grp = self.H // self.HK
        for l in range(self.L):
            P = f"model.layers.{l}."
            h = self.rms(x, self.W(P + "input_layernorm.weight"))
            q = (h @ self.W(P + "self_attn.q_proj.weight").T).reshape(n, self.H, self.hd)
            k = (h @ self.W(P + "self_attn.k_proj.weight").T).reshape(n, self.HK, self.hd)
            v = (h @ self.W(P + "self_attn.v_proj.weight").T).reshape(n, self.HK, self.hd)
            q, k = self.rope(q, pos), self.rope(k, pos)
            k = np.repeat(k, grp, axis=1)
            v = np.repeat(v, grp, axis=1)
            s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(self.hd)
            s = np.where(np.tril(np.ones((n, n), bool))[None], s, -np.inf)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            att = np.einsum("hqk,khd->qhd", s, v).reshape(n, self.H * self.hd)
            x = x + att @ self.W(P + "self_attn.o_proj.weight").T
            h = self.rms(x, self.W(P + "post_attention_layernorm.weight"))
            if self.dense[l]:
                x = x + self.swiglu(h, self.W(P + "mlp.gate_proj.weight"),
                                    self.W(P + "mlp.up_proj.weight"),
                                    self.W(P + "mlp.down_proj.weight"))
                routing.append(None)
                continue
            M = P + self.mlp + "."
            sel, wts, margin = self.route(h @ self.W(M + "gate.weight").T)
            out = np.zeros_like(x)
            for e in range(self.E):
                rows, slot = np.nonzero(sel == e)
                if len(rows) == 0:
                    continue
                if self.type == "mixtral":
                    g, u, dn = (self.W(f"{M}experts.{e}.{p}.weight") for p in ("w1", "w3", "w2"))
                else:
                    g, u, dn = (self.W(f"{M}experts.{e}.{p}_proj.weight") for p in ("gate", "up", "down"))
                out[rows] += wts[rows, slot][:, None] * self.swiglu(h[rows], g, u, dn)
            if self.fs:
                se = "shared_expert" if self.type == "qwen2_moe" else "shared_experts"
                sh = self.swiglu(h, self.W(f"{M}{se}.gate_proj.weight"),
                                 self.W(f"{M}{se}.up_proj.weight"),
                                 self.W(f"{M}{se}.down_proj.weight"))
                if self.type == "qwen2_moe":
                    sh = sh / (1 + np.exp(-(h @ self.W(M + "shared_expert_gate.weight").T)))
                out = out + sh
            x = x + out
            routing.append((sel, margin))
        hl = self.rms(x[-1:], self.W("model.norm.weight"))
        logits = (hl @ self.W("lm_head.weight").T)[0]
        return logits, routing
