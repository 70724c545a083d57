#!/usr/bin/env bash
# Renders the full fixture to HTML and screenshots it in headless Chromium when installed
# (scripts/install-deps.sh chromium); checks the PNG is produced and not blank. The PNG is
# kept under $BUILD/test-logs/ for a human look. Skipped where Chromium is absent.
set -u
cd "${MOECAP_ROOT:-$(dirname "$0")/../..}"
B="${BUILD:-build}"
chrome=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chrome" ]; then echo "skip - html screenshot (chromium not installed)"; exit 0; fi
out="$B/test-logs/render"; mkdir -p "$out"
"$B/tests/render_tool" html tests/render/fixtures/full.json > "$out/full.html" || { echo "not ok - html screenshot (render failed)"; exit 1; }
prof=$(mktemp -d)
timeout 90 "$chrome" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --user-data-dir="$prof" \
  --screenshot="$out/full.png" --window-size=1280,3200 "file://$(realpath "$out")/full.html" >/dev/null 2>&1
rm -rf "$prof"
if [ ! -s "$out/full.png" ]; then echo "not ok - html screenshot (no PNG written)"; exit 1; fi
# Not blank: the page has dark text and coloured charts, so pixels must differ widely.
/usr/bin/python3 - "$out/full.png" <<'PY'
import sys
try:
    from PIL import Image
except ImportError:
    print("ok - html screenshot (PNG written; PIL absent, content not inspected)"); sys.exit(0)
im = Image.open(sys.argv[1]).convert("L")
lo, hi = im.getextrema()
colours = len(set(Image.open(sys.argv[1]).convert("RGB").resize((320, 800)).getdata()))
if hi - lo < 128 or colours < 50:
    print("# extrema %d..%d, %d colours" % (lo, hi, colours)); print("not ok - html screenshot (blank page)"); sys.exit(1)
print("ok - html screenshot (%s, %d colours)" % (sys.argv[1], colours))
PY
