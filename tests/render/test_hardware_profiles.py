#!/usr/bin/python3
"""Validates every hardware profile in data/hardware/ (schema: docs/hardware.md): required
fields and types, sane ranges, dense peaks vs datasheet sparse peaks (2:4 sparsity doubles
tensor throughput, so dense must be half of sparse), dtype ordering, and a few figures
known independently from vendor datasheets."""
import json, os, sys, glob
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import FAILS, check_problems  # noqa: E402

root = os.environ.get("MOECAP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
hwdir = os.path.join(root, "data", "hardware")
DTYPES = {"f32", "tf32", "bf16", "f16", "fp8", "int8"}
REQUIRED = {"name": str, "kind": str, "vendor": str, "model": str,
            "memory_bandwidth_Bps": (int, float), "memory_bytes": (int, float),
            "peak_flops": dict, "tdp_w": (int, float), "price_usd": (int, float),
            "source": dict, "measured": bool,
            "idle_w": (int, float), "lifetime_years": (int, float), "expected_utilisation": (int, float),
            "host_share": dict}
HOST_SHARE = ("cpu_price_usd", "dram_price_usd", "power_w")


def check_profile(path):
    probs = []
    stem = os.path.basename(path)[:-5]
    try:
        with open(path) as f:
            p = json.load(f)
    except Exception as e:
        return ["%s: does not parse: %s" % (path, e)]
    for k, t in REQUIRED.items():
        if k not in p:
            probs.append("missing field %s" % k)
        elif not isinstance(p[k], t) or (t != bool and isinstance(p[k], bool)):
            probs.append("field %s has type %s" % (k, type(p[k]).__name__))
    if probs:
        return probs
    if p["name"] != stem:
        probs.append("name %r != file stem %r" % (p["name"], stem))
    if p["kind"] not in ("gpu", "cpu"):
        probs.append("kind %r" % p["kind"])
    if p["measured"] is not False:
        probs.append("a shipped datasheet profile must say measured: false")
    bw, mem = p["memory_bandwidth_Bps"], p["memory_bytes"]
    if not 10e9 <= bw <= 20e12:
        probs.append("memory_bandwidth_Bps %g outside 10 GB/s..20 TB/s" % bw)
    if not 1e9 <= mem <= 16e12:
        probs.append("memory_bytes %g outside 1 GB..16 TB" % mem)
    if not 1 <= p["tdp_w"] <= 2000:
        probs.append("tdp_w %g outside 1..2000" % p["tdp_w"])
    if not 50 <= p["price_usd"] <= 500000:
        probs.append("price_usd %g outside 50..500000" % p["price_usd"])
    pf = p["peak_flops"]
    if "f32" not in pf:
        probs.append("peak_flops lacks f32")
    for k, v in pf.items():
        if k not in DTYPES:
            probs.append("peak_flops has unknown dtype %r" % k)
        elif not isinstance(v, (int, float)) or not 1e11 <= v <= 5e16:
            probs.append("peak_flops.%s = %r outside 0.1 TFLOPS..50 PFLOPS" % (k, v))
    # Lower precision is never slower than higher precision on the same part.
    order = [("f32", "bf16"), ("tf32", "bf16"), ("bf16", "fp8"), ("f16", "fp8"), ("bf16", "int8")]
    for lo, hi in order:
        if lo in pf and hi in pf and pf[hi] < pf[lo]:
            probs.append("peak_flops.%s (%g) < peak_flops.%s (%g)" % (hi, pf[hi], lo, pf[lo]))
    sp = p.get("peak_flops_sparse", {})
    for k, v in sp.items():
        if k not in pf:
            probs.append("sparse figure for %s without a dense one" % k)
        elif pf[k] > v:
            probs.append("dense %s (%g) exceeds sparse (%g): sparse figure stored as dense?" % (k, pf[k], v))
        elif abs(v / pf[k] - 2.0) > 0.03:  # L40S datasheet itself says 362.05 dense / 733 sparse
            probs.append("sparse/dense for %s is %.3f, expected 2 (2:4 sparsity)" % (k, v / pf[k]))
    if p["kind"] == "gpu" and "bf16" in pf and "bf16" not in sp:
        probs.append("GPU profile should carry the datasheet sparse bf16 figure to prove dense was used")
    # cost model inputs (docs/cost.md)
    if not 0 < p["idle_w"] < p["tdp_w"]:
        probs.append("idle_w %g not in (0, tdp_w %g)" % (p["idle_w"], p["tdp_w"]))
    if not 1 <= p["lifetime_years"] <= 15:
        probs.append("lifetime_years %g outside 1..15" % p["lifetime_years"])
    if not 0 < p["expected_utilisation"] <= 1:
        probs.append("expected_utilisation %g outside (0, 1]" % p["expected_utilisation"])
    hs = p["host_share"]
    for k in HOST_SHARE:
        v = hs.get(k)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 100000:
            probs.append("host_share.%s = %r: want a number 0..100000" % (k, v))
    if p["kind"] == "cpu" and hs.get("cpu_price_usd") != 0:
        probs.append("a CPU profile's host_share.cpu_price_usd must be 0 (the CPU is the device)")
    if "cloud_usd_per_hour" in p:
        v = p["cloud_usd_per_hour"]
        if not isinstance(v, (int, float)) or not 0.01 <= v <= 100:
            probs.append("cloud_usd_per_hour %r outside 0.01..100" % v)
    costed = ["idle_w", "lifetime_years", "expected_utilisation", "host_share"] + (["cloud_usd_per_hour"] if "cloud_usd_per_hour" in p else [])
    for k in ["memory_bandwidth_Bps", "memory_bytes", "peak_flops", "tdp_w", "price_usd"] + costed:
        s = p["source"].get(k)
        if not isinstance(s, str) or len(s) < 10:
            probs.append("source.%s missing or too short" % k)
    return probs

files = sorted(glob.glob(os.path.join(hwdir, "*.json")))
for f in files:
    check_problems("profile " + os.path.basename(f), check_profile(f))

# The parts the project ships profiles for (docs/hardware.md) must all be there.
want = ["a100-sxm-80gb", "a100-pcie-80gb", "h100-sxm", "h100-pcie", "h200-sxm", "b200",
        "l40s", "rtx-4090", "mi300x", "epyc-9654", "xeon-8480p"]
have = {os.path.basename(f)[:-5] for f in files}
check_problems("required parts present", ["missing profile %s" % w for w in want if w not in have])

# Figures known independently of these files (vendor datasheets, dense):
known = {("h100-sxm", "bf16"): 989.4e12, ("h100-sxm", "bw"): 3.35e12,
         ("a100-sxm-80gb", "bf16"): 312e12, ("a100-sxm-80gb", "bw"): 2039e9,
         ("h200-sxm", "bw"): 4.8e12, ("h200-sxm", "bf16"): 989.4e12,
         ("l40s", "fp8"): 733e12, ("mi300x", "bf16"): 1307.4e12, ("mi300x", "bw"): 5.3e12}
probs = []
for (name, what), val in known.items():
    try:
        with open(os.path.join(hwdir, name + ".json")) as f:
            p = json.load(f)
        got = p["memory_bandwidth_Bps"] if what == "bw" else p["peak_flops"][what]
        if abs(got - val) > 0.001 * val:
            probs.append("%s %s = %g, datasheet %g" % (name, what, got, val))
    except Exception as e:
        probs.append("%s: %s" % (name, e))
check_problems("datasheet spot checks", probs)
sys.exit(1 if FAILS else 0)
