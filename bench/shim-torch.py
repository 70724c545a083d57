#!/usr/bin/python3
"""libmoecap.so overhead on a realistic CPU model: a PyTorch MoE decoder (d = 512, 4 layers,
8 experts, top-2, expert FFN 1024, attention over a growing KV cache), batch-1 decode timed
with and without the shim (and with BASELINE_SHIM, another build, when set), paired per
round in rotating order. Prints a Markdown table row per configuration: decode-time ratio
to the plain run of the same round, median [95 % bootstrap CI], with the plain-vs-plain
spread (a second plain run per round) as the noise floor.

usage: bench/shim-torch.py [ROUNDS (default 10)] [TOKENS (default 64)]
env:   SHIM (default build/lib/libmoecap.so), BASELINE_SHIM (optional), PIN_CPU=N (every run
       bound to CPU N: see bench/shim-e2e.py for why on this project's VM)
Needs python3-torch (Debian). Results go to bench/results/shim-overhead.md by hand, with
the load average this prints."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchstats import median_ci, pin_preexec  # noqa: E402

D, LAYERS, EXPERTS, TOP_K, FFN, HEADS = 512, 4, 8, 2, 1024, 8


def child(tokens):
    """Build the model (fixed seed) and time `tokens` decode steps; prints JSON."""
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(1)

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = torch.nn.Linear(D, 3 * D, bias=False)
            self.o = torch.nn.Linear(D, D, bias=False)
            self.router = torch.nn.Linear(D, EXPERTS, bias=False)
            self.w1 = torch.nn.ModuleList(torch.nn.Linear(D, FFN, bias=False) for _ in range(EXPERTS))
            self.w2 = torch.nn.ModuleList(torch.nn.Linear(FFN, D, bias=False) for _ in range(EXPERTS))

        def forward(self, x, cache):
            q, k, v = self.qkv(x).split(D, dim=-1)
            cache.append((k, v))
            ks = torch.cat([c[0] for c in cache]).view(-1, HEADS, D // HEADS).transpose(0, 1)
            vs = torch.cat([c[1] for c in cache]).view(-1, HEADS, D // HEADS).transpose(0, 1)
            qh = q.view(1, HEADS, D // HEADS).transpose(0, 1)
            att = torch.softmax(qh @ ks.transpose(1, 2) / (D // HEADS) ** 0.5, dim=-1) @ vs
            x = x + self.o(att.transpose(0, 1).reshape(1, D))
            w, idx = torch.topk(torch.softmax(self.router(x), dim=-1), TOP_K)
            out = torch.zeros_like(x)
            for j in range(TOP_K):
                e = int(idx[0, j])
                out = out + w[0, j] * self.w2[e](torch.relu(self.w1[e](x)))
            return x + out

    layers = [Layer() for _ in range(LAYERS)]
    caches = [[] for _ in range(LAYERS)]
    x = torch.randn(1, D)
    with torch.no_grad():
        for _ in range(4):   # warm-up steps (not timed)
            for layer, cache in zip(layers, caches):
                x = layer(x, cache)
        t0 = time.perf_counter_ns()
        for _ in range(tokens):
            for layer, cache in zip(layers, caches):
                x = layer(x, cache)
            x = x / (x.norm() + 1e-6)
        t1 = time.perf_counter_ns()
    print(json.dumps({"decode_ns": t1 - t0, "check": float(x.sum())}))


def run(tokens, extra, out):
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "BASELINE_SHIM", "SHIM"):
        env.pop(k, None)
    env["MOECAP_OUT"] = out
    env["OMP_NUM_THREADS"] = "1"
    env["OPENBLAS_NUM_THREADS"] = "1"
    env.update(extra)
    p = subprocess.run(["/usr/bin/python3", os.path.abspath(__file__), "--child", str(tokens)], env=env,
                       preexec_fn=pin_preexec(),
                       capture_output=True, text=True)
    subprocess.run(["rm", "-rf", out])
    if p.returncode != 0:
        sys.exit("child failed: %s" % p.stderr[-800:])
    return json.loads(p.stdout.strip().splitlines()[-1])["decode_ns"]


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(int(sys.argv[2]))
        return
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    root = os.path.dirname(HERE)
    shim = os.path.realpath(os.environ.get("SHIM", os.path.join(root, "build", "lib", "libmoecap.so")))
    configs = [("plain", {}), ("plain again (noise floor)", {}), ("shim, default", {"LD_PRELOAD": shim})]
    if os.environ.get("BASELINE_SHIM"):
        configs.append(("baseline build (BASELINE_SHIM), default", {"LD_PRELOAD": os.environ["BASELINE_SHIM"]}))
    tmp = tempfile.mkdtemp(prefix="mc-torch-")
    print("date: %s, host: %s, %d CPUs, load before: %s" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.uname().nodename, os.cpu_count(),
        " ".join(open("/proc/loadavg").read().split()[:3])))
    print("command: %s%s %s" % ("PIN_CPU=%s " % os.environ["PIN_CPU"] if os.environ.get("PIN_CPU") else "",
                                os.path.relpath(__file__, root), " ".join(sys.argv[1:])))
    res = {c: [] for c, _ in configs}
    for r in range(rounds):
        for i in range(len(configs)):
            name, extra = configs[(i + r) % len(configs)]
            res[name].append(run(tokens, extra, os.path.join(tmp, "o")))
    plain = res["plain"]
    print()
    print("| PyTorch MoE decoder d=%d, %d tokens | plain decode ms (median) | ratio to plain: median [95 %% CI] | min..max |" % (D, tokens))
    print("| --- | --- | --- | --- |")
    for name, _ in configs[1:]:
        ratio = [x / p for x, p in zip(res[name], plain)]
        lo, hi = median_ci(ratio)
        print("| %s | %.1f | %.4f [%.3f, %.3f] | %.3f..%.3f |" % (
            name, statistics.median(plain) / 1e6, statistics.median(ratio), lo, hi, min(ratio), max(ratio)))
    print()
    print("load after: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
