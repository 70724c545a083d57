#!/usr/bin/python3
"""The CUPTI collector's real paths on the CPU emulation: the CUDA reference engine under
LD_PRELOAD=libmoecap.so with the emulated libcupti.so.13 / libcuda.so.1 of this folder
(LD_LIBRARY_PATH), MOECAP_MODEL unset (no router-logit taps), then `moecap dump` and
`moecap report`. Independent references: the emulator's own kernel count (SIMT_EMU_STATS),
the shim's interposed launch and copy records (another capture path), the engine's
ground truth (--ground-truth, written from the ids the engine itself read back).
Per run (mixtral / qwen2_moe / deepseek_v2 x loop|fused x f32|bf16, and nvcc 13's launch
path once):
- CUPTI kernel records = kernels the emulator ran, same names and grids in the same order
  as the shim's launch records, each interval inside its launch call's interval (so the
  collector's CUPTI-clock -> CLOCK_MONOTONIC offset is right: the emulated CUPTI clock is
  CLOCK_REALTIME);
- per kernel one runtime and one cuLaunchKernel driver API record with its correlation id
  and the launching thread's id;
- CUPTI memcpy records = the shim's copy records (kind, bytes, in order) plus one D2H copy
  of rows x k x 4 bytes per tap;
- fused: one MC_REC_TOPK_TAP per MoE layer per step, counts = ground truth's tokens per
  expert; loop: none;
- report equals the ground truth (compare_gt.py), aggregate.gpu_kernels count and kernel
  time = those of the kernel records.
Then: both tap kinds in one trace (MOECAP_MODEL set) -> report still = ground truth;
another CUPTI subscriber (SIMT_EMU_CUPTI_SUBSCRIBE=busy) -> one warning, kernels,
API and copy records still there, no taps; a tap description naming a non-pointer
parameter -> refused by cuFuncGetParamInfo's size, one warning, no taps; activity held by
another client (SIMT_EMU_CUPTI_ACTIVITY=silent) -> the collector's zero-kernel-records
warning, taps still there.
Prints ok / not ok / skip lines."""
import json
import os
import sys
import tempfile

from emu_harness import BUILD, EMU_DIR, EMU_LIB, MOECAP, MOEREF, PRELOAD, ROOT, dump
import emu_harness
from tap import FAILS, check, skip  # noqa: E402  (emu_harness puts tests/ on sys.path)

TOL_NS = 50000   # clock conversion slack (calibration window, NTP slew over a second)


def run(cmd, env=None, timeout=300):
    return emu_harness.run(cmd, env, timeout, drop=("LD_PRELOAD", "MOECAP_MODEL", "MOECAP_TAPS",
                                                     "SIMT_EMU_CUPTI_SUBSCRIBE", "SIMT_EMU_LAUNCH"))


def capture(tmp, tag, mdir, style, dtype, args, extra_env=None):
    rdir, gt, stats = (os.path.join(tmp, tag + x) for x in ("", ".gt", ".stats"))
    cmd = [MOEREF, "run", "--device", "cuda", "--moe", style, "--dtype", dtype, "--model", mdir, *args,
           "--ground-truth", gt]
    env = {"LD_PRELOAD": PRELOAD, "LD_LIBRARY_PATH": EMU_DIR, "MOECAP_OUT": rdir, "MOECAP_NVML": "0",
           "SIMT_EMU_STATS": stats, **(extra_env or {})}
    p = run(cmd, env=env)
    if p.returncode != 0:
        return p, None, None, None
    with open(stats) as f:
        st = dict((l.split()[0], int(l.split()[1])) for l in f if l.strip())
    g = [json.loads(l) for l in open(gt) if l.strip()]
    return p, dump(rdir), g, st


def check_kernels(name, recs, st, nvcc):
    """Kernel and API records against the emulator's count and the shim's launch records."""
    kern = [r for r in recs if r["type"] == "kernel" and r["source"] == 0]
    launches = sorted((r for r in recs if r["type"] == "api" and r["api"] in ("cudaLaunchKernel", "__cudaLaunchKernel")),
                      key=lambda r: r["t_begin_ns"])
    kern.sort(key=lambda r: r["start_ns"])
    ok = len(kern) == st["kernels"] == len(launches) and st["kernels"] > 0
    bad = []
    for k, l in zip(kern, launches):
        if k["name_str_text"] != l["name_str_text"]:
            bad.append("kernel %s vs launch %s" % (k["name_str_text"], l["name_str_text"]))
        elif not (l["t_begin_ns"] - TOL_NS <= k["start_ns"] <= k["end_ns"] <= l["t_end_ns"] + TOL_NS):
            bad.append("%s [%d, %d] not inside its launch call [%d, %d]" % (k["name_str_text"], k["start_ns"],
                       k["end_ns"], l["t_begin_ns"], l["t_end_ns"]))
    check(ok and not bad,
          "%s: %d CUPTI kernel records = kernels run, names in launch order, intervals inside the launch calls"
          % (name, st["kernels"]),
          "kernel records %d, emulator %d, shim launches %d\n%s" % (len(kern), st["kernels"], len(launches),
                                                                  "\n".join(bad[:10])))
    rt_name = "__cudaLaunchKernel_v13000" if nvcc else "cudaLaunchKernel_v7000"
    by_corr = {}
    for r in recs:
        if r["type"] == "api" and r["api"] in ("cupti.runtime", "cupti.driver"):
            by_corr.setdefault(r["correlation_id"], []).append(r)
    bad = []
    corrs = set()
    for k, l in zip(kern, launches):
        a = by_corr.get(k["correlation_id"], [])
        got = sorted((r["api"], r["name_str_text"], r["tid"]) for r in a)
        want = sorted([("cupti.driver", "cuLaunchKernel", l["tid"]), ("cupti.runtime", rt_name, l["tid"])])
        if got != want:
            bad.append("corr %d (%s): %s, want %s" % (k["correlation_id"], k["name_str_text"], got, want))
        rt = [r for r in a if r["api"] == "cupti.runtime"]
        if rt and not (rt[0]["t_begin_ns"] <= k["start_ns"] <= k["end_ns"] <= rt[0]["t_end_ns"]):
            bad.append("corr %d: kernel outside its runtime API record" % k["correlation_id"])
        corrs.add(k["correlation_id"])
    check(not bad and len(corrs) == len(kern),
          "%s: each kernel has one %s and one cuLaunchKernel record with its correlation id and thread" % (name, rt_name),
          "\n".join(bad[:10]) + "\ndistinct kernel correlation ids %d of %d" % (len(corrs), len(kern)))
    return kern


def check_copies(name, recs, taps):
    """CUPTI copy records = the shim's copy records + one D2H per tap (the tap's own copy)."""
    def key(r):
        return (r["kind"], r["bytes"])
    cupti = [key(r) for r in sorted((r for r in recs if r["type"] == "memcpy" and r["source"] == 0),
                                    key=lambda r: r["start_ns"])]
    shim = [key(r) for r in sorted((r for r in recs if r["type"] == "memcpy" and r["source"] != 0),
                                   key=lambda r: r["start_ns"])]
    tap_copies = [(2, t["rows"] * t["k"] * 4) for t in taps]   # MC_COPY_D2H, int32 ids
    ok = sorted(cupti) == sorted(shim + tap_copies) and [c for c in cupti if c not in tap_copies] == \
        [c for c in shim if c not in tap_copies] and len(shim) > 0
    check(ok, "%s: %d CUPTI copy records = %d shim copy records + %d tap copies"
          % (name, len(cupti), len(shim), len(tap_copies)),
          "cupti %s\nshim %s\ntaps %s" % (cupti[:20], shim[:20], tap_copies[:8]))


def check_taps(name, recs, g, style):
    taps = sorted((r for r in recs if r["type"] == "topk_tap"), key=lambda r: r["t_ns"])
    if style == "loop":
        check(not taps, "%s: no top-k tap records (no mr_fused_topk launch)" % name,
              "%d tap records" % len(taps))
        return taps
    want = []
    for s in g:
        for l in s["layers"]:
            if l.get("dense"):
                continue
            want.append((s["tokens"], dict(zip(l["experts"], l["tokens_per_expert"]))))
    bad = []
    for i, (t, (tokens, tpe)) in enumerate(zip(taps, want)):
        counts = {e: c for e, c in enumerate(t["counts"]) if c}
        if counts != tpe or t["rows"] != tokens or t["invalid"] != 0 or t["kernel_str_text"] != "mr_fused_topk":
            bad.append("tap %d: rows %d counts %s invalid %d; ground truth tokens %d per expert %s"
                       % (i, t["rows"], counts, t["invalid"], tokens, tpe))
    check(len(taps) == len(want) and not bad,
          "%s: %d top-k tap records (MoE layers x steps) = ground-truth tokens per expert" % (name, len(want)),
          "tap records %d\n%s" % (len(taps), "\n".join(bad[:10])))
    return taps


def check_report(name, tmp, tag, mdir, kern):
    rdir = os.path.join(tmp, tag)
    rep = run([MOECAP, "report", rdir, "--model", mdir, "--hw", "h100-sxm", "--out", os.path.join(rdir, "report"),
               "--quiet"])
    if rep.returncode != 0:
        check(False, "%s: moecap report" % name, rep.stderr)
        return
    c = run([sys.executable, os.path.join(ROOT, "tests/report/compare_gt.py"), os.path.join(tmp, tag + ".gt"),
             os.path.join(rdir, "report", "report.json"), name])
    print(c.stdout, end="", flush=True)
    if c.returncode != 0 and "ok - " not in c.stdout:
        check(False, "%s: compare_gt.py ran" % name, c.stderr)
    elif c.returncode != 0:
        FAILS.append("%s: compare_gt.py" % name)   # its `not ok` lines are printed above
    with open(os.path.join(rdir, "report", "report.json")) as f:
        gk = json.load(f).get("aggregate", {}).get("gpu_kernels")
    want = sum(k["end_ns"] - k["start_ns"] for k in kern) / 1e9
    ok = gk is not None and gk["count"] == len(kern) and abs(gk["kernel_time_s"] - want) <= 1e-9 + 1e-9 * want
    check(ok, "%s: report's gpu_kernels: %d kernels, %.6f s = sum of the kernel records"
          % (name, len(kern), want), "report: %s" % gk)


def one(tmp, arch, mdir, style, dtype, args, nvcc=False):
    name = "%s %s %s%s" % (arch, style, dtype, " (nvcc launch path)" if nvcc else "")
    tag = "%s-%s-%s%s" % (arch, style, dtype, "-nvcc" if nvcc else "")
    p, recs, g, st = capture(tmp, tag, mdir, style, dtype, args, {"SIMT_EMU_LAUNCH": "nvcc"} if nvcc else None)
    errs = [l for l in p.stderr.splitlines() if l.strip()]
    check(p.returncode == 0 and not errs,
          "%s: runs under the shim with the emulated CUPTI, nothing on stderr" % name, p.stderr)
    if recs is None:
        return
    notes = [r["text_str_text"] for r in recs if r["type"] == "note" and "CUPTI" in r.get("text_str_text", "")]
    check(len(notes) == 1 and "collector active (kernel records on" in notes[0],
          "%s: one CUPTI note: collector active" % name, "\n".join(notes))
    kern = check_kernels(name, recs, st, nvcc)
    taps = check_taps(name, recs, g, style)
    check_copies(name, recs, taps)
    check_report(name, tmp, tag, mdir, kern)


def with_router_taps(tmp, mdir, args):
    """Both tap kinds in one trace (MOECAP_MODEL set: router-logit taps too): the report
    must still equal the ground truth (the two must agree where they meet)."""
    name = "fused f32 with router-logit taps too"
    p, recs, g, st = capture(tmp, "both", mdir, "fused", "f32", args,
                             {"MOECAP_MODEL": os.path.join(mdir, "config.json")})
    if recs is None:
        check(False, "%s: runs" % name, p.stderr)
        return
    n_topk = sum(1 for r in recs if r["type"] == "topk_tap")
    n_router = sum(1 for r in recs if r["type"] == "router_tap")
    moe_steps = sum(1 for s in g for l in s["layers"] if not l.get("dense"))
    check(n_topk == n_router == moe_steps,
          "%s: %d top-k and %d router-logit tap records" % (name, moe_steps, moe_steps),
          "top-k %d, router %d" % (n_topk, n_router))
    kern = [r for r in recs if r["type"] == "kernel" and r["source"] == 0]
    check_report(name, tmp, "both", mdir, kern)


def other_subscriber(tmp, mdir, args):
    name = "another CUPTI subscriber"
    p, recs, g, st = capture(tmp, "busy", mdir, "fused", "f32", args, {"SIMT_EMU_CUPTI_SUBSCRIBE": "busy"})
    errs = [l for l in p.stderr.splitlines() if l.strip()]
    check(p.returncode == 0 and len(errs) == 1 and "another CUPTI subscriber" in errs[0],
          "%s: runs, one line on stderr" % name, p.stderr)
    if recs is None:
        return
    warns = [r["text_str_text"] for r in recs if r["type"] == "note" and r["level"] == "warning"]
    check(len(warns) == 1 and "another CUPTI subscriber" in warns[0],
          "%s: one warning note" % name, "\n".join(warns))
    kern = check_kernels(name, recs, st, False)
    taps = [r for r in recs if r["type"] == "topk_tap"]
    check(not taps and kern, "%s: no tap records, kernels still recorded" % name,
          "%d taps, %d kernels" % (len(taps), len(kern)))
    check_copies(name, recs, [])


def silent_activity(tmp, mdir, args):
    """Activity enabled but no record ever delivered (another client holds the stream): the
    collector's launch count vs zero kernel records -> one warning; taps still work."""
    name = "activity held by another client"
    p, recs, g, st = capture(tmp, "silent", mdir, "fused", "f32", args, {"SIMT_EMU_CUPTI_ACTIVITY": "silent"})
    if recs is None:
        check(False, "%s: runs" % name, p.stderr)
        return
    warns = [r["text_str_text"] for r in recs if r["type"] == "note" and r["level"] == "warning"]
    kern = [r for r in recs if r["type"] == "kernel" and r["source"] == 0]
    check(not kern and len(warns) == 1 and "%d kernel launches seen but 0 kernel activity records"
          % st["kernels"] in warns[0],
          "%s: no kernel records, one warning naming the %d launches" % (name, st["kernels"]), "\n".join(warns))
    check_taps(name, recs, g, "fused")


def non_pointer_tap(tmp, mdir, args):
    """ids_param 1 of mr_fused_topk is `int T`: cuFuncGetParamInfo says 4 bytes, so not tapped."""
    name = "tap on a non-pointer parameter"
    taps = os.path.join(tmp, "bad-taps.json")
    with open(taps, "w") as f:
        json.dump({"taps": [{"name": "bad", "kernel": "mr_fused_topk", "ids_param": 1, "ids_type": "i32",
                             "rows": "p1", "k": "p3"}]}, f)
    p, recs, g, st = capture(tmp, "badtap", mdir, "fused", "f32", args, {"MOECAP_TAPS": taps})
    if recs is None:
        check(False, "%s: runs" % name, p.stderr)
        return
    warns = [r["text_str_text"] for r in recs if r["type"] == "note" and r["level"] == "warning"]
    n = sum(1 for r in recs if r["type"] == "topk_tap")
    check(n == 0 and len(warns) == 1 and "parameter 1 is not a pointer" in warns[0],
          "%s: refused (cuFuncGetParamInfo size 4), one warning, no tap records" % name,
          "taps %d\nwarnings %s" % (n, warns))


def main():
    needed = [EMU_LIB, os.path.join(EMU_DIR, "libcupti.so.13"), os.path.join(EMU_DIR, "libcuda.so.1"),
              os.path.join(BUILD, "lib", "libmoecap-cupti.so")]
    missing = [x for x in needed if not os.path.exists(x)]
    if os.environ.get("HAVE_CUDA", "1") != "1" or missing:
        skip("CUPTI collector on the emulation", "no CUDA toolkit: %s not built" % " ".join(missing))
        return 0
    args = ["--batch", "2", "--prompt-len", "8", "--gen", "4"]
    with tempfile.TemporaryDirectory(prefix="emu-cupti-") as tmp:
        for arch in ("mixtral", "qwen2_moe", "deepseek_v2"):
            mdir = os.path.join(tmp, arch)
            p = run([MOEREF, "gen", "--arch", arch, "--out", mdir])
            if p.returncode != 0:
                check(False, "%s: gen" % arch, p.stderr)
                continue
            for style in ("loop", "fused"):
                for dtype in ("f32", "bf16"):
                    one(tmp, arch, mdir, style, dtype, args)
            if arch == "mixtral":
                one(tmp, arch, mdir, "fused", "bf16", args, nvcc=True)
                with_router_taps(tmp, mdir, args)
                other_subscriber(tmp, mdir, args)
                non_pointer_tap(tmp, mdir, args)
                silent_activity(tmp, mdir, args)
    return 1 if FAILS else 0


sys.exit(main())
