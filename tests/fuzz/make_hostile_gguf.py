#!/usr/bin/env python3
"""GGUF models and llama.cpp-adapter traces (LLAMA_BATCH, GGML_ROUTE, GGML_MATMUL records), for
the hostile tests of `moecap report --model X.gguf` (tests/fuzz/test_hostile_gguf.py) and the
seed corpus of the `ggml` fuzz target. Layouts: include/moecap/trace_format.h (records) and
llama.cpp's GGUF v3 (magic, version, tensor count, key-value count, key-values, tensor infos,
data aligned to general.alignment).

    make_hostile_gguf.py DIR          writes the kept hostile inputs into DIR (tests/fuzz/crashes/ggml/
                                      holds the same bytes)
    make_hostile_gguf.py --corpus DIR writes the fuzz target's seed inputs (tests/fuzz/corpus/ggml/)
    make_hostile_gguf.py --storm STEPS SEQS DIR [big]
                                      DIR/model.gguf (tiny, or 256 layers x 1024 experts) and DIR/run/storm.mct:
                                      STEPS open steps closed in reverse order, SEQS sequences each

The tiny model: "llama" with experts (Mixtral style), d 8, 2 layers, 4 experts, top-2, expert
FFN 4, 2 heads, 1 KV head, vocab 16, F32 tensors. A fuzz input is a GGUF file and a trace
concatenated (fuzz_ggml.c cuts them at the first trace magic); each hostile input is the good
model or a hostile one, then a trace of two ordinary steps around the hostile records (or
three ordinary steps)."""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_hostile_traces as mh  # noqa: E402  (trace header, records, PROCESS)

# ---------- GGUF ----------
KV_U32, KV_I32, KV_STRING, KV_ARRAY, KV_U64 = 4, 5, 8, 9, 10
F32, F16, Q8_0, Q4_K = 0, 1, 8, 12
BLOCK = {F32: (1, 4), F16: (1, 2), Q8_0: (32, 34), Q4_K: (256, 144)}   # elements, bytes per block


def gstr(s):
    return struct.pack("<Q", len(s)) + s


def kv(key, t, value):
    if t == KV_STRING:
        v = gstr(value)
    elif t in (KV_U32, KV_I32):
        v = struct.pack("<I" if t == KV_U32 else "<i", value)
    elif t == KV_U64:
        v = struct.pack("<Q", value)
    else:
        v = value   # already encoded (arrays)
    return gstr(key) + struct.pack("<I", t) + v


def tensor_bytes(ne, ty):
    blk, nb = BLOCK[ty]
    n = ne[0] // blk * nb
    for x in ne[1:]:
        n *= x
    return n


D, LAYERS, EXPERTS, TOPK, FF, HEADS, KVH, VOCAB = 8, 2, 4, 2, 4, 2, 1, 16


def model_meta(arch=b"llama", **over):
    meta = {"embedding_length": D, "block_count": LAYERS, "feed_forward_length": FF,
            "attention.head_count": HEADS, "attention.head_count_kv": KVH, "expert_count": EXPERTS,
            "expert_used_count": TOPK, "vocab_size": VOCAB, "context_length": 64}
    meta.update(over)
    return [kv(b"general.architecture", KV_STRING, arch)] + [
        kv(arch + b"." + k.encode(), KV_U32 if 0 <= v < 2**32 else KV_U64, v % 2**64) for k, v in meta.items()]


def model_tensors(expert_type=F32):
    """(name, ne innermost first, ggml type) of the tiny model."""
    t = [(b"token_embd.weight", [D, VOCAB], F32), (b"output_norm.weight", [D], F32), (b"output.weight", [D, VOCAB], F32)]
    for l in range(LAYERS):
        p = b"blk.%d." % l
        t += [(p + b"attn_norm.weight", [D], F32), (p + b"attn_q.weight", [D, D], F32),
              (p + b"attn_k.weight", [D, KVH * D // HEADS], F32), (p + b"attn_v.weight", [D, KVH * D // HEADS], F32),
              (p + b"attn_output.weight", [D, D], F32), (p + b"ffn_norm.weight", [D], F32),
              (p + b"ffn_gate_inp.weight", [D, EXPERTS], F32),
              (p + b"ffn_gate_exps.weight", [D, FF, EXPERTS], F32), (p + b"ffn_up_exps.weight", [D, FF, EXPERTS], F32),
              (p + b"ffn_down_exps.weight", [FF, D, EXPERTS], F32)]
    return [(n, ne, expert_type if b"_exps" in n else ty) for n, ne, ty in t]


def gguf(meta, tensors, alignment=32, data=None, version=3, n_tensors=None, n_kv=None, offsets=None):
    """A GGUF file; tensors' data packed in order (or at `offsets`), zero-filled unless `data`."""
    infos, off, offs = b"", 0, []
    for i, (name, ne, ty) in enumerate(tensors):
        o = offsets[i] if offsets else off
        offs.append(o)
        infos += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", x % 2**64) for x in ne)
        infos += struct.pack("<IQ", ty, o % 2**64)
        if ty in BLOCK and not offsets and all(0 <= x < 1 << 20 for x in ne):   # hostile shapes: no data
            off += (tensor_bytes(ne, ty) + alignment - 1) // alignment * alignment
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                 len(meta) if n_kv is None else n_kv) + b"".join(meta) + infos
    head += b"\0" * ((-len(head)) % alignment)
    return head + (data if data is not None else b"\0" * off)


# ---------- llama.cpp adapter records ----------
def llama_batch(step, tokens, seqs, t0, t1, result=0, tid=7, outputs=1):
    """seqs: (seq_id, tokens, pos_first, pos_last)"""
    return mh.rec(41, struct.pack("<QQQqiiII", t0, t1, step, tokens, tid, result, len(seqs), outputs) +
                  b"".join(struct.pack("<iiii", *s) for s in seqs))


def ggml_route(step, layer, counts, t, rows, k=TOPK, invalid=0, tid=7, experts=None):
    return mh.rec(42, struct.pack("<QQiiiiii", t, step, layer, tid, rows, k,
                                  len(counts) if experts is None else experts, invalid) +
                  b"".join(struct.pack("<I", c) for c in counts))


def ggml_matmul(step, name, w_ne, x_ne, t, op=1, w_type=F32, ids_k=0, ids_rows=0, w_nb=None, tid=7):
    blk, bs = BLOCK.get(w_type, (1, 4))
    if w_nb is None:
        nb0 = bs
        nb1 = nb0 * (w_ne[0] // blk)
        w_nb = [nb0, nb1, nb1 * w_ne[1], nb1 * w_ne[1] * w_ne[2]]
    return mh.rec(43, struct.pack("<QQ4q4Q4qqqQiHHII64s", t, step, *[x for x in w_ne], *[x % 2**64 for x in w_nb],
                                  *x_ne, ids_k, ids_rows, 0x7f0000000000, tid, op, w_type, bs, blk, name))


def decode_step(step, t, tokens=1, pos=0, seq=0, experts_chosen=((0, 1), (2, 3))):
    """One llama_decode call of the tiny model: per layer attention products, routing, the
    three expert products; then the output product and the LLAMA_BATCH record."""
    out, t_begin = [], t
    for l in range(LAYERS):
        p = b"blk.%d." % l
        for n, o in ((b"attn_q", D), (b"attn_k", KVH * D // HEADS), (b"attn_v", KVH * D // HEADS), (b"attn_output", D)):
            out.append(ggml_matmul(step, p + n + b".weight", [D, o, 1, 1], [D, tokens, 1, 1], t)); t += 100
        out.append(ggml_matmul(step, p + b"ffn_gate_inp.weight", [D, EXPERTS, 1, 1], [D, tokens, 1, 1], t)); t += 100
        counts = [0] * EXPERTS
        for e in experts_chosen[l]:
            counts[e] += tokens
        out.append(ggml_route(step, l, counts, t, tokens)); t += 100
        for n, (i, o) in ((b"ffn_gate_exps", (D, FF)), (b"ffn_up_exps", (D, FF)), (b"ffn_down_exps", (FF, D))):
            out.append(ggml_matmul(step, p + n + b".weight", [i, o, EXPERTS, 1], [i, TOPK, tokens, 1], t, op=2,
                                   ids_k=TOPK, ids_rows=tokens)); t += 100
    out.append(ggml_matmul(step, b"output.weight", [D, VOCAB, 1, 1], [D, 1, 1, 1], t)); t += 100
    out.append(llama_batch(step, tokens, [(seq, tokens, pos, pos + tokens - 1)], t_begin, t))
    return b"".join(out), t + 1000


def trace(*bodies):
    return mh.header() + mh.process() + b"".join(bodies)


def good_run(steps=3):
    body, t = decode_step(1, 1000, tokens=4, pos=0)
    for s in range(2, steps + 1):
        b, t = decode_step(s, t, tokens=1, pos=2 + s)
        body += b
    return trace(body)


# ---------- the hostile inputs ----------
def hostile():
    """name -> (GGUF bytes or None for the good model, trace bytes or None for the good run)."""
    good = gguf(model_meta(), model_tensors())
    step1, t = decode_step(1, 1000, tokens=4, pos=0)
    step2, t2 = decode_step(2, t, tokens=1, pos=4)
    c = {}
    # --- GGUF model ---
    # a tensor count of 2^20 in a header of 24 bytes: must not reserve 100 MiB of tensor table
    c["gguf-2e20-tensors"] = (b"GGUF" + struct.pack("<IQQ", 3, 1 << 20, 0), None)
    # ne[0] = 2^63 - 1 and ne[1] = 2^62: byte span overflowed (file_end below file_begin)
    tt = model_tensors()
    tt[0] = (b"token_embd.weight", [(1 << 63) - 1, 1 << 62], F32)
    c["gguf-ne-overflow"] = (gguf(model_meta(), tt), None)
    # F32 rows of 2^62 elements: 2^64 bytes wrapped to 0 (a tensor of no bytes, accepted)
    tt = model_tensors()
    tt[1] = (b"output_norm.weight", [1 << 62], F32)
    c["gguf-row-bytes-2e64"] = (gguf(model_meta(), tt), None)
    # negative ne
    tt = model_tensors()
    tt[1] = (b"output_norm.weight", [-8], F32)
    c["gguf-ne-negative"] = (gguf(model_meta(), tt), None)
    # a tensor whose data lies past the end of the file (truncated download)
    c["gguf-tensor-past-eof"] = (good[:-64], None)
    # n_dims 5 and 0
    tt = model_tensors()
    tt[1] = (b"output_norm.weight", [8, 1, 1, 1, 1], F32)
    c["gguf-ndims-5"] = (gguf(model_meta(), tt), None)
    # an unknown ggml type and a Q8_0 row of 48 elements (not a multiple of its block of 32)
    tt = model_tensors()
    tt[1] = (b"output_norm.weight", [8], 99)
    c["gguf-type-unknown"] = (gguf(model_meta(), tt), None)
    tt = model_tensors()
    tt[1] = (b"output_norm.weight", [48], Q8_0)
    c["gguf-q8-row-48"] = (gguf(model_meta(), tt), None)
    # metadata: expert_count 2^31 (per-step state was layers x experts x 16 bytes)
    c["gguf-experts-2e31"] = (gguf(model_meta(expert_count=1 << 31), model_tensors()), None)
    # head_count_kv as I32 -1 (was read as 4294967295), key_length 2^40
    meta = model_meta()
    meta[5] = kv(b"llama.attention.head_count_kv", KV_I32, -1)
    c["gguf-kv-heads-minus1"] = (gguf(meta + [kv(b"llama.attention.key_length", KV_U64, 1 << 40)], model_tensors()), None)
    # expert_used_count above expert_count
    c["gguf-used-gt-experts"] = (gguf(model_meta(expert_used_count=9), model_tensors()), None)
    # a string array of 2^62 strings
    meta = model_meta() + [kv(b"tokenizer.ggml.tokens", KV_ARRAY, struct.pack("<IQ", KV_STRING, 1 << 62) + gstr(b"a"))]
    c["gguf-string-array-2e62"] = (gguf(meta, model_tensors()), None)
    # --- trace records ---
    # matmul with w_ne[0..1] = 2^40 and nb = 2^62: FLOPs and bytes products wrap uint64
    c["matmul-ne-2e40"] = (None, trace(step1, ggml_matmul(2, b"blk.0.attn_q.weight", [1 << 40, 1 << 40, 1, 1],
                                                           [1 << 40, 1 << 40, 1, 1], t, w_nb=[4, 1 << 62, 1 << 62, 1 << 62]),
                                       step2))
    # a negative ne and a negative ids_rows
    c["matmul-ne-negative"] = (None, trace(step1, ggml_matmul(2, b"blk.1.ffn_up_exps.weight", [D, FF, -4, 1],
                                                               [D, TOPK, -1, 1], t, op=2, ids_k=TOPK, ids_rows=-1), step2))
    # a layer number that does not fit an int ("blk.4294967296" was read by atoi as layer 0)
    c["matmul-layer-2e32"] = (None, trace(step1, ggml_route(2, 0, [1, 1, 0, 0], t, 1),
                                          ggml_matmul(2, b"blk.4294967296.ffn_up_exps.weight", [D, FF, EXPERTS, 1],
                                                      [D, TOPK, 1, 1], t + 1, op=2, ids_k=TOPK, ids_rows=1), step2))
    # a batch whose positions overflow: pos 2^31-1 with 2^31-1 tokens, four times
    big = (1 << 31) - 1
    c["batch-positions-overflow"] = (None, trace(step1, b"".join(
        ggml_matmul(10 + i, b"output.weight", [D, VOCAB, 1, 1], [D, 1, 1, 1], t + i) +
        llama_batch(10 + i, big, [(0, big, -1, -1), (1, big, big, big)], t + i, t + i + 1) for i in range(4)), step2))
    # negative token counts; a call that ends before it begins
    c["batch-tokens-negative"] = (None, trace(step1, ggml_matmul(9, b"output.weight", [D, VOCAB, 1, 1], [D, 1, 1, 1], t) +
                                              llama_batch(9, -5, [(0, -7, -3, -2)], t, t + 1) +
                                              ggml_matmul(8, b"output.weight", [D, VOCAB, 1, 1], [D, 1, 1, 1], t) +
                                              llama_batch(8, 1, [(0, 1, 9, 9)], t + 5, t), step2))
    # two batch records for one step (the first one's contexts leaked)
    c["batch-twice"] = (None, trace(step1, llama_batch(1, 4, [(0, 4, 0, 3)], 2000, 2500), step2))
    # a route of a layer the model does not have, and one with 2^20 counts (more than experts)
    c["route-hostile"] = (None, trace(step1, ggml_route(2, 1 << 30, [1] * 4, t, 1), ggml_route(2, -1, [1] * 4, t, 1),
                                      ggml_route(2, 0, [7] * (1 << 12), t, 1, experts=-3), step2))
    return good, c


BIG_LAYERS, BIG_EXPERTS = 256, 1024


def big_model():
    """A large model: 256 layers x 1024 experts (metadata only, two small tensors)."""
    return gguf(model_meta(block_count=BIG_LAYERS, expert_count=BIG_EXPERTS), model_tensors()[:2])


def step_storm(n, seqs=1):
    """n steps that each hold one expert product and one routing of their own (step ids all
    different, each a new open step), then n batch records closing them in reverse order;
    each batch lists `seqs` sequences with ids of their own."""
    body, t = [], 1000
    for s in range(1, n + 1):
        body.append(ggml_route(s, s % LAYERS, [1, 1, 0, 0], t, 1))
        body.append(ggml_matmul(s, b"blk.%d.ffn_up_exps.weight" % (s % LAYERS), [D, FF, EXPERTS, 1], [D, TOPK, 1, 1],
                                t + 1, op=2, ids_k=TOPK, ids_rows=1))
        t += 10
    for s in range(n, 0, -1):
        body.append(llama_batch(s, seqs, [(s * seqs + q, 1, 5, 5) for q in range(seqs)], t, t + 5))
        t += 10
    return trace(b"".join(body))


def main():
    if sys.argv[1] == "--storm":   # --storm STEPS SEQS_PER_STEP DIR [big]: model.gguf (tiny or big) and run/storm.mct
        d = sys.argv[4]
        os.makedirs(os.path.join(d, "run"), exist_ok=True)
        with open(os.path.join(d, "model.gguf"), "wb") as f:
            f.write(big_model() if sys.argv[5:] == ["big"] else gguf(model_meta(), model_tensors()))
        with open(os.path.join(d, "run", "storm.mct"), "wb") as f:
            f.write(step_storm(int(sys.argv[2]), int(sys.argv[3])))
        return
    if sys.argv[1] == "--corpus":
        d = sys.argv[2]
        os.makedirs(d, exist_ok=True)
        good = gguf(model_meta(), model_tensors())
        seeds = {"good-f32": good + good_run(3),
                 "good-q8": gguf(model_meta(embedding_length=32), [
                     (n, [32 if x == D else x for x in ne], ty) for n, ne, ty in model_tensors(Q8_0)]) + good_run(2),
                 "prefill-only": good + trace(decode_step(1, 1000, tokens=6)[0]),
                 "qwen2moe": gguf(model_meta(b"qwen2moe", expert_feed_forward_length=FF,
                                             expert_shared_feed_forward_length=8), model_tensors()) + good_run(2)}
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        return
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    good, cases = hostile()
    for name, (g, tr) in cases.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write((g if g is not None else good) + (tr if tr is not None else good_run(3)))


if __name__ == "__main__":
    main()
