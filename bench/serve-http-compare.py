#!/usr/bin/python3
"""Hand-written HTTP layer of `moe-ref serve` against libmicrohttpd, on the behaviours the
hostile tests check (docs/serve.md, "HTTP layer"): memory per idle connection, overload
answers, a half-closed client, /health requests per second at a few concurrencies.

    bench/serve-http-compare.py [MOE_REF ...]     (default build/bin/moe-ref)

libmicrohttpd is measured through bench/serve-mhd-probe.c (compiled here with
-lmicrohttpd -lopenblas; needs libmicrohttpd-dev), in its epoll mode (one thread for all
connections) and its thread-per-connection mode. Appends a Markdown table to
bench/results/serve-http.md with the command, date, machine and load.
"""
import json, os, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("BUILD", "build")
MIB = 1 << 20


def rss_kb(pid):
    for l in open("/proc/%d/status" % pid):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])


class Server:
    def __init__(self, argv, portf):
        self.p = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(portf) and open(portf).read().strip():
                break
            time.sleep(0.05)
        self.port = int(open(portf).read())
        os.unlink(portf)

    def stop(self):
        self.p.kill()
        self.p.wait()


def start(kind, tmp, limit):
    portf = os.path.join(tmp, "port")
    if kind.startswith("mhd-"):
        return Server([os.path.join(tmp, "mhd"), portf, str(limit), kind[4:]], portf)
    return Server([kind, "serve", "--model", os.path.join(tmp, "model"), "--port", "0", "--port-file", portf,
                   "--quiet", "--max-connections", str(limit)], portf)


def idle_cost(kind, tmp, n=256):
    s = start(kind, tmp, 1024)
    try:
        r0 = rss_kb(s.p.pid)
        conns = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(n)]
        for c in conns:
            c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")     # a head in progress
        time.sleep(1.0)
        r1 = rss_kb(s.p.pid)
        for c in conns:
            c.close()
        return (r1 - r0) / n
    finally:
        s.stop()


def overload(kind, tmp, limit=8, n=64):
    s = start(kind, tmp, limit)
    res, mu = {}, threading.Lock()
    body = b'{"prompt":"' + b"b" * (MIB - 16) + b'"}'
    req = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body

    def one():
        k = "no answer"
        try:
            c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
            try:
                c.sendall(req)
            except OSError as e:
                k = "send: " + type(e).__name__
            buf = b""
            while True:
                try:
                    d = c.recv(65536)
                except OSError as e:
                    k = "recv: " + type(e).__name__ if not buf else k
                    break
                if not d:
                    break
                buf += d
            if buf:
                k = buf.split(b" ")[1].decode()
            c.close()
        except OSError as e:
            k = "connect: " + type(e).__name__
        with mu:
            res[k] = res.get(k, 0) + 1
    try:
        held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(limit)]
        time.sleep(0.3)
        th = [threading.Thread(target=one) for _ in range(n)]
        for t in th:
            t.start()
        for t in th:
            t.join(60)
        for c in held:
            c.close()
        return ", ".join("%s: %d" % kv for kv in sorted(res.items()))
    finally:
        s.stop()


def half_close(kind, tmp):
    s = start(kind, tmp, 64)
    try:
        if kind.startswith("mhd-"):
            req = b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
        else:
            b = json.dumps({"prompt": "half", "max_tokens": 1000, "ignore_eos": True}).encode()
            req = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(b) + b
        c = socket.create_connection(("127.0.0.1", s.port), timeout=20)
        c.sendall(req)
        c.shutdown(socket.SHUT_WR)
        buf = b""
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                buf += d
        except OSError as e:
            return "error " + type(e).__name__
        c.close()
        return "answered %s (%d bytes)" % (buf.split(b" ")[1].decode(), len(buf)) if buf else "no answer"
    finally:
        s.stop()


def health_rps(kind, tmp, conc, n=2000):
    s = start(kind, tmp, 1024)
    try:
        t0 = time.time()
        subprocess.run(["curl", "-s", "--no-progress-meter", "--parallel", "--parallel-max", str(conc), "-o", "/dev/null",
                        "http://127.0.0.1:%d/health?[1-%d]" % (s.port, n)], check=True, stderr=subprocess.DEVNULL)
        return n / (time.time() - t0)
    finally:
        s.stop()


def main():
    bins = sys.argv[1:] or [os.path.join(ROOT, BUILD, "bin", "moe-ref")]
    tmp = tempfile.mkdtemp(prefix="mc-http-compare.")
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-o", os.path.join(tmp, "mhd"),
                    os.path.join(ROOT, "bench", "serve-mhd-probe.c"), "-lmicrohttpd", "-lopenblas"], check=True)
    subprocess.run([bins[0], "gen", "--arch", "qwen2_moe", "--out", os.path.join(tmp, "model"), "--seed", "3"],
                   check=True, stdout=subprocess.DEVNULL)
    kinds = bins + ["mhd-epoll", "mhd-thread"]
    load0 = open("/proc/loadavg").read().split()[:3]
    rows = []
    for k in kinds:
        rps = [health_rps(k, tmp, c) for c in (1, 8, 32, 128)]
        rows.append("| %s | %.0f | %s | %s | %s |" % (
            os.path.relpath(k, ROOT) if os.path.sep in k else k, idle_cost(k, tmp), overload(k, tmp),
            half_close(k, tmp), " / ".join("%.0f" % r for r in rps)))
        print(rows[-1], flush=True)
    out = os.path.join(ROOT, "bench", "results", "serve-http.md")
    with open(out, "a") as f:
        f.write("\n## %s — `bench/serve-http-compare.py %s`\n\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                                                  " ".join(sys.argv[1:])))
        f.write("Machine: %d CPUs, %s; load average before %s, after %s.\n\n" % (
            os.cpu_count(), [l.split(":")[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0],
            " ".join(load0), " ".join(open("/proc/loadavg").read().split()[:3])))
        f.write("| server | KiB per idle connection (256, head in progress) | 64 x 1 MiB POST beyond a limit of 8 (answers) "
                "| client half-closes, answer takes > 100 ms | GET /health req/s at 1 / 8 / 32 / 128 in flight |\n")
        f.write("| --- | --- | --- | --- | --- |\n")
        f.write("\n".join(rows) + "\n")
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
