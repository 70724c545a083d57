#!/usr/bin/env python3
"""`moecap report RUN --model X.gguf` (GGUF model, llama.cpp adapter records) on hostile inputs:
the kept inputs of tests/fuzz/crashes/ggml/ (written by tests/fuzz/make_hostile_gguf.py, which
must still reproduce them byte for byte), step storms, and hostile tensor names for `dump`.

Truths that do not come from the report:
- a clean run of the tiny model: per-step bytes and FLOPs computed here from the generator's
  tensor table with the rules of docs/llama.md (an independent implementation);
- a hostile GGUF is refused (exit 2) with a message naming its defect;
- hostile records change nothing but the counters that say they were skipped: the report of
  each hostile trace equals the clean run's (the two ordinary steps around the records);
- peak RSS (os.wait4) within the documented bound (docs/reliability.md): 128 MiB + 16 x the
  trace bytes + 256 bytes x layers x experts of the model + 4 x the GGUF's header bytes."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import make_hostile_gguf as g  # noqa: E402
import make_hostile_traces as mh  # noqa: E402
import test_hostile_report as thr  # noqa: E402  (its child runner: wall time, peak RSS)
from tap import FAILS, check  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
MC = os.path.join(ROOT, BUILD, "bin", "moecap")
HW = os.path.join(ROOT, "tests", "report", "hw-test.json")
CRASH = os.path.join(HERE, "crashes", "ggml")
SAN = os.environ.get("SAN") == "1"
run = thr.run


def split(data):
    """A kept input (GGUF then trace, as fuzz_ggml.c cuts it)."""
    i = data.find(mh.MAGIC)
    return (data, b"") if i < 0 else (data[:i], data[i:])


def bound(gguf_bytes, trace_bytes, layers=g.LAYERS, experts=g.EXPERTS):
    header = gguf_bytes.find(b"\0" * 32)   # the tensor table ends where the zero data begins
    return 128 * 2**20 + 16 * trace_bytes + 256 * layers * experts + 4 * (header if header > 0 else len(gguf_bytes))


def moecap_report(tmp, name, gguf_bytes, trace_bytes, timeout=120):
    d = os.path.join(tmp, name)
    os.makedirs(os.path.join(d, "run"))
    with open(os.path.join(d, "model.gguf"), "wb") as f:
        f.write(gguf_bytes)
    with open(os.path.join(d, "run", "t.mct"), "wb") as f:
        f.write(trace_bytes)
    rc, _, err, wall, rss = run([MC, "report", os.path.join(d, "run"), "--model", os.path.join(d, "model.gguf"),
                                 "--hw", HW, "--format", "json", "--quiet"], timeout)
    rep = None
    if rc == 0:
        with open(os.path.join(d, "run", "report.json"), "rb") as f:
            rep = json.loads(f.read().decode("utf-8"))
    return rc, err, wall, rss, rep


# ---------- the rules of docs/llama.md, from the tensor table ----------
def expected_step(tokens, pos):
    """Bytes and FLOPs of decode_step(tokens, pos) of the tiny F32 model (one ubatch, one sequence)."""
    size = {n.decode(): g.tensor_bytes(ne, ty) for n, ne, ty in g.model_tensors()}
    dense = sum(v for n, v in size.items() if n.startswith("blk.") and ("attn_" in n and "norm" not in n or "gate_inp" in n))
    dense += size["output.weight"]
    norms = sum(v for n, v in size.items() if n.endswith("_norm.weight"))
    embd_row = size["token_embd.weight"] // g.VOCAB
    per_expert = size["blk.0.ffn_up_exps.weight"] // g.EXPERTS
    routed = g.LAYERS * 3 * g.TOPK * per_expert           # each layer chose TOPK experts (decode_step)
    head_dim = g.D // g.HEADS
    kv_tok = 2 * g.KVH * head_dim * 2 * g.LAYERS            # K and V, F16, every layer
    ctx = pos + tokens
    att_ctx = sum(p + 1 for p in range(pos, pos + tokens))
    kv_out = g.KVH * g.D // g.HEADS
    per_layer = 2 * g.D * tokens * (g.D + kv_out + kv_out + g.D + g.EXPERTS)     # q k v o router
    experts = 3 * 2 * g.D * g.FF * tokens * g.TOPK                               # gate up down: routed pairs
    return {"dense_weights": dense + norms + tokens * embd_row, "routed_expert_weights": routed,
            "kv_read": ctx * kv_tok, "kv_written": tokens * kv_tok,
            "gemm": g.LAYERS * (per_layer + experts) + 2 * g.D * g.VOCAB,           # output: one row
            "attention": g.LAYERS * 2 * g.HEADS * 2 * head_dim * att_ctx}


def figures(step):
    b, f = step["bytes"], step["flops"]
    return {"dense_weights": b["dense_weights"], "routed_expert_weights": b["routed_expert_weights"],
            "kv_read": b["kv_read"], "kv_written": b["kv_written"], "gemm": f["gemm"], "attention": f["attention"]}


def aggregate(rep):
    return {"steps": rep["aggregate"]["steps"], "bytes": rep["aggregate"]["bytes"], "flops": rep["aggregate"]["flops"],
            "experts": [[l.get("tokens_per_expert") for l in s["layers"]] for s in rep["steps"]]}


GGUF_REFUSED = {   # kept input -> what the refusal must say
    "gguf-2e20-tensors": "more than the file can hold",
    "gguf-ne-overflow": "size beyond 2^64",
    "gguf-row-bytes-2e64": "size beyond 2^64",
    "gguf-ne-negative": "negative dimension",
    "gguf-tensor-past-eof": "past the end of the file",
    "gguf-ndims-5": "malformed GGUF tensor table",
    "gguf-type-unknown": "ggml type 99",
    "gguf-q8-row-48": "not a multiple of its type's block of 32",
    "gguf-experts-2e31": "expert_count = 2147483648 is outside",
    "gguf-kv-heads-minus1": "head_count_kv = -1 is outside",
    "gguf-used-gt-experts": "used <= experts",
    "gguf-string-array-2e62": "malformed GGUF metadata",
}
TRACE_SKIPPED = {   # kept input -> records it must skip as implausible (the figures stay the clean run's)
    "matmul-ne-2e40": 1, "matmul-ne-negative": 1, "batch-positions-overflow": 4, "batch-tokens-negative": 2,
    "batch-twice": 1, "route-hostile": 0,
}


def main():
    tmp = tempfile.mkdtemp()
    try:
        gen = os.path.join(tmp, "gen")
        subprocess.run([sys.executable, os.path.join(HERE, "make_hostile_gguf.py"), gen], check=True)
        kept = sorted(os.listdir(CRASH))
        diff = [f for f in sorted(set(kept) | set(os.listdir(gen)))
                if not os.path.exists(os.path.join(gen, f)) or not os.path.exists(os.path.join(CRASH, f))
                or open(os.path.join(gen, f), "rb").read() != open(os.path.join(CRASH, f), "rb").read()]
        check(not diff, "make_hostile_gguf.py reproduces the %d kept inputs" % len(kept), diff)
        covered = set(GGUF_REFUSED) | set(TRACE_SKIPPED) | {"matmul-layer-2e32"}
        check(set(kept) == covered, "every kept input has its case here", set(kept) ^ covered)

        # the clean run: two steps (4-token prefill, then one decode token) against the rules
        good, _ = g.hostile()
        s1, t = g.decode_step(1, 1000, tokens=4, pos=0)
        s2, _ = g.decode_step(2, t, tokens=1, pos=4)
        clean = g.trace(s1, s2)
        rc, err, wall, rss, rep = moecap_report(tmp, "clean", good, clean)
        want = [expected_step(4, 0), expected_step(1, 4)]
        got = [figures(s) for s in rep["steps"]] if rc == 0 else []
        check(rc == 0 and got == want,
              "clean run: per-step bytes and FLOPs equal docs/llama.md's rules from the tensor table",
              "rc %d %s\ngot  %s\nwant %s" % (rc, err, got, want))
        base = aggregate(rep) if rc == 0 else {}

        for name, what in GGUF_REFUSED.items():
            gg, tr = split(open(os.path.join(CRASH, name), "rb").read())
            rc, err, wall, rss, _ = moecap_report(tmp, name, gg, tr)
            lim = bound(gg, len(tr))
            check(rc == 2 and what in err and "--model" not in err[:0] and wall < 30 and (SAN or rss <= lim),
                  "%s: refused (exit 2) naming it, %.2f s, peak RSS %.1f MiB <= %.1f MiB"
                  % (name, wall, rss / 2**20, lim / 2**20),
                  "rc %d: %s" % (rc, err))

        for name, skipped in TRACE_SKIPPED.items():
            gg, tr = split(open(os.path.join(CRASH, name), "rb").read())
            rc, err, wall, rss, rep = moecap_report(tmp, name, gg, tr)
            got = aggregate(rep) if rc == 0 else {}
            lc = rep["run"]["llama_cpp"] if rc == 0 else {}
            notes = " ".join(n["text"] for n in rep["notes"]) if rc == 0 else ""
            same = {k: got.get(k) == base[k] for k in base}
            if name == "route-hostile":   # its one plausible record: 7 more tokens for experts 0-3 of layer 0, step 2
                same["experts"] = got.get("experts", [[]])[0] == base["experts"][0]
            check(rc == 0 and all(same.values()) and lc.get("implausible_records") == skipped
                  and (not skipped or "skipped as corrupt" in notes) and (SAN or rss <= bound(gg, len(tr))),
                  "%s: exit 0, the clean run's figures, %d record(s) skipped and said so" % (name, skipped),
                  "rc %d %s\nsame %s\nllama_cpp %s" % (rc, err, same, lc))

        # a plausible expert product whose layer is "blk.4294967296" (was: read as layer 0,
        # its experts' bytes counted there): no layer, counted without routing; its FLOPs count
        gg, tr = split(open(os.path.join(CRASH, "matmul-layer-2e32"), "rb").read())
        rc, err, _, _, rep = moecap_report(tmp, "layer", gg, tr)
        got = aggregate(rep) if rc == 0 else {}
        drop = lambda b: {k: v for k, v in b.items() if k != "all_experts_total"}   # noqa: E731 (counts every product)
        check(rc == 0 and drop(got["bytes"]) == drop(base["bytes"]) and got["flops"]["gemm"] == base["flops"]["gemm"] + 128
              and rep["run"]["llama_cpp"]["expert_products_without_routing"] == 1,
              "layer number beyond int: no routing found, routed bytes unchanged, its FLOPs (2x8x4x2) counted",
              "rc %d %s %s" % (rc, err, got))

        # step storms (was: a layers x experts table per open step, quadratic searches), written
        # by the generator in a child process: the RSS a child reports includes what it
        # inherited at fork, so this process stays small
        def storm(name, steps, seqs=1, model="tiny"):
            d = os.path.join(tmp, name)
            subprocess.run([sys.executable, os.path.join(HERE, "make_hostile_gguf.py"), "--storm", str(steps), str(seqs), d]
                           + (["big"] if model == "big" else []), check=True)
            gg = open(os.path.join(d, "model.gguf"), "rb").read()
            tb = os.path.getsize(os.path.join(d, "run", "storm.mct"))
            rc, _, err, wall, rss = run([MC, "report", os.path.join(d, "run"), "--model", os.path.join(d, "model.gguf"),
                                         "--hw", HW, "--format", "json", "--quiet"], 600)
            rep = None
            if rc == 0:   # read in a child too: the limits model's report is ~25 MB of JSON
                out = subprocess.run([sys.executable, "-c", "import json, sys; r = json.load(open(sys.argv[1], 'rb')); "
                                      "print(json.dumps({'steps': r['aggregate']['steps'], "
                                      "'sequences': r['steps'][0]['sequences'] if r['steps'] else 0}))",
                                      os.path.join(d, "run", "report.json")], capture_output=True, check=True).stdout
                rep = json.loads(out)
            lim = bound(gg, tb, *((g.BIG_LAYERS, g.BIG_EXPERTS) if model == "big" else (g.LAYERS, g.EXPERTS)))
            shutil.rmtree(d, ignore_errors=True)
            return rc, err, wall, rss, rep, tb, lim

        rc, err, wall, rss, rep, tb, lim = storm("storm-big", 300, model="big")
        check(rc == 0 and rep["steps"] == 300 and (SAN or rss <= lim),
              "300 open steps of a 256-layer, 1024-expert model, %d KB: exit 0, 300 steps, %.1f s, peak RSS %.0f MiB "
              "<= %.0f MiB (was: 16 bytes x layers x experts per open step)" % (tb >> 10, wall, rss / 2**20, lim / 2**20),
              "rc %d %s" % (rc, err))
        walls = {}
        for n in (10000, 80000):
            rc, err, walls[n], rss, rep, tb, lim = storm("storm-%d" % n, n)
            check(rc == 0 and rep["steps"] == n and (SAN or rss <= lim),
                  "%d open steps (%.1f MB): exit 0, every step, %.2f s, peak RSS %.1f MiB <= %.1f MiB"
                  % (n, tb / 1e6, walls[n], rss / 2**20, lim / 2**20), "rc %d %s" % (rc, err))
        # linear: 8x the steps in about 8x the time (the search over all steps made it 64x)
        check(walls[80000] < 24 * max(walls[10000], 0.05),
              "8x the steps take %.1fx the time (< 24x)" % (walls[80000] / max(walls[10000], 0.05)))
        rc, err, wall, rss, rep, tb, lim = storm("seqs", 1, 262144)
        check(rc == 0 and rep["sequences"] == 262144 and wall < (40 if SAN else 8) and (SAN or rss <= lim),
              "one batch of 262144 sequences (%.1f MB): exit 0, all of them, %.2f s (was 16.8 s), peak RSS %.1f MiB <= %.1f MiB"
              % (tb / 1e6, wall, rss / 2**20, lim / 2**20),
              "rc %d %s" % (rc, err))

        # dump: a tensor name with a quote, a backslash, a control byte and invalid UTF-8
        name = b'blk.0."\\\x01\xff\xc3(.weight'
        path = os.path.join(tmp, "names.mct")
        with open(path, "wb") as f:
            f.write(g.trace(g.ggml_matmul(1, name, [g.D, g.D, 1, 1], [g.D, 1, 1, 1], 1000)))
        rc, out, err, _, _ = run([MC, "dump", path])
        try:
            line = [json.loads(x.decode("utf-8")) for x in out.splitlines()][-1]
            ok = rc == 0 and line["w_name"] == name.decode("utf-8", "replace")
        except (ValueError, IndexError, KeyError) as e:
            ok, line = False, e
        check(ok, "dump: a hostile ggml tensor name is escaped and repaired (was written raw)", line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
