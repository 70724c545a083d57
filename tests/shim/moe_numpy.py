"""MoE-style forward passes with numpy (Debian python3-numpy, system BLAS), run under the
shim by test_shim.sh. Writes the list of every matmul it performs as row-major
(M, N, K) = (rows of X, columns of W, inner) to argv[1], computed here from the array
shapes, independently of the shim."""
import json
import sys

import numpy as np

rng = np.random.default_rng(7)
d, f, E, topk, V = 32, 48, 8, 2, 64
w_router = rng.standard_normal((d, E)).astype(np.float32)
w_up = [rng.standard_normal((d, f)).astype(np.float32) for _ in range(E)]
w_down = [rng.standard_normal((f, d)).astype(np.float32) for _ in range(E)]
lm_head = rng.standard_normal((d, V)).astype(np.float32)
expected = []


def mm(x, w):
    # 2-D float32 @ 2-D float32: numpy hands this to the BLAS (gemm, or gemv for one row).
    assert x.ndim == 2 and w.ndim == 2 and x.dtype == np.float32 and w.dtype == np.float32
    expected.append((x.shape[0], w.shape[1], x.shape[1]))
    return x @ w


def moe_step(x):
    logits = mm(x, w_router)
    top = np.argsort(-logits, axis=1)[:, :topk]
    out = np.zeros_like(x)
    for e in range(E):
        rows = np.nonzero((top == e).any(axis=1))[0]
        if len(rows) == 0:
            continue
        xe = np.ascontiguousarray(x[rows])
        h = np.maximum(mm(xe, w_up[e]), 0)
        out[rows] += mm(h, w_down[e])
    return out


x = rng.standard_normal((6, d)).astype(np.float32)   # "prefill": 6 tokens
for step in range(4):
    y = moe_step(x)
    logits = mm(y[-1:], lm_head)                     # one sequence samples a token
    x = rng.standard_normal((1, d)).astype(np.float32)  # then decode steps, 1 token each
json.dump(expected, open(sys.argv[1], "w"))
print("checksum %.4f" % float(logits.sum()))
