"""moe-ref under the shim (used by test_shim.py): the GEMM records of the trace must be,
in number, shape and order, exactly the products the engine's ground truth implies
(docs/ground-truth.md), and the generated tokens must be identical with and without
the shim.

Expected products per step, derived here from config.json and the ground-truth line
(not from the trace): per layer q, k, v (T x H*hd x d, T x HK*hd x d twice), o
(T x d x H*hd); a dense layer: gate, up (T x fd x d), down (T x d x fd); an MoE layer:
router (T x E x d), then for each activated expert in ascending id with its m tokens:
gate, up (m x f x d), down (m x d x f), then shared experts (T x fs x d twice,
T x d x fs) and qwen2_moe's shared-expert gate (T x 1 x d); finally lm_head
(B x V x d) with B = sequences in the step."""
import json
import os
import subprocess


def _cfg(model_dir):
    c = json.load(open(os.path.join(model_dir, "config.json")))
    t = c["model_type"]
    d, H, HK = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    hd = c.get("head_dim", d // H)
    if t == "mixtral":
        E, f, fs, sgate = c["num_local_experts"], c["intermediate_size"], 0, False
    elif t == "qwen2_moe":
        E, f, fs, sgate = c["num_experts"], c["moe_intermediate_size"], c.get("shared_expert_intermediate_size", 0), True
    elif t == "deepseek_v2":
        E, f = c["n_routed_experts"], c["moe_intermediate_size"]
        fs, sgate = c.get("n_shared_experts", 0) * f, False
    else:
        raise ValueError("unknown model_type " + t)
    return dict(d=d, H=H, HK=HK, hd=hd, E=E, f=f, fs=fs, sgate=sgate and fs > 0, fd=c.get("intermediate_size"),
                V=c["vocab_size"])


def expected_products(cfg, gt_lines):
    out, per_step = [], []
    d, hd = cfg["d"], cfg["hd"]
    qd, kvd = cfg["H"] * hd, cfg["HK"] * hd
    for s in gt_lines:
        T, B = s["tokens"], s["sequences"]
        n0 = len(out)
        for layer in s["layers"]:
            out += [(T, qd, d), (T, kvd, d), (T, kvd, d), (T, d, qd)]
            if layer.get("dense"):
                fd = cfg["fd"]
                out += [(T, fd, d), (T, fd, d), (T, d, fd)]
                continue
            out.append((T, cfg["E"], d))
            for x, m in sorted(zip(layer["experts"], layer["tokens_per_expert"])):
                out += [(m, cfg["f"], d), (m, cfg["f"], d), (m, d, cfg["f"])]
            if cfg["fs"]:
                out += [(T, cfg["fs"], d), (T, cfg["fs"], d), (T, d, cfg["fs"])]
                if cfg["sgate"]:
                    out.append((T, 1, d))
        out.append((B, cfg["V"], d))
        per_step.append(len(out) - n0)
    return out, per_step


def run_checks(exe, tmp, preload_env, plain_env, dump, gemms, normalized):
    results = []
    cases = [("mixtral", ["--batch", "2", "--prompt-len", "6", "--gen", "4"], []),
             ("qwen2_moe", ["--batch", "3", "--prompt-len", "4", "--gen", "3", "--stagger", "1"], []),
             ("deepseek_v2", ["--batch", "1", "--prompt-len", "5", "--gen", "4", "--gemv"], [])]
    for arch, run_args, _ in cases:
        name = "moe-ref %s %s" % (arch, " ".join(run_args))
        mdir = os.path.join(tmp, "model-" + arch)
        g = subprocess.run([exe, "gen", "--arch", arch, "--out", mdir], capture_output=True, text=True, env=plain_env())
        if g.returncode != 0:
            results.append((name + ": model generated", False, g.stderr[-500:]))
            continue
        gt_ref = os.path.join(tmp, arch + "-gt-ref.jsonl")
        gt = os.path.join(tmp, arch + "-gt.jsonl")
        out = os.path.join(tmp, "trace-" + arch)
        ref = subprocess.run([exe, "run", "--model", mdir, *run_args, "--ground-truth", gt_ref],
                             capture_output=True, text=True, env=plain_env(), timeout=300)
        p = subprocess.run([exe, "run", "--model", mdir, *run_args, "--ground-truth", gt],
                           capture_output=True, text=True, env=preload_env(out), timeout=300)
        results.append((name + ": output tokens identical with and without the shim",
                        p.returncode == 0 and ref.returncode == 0 and p.stdout == ref.stdout and p.stdout.strip() != "",
                        "rc %d/%d\nwith: %r\nwithout: %r\n%s" % (p.returncode, ref.returncode, p.stdout[:300], ref.stdout[:300], p.stderr[-500:])))
        if p.returncode != 0:
            continue
        lines = [json.loads(l) for l in open(gt) if l.strip()]
        exp, per_step = expected_products(_cfg(mdir), lines)
        files = [os.path.join(out, f) for f in sorted(os.listdir(out)) if f.endswith(".mct")]
        recs = []
        for f in files:
            recs += dump(f)[0]
        gg = gemms(recs)
        got = [normalized(r) for r in gg]
        first_diff = next((i for i, (a, b) in enumerate(zip(got, exp)) if a != b), None)
        results.append((name + ": GEMM records equal the ground truth's products (%d, shapes and order)" % len(exp),
                        got == exp and len(files) == 1,
                        "files %d, got %d expected %d, first difference at %s: %s vs %s" % (
                            len(files), len(got), len(exp), first_diff,
                            got[first_diff] if first_diff is not None else None,
                            exp[first_diff] if first_diff is not None else None)))
        calls = [s.get("gemm_calls") for s in lines]
        flops_gt = sum(s["flops"]["gemm"] for s in lines)
        flops_tr = sum(2 * m * n * k for (m, n, k) in got)
        results.append((name + ": per-step gemm_calls and GEMM FLOPs agree with the trace",
                        calls == per_step and flops_gt == flops_tr,
                        "calls %s vs %s, flops %d vs %d" % (calls, per_step, flops_gt, flops_tr)))
        # Times: every GEMM of step s lies inside the step's [t_begin_ns, t_end_ns] that the
        # engine measured itself with CLOCK_MONOTONIC (checks the shim's clock conversion).
        outside, i = [], 0
        for s, n in zip(lines, per_step):
            for r in gg[i:i + n]:
                if not (s["t_begin_ns"] - 2000 <= r["t_begin_ns"] <= r["t_end_ns"] <= s["t_end_ns"] + 2000):
                    outside.append((s["step"], r["t_begin_ns"] - s["t_begin_ns"], s["t_end_ns"] - r["t_end_ns"]))
            i += n
        results.append((name + ": GEMM times fall inside the engine's own step times", not outside and i == len(gg),
                        outside[:5]))
        if "--gemv" in run_args:
            apis = {r["api"] for r in gg if r["m"] != 1 or r["api"] != "cblas_sgemm"}
            results.append((name + ": single-row products recorded as cblas_sgemv", "cblas_sgemv" in apis, apis))
        # Weight file: every tensor of the safetensors header recorded, file mapped.
        st = os.path.join(mdir, "model.safetensors")
        with open(st, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            hdr = json.loads(fh.read(n))
        names = {k for k in hdr if k != "__metadata__"}
        real = os.path.realpath(st)
        tens = {r["name_str_text"] for r in recs if r["type"] == "tensor" and r["path_str_text"] == real}
        maps = [r for r in recs if r["type"] == "file_map" and r["path_str_text"] == real]
        results.append((name + ": weight file's %d tensors and its mapping recorded" % len(names),
                        tens == names and len(maps) >= 1, "tensors %d/%d maps %d" % (len(tens), len(names), len(maps))))
    return results
