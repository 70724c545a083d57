"""MoE-style forward passes with Debian's python3-torch (CPU), run under the shim by
test_shim.sh. Writes every matmul it performs as row-major (M, N, K) to argv[1],
computed here from tensor shapes. torch.nn.functional.linear(x, W) is x @ W^T:
M = tokens, N = out_features, K = in_features."""
import json
import sys

import torch

torch.manual_seed(3)
torch.set_num_threads(1)
d, f, E, topk, V = 32, 40, 6, 2, 50
router = torch.randn(E, d)
w_gate = [torch.randn(f, d) for _ in range(E)]
w_up = [torch.randn(f, d) for _ in range(E)]
w_down = [torch.randn(d, f) for _ in range(E)]
lm_head = torch.randn(V, d)
expected = []


def linear(x, w):
    expected.append((x.shape[0], w.shape[0], x.shape[1]))
    return torch.nn.functional.linear(x, w)


def moe(x):
    logits = linear(x, router)
    top = torch.topk(logits, topk, dim=1).indices
    out = torch.zeros_like(x)
    for e in range(E):
        rows = (top == e).any(dim=1).nonzero().flatten()
        if rows.numel() == 0:
            continue
        xe = x[rows].contiguous()
        h = torch.nn.functional.silu(linear(xe, w_gate[e])) * linear(xe, w_up[e])
        out[rows] += linear(h, w_down[e])
    return out


with torch.no_grad():
    x = torch.randn(5, d)
    for step in range(4):
        y = moe(x)
        logits = linear(y[-1:].contiguous(), lm_head)
        x = torch.randn(1, d)
json.dump(expected, open(sys.argv[1], "w"))
print("checksum %.4f" % float(logits.sum()))
