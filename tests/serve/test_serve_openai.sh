#!/usr/bin/env bash
# `moe-ref serve` driven by the official `openai` npm client (6.x), installed by
# `make check` into $BUILD/npm (tests/serve/module.mk): models, completions, streamed
# completions with usage, chat, streamed chat, and 404 for an unknown model
# (tests/serve/openai_client.cjs holds the checks). Skips only when node or npm is absent.
set -u
cd "$(dirname "$0")/../.."
BUILD="${BUILD:-build}"
MOEREF="$BUILD/bin/moe-ref"
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "skip - openai npm client against moe-ref serve (npm/node not installed)"; exit 0
fi
MOD="$BUILD/npm"
[ -f "$MOD/node_modules/openai/package.json" ] || { echo "not ok - $MOD/node_modules/openai missing (make check installs it with npm)"; exit 1; }
T=$(mktemp -d /tmp/mc-serve-openai.XXXXXX)
cleanup() { [ -n "${SRV:-}" ] && kill "$SRV" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
"$MOEREF" gen --arch mixtral --out "$T/tiny-moe" --seed 5 >/dev/null || { echo "not ok - model generation"; exit 1; }
"$MOEREF" serve --model "$T/tiny-moe" --port 0 --port-file "$T/port" --quiet 2>"$T/serve.log" &
SRV=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
[ -s "$T/port" ] || { echo "not ok - server did not start"; cat "$T/serve.log"; exit 1; }
timeout 120 node tests/serve/openai_client.cjs "$MOD" "$(cat "$T/port")" tiny-moe
