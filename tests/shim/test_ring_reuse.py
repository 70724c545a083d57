#!/usr/bin/python3
"""The CPU BLAS hot path writes its records into the thread's ring without zeroing them
first (shim/ring.h): every field must be written on every call. With a 64 KiB ring
(MOECAP_BUF_KB=64) a few thousand calls wrap it many times, so a field a wrapper forgot
would show a byte of an older record (e.g. a GEMM's trans_b = T in a GEMV record). This
test makes GEMM calls with transposes next to GEMV calls, all arguments distinct and
known here, and checks every recorded field of every call against what it passed."""
import ctypes
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from preload import preload_env  # noqa: E402
from tap import FAILS, check, skip  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
SHIM = os.path.abspath(os.path.join(BUILD, "lib", "libmoecap.so"))
MOECAP = os.path.abspath(os.path.join(BUILD, "bin", "moecap"))
ROUNDS = 1500

CHILD = r'''
import ctypes, sys
ctypes.CDLL("libopenblas.so.0", mode=ctypes.RTLD_GLOBAL)
g = ctypes.CDLL(None)            # global scope: the preloaded shim's definitions first
F, D, I = ctypes.c_float, ctypes.c_double, ctypes.c_int
A = (F * 4096)(); B = (F * 4096)(); C = (F * 4096)()
AD = (D * 4096)(); BD = (D * 4096)(); CD = (D * 4096)()
g.cblas_sgemm.argtypes = [I, I, I, I, I, I, F, ctypes.c_void_p, I, ctypes.c_void_p, I, F, ctypes.c_void_p, I]
g.cblas_dgemv.argtypes = [I, I, I, I, D, ctypes.c_void_p, I, ctypes.c_void_p, I, D, ctypes.c_void_p, I]
def p(x):
    return ctypes.byref(x)
for r in range(int(sys.argv[1])):
    m, n, k = 1 + r % 5, 1 + r % 7, 1 + r % 3
    # row-major, A^T (k x m, lda >= m), B^T (n x k, ldb >= k), C m x n (ldc >= n)
    g.cblas_sgemm(101, 112, 112, m, n, k, 1.5 + r, ctypes.addressof(A) + 4 * (r % 8), m + r % 4,
                  ctypes.addressof(B), k + r % 3, 0.25, ctypes.addressof(C), n + r % 2)
    # col-major dgemv, no transpose: A m x n (lda >= m), x n, y m
    g.cblas_dgemv(102, 111, m + 1, n, -2.0 - r, ctypes.addressof(AD), m + 1 + r % 2,
                  ctypes.addressof(BD), 1 + r % 2, 0.5, ctypes.addressof(CD), 1)
    # Fortran sgemm_ 'T','C' and sgemv_ 'T'
    mm, nn, kk, la, lb, lc = I(n), I(m), I(k), I(k + 1), I(m + 2), I(n + r % 3)
    al, be = F(3.0 + r), F(1.0)
    g.sgemm_(b"T", b"C", p(mm), p(nn), p(kk), p(al), B, p(la), A, p(lb), p(be), C, p(lc))
    gm, gn, glda, gix, giy = I(m + 2), I(n), I(m + 2 + r % 2), I(1), I(2)
    ga, gb = F(0.5 + r), F(0.0)
    g.sgemv_(b"T", p(gm), p(gn), p(ga), A, p(glda), B, p(gix), p(gb), C, p(giy))
print(ctypes.addressof(A), ctypes.addressof(B), ctypes.addressof(C),
      ctypes.addressof(AD), ctypes.addressof(BD), ctypes.addressof(CD))
'''


def expected(r, addr):
    A, B, C, AD, BD, CD = addr
    m, n, k = 1 + r % 5, 1 + r % 7, 1 + r % 3
    # (api, layout, trans_a, trans_b, m, n, k, lda, ldb, ldc, a, b, c, alpha, beta, dtype)
    return [
        ("cblas_sgemm", "row", 1, 1, m, n, k, m + r % 4, k + r % 3, n + r % 2, A + 4 * (r % 8), B, C,
         1.5 + r, 0.25, "f32"),
        ("cblas_dgemv", "col", 0, 0, m + 1, 1, n, m + 1 + r % 2, 1 + r % 2, 1, AD, BD, CD, -2.0 - r, 0.5, "f64"),
        ("sgemm_", "col", 1, 2, n, m, k, k + 1, m + 2, n + r % 3, B, A, C, 3.0 + r, 1.0, "f32"),
        ("sgemv_", "col", 1, 0, m + 2, 1, n, m + 2 + r % 2, 1, 2, A, B, C, 0.5 + r, 0.0, "f32"),
    ]


def main():
    py = "/usr/bin/python3"
    try:
        import ctypes.util  # noqa: F401
        ctypes.CDLL("libopenblas.so.0")
    except OSError:
        skip("ring reuse: libopenblas.so.0 not installed")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "t")
        env = preload_env(SHIM)
        env.update(MOECAP_OUT=out, MOECAP_BUF_KB="64", MOECAP_SAMPLE_MS="0")
        env.pop("MOECAP_DISABLE", None)
        env.pop("MOECAP_STACK", None)
        p = subprocess.run([py, "-c", CHILD, str(ROUNDS)], env=env, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            check(False, "ring reuse: child failed (%d)" % p.returncode, p.stderr[-500:])
            return 1
        addr = [int(x) for x in p.stdout.split()]
        files = sorted(f for f in os.listdir(out) if f.endswith(".mct"))
        recs = []
        for f in files:
            d = subprocess.run([MOECAP, "dump", os.path.join(out, f)], capture_output=True, text=True)
            recs += [json.loads(l) for l in d.stdout.splitlines() if l.strip()]
    got = [r for r in recs if r["type"] == "gemm"]
    want = [e for r in range(ROUNDS) for e in expected(r, addr)]
    fields = ("api", "layout", "trans_a", "trans_b", "m", "n", "k", "lda", "ldb", "ldc", "a", "b", "c",
              "alpha", "beta", "dtype_a")
    bad = []
    for i, (g, w) in enumerate(zip(got, want)):
        have = tuple(int(g[f], 16) if f in ("a", "b", "c") else g[f] for f in fields)
        if have != w:
            bad.append("call %d: recorded %r, passed %r" % (i, have, w))
        elif g["dtype_compute"] != g["dtype_c"] or g["batch"] != 1 or g["device"] != -1 or g["stream"] not in (0, "0x0") \
                or not (0 < g["t_begin_ns"] <= g["t_end_ns"]) or g["callsite"] == 0:
            bad.append("call %d: other fields %r" % (i, g))
    laps = len(got) * 112 / 65536.0
    check(len(got) == len(want) and not bad,
          "ring reuse: %d BLAS records (the 64 KiB ring wrapped ~%.0f times) carry exactly the arguments passed"
          % (len(got), laps) + ("" if len(got) == len(want) else " (got %d, want %d)" % (len(got), len(want))),
          "\n".join(bad[:10]))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
