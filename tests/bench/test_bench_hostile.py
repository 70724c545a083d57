#!/usr/bin/python3
"""`moecap bench` against hostile servers and a hostile run directory (tests/bench/mock_openai.py):

  - an endless stream as fast as the socket goes (mode flood), --timeout 3: bench ends within
    the timeout + 2 s, its peak RSS stays under its idle peak + 16 MiB and the log under
    2 MiB (what is kept per request is bounded by design, docs/bench.md)
  - usage claiming completion_tokens 9.9e18 and prompt_tokens -5: ignored, with a warning;
    output tokens are the counted chunks (6 each), the summary total is 12
  - text that is not UTF-8: every log line is strict UTF-8 JSON, each ill-formed part
    replaced by U+FFFD
  - symlinks planted at requests.jsonl, bench-summary.json and vllm-bench.json: the
    victims are untouched, the outputs are regular files, no temporary file is left
  - vllm-bench.json: every field equals the bench-summary.json value it is named after
"""
import json, os, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import BUILD, ROOT, check, finish, wait_port  # noqa: E402

MOECAP = os.path.join(ROOT, BUILD, "bin", "moecap")


def bench(port, tmp, mode, out, *extra):
    """Runs bench on `mode` prompts; returns (exit status, seconds, peak RSS bytes)."""
    ds = os.path.join(tmp, mode + ".jsonl")
    with open(ds, "w") as f:
        f.write(json.dumps({"prompt": "MODE %s go" % mode, "expected": "42", "type": "gsm8k"}) + "\n")
    # under ASan a freed block waits in a 256 MiB quarantine before reuse, which would look
    # like growth; a small quarantine keeps the RSS check meaningful there
    env = dict(os.environ)
    if os.environ.get("SAN") == "1":
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"
    t0 = time.time()
    p = subprocess.Popen([MOECAP, "bench", "--url", "http://127.0.0.1:%d/v1" % port, "--dataset", ds, "--model", "m",
                          "--quiet", "--out", out] + list(extra), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=env)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, time.time() - t0, ru.ru_maxrss * 1024, p.stderr.read().decode(errors="replace")


def records(out):
    return [json.loads(l.decode("utf-8")) for l in open(os.path.join(out, "requests.jsonl"), "rb")]


def main():
    if not os.access(MOECAP, os.X_OK):
        check(False, "%s not built" % MOECAP)
        return 1
    tmp = tempfile.mkdtemp(prefix="mc-bench-hostile.")
    portf = os.path.join(tmp, "port")
    srv = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "bench", "mock_openai.py"), portf, "120"])
    try:
        port = wait_port(portf, srv)

        rc, dt_good, idle_peak, err = bench(port, tmp, "good", os.path.join(tmp, "good"), "-n", "2", "--timeout", "10")
        check(rc == 0, "a well-behaved run works (%.2f s, reference peak RSS %.1f MiB)" % (dt_good, idle_peak / 2**20), err)

        out = os.path.join(tmp, "flood")
        rc, dt, peak, err = bench(port, tmp, "flood", out, "-n", "2", "--concurrency", "2", "--timeout", "3")
        size = os.path.getsize(os.path.join(out, "requests.jsonl"))
        recs = records(out)
        dur = json.load(open(os.path.join(out, "bench-summary.json")))["duration_s"]
        print("# flood: %.2f s, peak RSS %.1f MiB, log %d bytes, chunks %s" % (dt, peak / 2**20, size, [r["chunks"] for r in recs]))
        # the requests end at the timeout, and what follows them (log, summary) is quick: the
        # whole run takes at most the reference run's time (process start and exit, a 0.7 s
        # stream) + 3.5 s (before: 19.8 s with --timeout 5)
        check(dur < 3.5 and dt < dt_good + 3.5, "endless stream with --timeout 3: requests end after %.2f s, "
              "bench after %.2f s (reference run %.2f s)" % (dur, dt, dt_good))
        check(len(recs) == 2 and all(not r["ok"] and r["error"].startswith("timeout") and r["chunks"] > 1000 for r in recs),
              "both requests recorded as timeouts after many chunks", [(r["error"], r["chunks"]) for r in recs])
        check(peak < idle_peak + 16 * 2**20, "peak RSS %.1f MiB < reference %.1f MiB + 16 MiB" % (peak / 2**20, idle_peak / 2**20))
        check(size < 2 * 2**20, "requests.jsonl %d bytes < 2 MiB" % size)
        check(all(len(r["itl_ms"]) <= 2 * 256 + 16 and len(r["answer"].encode()) <= 64 * 1024 for r in recs),
              "kept per request: at most 2 x max_tokens + 16 gaps and 64 KiB of text")

        out = os.path.join(tmp, "huge")
        rc, dt, peak, err = bench(port, tmp, "hugeusage", out, "-n", "2", "--timeout", "10")
        recs = records(out)
        summ = json.load(open(os.path.join(out, "bench-summary.json")))
        check(rc == 0 and all(r["ok"] and r["output_tokens"] == 6 and r["output_tokens_source"] == "chunks"
                              and r["prompt_tokens"] is None and "usage ignored" in (r["warning"] or "") for r in recs),
              "usage 9.9e18 / -5 ignored with a warning; output tokens = 6 counted chunks",
              [(r["output_tokens"], r["warning"]) for r in recs] + [err])
        check(summ["total_output_tokens"] == 12, "summary total_output_tokens = 12", summ.get("total_output_tokens"))

        out = os.path.join(tmp, "utf8")
        rc, dt, peak, err = bench(port, tmp, "badutf8", out, "-n", "1", "--timeout", "10")
        try:
            recs = records(out)
            ans = recs[0]["answer"]
        except (ValueError, UnicodeDecodeError, IndexError) as e:
            recs, ans = [], repr(e)
        want = "ok \ufffd\ufffd end half \ufffd overlong \ufffd\ufffd fine \u20ac"
        check(ans == want, "invalid UTF-8 from the server: strict-UTF-8 JSON log, ill-formed parts -> U+FFFD", ans)

        out = os.path.join(tmp, "links")
        os.makedirs(out)
        victims = {}
        for name in ("requests.jsonl", "bench-summary.json", "vllm-bench.json"):
            v = os.path.join(tmp, "victim-" + name)
            open(v, "w").write("precious " + name)
            os.symlink(v, os.path.join(out, name))
            victims[v] = "precious " + name
        rc, dt, peak, err = bench(port, tmp, "good", out, "-n", "2", "--timeout", "10")
        intact = all(open(v).read() == c for v, c in victims.items())
        regular = all(not os.path.islink(os.path.join(out, n)) and os.path.isfile(os.path.join(out, n))
                      for n in ("requests.jsonl", "bench-summary.json", "vllm-bench.json"))
        leftovers = [n for n in os.listdir(out) if n.startswith(".")]
        check(rc == 0 and intact and regular and not leftovers and len(records(out)) == 2,
              "planted symlinks: victims untouched, outputs are regular files, no temporary left",
              (rc, intact, regular, leftovers, err))

        for extra, rate in ((["-n", "6", "--concurrency", "3"], "inf"), (["-n", "6", "--rate", "20"], 20)):
            out = os.path.join(tmp, "vllm-%s" % rate)
            rc, dt, peak, err = bench(port, tmp, "good", out, "--timeout", "10", "--goodput", "ttft:1000", *extra)
            s = json.load(open(os.path.join(out, "bench-summary.json")))
            v = json.load(open(os.path.join(out, "vllm-bench.json")))
            want = {"duration": s["duration_s"], "completed": s["completed"], "failed": s["failed"],
                    "total_input_tokens": s["total_input_tokens"], "total_output_tokens": s["total_output_tokens"],
                    "request_throughput": s["request_throughput"], "output_throughput": s["output_throughput"],
                    "total_token_throughput": s["total_token_throughput"],
                    "request_goodput": s["goodput"]["request_goodput"], "max_concurrency": s["config"]["max_concurrency"],
                    "request_rate": rate, "num_prompts": 6}
            for m in ("ttft", "tpot", "itl", "e2el"):
                for vk, sk in (("mean", "mean"), ("median", "p50"), ("std", "std"), ("p99", "p99")):
                    want["%s_%s_ms" % (vk, m)] = s[m + "_ms"][sk]
            diff = {k: (v.get(k, "missing"), x) for k, x in want.items() if v.get(k, "missing") != x}
            check(rc == 0 and not diff and s["completed"] == 6 and isinstance(v["mean_itl_ms"], float),
                  "vllm-bench.json (request_rate %s): all %d vLLM fields equal bench-summary.json" % (rate, len(want)), diff)
    finally:
        srv.kill()
        srv.wait()
        rc = finish(tmp)
    return rc


if __name__ == "__main__":
    sys.exit(main())
