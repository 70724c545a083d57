#!/usr/bin/env python3
"""Writes the hostile traces kept in tests/fuzz/crashes/report/ (the audit's crashing and
resource-exhausting traces, rebuilt field by field): `make_hostile_traces.py DIR` writes them
and the model config into DIR; `--big N DIR/FILE` writes an N-byte trace of STRING records
with invalid UTF-8 (the reader's worst case for memory). Each trace is a valid .mct file
around one extreme field, for the tiny Mixtral of tests/fuzz/corpus/model_config/mixtral-tiny.json
(d 8, V 16: a GEMM of out 16 x in 8 is lm_head, out 4 x in 8 the router). The layouts are
those of include/moecap/trace_format.h."""
import os
import struct
import sys

MAGIC = b"MOECAPT\0"


def header():
    return MAGIC + struct.pack("<HHIQ", 1, 0, 24, 0)


def rec(rtype, payload):
    size = 8 + len(payload)
    pad = (-size) % 8
    return struct.pack("<HHI", rtype, 0, size + pad) + payload + b"\0" * pad


def process(pid=100, argv=(b"prog",), exe=0, host=0):
    blob = b"".join(a + b"\0" for a in argv)
    return rec(1, struct.pack("<iiQQIIII", pid, 1, 1, 1, host, exe, len(argv), len(blob)) + blob)


def string(sid, text):
    return rec(2, struct.pack("<II", sid, len(text)) + text + b"\0")


def gemm(m, n, k, addr, t=1000, tid=7, col_major_t=True):
    """A cuBLAS-style column-major GEMM with A transposed (A = weight, out = m, tokens = n), or
    a row-major one (B = weight transposed, tokens = m, out = n)."""
    if col_major_t:
        layout, ta, tb, a, b = 0, 1, 0, addr, 0x5500000000
    else:
        layout, ta, tb, a, b = 1, 0, 1, 0x5500000000, addr
    return rec(4, struct.pack("<QQqqqqqqqqqqQQQQddiiIHBBBBBBB3x",
                              t, t + 1000, m, n, k, k, k, m, 1, 0, 0, 0, a, b, 0x5600000000, 0,
                              1.0, 0.0, tid, -1, 0, 3, 1, 1, 1, 1, layout, ta, tb))


def router_tap(tokens, experts, payload, tid=7, t=1000):
    return rec(16, struct.pack("<QQqqiHH", t, 0, tokens, experts, tid, 1, 1) + payload)


CONFIG = (b'{"model_type":"mixtral","hidden_size":8,"intermediate_size":4,"num_local_experts":4,'
          b'"num_experts_per_tok":2,"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":16,'
          b'"num_hidden_layers":2,"torch_dtype":"float32"}\n')
LM = 0x7f00000c8000
ROUTER = 0x7f0000104000


def decoder_step(t0, tokens, sequences=None):
    """One forward step of the tiny model by shape: per layer q k v o, router, one expert;
    lm_head over `sequences` rows (default: tokens)."""
    out, t = [], t0
    for layer in range(2):
        base = 0x7f0000100000 + layer * 64 * 4096
        for slot, (o, i) in enumerate([(8, 8), (4, 8), (4, 8), (8, 8), (4, 8)]):
            out.append(gemm(o, tokens, i, base + slot * 4096, t)); t += 2000
        for slot, (o, i) in enumerate([(4, 8), (4, 8), (8, 4)]):
            out.append(gemm(o, tokens, i, base + (8 + slot) * 4096, t)); t += 2000
    out.append(gemm(16, tokens if sequences is None else sequences, 8, LM, t))
    return b"".join(out), t + 2000


def big_strings(path, nbytes):
    """STRING records of 4 KB of invalid UTF-8 each (each byte becomes a 3-byte U+FFFD), ids
    spread over 32 bits, then one ordinary step."""
    with open(path, "wb") as f:
        f.write(header() + process())
        text, sid, n = b"\xff" * 4096, 1, 0
        while n < nbytes:
            r = string(sid, text)
            f.write(r)
            n += len(r)
            sid = (sid * 2654435761 + 12345) % (1 << 32) or 1
        f.write(decoder_step(1000, 1)[0])


def naming_storm(path, n):
    """n TENSOR records of one weight file and n FILE_MAP records each mapping all of it at
    its own address (n x n tensor placements), then one ordinary step."""
    with open(path, "wb") as f:
        f.write(header() + process() + string(1, b"/w/model.safetensors"))
        for i in range(n):
            f.write(string(2 + i, b"model.layers.0.mlp.w%d" % i))
            f.write(rec(9, struct.pack("<QQ8qIIIHH", 64 * i, 64 * i + 64, 4, 4, 0, 0, 0, 0, 0, 0, 1, 2 + i, 2, 1, 0)))
        for i in range(n):
            f.write(rec(8, struct.pack("<QQQQiiII", 1, 0x100000000 * (i + 1), 0, 64 * n, 1, -1, 0, 0)))
        f.write(decoder_step(1000, 1)[0])


def main():
    if sys.argv[1] == "--names":
        naming_storm(sys.argv[3], int(sys.argv[2]))
        return
    if sys.argv[1] == "--big":
        big_strings(sys.argv[3], int(sys.argv[2]))
        return
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    files = {}
    files["config.json"] = CONFIG
    # Each hostile record sits between two ordinary steps, so a report that skips it still has two.
    step1, t = decoder_step(1000, 1)
    step2, _ = decoder_step(t + 10000, 1)
    # 1. lm_head GEMM with n (tokens = sequences) = 2^60: size overflow in the contexts array
    files["gemm-n-2e60.mct"] = header() + process() + step1 + gemm(16, 0x1000000000000000, 8, LM, t) + step2
    # 2. router tap whose tokens x experts x 4 wraps to 0 bytes: out-of-bounds read of the logits
    files["router-tap-tokens-2e62.mct"] = (header() + process() + step1 +
                                           router_tap(0x4000000000000000, 4, struct.pack("<4f", 1, 2, 3, 4), t=t) +
                                           step2)
    # 3a. one GEMM field exhausting memory: lm_head n = 2^29 in a ~120 KB trace of ordinary steps
    body, t2 = b"", 1000
    while len(body) < 120000:
        s, t2 = decoder_step(t2, 1)
        body += s
    files["gemm-n-2e29-120k.mct"] = header() + process() + body + gemm(16, 1 << 29, 8, LM, t2) + decoder_step(t2 + 5000, 1)[0]
    # 3b. a STRING with an id near 2^26 (the old dense table reserved 512 MB for it)
    files["string-id-2e26.mct"] = header() + process() + string((1 << 26) - 1, b"x") + decoder_step(1000, 1)[0]
    # 4. prefill of 2^33 tokens in one sequence: n*(n+1)/2 overflowed int64
    files["prefill-2e33-tokens.mct"] = header() + process() + decoder_step(1000, 1 << 33, 1)[0]
    # 8. an empty trace (the shim leaves one when the disk is full at creation)
    files["empty.mct"] = b""
    # 9. invalid UTF-8 in argv, the exe path and a note
    bad = b"\xff\xfe\xc3(\xed\xa0\x80\xf4\x90\x80\x80 end"
    files["bad-utf8.mct"] = (header() + string(1, b"/usr/bin/" + bad) + string(2, b"host\xc0\xaf") +
                             process(argv=(b"prog", bad, b"\x80"), exe=1, host=2) +
                             string(3, b"note \xe2\x82") + rec(17, struct.pack("<QII", 1, 3, 1)) +
                             decoder_step(1000, 1)[0] + decoder_step(40000, 1)[0])
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
