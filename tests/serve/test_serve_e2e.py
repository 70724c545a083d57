#!/usr/bin/python3
"""End to end on loopback: `moe-ref serve` under LD_PRELOAD=libmoecap.so, driven by
`moecap bench` with concurrent requests (so steps batch several sequences), then
`moecap report`, for each architecture moe-ref generates: mixtral, qwen2_moe (its tiny
default has a shared expert shaped like a routed one, so only tensor names separate them),
deepseek_v2 (dense first layer, shared experts, MLA) and qwen2_moe --shared-experts 2 (a
shared expert shaped like q); then mixtral and qwen2_moe again with `serve --mixed` (new
prompts join the running sequences' decode step, in the same iteration that retires
finished ones). E2E_ARCH=ARCH [E2E_GEN="gen args"] [E2E_SERVE="serve args"] runs one case.
Expected values come from the engine's own ground truth (serve --ground-truth) and from
the bench's request log, never from the report:

  - log: n lines, all ok; sum of output tokens = sequences summed over ground-truth steps
    (each step samples one token per sequence); prompt tokens = prefill tokens
  - trace (moecap dump --summary): GEMM count and sum of 2mnk = the ground truth's
  - report.json (when `moecap report` exists): steps by kind, tokens, output tokens,
    activated experts per step, bytes and FLOPs = ground truth; per step (compare_gt.py
    of tests/report): kind, tokens, sequences, contexts, expert ids, tokens per expert,
    every bytes and FLOPs field, GEMM calls; every weight named from the trace; client
    section (the joined request log): request count, token totals and scores =
    requests.jsonl. Step times are not compared: decode steps here take ~0.2 ms, of which
    the ~15 us the engine spends outside the GEMM span (embedding, sampling) is ~7 %
    (docs/attribution.md section 6).
"""
import json, os, signal, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from preload import preload_env  # noqa: E402
from tap import FAILS, check as tap_check, finish, skip  # noqa: E402

ROOT = os.environ.get("MOECAP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD", "build")
B = lambda *p: os.path.join(ROOT, BUILD, *p)
TMPDIRS = []
LABEL = [""]   # the case's name, prefixed to every check


def check(cond, name, detail=""):
    """tests/tap.py's check, the name prefixed with the running case's."""
    return tap_check(cond, LABEL[0] + name, detail)


def near(a, b, rel=1e-9):
    return a is not None and abs(a - b) <= rel * max(1.0, abs(b))


CASES = [("mixtral", "", ""), ("qwen2_moe", "", ""), ("deepseek_v2", "", ""), ("qwen2_moe", "--shared-experts 2", ""),
         ("mixtral", "", "--mixed"), ("qwen2_moe", "", "--mixed")]


def main():
    shim = B("lib", "libmoecap.so")
    for p in (B("bin", "moe-ref"), B("bin", "moecap"), shim):
        if not os.path.exists(p):
            skip("end to end", "%s not built" % p)
            return
    cases = [(os.environ["E2E_ARCH"], os.environ.get("E2E_GEN", ""), os.environ.get("E2E_SERVE", ""))] \
        if os.environ.get("E2E_ARCH") else CASES
    for arch, gen, serve in cases:
        LABEL[0] = "%s%s%s: " % (arch, (" " + gen) if gen else "", (" serve " + serve) if serve else "")
        if run_case(shim, arch, gen.split(), serve.split()) == "skip":
            break


def run_case(shim, arch, gen, serve):
    tmp = tempfile.mkdtemp(prefix="mc-e2e.")
    TMPDIRS.append(tmp)
    model, run = os.path.join(tmp, "model"), os.path.join(tmp, "run")
    os.makedirs(run)
    subprocess.run([B("bin", "moe-ref"), "gen", "--arch", arch, "--out", model, "--seed", "5"] + gen,
                   check=True, stdout=subprocess.DEVNULL)
    gt, portf, slog = os.path.join(run, "ground-truth.jsonl"), os.path.join(tmp, "port"), os.path.join(tmp, "serve.log")
    env = preload_env(shim, dict(os.environ, MOECAP_OUT=run))
    srv = subprocess.Popen([B("bin", "moe-ref"), "serve", "--model", model, "--port", "0", "--port-file", portf,
                            "--max-batch", "8", "--ground-truth", gt, "--quiet"] + serve, env=env, stderr=open(slog, "w"))
    try:
        for _ in range(200):
            if os.path.exists(portf) or srv.poll() is not None:
                break
            time.sleep(0.05)
        if not check(os.path.exists(portf), "server starts under the shim"):
            print("# " + open(slog).read())
            return
        port = int(open(portf).read())
        # 24 scored questions, 6 in flight, so requests keep joining a running batch. All
        # prompts are 64 bytes (= 64 tokens) and all outputs 12 tokens (ignore_eos): the
        # trace then determines every sequence's context (an even split of a prefill step
        # is exact, requests finish oldest first), so the report can match the ground
        # truth exactly; with unequal prompts only the client log could tell the split.
        N = 24
        ds = os.path.join(tmp, "questions.jsonl")
        with open(ds, "w") as f:
            for k in range(N):
                q = ("Item %02d: what is 6 times 7? Give the number." % k).ljust(64, ".")
                f.write(json.dumps({"prompt": q, "expected": "42", "type": "gsm8k", "ignore_eos": True}) + "\n")
        b = subprocess.run([B("bin", "moecap"), "bench", "--url", "http://127.0.0.1:%d/v1" % port, "--dataset", ds,
                            "-n", str(N), "--concurrency", "6", "--max-tokens", "12", "--timeout", "60", "--quiet",
                            "--out", run], capture_output=True, text=True, timeout=120)
        check(b.returncode == 0, "bench runs against the profiled server", b.stderr)
        srv.send_signal(signal.SIGTERM)
        rc = srv.wait(60)
        check(rc == 0, "server drains and exits 0 under the shim (%s)" % rc, open(slog).read())
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()

    recs = [json.loads(l) for l in open(os.path.join(run, "requests.jsonl"))]
    steps = [json.loads(l) for l in open(gt)]
    check(len(recs) == N and all(r["ok"] and r["prompt_tokens"] == 64 and r["output_tokens"] == 12 and r["score"] in (0, 1)
                                 for r in recs), "request log: %d lines, all ok, 64 prompt + 12 output tokens, scored" % N,
          [r["error"] for r in recs if not r["ok"]][:3])
    out_tok = sum(r["output_tokens"] for r in recs)
    in_tok = sum(r["prompt_tokens"] for r in recs)
    check(out_tok == sum(s["sequences"] for s in steps), "output tokens in the log = tokens sampled in ground truth",
          (out_tok, sum(s["sequences"] for s in steps)))
    prefill = sum(t for s in steps for t, c in zip(s["seq_tokens"], s["context"]) if c == t)
    check(in_tok == prefill, "prompt tokens in the log = prefill tokens in ground truth", (in_tok, prefill))
    check(max(s["sequences"] for s in steps) > 1, "concurrent requests formed batches (largest %d)" % max(s["sequences"] for s in steps))

    traces = [f for f in os.listdir(run) if f.endswith(".mct")]
    check(len(traces) == 1, "one trace file", traces)
    if traces:
        d = subprocess.run([B("bin", "moecap"), "dump", "--summary", os.path.join(run, traces[0])],
                           capture_output=True, text=True)
        summ = json.loads(d.stdout.splitlines()[0]) if d.returncode == 0 and d.stdout else {}
        gemm_calls = sum(s["gemm_calls"] for s in steps)
        gemm_flops = sum(s["flops"]["gemm"] for s in steps)
        check(summ.get("types", {}).get("gemm") == gemm_calls and near(summ.get("gemm_flops"), gemm_flops),
              "trace GEMMs (count, 2mnk) = ground truth", (summ.get("types"), summ.get("gemm_flops"), gemm_calls, gemm_flops))

    # --- moecap report (skipped until it exists)
    hw = os.path.join(ROOT, "data", "hardware", "epyc-7763.json")
    r = subprocess.run([B("bin", "moecap"), "report", run, "--model", model, "--hw", hw],
                       capture_output=True, text=True, timeout=300)
    if "not available" in r.stderr:
        skip("report checks", "moecap report not available in this build yet")
        return "skip"
    rep_path = os.path.join(run, "report.json")
    if not check(r.returncode == 0 and os.path.exists(rep_path), "moecap report succeeds", r.stderr[-1500:]):
        return
    rep = json.load(open(rep_path))
    att = rep.get("run", {}).get("attribution", {})
    check(att.get("shape_weights") == 0 and att.get("named_weights", 0) > 0 and att.get("expert_ids") == "exact"
          and rep.get("run", {}).get("gemm_unattributed") == 0,
          "report: every weight named from the trace's file maps, no unattributed GEMM",
          (att, rep.get("run", {}).get("gemm_unattributed")))
    # per step, every exact field (the comparison tests/report uses for `moe-ref run`)
    c = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "report", "compare_gt.py"), gt, rep_path,
                        LABEL[0] + "report per step = ground truth", "--no-time"], capture_output=True, text=True)
    lines = [l for l in c.stdout.splitlines() if l.startswith(("ok - ", "not ok - "))]
    for l in c.stdout.splitlines():
        print(l)
    FAILS.extend(l for l in lines if l.startswith("not ok"))
    if c.returncode != 0 and not lines:
        check(False, "compare_gt.py runs", c.stderr[-800:])
    agg = rep.get("aggregate", {})
    kinds = {k: sum(1 for s in steps if s["kind"] == k) for k in ("prefill", "decode", "mixed")}
    if "--mixed" in serve:   # whether requests join running ones depends on timing: say so
        print("# %sground truth has %d mixed steps of %d" % (LABEL[0], kinds["mixed"], len(steps)))
    check(agg.get("steps") == len(steps) and agg.get("prefill_steps") == kinds["prefill"]
          and agg.get("decode_steps") == kinds["decode"] and agg.get("mixed_steps") == kinds["mixed"],
          "report steps by kind = ground truth", (agg.get("steps"), agg.get("prefill_steps"), agg.get("decode_steps"), kinds))
    check(agg.get("tokens") == sum(s["tokens"] for s in steps) and agg.get("output_tokens") == out_tok,
          "report tokens and output tokens = ground truth = log", (agg.get("tokens"), agg.get("output_tokens"), out_tok))
    for part in ("dense_weights", "routed_expert_weights", "shared_expert_weights", "kv_read", "kv_written", "total"):
        want = sum(s["bytes"][part] for s in steps)
        check(near(agg.get("bytes", {}).get(part), want), "report bytes.%s = ground truth" % part, (agg.get("bytes", {}).get(part), want))
    for part in ("gemm", "attention", "total"):
        want = sum(s["flops"][part] for s in steps)
        check(near(agg.get("flops", {}).get(part), want), "report flops.%s = ground truth" % part, (agg.get("flops", {}).get(part), want))
    rs = rep.get("steps", [])
    same = len(rs) == len(steps)
    if same:
        for a, g in zip(rs, steps):
            ga = sum(len(l.get("experts", [])) for l in g["layers"])
            same &= a.get("activated_experts") == ga and a.get("sequences") == g["sequences"] and a.get("tokens") == g["tokens"]
    check(same, "report per-step activated experts, tokens, sequences = ground truth")
    client = rep.get("client")
    if client is None:
        skip("client-side join", "report.json has no \"client\" section yet; see docs/bench.md")
    else:
        cs = client.get("summary", {})
        creq = client.get("requests", [])
        check(cs.get("requests") == N and cs.get("total_output_tokens") == out_tok and cs.get("total_input_tokens") == in_tok,
              "report client summary: request count and token totals = request log", cs)
        by_id = {x.get("id"): x for x in creq}
        check(len(creq) == N and all(by_id.get(x["id"], {}).get("score") == x["score"] and
                                     by_id.get(x["id"], {}).get("output_tokens") == x["output_tokens"] for x in recs),
              "report per-request scores and tokens = request log")


if __name__ == "__main__":
    main()
    sys.exit(finish(*TMPDIRS))
