# Sourced by bench/offload-cap.sh and bench/expert-parallel.sh (the MoE-CAP class
# benchmarks), after `work` (a scratch directory) is set: builds what they run, writes the
# benchmark model to $work/model (4 MoE layers x 8 experts of 3 x 512 x 1024 F32, 6 MiB each:
# 192 MiB of routed experts; gen_args says how), measures this machine's hardware profile to
# $work/hw.json (triad bandwidth with one thread), and sets PRE (the shim) and load_before.
make -s "$BUILD/bin/moe-ref" "$BUILD/bin/moecap" "$BUILD/lib/libmoecap.so"
model="$work/model"
gen_args=(--arch mixtral --layers 4 --hidden 512 --heads 8 --kv-heads 4 --experts 8 --top-k 2
          --moe-intermediate 1024 --vocab 4096 --seed 7)
"$BUILD/bin/moe-ref" gen "${gen_args[@]}" --out "$model" >/dev/null
"$BUILD/bin/moecap" hwprobe --out "$work/hw.json" --seconds 1 --threads 1 --name this-machine >/dev/null
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
PRE="$(realpath "$BUILD")/lib/libmoecap.so"
