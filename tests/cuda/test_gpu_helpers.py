#!/usr/bin/python3
"""The GPU validation helpers must judge correctly before they meet a GPU: tap_check.py on a
synthetic trace (file header, a string, MC_REC_TOPK_TAP records laid out per
cupti/topk_tap.h) against a ground truth, and compare_layers.py on a synthetic report; each
must pass on matching data and fail on a one-count difference."""
import json, os, struct, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import FAILS, check  # noqa: E402

ROOT = os.environ.get("MOECAP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))


def rec(typ, payload):
    size = (8 + len(payload) + 7) & ~7
    return struct.pack("<HHI", typ, 0, size) + payload + b"\0" * (size - 8 - len(payload))


def tap(t_ns, rows, k, counts, invalid=0):
    p = struct.pack("<QQqqqq", t_ns, 1, rows, k, len(counts), invalid) + struct.pack("<IIiI", 1, 1, 0, 0)
    return rec(40, p + struct.pack("<%dI" % len(counts), *counts))


def trace(path, taps):
    hdr = b"MOECAPT\0" + struct.pack("<HHIQ", 1, 0, 24, 0)
    s = b"x\0"
    body = rec(2, struct.pack("<II", 1, 1) + s) + b"".join(taps)
    open(path, "wb").write(hdr + body)


def run(args):
    p = subprocess.run([sys.executable] + args, capture_output=True, text=True)
    return p.returncode, p.stdout


with tempfile.TemporaryDirectory() as d:
    gt = os.path.join(d, "gt.jsonl")
    steps = [{"step": 0, "tokens": 4, "sequences": 2, "layers": [{"layer": 0, "dense": True},
              {"layer": 1, "experts": [0, 2], "tokens_per_expert": [3, 5]}]},
             {"step": 1, "tokens": 2, "sequences": 2, "layers": [{"layer": 0, "dense": True},
              {"layer": 1, "experts": [1], "tokens_per_expert": [4]}]}]
    open(gt, "w").write("".join(json.dumps(s) + "\n" for s in steps))
    run_dir = os.path.join(d, "run")
    os.makedirs(run_dir)
    trace(os.path.join(run_dir, "a.mct"), [tap(200, 2, 2, [0, 4, 0, 0]), tap(100, 4, 2, [3, 0, 5, 0])])
    rc, out = run([os.path.join(ROOT, "bench/gpu/tap_check.py"), run_dir, gt, "t"])
    check(rc == 0 and out.startswith("ok"), "tap_check passes on matching taps (sorted by time)", out)
    trace(os.path.join(run_dir, "a.mct"), [tap(100, 4, 2, [3, 0, 4, 0]), tap(200, 2, 2, [0, 4, 0, 0])])
    rc, out = run([os.path.join(ROOT, "bench/gpu/tap_check.py"), run_dir, gt, "t"])
    check(rc == 1 and "not ok" in out, "tap_check fails on a one-count difference", out)
    rep = os.path.join(d, "report.json")
    json.dump({"steps": steps}, open(rep, "w"))
    rc, out = run([os.path.join(ROOT, "bench/gpu/compare_layers.py"), gt, rep, "c"])
    check(rc == 0 and out.startswith("ok"), "compare_layers passes on equal data", out)
    steps[1]["layers"][1]["tokens_per_expert"] = [3]
    json.dump({"steps": steps}, open(rep, "w"))
    rc, out = run([os.path.join(ROOT, "bench/gpu/compare_layers.py"), gt, rep, "c"])
    check(rc == 1 and "not ok" in out, "compare_layers fails on a difference", out)
    rc, out = run([os.path.join(ROOT, "bench/gpu/compare_layers.py"), gt, os.path.join(d, "missing.json"), "c"])
    check(rc == 1 and "not ok" in out, "compare_layers: missing report is a failure, not a crash", out)
sys.exit(1 if FAILS else 0)
