#!/usr/bin/env python3
"""`moecap report` and `moecap dump` on the audit's hostile inputs (tests/fuzz/crashes/report/,
written by tests/fuzz/make_hostile_traces.py, which must still reproduce them byte for byte).
Each case runs the real binary as a child and checks its exit status, its output against the
figures the input was built with, its wall time, and its peak RSS (os.wait4) against the
documented bound (docs/reliability.md): peak RSS <= 128 MiB + 16 x the run's trace bytes."""
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import FAILS, check  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", "build")
MC = os.path.join(ROOT, BUILD, "bin", "moecap")
CRASH = os.path.join(ROOT, "tests", "fuzz", "crashes", "report")
CFG = os.path.join(ROOT, "tests", "fuzz", "corpus", "model_config", "mixtral-tiny.json")
HW = os.path.join(ROOT, "tests", "report", "hw-test.json")
GEN = os.path.join(ROOT, "tests", "fuzz", "make_hostile_traces.py")
SAN = os.environ.get("SAN") == "1"


def run(args, timeout=60):
    """Runs a child; returns (status, stdout, stderr, wall s, peak RSS bytes)."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(args, stdout=out, stderr=err)
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.01)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        rc = os.waitstatus_to_exitcode(status)
        return rc, out.read(), err.read().decode("utf-8", "replace"), wall, ru.ru_maxrss * 1024


def rss_bound(run_dir):
    total = sum(os.path.getsize(os.path.join(run_dir, f)) for f in os.listdir(run_dir) if f.endswith(".mct"))
    return 128 * 2**20 + 16 * total


def report_run(tmp, name, files, copies=1):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    for f in files:
        data = open(f if os.path.isabs(f) else os.path.join(CRASH, f), "rb").read()
        for i in range(copies):
            if copies > 1 and data[24:26] == b"\x01\x00":   # one process per copy: pid 100 + i
                data = data[:32] + struct.pack("<i", 100 + i) + data[36:]
            with open(os.path.join(d, ("%d-" % i if copies > 1 else "") + os.path.basename(f)), "wb") as o:
                o.write(data)
    return d


def moecap_report(d, timeout=60):
    return run([MC, "report", d, "--model", CFG, "--hw", HW, "--quiet"], timeout)


def load(d):
    with open(os.path.join(d, "report.json"), "rb") as f:
        return json.loads(f.read().decode("utf-8"))   # strict: invalid UTF-8 raises


def main():
    tmp = tempfile.mkdtemp()
    try:
        # the generator still writes exactly the kept inputs
        gen = os.path.join(tmp, "gen")
        subprocess.run([sys.executable, GEN, gen], check=True)
        diff = [f for f in os.listdir(gen) if f.endswith(".mct") and
                open(os.path.join(gen, f), "rb").read() !=
                open(os.path.join(CRASH if os.path.exists(os.path.join(CRASH, f)) else
                                  os.path.join(ROOT, "tests", "fuzz", "crashes", "trace_reader"), f), "rb").read()]
        check(not diff, "make_hostile_traces.py reproduces the kept inputs", diff)

        # 1. GEMM n = 2^60 (was: size overflow in the contexts array, heap write overflow)
        d = report_run(tmp, "gemm-n", ["gemm-n-2e60.mct"])
        rc, _, err, wall, rss = moecap_report(d)
        r = load(d) if rc == 0 else {}
        check(rc == 0 and r["aggregate"]["steps"] == 2 and r["run"]["attribution"]["implausible_records"] == 1,
              "GEMM n = 2^60: exit 0, the 2 ordinary steps, 1 implausible record skipped",
              "rc %d %s" % (rc, err))

        # 2. router tap tokens = 2^62 (was: tokens x experts x 4 wrapped, heap read overflow)
        d = report_run(tmp, "tap", ["router-tap-tokens-2e62.mct"])
        rc, _, err, wall, rss = moecap_report(d)
        r = load(d) if rc == 0 else {}
        notes = " ".join(n["text"] for n in r.get("notes", []))
        check(rc == 0 and r["aggregate"]["steps"] == 2 and "1 router-logit taps unreadable" in notes,
              "router tap tokens = 2^62: exit 0, 2 steps, the tap counted unreadable",
              "rc %d %s %s" % (rc, err, notes))

        # 3a. GEMM n = 2^29 in a 120 KB trace (was: 83 s, 8.4 GB)
        d = report_run(tmp, "n29", ["gemm-n-2e29-120k.mct"])
        rc, _, err, wall, rss = moecap_report(d)
        r = load(d) if rc == 0 else {}
        # the file holds 42 ordinary one-token steps (see the generator) around the bad lm_head
        check(rc == 0 and r["aggregate"]["steps"] == 42 and r["run"]["attribution"]["implausible_records"] == 1
              and wall < (30 if SAN else 10) and (SAN or rss <= rss_bound(d)),
              "GEMM n = 2^29 in 120 KB: exit 0, 42 steps, 1 skipped, %.2f s, peak RSS %.1f MiB <= %.1f MiB"
              % (wall, rss / 2**20, rss_bound(d) / 2**20), "rc %d %s" % (rc, err))

        # 3b. eight files with a STRING id near 2^26 (was: 512 MB table per file, 4.2 GB)
        d = report_run(tmp, "strid", [os.path.join(ROOT, "tests", "fuzz", "crashes", "trace_reader", "string-id-2e26.mct")], 8)
        rc, _, err, wall, rss = moecap_report(d)
        check(rc == 0 and (SAN or rss <= rss_bound(d)),
              "8 files with STRING id 2^26-1: exit 0, peak RSS %.1f MiB <= %.1f MiB" % (rss / 2**20, rss_bound(d) / 2**20),
              "rc %d %s" % (rc, err))

        # 3c. the reader's worst case: 8 MB of STRING records of invalid UTF-8 (stored repaired, 3x)
        d = os.path.join(tmp, "big")
        os.makedirs(d)
        subprocess.run([sys.executable, GEN, "--big", str(8 << 20), os.path.join(d, "big.mct")], check=True)
        rc, _, err, wall, rss = moecap_report(d)
        check(rc == 0 and (SAN or rss <= rss_bound(d)),
              "8 MiB of invalid-UTF-8 strings: exit 0, peak RSS %.1f MiB <= %.1f MiB (%.2f s)"
              % (rss / 2**20, rss_bound(d) / 2**20, wall), "rc %d %s" % (rc, err))

        # 3d. naming storm: 3000 tensors of one file mapped at 3000 addresses (9M placements;
        # was: quadratic time and memory, 13 s and 245 MB at 2000)
        d = os.path.join(tmp, "names")
        os.makedirs(d)
        subprocess.run([sys.executable, GEN, "--names", "3000", os.path.join(d, "names.mct")], check=True)
        rc, _, err, wall, rss = moecap_report(d, timeout=120)
        r = load(d) if rc == 0 else {}
        notes = " ".join(n["text"] for n in r.get("notes", []))
        check(rc == 0 and "placements of tensors" in notes and (SAN or rss <= rss_bound(d)),
              "3000 maps x 3000 tensors: exit 0, placements bounded and said so, %.1f s, peak RSS %.1f MiB <= %.1f MiB"
              % (wall, rss / 2**20, rss_bound(d) / 2**20), "rc %d %s" % (rc, err))

        # 4. a prefill of 2^33 tokens (was: signed overflow in n(n+1)/2): corrupt, said so, exit 2
        d = report_run(tmp, "prefill", ["prefill-2e33-tokens.mct"])
        rc, _, err, wall, rss = moecap_report(d)
        check(rc == 2 and "impossible sizes" in err, "prefill of 2^33 tokens: exit 2 naming the impossible sizes",
              "rc %d %s" % (rc, err))

        # 8. an empty trace and a FIFO named *.mct next to a good trace: skipped with warnings
        d = report_run(tmp, "empty", ["empty.mct", "gemm-n-2e60.mct"])
        os.mkfifo(os.path.join(d, "fifo.mct"))
        os.mkfifo(os.path.join(d, "requests.jsonl"))   # the bench request log the report joins
        rc, _, err, wall, rss = moecap_report(d, timeout=30)
        r = load(d) if rc == 0 else {}
        notes = [n["text"] for n in r.get("notes", [])]
        check(rc == 0 and r["aggregate"]["steps"] == 2 and any("empty.mct" in n for n in notes)
              and any("fifo.mct: not a regular file" in n for n in notes)
              and any("requests.jsonl is not a regular file" in n for n in notes),
              "empty *.mct, FIFO *.mct and FIFO requests.jsonl: exit 0 in %.1f s, 2 steps, both skipped with a warning" % wall,
              "rc %d %s %s" % (rc, err, notes))
        rc, _, err, wall, _ = run([MC, "dump", os.path.join(d, "fifo.mct")], timeout=10)
        check(rc == 2 and "not a regular file" in err, "dump of a FIFO: exit 2 at once (%.2f s)" % wall,
              "rc %d %s" % (rc, err))

        # 8b. dump --symbolize opens the files the trace's mapping records name: one is a FIFO
        sys.path.insert(0, os.path.dirname(GEN))
        import make_hostile_traces as mh
        fifo = os.path.join(d, "lib.so")
        os.mkfifo(fifo)
        path = os.path.join(tmp, "sym.mct")
        with open(path, "wb") as f:
            f.write(mh.header() + mh.process() + mh.string(1, fifo.encode()) +
                    mh.rec(14, struct.pack("<QQQII", 0x1000, 0x2000, 0, 1, 5)) +
                    mh.rec(13, struct.pack("<IIQ", 1, 1, 0x1100)))
        rc, out, err, wall, _ = run([MC, "dump", "--symbolize", path], timeout=10)
        check(rc == 0 and b'"frames":["lib.so+0x100"]' in out,
              "dump --symbolize with a mapping naming a FIFO: exit 0 at once (%.2f s)" % wall,
              "rc %d %s %s" % (rc, err, out[-300:]))

        # 9. invalid UTF-8 in argv, exe, host and a note: report.json and dump lines are valid UTF-8 JSON
        d = report_run(tmp, "utf8", ["bad-utf8.mct"])
        rc, _, err, wall, rss = moecap_report(d)
        try:
            r = load(d)
            p = r["run"]["processes"][0]
            # the bytes make_hostile_traces.py wrote, decoded by Python's independent decoder
            bad = b"\xff\xfe\xc3(\xed\xa0\x80\xf4\x90\x80\x80 end".decode("utf-8", "replace")
            ok = (rc == 0 and p["argv"] == ["prog", bad, "\ufffd"] and p["exe"] == "/usr/bin/" + bad
                  and p["host"] == b"host\xc0\xaf".decode("utf-8", "replace")
                  and any(n["text"] == b"note \xe2\x82".decode("utf-8", "replace") for n in r["notes"]))
            detail = p
        except (ValueError, KeyError, IndexError) as e:
            ok, detail = False, "rc %d %s %r" % (rc, err, e)
        check(ok, "invalid UTF-8 from the trace: report.json is valid UTF-8, bad bytes are U+FFFD", detail)
        rc, out, err, _, _ = run([MC, "dump", os.path.join(d, "bad-utf8.mct")])
        try:
            lines = [json.loads(l.decode("utf-8")) for l in out.splitlines()]
            argv = [l for l in lines if l["type"] == "process"][0]["argv"]
            ok = rc == 0 and argv[2] == "\ufffd" and lines[0]["text"].startswith("/usr/bin/\ufffd")
        except (ValueError, KeyError, IndexError) as e:
            ok, argv = False, e
        check(ok, "invalid UTF-8 from the trace: dump lines are valid UTF-8 JSON", argv)

        # 9b. the repair rule against an independent decoder: 400 random byte strings as STRING
        # records; `dump` must give exactly Python's bytes.decode("utf-8", "replace") (one U+FFFD per
        # maximal invalid subpart, the Unicode recommendation) for each
        import random
        rnd = random.Random(12)
        pool = [b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe0\x80",
                b"\xf4\x90\x80\x80", b"\xf8", b"\xff", b"\x80", b"a", b"\"", b"\\", b"\n", b"\x01"]
        texts = []
        for i in range(400):
            t = b"".join(rnd.choice(pool) if rnd.random() < 0.7 else bytes([rnd.randrange(1, 256)])
                         for _ in range(rnd.randrange(1, 12)))
            texts.append(t[:rnd.randrange(1, len(t) + 1)])   # cut anywhere: truncated sequences
        path = os.path.join(tmp, "strings.mct")
        with open(path, "wb") as f:
            f.write(mh.header() + b"".join(mh.string(i + 1, t) for i, t in enumerate(texts)))
        rc, out, err, _, _ = run([MC, "dump", path])
        got = [json.loads(l.decode("utf-8"))["text"] for l in out.splitlines()]
        want = [t.decode("utf-8", "replace") for t in texts]
        bad = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
        check(rc == 0 and len(got) == 400 and not bad,
              "UTF-8 repair of 400 random strings equals Python's decode(errors='replace')", bad[:5])

        # 10. planted symlinks at every output name: replaced, the victim untouched
        d = report_run(tmp, "links", ["gemm-n-2e60.mct"])
        victim = os.path.join(tmp, "victim")
        with open(victim, "w") as f:
            f.write("precious\n")
        for name in ("report.json", "report.md", "report.html"):
            os.symlink(victim, os.path.join(d, name))
        rc, _, err, _, _ = run([MC, "report", d, "--model", CFG, "--hw", HW, "--quiet"])
        kinds = {n: (os.path.islink(os.path.join(d, n)), os.path.getsize(os.path.join(d, n)))
                 for n in ("report.json", "report.md", "report.html")}
        check(rc == 0 and open(victim).read() == "precious\n" and all(not l and s > 0 for l, s in kinds.values())
              and not [f for f in os.listdir(d) if ".tmp" in f],
              "symlinks planted at report.json/md/html: victim unchanged, outputs are new files",
              "rc %d %s %s" % (rc, err, kinds))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
