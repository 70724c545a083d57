#!/usr/bin/env bash
# Proof that a change to `moecap report` leaves its output unchanged, byte for byte.
#
#   report-replay.sh capture CAPDIR [TEST...]
#       Runs the tests (default: every test that runs `moecap report`, below) with
#       $BUILD/bin/moecap replaced by capture-wrapper.sh, which copies each report
#       invocation's inputs and arguments into CAPDIR/NNNN/ before running the real binary.
#       The binary is restored afterwards. Run it in the tree of the OLD binary.
#   report-replay.sh replay CAPDIR OLD_MOECAP NEW_MOECAP [WORKDIR]
#       Runs every captured invocation with both binaries on identical copies of its inputs
#       at the same paths (so paths printed in messages and report.json agree) and compares
#       exit status, stdout, stderr and every file the run left (report.json/.md/.html).
#       Prints one line per differing run and "N runs: N identical, N differ"; exit 1 when
#       any differ.
# Hardware profiles are taken from data/hardware of this checkout (MOECAP_HW_DIR) for both.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
BUILD="${BUILD:-build}"

default_tests() {
  echo tests/report/test_report_cli.sh tests/report/test_report_engine.sh tests/report/test_report_torch.sh \
       tests/report/test_report_gpu_chain.sh "$BUILD/tests/test_report_gpu" \
       tests/cuda/emu/test_cuda_emu_chain.py tests/cuda/emu/test_cupti_emu_chain.py \
       tests/render/test_render_pipeline.py
}

capture() {
  local cap; cap="$(realpath -m "$1")"; shift
  mkdir -p "$cap"
  cd "$root" || exit 2
  bin="$root/$BUILD/bin/moecap"   # global: the EXIT trap restores it
  [ -x "$bin" ] || { echo "report-replay: $bin not built" >&2; exit 2; }
  [ -e "$bin.real" ] && { echo "report-replay: $bin.real exists (an interrupted capture?): restore it first" >&2; exit 2; }
  mv "$bin" "$bin.real"
  trap 'mv -f "$bin.real" "$bin"' EXIT
  cp "$here/capture-wrapper.sh" "$bin"
  local tests=("$@")
  [ ${#tests[@]} -eq 0 ] && read -r -a tests <<<"$(default_tests)"
  MC_REPLAY_CAPTURE="$cap" BUILD="$BUILD" tests/run-tests.sh "${tests[@]}"
  echo "report-replay: $(ls "$cap" | grep -c '^[0-9]') report runs captured in $cap"
}

# run_one CAPRUN BIN WORK RESULT: one captured invocation with BIN, outputs kept in RESULT.
run_one() {
  local c="$1" bin="$2" work="$3" res="$4"
  rm -rf "$work" "$res"; mkdir -p "$work" "$res"
  local f
  for f in run model hw lmeval; do [ -e "$c/$f" ] && cp -a "$c/$f" "$work/$f"; done
  local args=()
  while IFS= read -r -d '' a; do args+=("${a//@CAP@/$work}"); done <"$c/args"
  ( cd "$work" && MOECAP_HW_DIR="$root/data/hardware" "$bin" "${args[@]}" >"$res/stdout" 2>"$res/stderr"; echo $? >"$res/status" )
  # everything the run left behind except the inputs' unchanged files
  for f in run model hw lmeval out; do [ -e "$work/$f" ] && cp -a "$work/$f" "$res/$f"; done
}

replay() {
  local cap; cap="$(realpath "$1")"; local old; old="$(realpath "$2")"; local new; new="$(realpath "$3")"
  local work="${4:-$(mktemp -d)}"
  local n=0 same=0 differ=0 c
  for c in "$cap"/[0-9]*; do
    [ -f "$c/args" ] || continue
    n=$((n + 1))
    run_one "$c" "$old" "$work/in" "$work/old"
    run_one "$c" "$new" "$work/in" "$work/new"
    if diff -r "$work/old" "$work/new" >"$work/diff" 2>&1; then
      same=$((same + 1))
    else
      differ=$((differ + 1))
      echo "DIFFERS $(basename "$c"): moecap $(tr '\0' ' ' <"$c/args")"
      head -20 "$work/diff" | sed 's/^/    /'
    fi
  done
  [ -z "${4:-}" ] && rm -rf "$work"
  echo "$n runs: $same identical, $differ differ"
  [ "$differ" -eq 0 ] && [ "$n" -gt 0 ]
}

case "${1:-}" in
  capture) [ $# -ge 2 ] || { sed -n 2,16p "$0"; exit 2; }; shift; capture "$@" ;;
  replay)  [ $# -ge 4 ] || { sed -n 2,16p "$0"; exit 2; }; shift; replay "$@" ;;
  *)       sed -n 2,16p "$0"; exit 2 ;;
esac
