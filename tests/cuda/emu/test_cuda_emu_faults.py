#!/usr/bin/python3
"""Error paths of the CUDA reference engine's host code, which a GPU run never takes: on the
CPU emulation of CUDA, SIMT_EMU_FAIL=WHAT:N makes the N-th cudaMalloc / cudaMemcpy /
cudaMemset / kernel launch / cuBLAS GEMM fail (a failed launch acts like a faulting kernel:
every later call fails). For the first, a middle and the last such call of a run (counts
from a clean run's SIMT_EMU_STATS), `moe-ref run --device cuda` must exit 1 with one
"moe-ref run: CUDA engine: ..." message, never crash (also under ASan/UBSan), never free
twice, and free every device allocation when the context is still usable. Three of them
again under libmoecap.so: same exit and message, failed call not recorded, earlier ones are.
Prints ok / not ok / skip lines."""
import json
import os
import subprocess
import sys
import tempfile

from emu_harness import EMU_LIB, MOECAP, MOEREF, PRELOAD
from tap import FAILS, check, skip  # noqa: E402  (emu_harness puts tests/ on sys.path)


def run(args, stats, fail=None, shim_out=None):
    e = dict(os.environ)
    e.pop("LD_PRELOAD", None)
    e.update({"MOE_REF_CUDA_LIB": EMU_LIB, "SIMT_EMU_STATS": stats})
    if shim_out:
        e.update({"LD_PRELOAD": PRELOAD, "MOECAP_OUT": shim_out, "MOECAP_NVML": "0", "MOECAP_CUPTI": "0"})
    e.pop("SIMT_EMU_FAIL", None)
    if fail:
        e["SIMT_EMU_FAIL"] = fail
    p = subprocess.run([MOEREF, *args], capture_output=True, text=True, env=e, timeout=300)
    st = {}
    if os.path.exists(stats):
        with open(stats) as f:
            st = dict((l.split()[0], int(l.split()[1])) for l in f if l.strip())
        os.unlink(stats)
    return p, st


def shim_case(args, stats, what, n, plain, out, name):
    """The same failure under the shim: same exit status and message (the shim changes
    nothing), a complete trace, and the failed call not recorded (docs/gpu.md) while every
    earlier one is: GEMM records = n - 1 (cublas), device allocations = n - 1 (cudaMalloc);
    a faulting kernel's launch itself succeeds (the fault is asynchronous): n launch records."""
    p, _ = run(args, stats, "%s:%d" % (what, n), shim_out=out)
    same = p.returncode == plain.returncode and \
        [l for l in p.stderr.splitlines() if l.startswith("moe-ref run:")] == \
        [l for l in plain.stderr.splitlines() if l.startswith("moe-ref run:")]
    recs = []
    for f in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        d = subprocess.run([MOECAP, "dump", os.path.join(out, f)], capture_output=True, text=True)
        recs += [l for l in d.stdout.splitlines() if l.startswith("{")]
    recs = [json.loads(l) for l in recs]
    if what == "cublas":
        got, want = sum(r["type"] == "gemm" for r in recs), n - 1
    elif what == "cudaMalloc":
        got, want = sum(r["type"] == "alloc" and r["device"] >= 0 and not r["is_free"] for r in recs), n - 1
    else:
        got, want = sum(r["type"] == "api" and bool(r.get("name_str_text")) for r in recs), n
    check(same and got == want,
          "%s under the shim: %s call %d fails -> same exit and message, %d records before it" % (name, what, n, want),
          "exit %d (plain %d), records %d\n%s" % (p.returncode, plain.returncode, got, p.stderr[-1500:]))


def main():
    if os.environ.get("HAVE_CUDA", "1") != "1" or not os.path.exists(EMU_LIB):
        skip("CUDA engine error paths on the CPU emulation", "no CUDA toolkit: emulation not built")
        return 0
    with tempfile.TemporaryDirectory(prefix="emu-faults-") as tmp:
        model, stats = os.path.join(tmp, "m"), os.path.join(tmp, "stats")
        p = subprocess.run([MOEREF, "gen", "--arch", "qwen2_moe", "--out", model], capture_output=True, text=True)
        check(p.returncode == 0, "gen", p.stderr)
        for style, dtype in (("loop", "f32"), ("fused", "bf16")):
            args = ["run", "--device", "cuda", "--moe", style, "--dtype", dtype, "--model", model,
                    "--batch", "2", "--prompt-len", "6", "--gen", "3"]
            clean, counts = run(args, stats)
            check(clean.returncode == 0 and counts.get("live_device_allocations") == 0, "%s %s: clean run" % (style, dtype),
                  clean.stderr[-1500:] + str(counts))
            for what in ("cudaMalloc", "cudaMemcpy", "cudaMemset", "launch", "cublas"):
                total = counts.get("calls_" + what, 0)
                for n in (sorted({1, (total + 1) // 2, total}) if total else []):
                    p, st = run(args, stats, "%s:%d" % (what, n))
                    lines = [l for l in p.stderr.splitlines() if l.strip()]
                    ours = [l for l in lines if l.startswith("moe-ref run: CUDA engine: ")]
                    bad = [l for l in lines if "AddressSanitizer" in l or "runtime error" in l or
                           "not the start of a live" in l or "Segmentation" in l]
                    ok = p.returncode == 1 and len(ours) == 1 and not bad
                    if what != "launch":   # after a faulting kernel the context is gone: nothing can be freed
                        ok = ok and st.get("live_device_allocations") == 0
                    check(ok,
                          "%s %s: %s call %d of %d fails -> exit 1 with one message%s" %
                          (style, dtype, what, n, total, "" if what == "launch" else ", all memory freed"),
                          "exit %d, stats %s\n%s" % (p.returncode, st, p.stderr[-1500:]))
                    if what in ("cudaMalloc", "launch", "cublas") and n == (total + 1) // 2:
                        shim_case(args, stats, what, n, p, os.path.join(tmp, "%s-%s-%s" % (style, what, n)),
                                  "%s %s" % (style, dtype))
    return 1 if FAILS else 0


sys.exit(main())
