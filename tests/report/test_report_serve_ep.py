#!/usr/bin/python3
"""`moe-ref serve --expert-parallel N` end to end, through HTTP, against the single-process
server and the engine's exact ground truth. For mixtral, qwen2_moe and deepseek_v2:

  - the same concurrent completion requests (greedy) to a plain `moe-ref serve` and to
    `moe-ref serve --expert-parallel 2` under libmoecap.so: every completion's text equal;
  - one trace per process (the server and its 2 workers);
  - `moecap report` of the expert-parallel server vs its --ground-truth: steps, experts,
    tokens per expert, bytes and FLOPs exact (compare_gt.py), and per worker process the
    experts, weight bytes, FLOPs, GEMM calls, the activation bytes exchanged and the
    per-process heatmap exact, class PA (compare_ep.py);
  - --expert-parallel with --expert-budget: exit 2 before listening.
"""
import glob, json, os, signal, subprocess, sys, tempfile, threading, urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from preload import preload_env  # noqa: E402
from tap import BUILD, ROOT, check, finish, skip, wait_port  # noqa: E402

B = lambda *p: os.path.join(ROOT, BUILD, *p)
HERE = os.path.dirname(os.path.abspath(__file__))
DIMS = "--hidden 128 --moe-intermediate 64 --intermediate 256 --heads 4 --kv-heads 2 --vocab 300 --layers 3 " \
       "--experts 8 --top-k 2".split()
# one length (the byte-level tokenizer: one token per byte): the report infers each sequence's
# context from the step's token count, exact unless a prefill is ragged (docs/attribution.md §5)
PROMPTS = ["The capital of %s is" % w for w in ("Ghana", "Spain", "Japan", "Kenya", "Chile", "Nepal")]


def serve(model, tmp, tag, extra, env):
    """Starts a server, sends every prompt at once, stops it with SIGTERM. Returns
    ({prompt index: completion text}, exit status, stderr)."""
    portf, log = os.path.join(tmp, tag + ".port"), os.path.join(tmp, tag + ".log")
    with open(log, "w") as lf:
        srv = subprocess.Popen([B("bin", "moe-ref"), "serve", "--model", model, "--port", "0", "--port-file", portf,
                                "--max-batch", "4", "--quiet"] + extra, stdout=subprocess.DEVNULL, stderr=lf, env=env)
    out = {}
    try:
        port = wait_port(portf, srv, 30)

        def one(i):
            body = json.dumps({"model": os.path.basename(model), "prompt": PROMPTS[i], "max_tokens": 6, "temperature": 0}).encode()
            req = urllib.request.Request("http://127.0.0.1:%d/v1/completions" % port, body,
                                         {"Content-Type": "application/json"})
            try:
                out[i] = json.load(urllib.request.urlopen(req, timeout=60))["choices"][0]["text"]
            except Exception as e:   # noqa: BLE001 - reported as a missing completion
                out[i] = "error: %s" % e
        if port:
            th = [threading.Thread(target=one, args=(i,)) for i in range(len(PROMPTS))]
            for t in th:
                t.start()
            for t in th:
                t.join()
    finally:
        if srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
        try:
            rc = srv.wait(60)
        except subprocess.TimeoutExpired:
            srv.kill()
            rc = srv.wait()
    return out, rc, open(log).read()


def tap(cmd):
    """Runs a TAP-printing comparer; its ok / not ok lines become ours."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("ok - ") or line.startswith("not ok - "):
            check(line.startswith("ok - "), line.split(" - ", 1)[1])
        elif line.startswith("#"):
            print(line)
    if p.returncode != 0:
        check(False, "%s exited %d" % (os.path.basename(cmd[1]), p.returncode), p.stderr)


def main():
    shim = B("lib", "libmoecap.so")
    for p in (B("bin", "moe-ref"), B("bin", "moecap"), shim):
        if not os.path.exists(p):
            skip("serve --expert-parallel", "%s not built" % p)
            return 0
    tmp = tempfile.mkdtemp(prefix="mc-serve-ep.")
    for arch in ("mixtral", "qwen2_moe", "deepseek_v2"):
        one_arch(shim, tmp, arch)
    model = os.path.join(tmp, "model-mixtral")
    p = subprocess.run([B("bin", "moe-ref"), "serve", "--model", model, "--port", "0", "--expert-parallel", "2",
                        "--expert-budget", "50%"], capture_output=True, text=True, timeout=60)
    check(p.returncode == 2 and "cannot be combined" in p.stderr,
          "serve --expert-parallel with --expert-budget: exit 2 before listening", (p.returncode, p.stderr))
    return finish(tmp)


def one_arch(shim, tmp, arch):
    """One architecture: plain vs expert-parallel server, then the report of the latter."""
    model = os.path.join(tmp, "model-" + arch)
    subprocess.run([B("bin", "moe-ref"), "gen", "--arch", arch, "--out", model] + DIMS, check=True,
                   stdout=subprocess.DEVNULL)
    plain, rc1, log1 = serve(model, tmp, arch + "-plain", [], dict(os.environ))
    d = os.path.join(tmp, arch + "-ep2")
    os.makedirs(d)
    gt, run = os.path.join(d, "gt.jsonl"), os.path.join(d, "run")
    env = preload_env(shim, dict(os.environ, MOECAP_OUT=run))
    ep, rc2, log2 = serve(model, tmp, arch + "-ep2", ["--expert-parallel", "2", "--ground-truth", gt], env)
    ok = rc1 == 0 and rc2 == 0 and len(plain) == len(PROMPTS) and \
        all(not v.startswith("error") for v in plain.values())
    check(ok and plain == ep, "%s: serve --expert-parallel 2 completions equal single-process serve's "
          "(%d concurrent requests)" % (arch, len(PROMPTS)),
          "rc %s %s\nplain %s\nep %s\n%s\n%s" % (rc1, rc2, plain, ep, log1[-600:], log2[-600:]))
    traces = glob.glob(os.path.join(run, "*.mct"))
    check(len(traces) == 3, "%s: 3 trace files (server + 2 workers)" % arch, traces)
    rep = subprocess.run([B("bin", "moecap"), "report", run, "--model", model, "--hw",
                          os.path.join(HERE, "hw-test.json"), "--format", "json", "--quiet"],
                         capture_output=True, text=True)
    if not check(rep.returncode == 0, "%s: moecap report of the expert-parallel server" % arch, rep.stderr):
        return
    report = os.path.join(run, "report.json")
    steps = [json.loads(x) for x in open(gt)]
    check(any(s["tokens"] > 1 and s["expert_parallel"]["processes"] == 2 for s in steps),
          "%s: ground truth has multi-token expert-parallel steps (%d steps)" % (arch, len(steps)))
    tap([sys.executable, os.path.join(HERE, "compare_gt.py"), gt, report, arch + "-serve-ep2", "--no-time"])
    tap([sys.executable, os.path.join(HERE, "compare_ep.py"), gt, report, arch + "-serve-ep2"])


if __name__ == "__main__":
    sys.exit(main())
