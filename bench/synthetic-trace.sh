# Sourced by the report benchmarks (`. bench/synthetic-trace.sh RECORDS`, from the repository
# root): builds moecap and bench/report-gen.c into BUILD (default build), and writes the
# synthetic trace (Mixtral-8x7B geometry, batch-8 decode, a prefill every 200 steps) of at
# least RECORDS records (default 10 M) to $tmp/d/run, the model's config to $tmp/d/model.
# $tmp is removed when the script exits.
N=${1:-10000000}
BUILD=${BUILD:-build}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
make -s "$BUILD/bin/moecap" "$BUILD/lib/libmctrace.a" >/dev/null
cc -std=c11 -O2 -Iinclude -Ipostproc -o "$tmp/report-gen" bench/report-gen.c "$BUILD/lib/libmctrace.a"
"$tmp/report-gen" "$tmp/d" "$N"
