#!/usr/bin/env bash
# moe-ref decode bandwidth benchmark: decode at batch 1 on a ~1.5 GB synthetic
# Mixtral-style model that does not fit in any cache; reports tokens/s and achieved weight
# bandwidth (weight bytes read per step from the ground truth / step wall time) against
# this machine's STREAM-triad bandwidth measured by bench/engine-stream-triad.c.
# Both BLAS call forms are measured: --gemm (every product one cblas_sgemm) and the default
# (single-row products through cblas_sgemv).
#
# usage: bench/engine-bandwidth.sh [--threads T] [--gen N] [--model-dir DIR] [--keep-model]
# The model is written under /tmp (never into the repository) and removed unless --keep-model.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${BUILD:-build}"
threads=$(nproc); gen=120; model=/tmp/moecap-bench-model; keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --gen) gen="$2"; shift 2 ;;
    --model-dir) model="$2"; shift 2 ;;
    --keep-model) keep=1; shift ;;
    *) echo "usage: $0 [--threads T] [--gen N] [--model-dir DIR] [--keep-model]" >&2; exit 2 ;;
  esac
done
make -s "$BUILD/bin/moe-ref"
work=$(mktemp -d /tmp/moecap-engine-bw.XXXXXX)
trap 'rm -rf "$work"; [ "$keep" = 1 ] || rm -rf "$model"' EXIT
cc -O2 -fopenmp bench/engine-stream-triad.c -o "$work/stream-triad"

# d=1024, 8 layers, 8 experts of f=1536, top-2, GQA 16/4 heads, vocab 32000: 1.55 GB F32
gen_args=(--arch mixtral --layers 8 --hidden 1024 --heads 16 --kv-heads 4 --experts 8
          --top-k 2 --moe-intermediate 1536 --vocab 32000 --seed 1)
if ! [ -f "$model/model.safetensors" ] || ! grep -q '"hidden_size": 1024' "$model/config.json"; then
  "$BUILD/bin/moe-ref" gen "${gen_args[@]}" --out "$model"
fi
size=$(stat -c %s "$model/model.safetensors")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# triad measured before, between and after the two engine runs (the machine is shared:
# the spread shows how much the bandwidth available moved during the benchmark)
probe() { OMP_NUM_THREADS="$threads" "$work/stream-triad" 33554432 10 >"$work/probe.txt"; }
pick() { awk -v k="$1" '$1 == k {print $2}' "$work/probe.txt"; }
probe; t1=$(pick triad_GBps); r1=$(pick read_GBps)
for mode in gemm gemv; do
  extra=(--gemv); [ "$mode" = gemm ] && extra=(--gemm)
  "$BUILD/bin/moe-ref" run --model "$model" --batch 1 --prompt-len 16 --gen "$gen" \
      --threads "$threads" "${extra[@]}" --ground-truth "$work/gt-$mode.jsonl" >/dev/null
  if [ "$mode" = gemm ]; then probe; t2=$(pick triad_GBps); fi
done
probe; t3=$(pick triad_GBps)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

/usr/bin/python3 - "$work" "$t1,$t2,$t3" "$r1" "$size" "$threads" "$load_before" "$load_after" "$gen" <<'PY'
import json, sys, statistics
work, triads, readbw, size, threads, lb, la, gen = sys.argv[1:]
tr = [float(x) for x in triads.split(",")]
tmed, tmax = statistics.median(tr), max(tr)
print(f"model: {int(size)/1e9:.2f} GB F32 (mixtral-style, d=1024, 8 layers, 8 experts f=1536, "
      f"top-2, GQA 16/4 heads, vocab 32000); batch 1, prompt 16, {gen} generated tokens")
print(f"threads: {threads}; load average before: {lb}, after: {la}")
print(f"STREAM triad (GB/s): {', '.join(f'{t:.1f}' for t in tr)} (before, between, after; "
      f"median {tmed:.1f}, max {tmax:.1f}); read-only sum before: {float(readbw):.1f} GB/s")
print("| BLAS form | decode steps | tokens/s | weight MB/step | weight GB/s (mean) | GB/s (median step) | % of median triad | % of max triad |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for mode in ("gemm", "gemv"):
    steps = [json.loads(l) for l in open(f"{work}/gt-{mode}.jsonl")]
    dec = [s for s in steps if s["kind"] == "decode"][5:]          # skip warm-up steps
    wb = [s["bytes"]["dense_weights"] + s["bytes"]["routed_expert_weights"]
          + s["bytes"]["shared_expert_weights"] for s in dec]
    wall = [s["wall_ns"] / 1e9 for s in dec]
    bw = sum(wb) / sum(wall) / 1e9
    med = statistics.median(b / w for b, w in zip(wb, wall)) / 1e9
    form = "cblas_sgemm (--gemm)" if mode == "gemm" else "cblas_sgemv for m=1 (default)"
    print(f"| {form} | {len(dec)} | {len(dec)/sum(wall):.2f} | {statistics.mean(wb)/1e6:.1f} | "
          f"{bw:.2f} | {med:.2f} | {100*bw/tmed:.0f} % | {100*bw/tmax:.0f} % |")
PY
