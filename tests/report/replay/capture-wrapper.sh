#!/usr/bin/env bash
# Stand-in for $BUILD/bin/moecap while tests/report/replay/report-replay.sh captures: every
# `moecap report` invocation's inputs (run directory, model, hardware profile, lm-eval file)
# are copied into $MC_REPLAY_CAPTURE/NNNN/ with its arguments, paths replaced by placeholders,
# then the real binary ($0.real) runs exactly as it would have. Other subcommands pass through.
real="$0.real"
cap="${MC_REPLAY_CAPTURE:?}"
[ "${1:-}" = report ] || exec "$real" "$@"

orig=("$@")
shift   # "report"
n=$(ls "$cap" | grep -c '^[0-9]')
d="$cap/$(printf '%04d' "$n")"
while ! mkdir "$d" 2>/dev/null; do n=$((n + 1)); d="$cap/$(printf '%04d' "$n")"; done
pwd >"$d/cwd"

# copy PATH NAME: the input as $d/NAME (directory or file); prints the placeholder to use.
copy() {
  local p="$1" name="$2"
  if [ -e "$p" ]; then
    cp -a "$(realpath "$p")" "$d/$name" && echo "@CAP@/$name"
  else
    echo "@CAP@/missing-$name"   # does not exist at replay either
  fi
}

args=(report) run_seen=0
while [ $# -ge 1 ]; do
  a="$1"; shift
  case "$a" in
    --model)   args+=("$a"); [ $# -ge 1 ] && { args+=("$(copy "$1" model)"); shift; } ;;
    --lm-eval) args+=("$a"); [ $# -ge 1 ] && { args+=("$(copy "$1" lmeval)"); shift; } ;;
    --hw)      args+=("$a"); [ $# -ge 1 ] && { if [ -f "$1" ]; then args+=("$(copy "$1" hw)"); else args+=("$1"); fi; shift; } ;;
    --out)     args+=("$a"); [ $# -ge 1 ] && { args+=("@CAP@/out"); shift; } ;;
    --format|--devices) args+=("$a"); [ $# -ge 1 ] && { args+=("$1"); shift; } ;;
    -*)        args+=("$a") ;;
    *)         if [ $run_seen = 0 ]; then run_seen=1; args+=("$(copy "$a" run)"); else args+=("$a"); fi ;;
  esac
done
printf '%s\0' "${args[@]}" >"$d/args"
exec "$real" "${orig[@]}"
