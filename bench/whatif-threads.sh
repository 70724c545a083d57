#!/usr/bin/env bash
# Validates the hardware what-if on this machine: this machine measured twice by hwprobe
# (1 thread -> t1.json, 2 threads -> t2.json) stands for two "hardware profiles"; the
# reference engine runs the same load with --threads 1 and --threads 2 under the shim; the
# 1-thread run's report predicts the run on t2 (roofline at the achieved efficiency) and the
# prediction is compared with the measured 2-thread run: error per phase and for TPOT, next
# to the error of the naive guess "same time as on 1 thread". Repeated R times, interleaved.
#   bench/whatif-threads.sh [R]     (default 3)
set -eu
cd "$(dirname "$0")/.."
R=${1:-3}
BUILD=${BUILD:-build}
make -s "$BUILD/bin/moecap" "$BUILD/bin/moe-ref" "$BUILD/lib/libmoecap.so" >/dev/null
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "date: $(date -u +%FT%TZ)  machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bin/moe-ref" gen --arch mixtral --out "$tmp/m" --layers 4 --hidden 512 --moe-intermediate 1024 --experts 8 \
    --top-k 2 --vocab 4096 --seed 7 >/dev/null
for t in 1 2; do "$BUILD/bin/moecap" hwprobe --seconds 1 --threads $t --name t$t --out "$tmp/t$t.json" 2>/dev/null; done
/usr/bin/python3 -c "
import json
for t in (1, 2):
    p = json.load(open('$tmp/t%d.json' % t))
    print('profile t%d: %.2f GB/s triad, %.1f GFLOP/s sgemm' % (t, p['memory_bandwidth_Bps'] / 1e9, p['peak_flops']['f32'] / 1e9))"
for i in $(seq 1 "$R"); do
  for t in 1 2; do
    LD_PRELOAD="$PWD/$BUILD/lib/libmoecap.so" MOECAP_OUT="$tmp/run$t-$i" "$BUILD/bin/moe-ref" run --model "$tmp/m" \
        --batch 4 --prompt-len 128 --gen 32 --threads $t >/dev/null
    "$BUILD/bin/moecap" report "$tmp/run$t-$i" --model "$tmp/m" --hw "$tmp/t$t.json" --format json --quiet \
        --whatif-hw "$tmp/t1.json,$tmp/t2.json"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$tmp" "$R" <<'PY'
import json, sys
tmp, R = sys.argv[1], int(sys.argv[2])
def err(p, m): return (p - m) / m * 100
rows = []
for i in range(1, R + 1):
    r1 = json.load(open("%s/run1-%d/report.json" % (tmp, i)))
    r2 = json.load(open("%s/run2-%d/report.json" % (tmp, i)))
    t2 = {t["hardware"]: t for t in r1["whatif"]["targets"]}["t2"]
    pred, roof = t2["at_achieved_efficiency"], t2["at_roofline"]
    meas = {k: r2["aggregate"][k]["time_s"] for k in ("prefill", "decode")}
    one = {k: r1["aggregate"][k]["time_s"] for k in ("prefill", "decode")}
    tpot_m, tpot_1 = r2["aggregate"]["tpot_server_s"]["mean"], r1["aggregate"]["tpot_server_s"]["mean"]
    eff = r1["whatif"]["achieved_efficiency"]
    print("rep %d: efficiency on t1 prefill %.3f decode %.3f" % (i, eff["prefill"], eff["decode"]))
    for k in ("prefill", "decode"):
        print("  %-7s measured 1 thread %.4f s, 2 threads %.4f s; predicted for 2 threads %.4f s (error %+.1f %%), "
              "at 100 %% roofline %.4f s; naive (= 1 thread) error %+.1f %%" %
              (k, one[k], meas[k], pred[k + "_s"], err(pred[k + "_s"], meas[k]), roof[k + "_s"], err(one[k], meas[k])))
    print("  TPOT    measured %.3f ms, predicted %.3f ms (error %+.1f %%); naive error %+.1f %%" %
          (tpot_m * 1e3, pred["tpot_s"] * 1e3, err(pred["tpot_s"], tpot_m), err(tpot_1, tpot_m)))
    rows.append((err(pred["prefill_s"], meas["prefill"]), err(pred["decode_s"], meas["decode"]), err(pred["tpot_s"], tpot_m),
                 err(one["prefill"], meas["prefill"]), err(one["decode"], meas["decode"])))
n = len(rows)
mean_abs = [sum(abs(r[j]) for r in rows) / n for j in range(5)]
print("mean |error| over %d repetitions: prediction prefill %.1f %%, decode %.1f %%, TPOT %.1f %%; "
      "naive prefill %.1f %%, decode %.1f %%" % (n, *mean_abs))
PY
