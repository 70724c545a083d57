#!/usr/bin/python3
"""llama.cpp (npm-prebuilt libllama, unmodified) profiled by libmoecap.so, against truths
that do not come from the shim or the report:

- exact: tests/llama/llama_truth.c registers its own scheduler eval callback and writes the
  experts of every computed ffn_moe_topk row; `moecap report --model X.gguf` of the same run
  under the shim must give, per llama_decode step, the same tokens, sequences, experts and
  tokens per expert per layer (mixtral-style "llama" and qwen2moe; batch 1 and > 1; prefill,
  decode, mixed; prefill split into ubatches). The program's output and its own truth must be
  identical with and without the shim.
- bytes: each step's weight/KV bytes equal a hand computation from the GGUF tensor table
  (parsed here, types and shapes) and the truth's routing, for F32, F16 and Q8_0 experts.
- agreement: moe-ref and llama.cpp on the same F32 weights and token ids (llama_truth
  --follow feeds moe-ref's tokens): activated experts per layer per step; every difference
  must be a near-tie of router probabilities (float64 oracle), printed with the rate.
- an unknown library version: adapter off, one stderr line, output unchanged.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "engine"))
from preload import preload_env  # noqa: E402
from tap import check, finish, skip  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
TRUTH = os.path.join(BUILD, "tests", "llama_truth")
MOEREF = os.path.join(BUILD, "bin", "moe-ref")
MOECAP = os.path.join(BUILD, "bin", "moecap")
SHIM = os.path.abspath(os.path.join(BUILD, "lib", "libmoecap.so"))
HW = "tests/report/hw-test.json"


def run(cmd, env=None, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return p


# ---------- GGUF tensor table (own parser) ----------
BLOCK = {0: (4, 1), 1: (2, 1), 2: (18, 32), 8: (34, 32)}   # ggml type: (bytes per block, elements per block)


def gguf_tensors(path):
    with open(path, "rb") as f:
        b = f.read()
    assert b[:4] == b"GGUF"
    o = 8
    nt, nkv = struct.unpack_from("<QQ", b, o)
    o += 16

    def s(o):
        (n,) = struct.unpack_from("<Q", b, o)
        return b[o + 8:o + 8 + n].decode(), o + 8 + n
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip(t, o):
        if t == 8:
            return s(o)[1]
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, o)
            o += 12
            for _ in range(n):
                o = skip(et, o)
            return o
        return o + sizes[t]
    for _ in range(nkv):
        _, o = s(o)
        (t,) = struct.unpack_from("<I", b, o)
        o = skip(t, o + 4)
    out = {}
    for _ in range(nt):
        name, o = s(o)
        (nd,) = struct.unpack_from("<I", b, o)
        ne = list(struct.unpack_from("<" + "Q" * nd, b, o + 4))
        o += 4 + 8 * nd
        typ, off = struct.unpack_from("<IQ", b, o)
        o += 12
        bs, el = BLOCK[typ]
        rows = 1
        for x in ne[1:]:
            rows *= x
        out[name] = {"ne": ne, "type": typ, "bytes": ne[0] // el * bs * rows, "offset": off}
    data = (o + 31) // 32 * 32
    for t in out.values():
        t["data"] = b[data + t["offset"]:data + t["offset"] + t["bytes"]]
    return out


def dequantize(t):
    """Floats of a GGUF tensor from the block formats (F32, F16, Q8_0, Q4_0), and the
    largest rounding error per element (half a quantization step; Q4_0 one step at its clipped
    end; f16 rounding for F16)."""
    import numpy as np
    raw, typ = t["data"], t["type"]
    if typ == 0:
        v = np.frombuffer(raw, "<f4").astype(np.float64)
        return v, np.zeros_like(v)
    if typ == 1:
        v = np.frombuffer(raw, "<f2").astype(np.float64)
        return v, np.abs(v) * 2.0 ** -11
    blk = 34 if typ == 8 else 18
    a = np.frombuffer(raw, np.uint8).reshape(-1, blk)
    d = a[:, :2].copy().view("<f2").astype(np.float64)     # (blocks, 1)
    if typ == 8:
        q = a[:, 2:].view(np.int8).astype(np.float64)
    else:
        lo, hi = (a[:, 2:] & 15).astype(np.float64), (a[:, 2:] >> 4).astype(np.float64)
        q = np.concatenate([lo, hi], axis=1) - 8
    v = (d * q).reshape(-1)
    # Q4_0 spans [-8, 7] steps: values near +8 steps clip to 7, up to one whole step away
    return v, np.repeat(np.abs(d) * (0.5 if typ == 8 else 1.0), 32, axis=1).reshape(-1)


def check_quantized(models):
    """The writer's F16/Q8_0/Q4_0 blocks decode (format spec, numpy here) to the F32 weights
    within half a quantization step (plus the scale's own f16 rounding)."""
    import numpy as np
    sys.path.insert(0, os.path.join(HERE, "..", "engine"))
    from oracle import load_safetensors
    md = models["mixtral", "f32"][0]
    w = load_safetensors(os.path.join(md, "model.safetensors"))
    ref = np.concatenate([w[f"model.layers.0.block_sparse_moe.experts.{e}.w3.weight"].reshape(-1) for e in range(8)])
    for ty in ("f16", "q8_0", "q4_0"):
        t = gguf_tensors(models["mixtral", ty][1])["blk.0.ffn_up_exps.weight"]
        v, step = dequantize(t)
        err = np.abs(v - ref)
        bound = step * 1.002 + np.abs(ref) * 2.0 ** -10 + 1e-12
        worst = float(np.max(err - bound))
        check(v.shape == ref.shape and worst <= 0 and (ty == "f16" or float(np.max(err)) > 0),
              f"{ty}: blk.0.ffn_up_exps decodes to the F32 experts within the format's rounding",
              f"shape {v.shape} vs {ref.shape}, worst excess {worst}")


# ---------- runs ----------
def read_lines(path):
    return [json.loads(x) for x in open(path)]


def truth_steps(path):
    """[{tokens, sequences, ubatches: [{layer: ids}]}] per llama_decode."""
    steps, cur = [], {}
    for r in read_lines(path):
        if "ubatch" in r:
            cur.setdefault(r["ubatch"], {})[r["layer"]] = r["ids"]
        else:
            steps.append({"tokens": r["tokens"], "sequences": r["sequences"],
                          "ubatches": [cur.get(u, {}) for u in range(r["ubatches"])]})
            cur = {}
    return steps


def counts_per_layer(step, layers):
    res = []
    for layer in range(layers):
        c = {}
        for ub in step["ubatches"]:
            for row in ub.get(layer, []):
                for e in row:
                    c[e] = c.get(e, 0) + 1
        res.append(c)
    return res


def schedule(prompt_lens, gen, mixed):
    """The truth program's schedule: per decode, [(seq, tokens, context after)]."""
    n = len(prompt_lens)
    pos, ngen, joined, steps = [0] * n, [0] * n, [False] * n, []
    d = 0
    while True:
        st = []
        for s in range(n):
            if not joined[s]:
                if mixed and d < s:
                    continue
                pos[s] += prompt_lens[s]
                joined[s] = True
                st.append((s, prompt_lens[s], pos[s]))
            elif ngen[s] < gen:
                pos[s] += 1
                st.append((s, 1, pos[s]))
        if not st:
            return steps
        for s, _, _ in st:
            if ngen[s] < gen:
                ngen[s] += 1
        steps.append(st)
        d += 1


def hand_bytes(tensors, step, sched, layers, experts, kv_heads, head_dim, vocab, arch):
    """Bytes of one step from the GGUF table and the routing (docs/llama.md rules)."""
    dense = routed = shared = 0
    norms = sum(t["bytes"] for n, t in tensors.items() if n.endswith("_norm.weight"))
    for ub in step["ubatches"]:
        dense += norms
        for n, t in tensors.items():
            if not n.endswith(".weight") or n.endswith("_norm.weight") or n == "token_embd.weight":
                continue
            layer = int(n.split(".")[1]) if n.startswith("blk.") else None
            last_rows = len(ub.get(layers - 1, []))
            # the last layer's FFN and the output matrix run on the ubatch's output rows only
            ffn = "ffn_" in n
            if (layer == layers - 1 and ffn) or n == "output.weight":
                if last_rows == 0:
                    continue
            if "_exps" in n:
                act = len({e for row in ub.get(layer, []) for e in row})
                routed += t["bytes"] // experts * act
            elif "_shexp" in n and "gate_inp_shexp" not in n:
                shared += t["bytes"]
            else:
                dense += t["bytes"]
    T = sum(x[1] for x in sched)
    dense += T * (tensors["token_embd.weight"]["bytes"] // vocab)
    kv_tok = 2 * kv_heads * head_dim * 2 * layers     # K and V, F16 cache
    return {"dense_weights": dense, "routed_expert_weights": routed, "shared_expert_weights": shared,
            "kv_read": sum(x[2] for x in sched) * kv_tok, "kv_written": T * kv_tok}


def case(tmp, name, model_dir, gguf, prompts, gen, ubatch=512, mixed=False):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    layers, experts = cfg["num_hidden_layers"], cfg.get("num_local_experts", cfg.get("num_experts"))
    d = os.path.join(tmp, name)
    os.makedirs(d)
    pf = os.path.join(d, "prompts.txt")
    with open(pf, "w") as f:
        f.write("\n".join(" ".join(map(str, p)) for p in prompts) + "\n")
    args = [TRUTH, gguf, "--prompts", pf, "--gen", str(gen), "--ubatch", str(ubatch)] + (["--mixed"] if mixed else [])
    plain = run(args + ["--truth", os.path.join(d, "t0.jsonl")])
    env = preload_env(SHIM)
    env["MOECAP_OUT"] = os.path.join(d, "run")
    shimmed = run(args + ["--truth", os.path.join(d, "t1.jsonl")], env=env)
    check(plain.stdout == shimmed.stdout and open(os.path.join(d, "t0.jsonl")).read() == open(os.path.join(d, "t1.jsonl")).read(),
          f"{name}: program output and its own routing unchanged under the shim",
          f"plain:\n{plain.stdout}\nshim:\n{shimmed.stdout}")
    rep = run([MOECAP, "report", os.path.join(d, "run"), "--model", gguf, "--hw", HW, "--out", os.path.join(d, "rep"),
               "--format", "json", "--quiet"])
    report = json.load(open(os.path.join(d, "rep", "report.json")))
    truth = truth_steps(os.path.join(d, "t1.jsonl"))
    steps = report["steps"]
    lc = report["run"].get("llama_cpp", {})
    check(len(steps) == len(truth) and lc.get("decode_calls") == len(truth)
          and lc.get("graph_computes") == sum(len(t["ubatches"]) for t in truth),
          f"{name}: one report step per llama_decode ({len(truth)}), graph computes = the truth's ubatches",
          f"report {len(steps)} steps, run.llama_cpp {lc}")
    bad = []
    for i, (s, t) in enumerate(zip(steps, truth)):
        if (s["tokens"], s["sequences"]) != (t["tokens"], t["sequences"]):
            bad.append(f"step {i}: tokens/sequences {s['tokens']}/{s['sequences']} vs {t['tokens']}/{t['sequences']}")
        want = counts_per_layer(t, layers)
        for layer in range(layers):
            got = s["layers"][layer]
            w = want[layer]
            if got["experts"] != sorted(w) or got["tokens_per_expert"] != [w[e] for e in sorted(w)]:
                bad.append(f"step {i} layer {layer}: report {got['experts']} {got['tokens_per_expert']}, truth {dict(sorted(w.items()))}")
    check(not bad, f"{name}: experts and tokens per expert per layer per step equal the truth", "\n".join(bad[:10]))
    # bytes from the GGUF table
    tensors = gguf_tensors(gguf)
    sched = schedule([len(p) for p in prompts], gen, mixed)
    kinds_want = []
    for st in sched:
        pre = any(n > 1 or c == n for _, n, c in st)
        dec = any(n == 1 and c > 1 for _, n, c in st)
        kinds_want.append("mixed" if pre and dec else "prefill" if pre else "decode")
    check([s["kind"] for s in steps] == kinds_want, f"{name}: step kinds",
          f"{[s['kind'] for s in steps]} vs {kinds_want}")
    bad = []
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    for i, (s, t, sc) in enumerate(zip(steps, truth, sched)):
        want = hand_bytes(tensors, t, sc, layers, experts, cfg["num_key_value_heads"], hd, cfg["vocab_size"], cfg["model_type"])
        got = {k: s["bytes"][k] for k in want}
        if got != want:
            bad.append(f"step {i}: report {got}\n  hand   {want}")
    check(not bad, f"{name}: bytes per step equal the hand computation from the GGUF tensor table", "\n".join(bad[:6]))
    return report


def agreement(tmp, name, model_dir, gguf, prompts, gen):
    """moe-ref vs llama.cpp on the same F32 weights and tokens: activated experts per layer."""
    d = os.path.join(tmp, name)
    os.makedirs(d)
    pf = os.path.join(d, "prompts.txt")
    with open(pf, "w") as f:
        f.write("\n".join(" ".join(map(str, p)) for p in prompts) + "\n")
    gt = os.path.join(d, "gt.jsonl")
    ref = run([MOEREF, "run", "--model", model_dir, "--prompts", pf, "--gen", str(gen), "--ground-truth", gt])
    ids = os.path.join(d, "ids.txt")
    with open(ids, "w") as f:
        f.write(ref.stdout)
    lt = run([TRUTH, gguf, "--prompts", pf, "--gen", str(gen), "--follow", ids, "--truth", os.path.join(d, "t.jsonl")])
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    layers = cfg["num_hidden_layers"]
    truth = truth_steps(os.path.join(d, "t.jsonl"))
    ref_steps = read_lines(gt)
    compared = agree = subset_only = 0
    diffs = []
    for i, (r, t) in enumerate(zip(ref_steps, truth)):
        lc = counts_per_layer(t, layers)
        for layer in range(layers):
            re = dict(zip(r["layers"][layer]["experts"], r["layers"][layer]["tokens_per_expert"]))
            le = lc[layer]
            if r["kind"] == "prefill" and layer == layers - 1:
                # llama.cpp runs the last layer's FFN on the rows whose logits are wanted only
                subset_only += 1
                if not set(le) <= set(re):
                    diffs.append(f"step {i} layer {layer} (output rows): llama {sorted(le)} not within moe-ref {sorted(re)}")
                continue
            compared += 1
            if re == le:
                agree += 1
            else:
                diffs.append(f"step {i} layer {layer}: moe-ref {dict(sorted(re.items()))} llama.cpp {dict(sorted(le.items()))}")
    rate = agree / compared if compared else 0
    print(f"# {name}: activated experts agree in {agree}/{compared} (step, layer) pairs = {100 * rate:.1f} %; "
          f"{subset_only} prefill last layers compared on output rows only; greedy tokens "
          f"{'identical' if lt.stdout == ref.stdout else 'differ'}")
    check(compared > 0 and not diffs, f"{name}: moe-ref and llama.cpp choose the same experts (F32, same tokens)",
          "\n".join(diffs[:10]))
    check(lt.stdout == ref.stdout, f"{name}: llama.cpp's own greedy tokens equal moe-ref's",
          f"{lt.stdout}\nvs\n{ref.stdout}")


def unknown_version(tmp, gguf):
    d = os.path.join(tmp, "version")
    os.makedirs(d)
    pf = os.path.join(d, "prompts.txt")
    with open(pf, "w") as f:
        f.write("3 1 4 1 5\n")
    args = [TRUTH, gguf, "--prompts", pf, "--gen", "3"]
    plain = run(args)
    env = preload_env(SHIM)
    env["MOECAP_OUT"] = os.path.join(d, "run")
    env["MOECAP_GGML_ACCEPT"] = "0.0.0"
    p = run(args, env=env)
    lines = [x for x in p.stderr.splitlines() if "moecap" in x]
    check(p.stdout == plain.stdout, "unknown ggml version: program output unchanged")
    check(len(lines) == 1 and "llama.cpp adapter off" in lines[0], "unknown ggml version: exactly one stderr line",
          p.stderr)
    recs = ""
    for fn in os.listdir(os.path.join(d, "run")) if os.path.isdir(os.path.join(d, "run")) else []:
        recs += run([MOECAP, "dump", "--summary", os.path.join(d, "run", fn)]).stdout
    check("llama_batch" not in recs and "ggml_" not in recs, "unknown ggml version: no adapter records", recs)


def bench_driver(tmp, gguf, k):
    """node-llama-cpp (libllama loaded RTLD_LOCAL, decodes on libuv worker threads) behind
    engines/llama/serve.mjs, driven by `moecap bench`, profiled and reported."""
    import signal
    import socket
    import time
    import urllib.request
    node = subprocess.run(["sh", "-c", "command -v node"], capture_output=True, text=True).stdout.strip()
    if not node:
        skip("bench against the node driver", "node not found")
        return
    d = os.path.join(tmp, "bench")
    os.makedirs(d)
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    env = preload_env(SHIM)
    env["MOECAP_OUT"] = d
    log = open(os.path.join(tmp, "serve.log"), "w")
    srv = subprocess.Popen([node, "engines/llama/serve.mjs", "--model", gguf, "--port", str(port), "--sequences", "2"],
                           env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        b = run([MOECAP, "bench", "--url", f"http://127.0.0.1:{port}", "--dataset", "synthetic:in=8,out=6,unit=bytes",
                 "-n", "4", "--concurrency", "2", "--out", d, "--quiet"], check=False)
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(timeout=30)
        log.close()
    check(b.returncode == 0, "bench: moecap bench against the node-llama-cpp driver",
          b.stderr + open(os.path.join(tmp, "serve.log")).read())
    reqs = [json.loads(x) for x in open(os.path.join(d, "requests.jsonl"))]
    rep = run([MOECAP, "report", d, "--model", gguf, "--hw", HW, "--out", os.path.join(d, "rep"), "--format", "json", "--quiet"], check=False)
    check(rep.returncode == 0, "bench: moecap report of the node run", rep.stderr)
    if rep.returncode:
        return
    r = json.load(open(os.path.join(d, "rep", "report.json")))
    steps = r["steps"]
    # every prompt token and every generated token but each request's last is evaluated once
    want = sum(q["prompt_tokens"] + q["output_tokens"] - 1 for q in reqs)
    got = sum(s["tokens"] for s in steps)
    check(len(reqs) == 4 and got == want, "bench: tokens over the report's steps = prompt + fed-back tokens of the requests",
          f"steps {got}, requests {want}: {reqs}")
    bad = [i for i, s in enumerate(steps) if sum(s["layers"][0]["tokens_per_expert"]) != s["tokens"] * k]
    check(not bad, "bench: layer 0 routes every token of every step (k slots each)", bad)
    check(isinstance(r.get("client"), dict) and r["client"].get("summary", {}).get("completed") == 4,
          "bench: the client's request log is joined in the report", json.dumps(r.get("client"))[:500])
    tids = {s["tid"] for s in steps}
    print(f"# bench: {len(steps)} steps on {len(tids)} thread(s), kinds {sorted({s['kind'] for s in steps})}")


def bad_inputs(tmp, models):
    """moe-ref gguf and moecap report --model X.gguf refuse what they cannot represent."""
    md = os.path.join(tmp, "ds")
    run([MOEREF, "gen", "--arch", "deepseek_v2", "--out", md])
    p = run([MOEREF, "gguf", "--model", md, "--out", os.path.join(tmp, "ds.gguf")], check=False)
    check(p.returncode == 2 and "mixtral and qwen2_moe" in p.stderr, "moe-ref gguf: deepseek_v2 refused (exit 2)",
          p.stderr)
    odd = os.path.join(tmp, "odd")
    run([MOEREF, "gen", "--arch", "mixtral", "--out", odd, "--hidden", "48", "--heads", "4", "--kv-heads", "2"])
    p = run([MOEREF, "gguf", "--model", odd, "--out", os.path.join(tmp, "odd.gguf"), "--type", "q8_0"], check=False)
    check(p.returncode == 2 and "multiple of 32" in p.stderr, "moe-ref gguf: q8_0 rows of 48 refused (exit 2)",
          p.stderr)
    p = run([MOEREF, "gguf", "--model", odd, "--out", os.path.join(tmp, "odd.gguf"), "--type", "q5_k"], check=False)
    check(p.returncode == 2 and "unknown --type" in p.stderr, "moe-ref gguf: unknown --type (exit 2)", p.stderr)
    # moecap report: a truncated GGUF and an architecture it does not know
    run_dir = os.path.join(tmp, "mixtral-f32-b1", "run")
    blob = open(models["mixtral", "f32"][1], "rb").read()
    cut = os.path.join(tmp, "cut.gguf")
    open(cut, "wb").write(blob[:2000])
    p = run([MOECAP, "report", run_dir, "--model", cut, "--hw", HW, "--out", os.path.join(tmp, "r-cut")], check=False)
    check(p.returncode == 2 and "truncated or malformed" in p.stderr, "report: truncated GGUF --model (exit 2)",
          p.stderr)
    arch = os.path.join(tmp, "arch.gguf")
    open(arch, "wb").write(blob.replace(b"\x05\x00\x00\x00\x00\x00\x00\x00llama", b"\x05\x00\x00\x00\x00\x00\x00\x00llamb", 1))
    p = run([MOECAP, "report", run_dir, "--model", arch, "--hw", HW, "--out", os.path.join(tmp, "r-arch")], check=False)
    check(p.returncode == 2 and "not supported" in p.stderr, "report: GGUF of an unsupported architecture (exit 2)",
          p.stderr)


def main():
    for f in (MOEREF, MOECAP, SHIM):
        if not os.path.exists(f):
            skip("llama.cpp tests", f"{f} not built")
            return 0
    if not os.path.exists(TRUTH):
        skip("llama.cpp tests", "the npm prebuilt libllama is not installed: scripts/install-llama.sh needs npm, "
             "node 20 and the npm registry")
        return 0
    tmp = tempfile.mkdtemp(prefix="moecap-llama-")
    models = {}
    for arch in ("mixtral", "qwen2_moe"):
        md = os.path.join(tmp, arch)
        run([MOEREF, "gen", "--arch", arch, "--out", md, "--layers", "3", "--seed", "7"])
        for ty in ("f32", "f16", "q8_0", "q4_0"):
            g = os.path.join(tmp, f"{arch}-{ty}.gguf")
            run([MOEREF, "gguf", "--model", md, "--out", g, "--type", ty])
            models[arch, ty] = (md, g)
    check_quantized(models)
    P1 = [[1, 5, 9, 33, 7, 200, 17]]
    P3 = [[1, 5, 9, 33, 7], [4, 4, 100, 2], [250, 3, 8, 8, 8, 60, 61]]
    case(tmp, "mixtral-f32-b1", *models["mixtral", "f32"], P1, 5)
    case(tmp, "mixtral-f32-b3-ubatch4", *models["mixtral", "f32"], P3, 4, ubatch=4)
    case(tmp, "qwen2moe-f32-b1", *models["qwen2_moe", "f32"], P1, 5)
    case(tmp, "qwen2moe-f32-b3-mixed", *models["qwen2_moe", "f32"], P3, 4, mixed=True)
    case(tmp, "mixtral-f16-b3", *models["mixtral", "f16"], P3, 3)
    case(tmp, "qwen2moe-f16-b1", *models["qwen2_moe", "f16"], P1, 3)
    case(tmp, "mixtral-q8_0-b3-mixed", *models["mixtral", "q8_0"], P3, 3, mixed=True)
    case(tmp, "qwen2moe-q8_0-b3-ubatch4", *models["qwen2_moe", "q8_0"], P3, 3, ubatch=4)
    case(tmp, "mixtral-q4_0-b3", *models["mixtral", "q4_0"], P3, 3)
    agreement(tmp, "agree-mixtral", *models["mixtral", "f32"], P3, 24)
    agreement(tmp, "agree-qwen2moe", *models["qwen2_moe", "f32"], P3, 24)
    unknown_version(tmp, models["mixtral", "f32"][1])
    bad_inputs(tmp, models)
    bench_driver(tmp, models["qwen2_moe", "f32"][1], 2)
    return finish(tmp)


if __name__ == "__main__":
    sys.exit(main())
