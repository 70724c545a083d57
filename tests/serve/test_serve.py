#!/usr/bin/python3
"""`moe-ref serve` under load and abuse, on 127.0.0.1 only, with bounded loops.

Checks, each against an independent expectation:
  - /health, /v1/models; a completion equals `moe-ref run` on the same text prompt
  - concurrency sweep 1, 4, 16, 64 clients (streamed and non-streamed): every request
    answered with exactly max_tokens tokens and prompt_tokens = prompt bytes; the engine's
    ground truth holds exactly the tokens the clients received (sum over steps of
    sequences = sum of completion tokens; prefill tokens = prompt tokens), steps never
    exceed --max-batch, and new requests joined a running batch (continuous batching)
  - malformed / oversized / slow requests get the right 4xx (or are cut by the read
    timeout) and never stop well-formed requests from being answered
  - more connections than --max-connections get 503
  - a client that disconnects mid-stream frees its sequence (server log says so)
  - SIGTERM lets an in-flight stream finish, then the server exits 0
"""
import json, os, signal, socket, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import BUILD, FAILS, ROOT, check, finish, skip, wait_port  # noqa: E402

MOEREF = os.path.join(ROOT, BUILD, "bin", "moe-ref")
TMPDIRS = []


def raw(port, data, timeout=30.0, read=True):
    """Sends raw bytes, returns (status, headers, body) read until EOF; status None if none."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if data:
            s.sendall(data)
        if not read:
            return s
        buf = b""
        while True:
            try:
                k = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not k:
                break
            buf += k
    finally:
        if read:
            s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        status = None
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        hdrs[k.strip().lower().decode()] = v.strip().decode()
    return status, hdrs, body


def post(port, path, obj, timeout=60.0):
    b = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
    req = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b)
    return raw(port, req, timeout)


def get(port, path):
    return raw(port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")


def sse_events(body):
    ev = []
    for block in body.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: "):
                ev.append(line[6:].decode())
    return ev


def stream_result(body):
    """(text, chunks, usage, done) of an SSE body."""
    text, chunks, usage, done = "", 0, None, False
    for e in sse_events(body):
        if e == "[DONE]":
            done = True
            continue
        o = json.loads(e)
        if o.get("usage"):
            usage = o["usage"]
        for c in o.get("choices", []):
            t = c.get("text")
            if t is None:
                t = c.get("delta", {}).get("content", "")
            if t:
                text += t
                chunks += 1
    return text, chunks, usage, done


def main():
    if not os.access(MOEREF, os.X_OK):
        check(False, "%s not built" % MOEREF)
        return 1
    tmp = tempfile.mkdtemp(prefix="mc-serve-test.")
    TMPDIRS.append(tmp)
    model = os.path.join(tmp, "model")
    subprocess.run([MOEREF, "gen", "--arch", "qwen2_moe", "--out", model, "--seed", "3"], check=True,
                   stdout=subprocess.DEVNULL)
    portf, gt, log = os.path.join(tmp, "port"), os.path.join(tmp, "gt.jsonl"), os.path.join(tmp, "serve.log")
    MAXB, MAXC = 16, 100
    srv = subprocess.Popen([MOEREF, "serve", "--model", model, "--port", "0", "--port-file", portf,
                            "--max-batch", str(MAXB), "--max-connections", str(MAXC), "--read-timeout", "2",
                            "--ground-truth", gt], stderr=open(log, "w"))
    try:
        port = wait_port(portf, srv)
        if not check(port is not None, "server starts"):
            print("# " + open(log).read())
            return 1
        run_checks(port, model, tmp, gt, log, srv, MAXB, MAXC)
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait()
    mixed_mode(model, tmp)
    return 1 if FAILS else 0


def mixed_mode(model, tmp):
    """--mixed: prompts of newly arrived requests share steps with running decodes."""
    portf, gt, log = os.path.join(tmp, "port2"), os.path.join(tmp, "gt2.jsonl"), os.path.join(tmp, "serve2.log")
    srv = subprocess.Popen([MOEREF, "serve", "--model", model, "--port", "0", "--port-file", portf, "--mixed",
                            "--max-batch", "8", "--ground-truth", gt, "--quiet"], stderr=open(log, "w"))
    try:
        port = wait_port(portf, srv)
        res = []

        def client(k):
            p = "mixed client %d" % k
            st, _, body = post(port, "/v1/completions", {"prompt": p, "max_tokens": 200, "ignore_eos": True})
            o = json.loads(body) if st == 200 else {}
            res.append(st == 200 and o["usage"]["completion_tokens"] == 200 and o["usage"]["prompt_tokens"] == len(p))

        # a long stream first; once it decodes, 11 more requests arrive: their prompts must
        # share steps with its decode tokens
        LONG = 2000
        b = json.dumps({"prompt": "long", "max_tokens": LONG, "ignore_eos": True, "stream": True,
                        "stream_options": {"include_usage": True}}).encode()
        s = raw(port, b"POST /v1/completions HTTP/1.1\r\nContent-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b, read=False)
        buf = s.recv(65536)
        th = [threading.Thread(target=client, args=(k,)) for k in range(11)]
        for t in th:
            t.start()
        s.settimeout(60)
        while True:
            k = s.recv(65536)
            if not k:
                break
            buf += k
        s.close()
        for t in th:
            t.join(60)
        _, chunks, usage, done = stream_result(buf.partition(b"\r\n\r\n")[2])
        check(len(res) == 11 and all(res) and done and chunks == LONG,
              "--mixed: a long stream and 11 requests joining it are all answered in full")
        srv.send_signal(signal.SIGTERM)
        check(srv.wait(30) == 0, "--mixed: server exits 0")
        steps = [json.loads(l) for l in open(gt)]
        kinds = set(s["kind"] for s in steps)
        check("mixed" in kinds, "--mixed: ground truth has mixed steps (%s)" % sorted(kinds))
        check(sum(s["sequences"] for s in steps) == 11 * 200 + LONG and max(s["sequences"] for s in steps) <= 8,
              "--mixed: sampled tokens = 11 x 200 + %d, batches <= 8" % LONG)
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait()


def run_checks(port, model, tmp, gt, log, srv, MAXB, MAXC):
    st, _, body = get(port, "/health")
    check(st == 200 and json.loads(body) == {"status": "ok"}, "GET /health")
    st, _, body = get(port, "/v1/models")
    check(st == 200 and json.loads(body)["data"][0]["id"] == "model", "GET /v1/models lists the model")

    # --- same text as `moe-ref run` (independent path: run's own batching + tokenizer)
    prompts = ["hello world", "The quick brown fox", "abc"]
    pf = os.path.join(tmp, "p.txt")
    open(pf, "w").write("\n".join(prompts) + "\n")
    # run prints the generated ids; text = the documented byte-level decode of each id:
    # printable ASCII, '\n' and '\t' as themselves, any other id as chr(32 + id % 95)
    ids = subprocess.run([MOEREF, "run", "--model", model, "--text-prompts", pf, "--gen", "7"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    dec = lambda i: chr(i) if (32 <= i < 128 or i in (9, 10)) else chr(32 + i % 95)
    ref = ["".join(dec(int(x)) for x in line.split()) for line in ids]
    same = True
    for i, p in enumerate(prompts):
        st, _, body = post(port, "/v1/completions", {"prompt": p, "max_tokens": 7, "ignore_eos": True})
        o = json.loads(body)
        same &= st == 200 and o["choices"][0]["text"] == ref[i] and o["usage"] == {
            "prompt_tokens": len(p), "completion_tokens": 7, "total_tokens": len(p) + 7}
    check(same, "completions equal `moe-ref run` output and usage counts bytes")
    expected_completion = 3 * 7
    expected_prompt = sum(len(p) for p in prompts)

    # --- concurrency sweep
    MT = 8
    for C in (1, 4, 16, 64):
        results = [None] * (2 * C)

        def client(k):
            prompt = "client %d of %d: %s" % (k, C, "x" * (k % 13))
            try:
                st, _, body = post(port, "/v1/completions", {"prompt": prompt, "max_tokens": MT, "ignore_eos": True,
                                                            "stream": True, "stream_options": {"include_usage": True}})
                text, chunks, usage, done = stream_result(body)
                ok1 = st == 200 and done and chunks == MT and len(text) == MT and usage == {
                    "prompt_tokens": len(prompt), "completion_tokens": MT, "total_tokens": len(prompt) + MT}
                results[2 * k] = (ok1, len(prompt), (st, chunks, usage, done))
                st, _, body = post(port, "/v1/chat/completions",
                                   {"messages": [{"role": "user", "content": prompt}], "max_tokens": MT, "ignore_eos": True})
                o = json.loads(body)
                plen = len("<|user|>\n" + prompt + "\n<|assistant|>\n")
                ok2 = st == 200 and len(o["choices"][0]["message"]["content"]) == MT and o["usage"]["completion_tokens"] == MT \
                    and o["usage"]["prompt_tokens"] == plen
                results[2 * k + 1] = (ok2, plen, (st, o.get("usage")))
            except Exception as e:  # noqa: BLE001 - any failure is a test failure
                results[2 * k] = results[2 * k] or (False, 0, repr(e))
                results[2 * k + 1] = (False, 0, repr(e))

        th = [threading.Thread(target=client, args=(k,)) for k in range(C)]
        t0 = time.time()
        for t in th:
            t.start()
        for t in th:
            t.join(120)
        bad = [r for r in results if not (r and r[0])]
        check(not bad and all(not t.is_alive() for t in th),
              "concurrency %d: all %d requests answered with %d tokens (%.2f s)" % (C, 2 * C, MT, time.time() - t0), bad[:3])
        expected_completion += 2 * C * MT
        expected_prompt += sum(r[1] for r in results if r)

    # --- ground truth of the engine = what the clients received
    steps = [json.loads(l) for l in open(gt)]
    seqs = sum(s["sequences"] for s in steps)
    prefill_tokens = sum(t for s in steps for t, c in zip(s["seq_tokens"], s["context"]) if c == t)
    check(seqs == expected_completion, "ground truth: sampled tokens over all steps = completion tokens served",
          (seqs, expected_completion))
    check(prefill_tokens == expected_prompt, "ground truth: prefill tokens = prompt tokens served", (prefill_tokens, expected_prompt))
    check(max(s["sequences"] for s in steps) <= MAXB, "no step exceeds --max-batch")
    check(max(s["sequences"] for s in steps) > 1, "concurrent requests were batched (largest step %d)" % max(s["sequences"] for s in steps))
    # continuous batching: a prefill step between two decode steps, after which the decode batch grew
    joined = False
    dec = [(i, s["sequences"]) for i, s in enumerate(steps) if s["kind"] == "decode"]
    for (i0, n0), (i1, n1) in zip(dec, dec[1:]):
        if n1 > n0 and any(steps[j]["kind"] == "prefill" for j in range(i0 + 1, i1)):
            joined = True
            break
    check(joined, "new requests joined a running batch between decode steps")
    check(all(s["kind"] in ("prefill", "decode") for s in steps), "default schedule: separate prefill and decode steps")

    # --- moecap bench (chat, multiple choice) against the server: usage-based counts
    bench = os.path.join(ROOT, BUILD, "bin", "moecap")
    if os.access(bench, os.X_OK):
        out = os.path.join(tmp, "benchrun")
        b = subprocess.run([bench, "bench", "--url", "http://127.0.0.1:%d" % port, "--chat", "--dataset", "mc", "-n", "10",
                            "--concurrency", "5", "--max-tokens", "6", "--timeout", "30", "--quiet", "--out", out],
                           capture_output=True, text=True, timeout=60)
        recs = [json.loads(l) for l in open(os.path.join(out, "requests.jsonl"))] if b.returncode == 0 else []
        summ = json.load(open(os.path.join(out, "bench-summary.json"))) if b.returncode == 0 else {}
        ok = len(recs) == 10 and all(r["ok"] and r["output_tokens_source"] == "usage" and r["prompt_tokens_source"] == "usage"
                                     and r["score"] in (0, 1) for r in recs)
        # each streamed chunk is one token; tokens without text (EOS) exist only in usage
        ok = ok and all(r["chunks"] <= r["output_tokens"] <= 6 for r in recs) and summ["config"]["model"] == "model"
        check(ok, "moecap bench --chat --dataset mc against moe-ref serve", b.stderr[-500:])
    else:
        skip("moecap bench against the server", "moecap not built")

    # --- malformed and oversized requests
    cases = [
        ("invalid JSON", b"POST /v1/completions HTTP/1.1\r\nContent-Length: 5\r\n\r\n{bad}", 400),
        ("JSON not an object", b"POST /v1/completions HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]", 400),
        ("missing prompt", b'POST /v1/completions HTTP/1.1\r\nContent-Length: 16\r\n\r\n{"max_tokens": 3}'[:-1], 400),
        ("empty prompt", b'POST /v1/completions HTTP/1.1\r\nContent-Length: 13\r\n\r\n{"prompt": ""}'[:-1], 400),
        ("negative max_tokens", None, 400),
        ("max_tokens beyond context", None, 400),
        ("token id out of range", None, 400),
        ("stream not a boolean", None, 400),
        ("messages missing", b'POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}', 400),
        ("unknown path", b"GET /v2/nothing HTTP/1.1\r\n\r\n", 404),
        ("wrong method", b"GET /v1/completions HTTP/1.1\r\n\r\n", 405),
        ("garbage request line", b"\x00\x01\x02 garbage\r\n\r\n", 400),
        ("no HTTP version", b"GET /health\r\n\r\n", 400),
        ("POST without length", b"POST /v1/completions HTTP/1.1\r\n\r\n", 411),
        ("chunked body", b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411),
        ("bad Content-Length", b"POST /v1/completions HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400),
        ("body over 1 MiB announced", b"POST /v1/completions HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413),
        ("headers over 16 KiB", b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
    ]
    bodies = {"negative max_tokens": {"prompt": "a", "max_tokens": -3},
              "max_tokens beyond context": {"prompt": "a", "max_tokens": 100000},
              "token id out of range": {"prompt": [1, 2, 99999]},
              "stream not a boolean": {"prompt": "a", "stream": "yes"}}
    for name, data, want in cases:
        if data is None:
            b = json.dumps(bodies[name]).encode()
            data = b"POST /v1/completions HTTP/1.1\r\nContent-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b
        st, hdrs, body = raw(port, data, timeout=10)
        is_json_err = False
        try:
            is_json_err = json.loads(body)["error"]["code"] == want
        except Exception:  # noqa: BLE001
            pass
        check(st == want and is_json_err, "%s -> %d with a JSON error" % (name, want), (st, body[:200]))

    # a real 2 MiB body: the server answers 413 (the client may see a reset instead) and lives on
    try:
        big = b"x" * (2 << 20)
        raw(port, b"POST /v1/completions HTTP/1.1\r\nContent-Length: " + str(len(big)).encode() + b"\r\n\r\n" + big, timeout=10)
    except OSError:
        pass
    st, _, _ = get(port, "/health")
    check(st == 200, "server alive after a 2 MiB body")

    # --- slow client (slowloris) does not block others; it is cut by --read-timeout 2
    slow = raw(port, b"POST /v1/completions HTTP/1.1\r\nContent-Le", read=False)
    t0 = time.time()
    st, _, body = post(port, "/v1/completions", {"prompt": "fast one", "max_tokens": 2})
    check(st == 200 and time.time() - t0 < 1.5, "a request is answered while a slow client dribbles (%.2f s)" % (time.time() - t0))
    slow.settimeout(6)
    t0 = time.time()
    try:
        got = slow.recv(4096)
    except OSError:
        got = b""
    dt = time.time() - t0
    check(dt < 4 and (got == b"" or b" 408 " in got), "slow client cut after the read timeout (%.1f s, %r)" % (dt, got[:40]))
    slow.close()

    # --- connection limit
    idle = [raw(port, b"", read=False) for _ in range(MAXC)]
    time.sleep(0.5)
    st, _, body = get(port, "/health")
    check(st == 503, "connection %d beyond --max-connections %d gets 503" % (MAXC + 1, MAXC), (st, body[:100]))
    for s in idle:
        s.close()
    for _ in range(50):
        st, _, _ = get(port, "/health")
        if st == 200:
            break
        time.sleep(0.1)
    check(st == 200, "server accepts again once idle connections are gone")

    # --- client disconnect mid-stream frees the sequence
    b = json.dumps({"prompt": "leaving early", "max_tokens": 3000, "ignore_eos": True, "stream": True}).encode()
    s = raw(port, b"POST /v1/completions HTTP/1.1\r\nContent-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b, read=False)
    got = b""
    while got.count(b"data: ") < 3:
        got += s.recv(4096)
    s.close()
    gone = False
    for _ in range(50):
        if "prompt=13 completion=" in open(log).read() and "(client gone)" in open(log).read():
            gone = True
            break
        time.sleep(0.1)
    lines = [l for l in open(log) if "prompt=13 " in l]
    n_done = int(lines[-1].split("completion=")[1].split()[0]) if lines else -1
    check(gone and 0 < n_done < 3000, "client disconnect mid-stream cancels the request (%d of 3000 tokens)" % n_done, lines)
    st, _, body = post(port, "/v1/completions", {"prompt": "after", "max_tokens": 2})
    check(st == 200, "server answers after the disconnect")

    # the same for a non-streamed request (nothing is written until the end, so the
    # server must notice the hang-up while tokens are still being generated)
    b = json.dumps({"prompt": "z" * 777, "max_tokens": 3000, "ignore_eos": True}).encode()
    s = raw(port, b"POST /v1/completions HTTP/1.1\r\nContent-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b, read=False)
    # hang up once its 777-token prefill step is in the ground truth (a fixed sleep can end
    # before the prefill on a loaded machine), so it is cancelled while decoding
    def prefilled():
        for l in open(gt):
            try:
                if 777 in json.loads(l)["seq_tokens"]:
                    return True
            except ValueError:      # the line being written
                pass
        return False
    for _ in range(200):
        if prefilled():
            break
        time.sleep(0.05)
    time.sleep(0.05)
    s.close()
    n_done = -1
    for _ in range(50):
        lines = [l for l in open(log) if "prompt=777 " in l]
        if lines:
            n_done = int(lines[-1].split("completion=")[1].split()[0])
            break
        time.sleep(0.1)
    check(lines and "(client gone)" in lines[-1] and 0 < n_done < 3000,
          "client disconnect during a non-streamed request cancels it (%d of 3000 tokens)" % n_done, lines)

    # --- SIGTERM drains an in-flight stream, then exits 0
    N = 400
    b = json.dumps({"prompt": "drain me", "max_tokens": N, "ignore_eos": True, "stream": True,
                    "stream_options": {"include_usage": True}}).encode()
    s = raw(port, b"POST /v1/completions HTTP/1.1\r\nContent-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b, read=False)
    first = s.recv(4096)
    srv.send_signal(signal.SIGTERM)
    buf = first
    s.settimeout(30)
    while True:
        k = s.recv(65536)
        if not k:
            break
        buf += k
    s.close()
    text, chunks, usage, done = stream_result(buf.partition(b"\r\n\r\n")[2])
    check(done and usage and usage["completion_tokens"] == N and chunks == N, "SIGTERM: in-flight stream completes (%d chunks)" % chunks)
    try:
        rc = srv.wait(30)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0, "SIGTERM: server exits 0 (%s)" % rc)
    refused = False
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        refused = True
    check(refused, "no longer listening after shutdown")


def run_and_clean():
    rc = main()
    return finish(*TMPDIRS) or rc      # keeps the temporary directory of a failed run


if __name__ == "__main__":
    sys.exit(run_and_clean())
