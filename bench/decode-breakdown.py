#!/usr/bin/python3
"""Where a moe-ref decode step's time goes, from a moecap trace and the engine's ground truth.

usage: bench/decode-breakdown.py RUN_DIR GT.jsonl [--skip N (2)]
RUN_DIR: MOECAP_OUT of `moe-ref run ... --ground-truth GT.jsonl` under libmoecap.so.
For the decode steps (the first N skipped), GEMM time per weight class (from the GEMM records'
own begin/end, by output x input shape: q, k/v, o, router, expert gate/up, expert down,
lm_head), weight bytes and GB/s per class, and the step time no GEMM covers (embedding,
norms, RoPE, attention, routing, sampling, thread hand-offs). With helper threads the GEMM
times overlap: the classes then sum to more than the step (the table says so)."""
import json, os, statistics, subprocess, sys

run, gt_path = sys.argv[1], sys.argv[2]
skip = int(sys.argv[sys.argv.index("--skip") + 1]) if "--skip" in sys.argv else 2
here = os.path.dirname(os.path.abspath(__file__))
moecap = os.path.join(os.environ.get("BUILD", os.path.join(here, "..", "build")), "bin", "moecap")
gt = [json.loads(l) for l in open(gt_path)]
cfg = json.load(open(os.path.join(os.path.dirname(gt_path), "config.json"))) if os.path.exists(
    os.path.join(os.path.dirname(gt_path), "config.json")) else None
gemms = []
for f in sorted(os.listdir(run)):
    if f.endswith(".mct"):
        out = subprocess.run([moecap, "dump", os.path.join(run, f)], capture_output=True, text=True).stdout
        gemms += [r for r in map(json.loads, out.splitlines()) if r.get("type") == "gemm"]
gemms.sort(key=lambda r: r["t_begin_ns"])
dec = [s for s in gt if s["kind"] == "decode"][skip:]
cls = {}
total_step = 0.0
covered = 0.0
for s in dec:
    b, e = s["t_begin_ns"], s["t_end_ns"]
    total_step += e - b
    iv = []
    for r in gemms:
        if r["t_begin_ns"] < b or r["t_end_ns"] > e:
            continue
        if r["api"] == "cblas_sgemv":
            out, inn = (r["m"], r["k"])
        else:
            out, inn = r["n"], r["k"]
        c = cls.setdefault((out, inn), [0.0, 0, 0])
        c[0] += r["t_end_ns"] - r["t_begin_ns"]
        c[1] += 1
        c[2] += out * inn * 4
        iv.append((r["t_begin_ns"], r["t_end_ns"]))
    iv.sort()
    cur_b = cur_e = None
    for x, y in iv:   # union of GEMM intervals: time some GEMM was running
        if cur_e is None or x > cur_e:
            if cur_e is not None: covered += cur_e - cur_b
            cur_b, cur_e = x, y
        else:
            cur_e = max(cur_e, y)
    if cur_e is not None: covered += cur_e - cur_b
n = len(dec)
print(f"{n} decode steps (first {skip} skipped), {dec[0]['tokens'] if dec else 0} tokens each; "
      f"mean step {total_step / n / 1e6:.2f} ms")
print("| weight shape (out x in) | calls/step | ms/step | MB/step | GB/s while running |")
print("| --- | --- | --- | --- | --- |")
gsum = 0.0
for (out, inn), (t, k, by) in sorted(cls.items(), key=lambda kv: -kv[1][0]):
    gsum += t
    print(f"| {out} x {inn} | {k / n:.1f} | {t / n / 1e6:.2f} | {by / n / 1e6:.1f} | {by / t:.1f} |")
print(f"| all GEMMs (sum of their times) | | {gsum / n / 1e6:.2f} | | |")
print(f"| time some GEMM was running | | {covered / n / 1e6:.2f} | | |")
print(f"| no GEMM running (embedding, norms, RoPE, attention, routing, sampling, hand-offs) | | "
      f"{(total_step - covered) / n / 1e6:.2f} ({100 * (total_step - covered) / total_step:.1f} %) | | |")
