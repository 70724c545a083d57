#!/usr/bin/env bash
# `moecap compare`'s HTML page in headless Chromium (installed by `make check`:
# scripts/install-deps.sh chromium): the DOM Chromium builds holds the radar (its points and
# the systems' table), no console error is logged, and the screenshot is not blank. The PNG
# stays under $BUILD/test-logs/compare/ for a human look. Skipped only where Chromium is absent.
set -u
cd "${MOECAP_ROOT:-$(dirname "$0")/../..}"
B="${BUILD:-build}"
chrome=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chrome" ]; then echo "skip - compare html in chromium (chromium not installed: scripts/install-deps.sh chromium failed or was not run)"; exit 0; fi
out="$B/test-logs/compare"; rm -rf "$out"; mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# two real reports: the synthetic trace on two hardware profiles
"$B/tests/test_report_unit" --write-trace "$tmp/s" >/dev/null || { echo "not ok - compare html (synthetic trace)"; exit 1; }
for hw in tests/report/hw-test.json h100-sxm; do
  d="$tmp/$(basename "$hw" .json)"
  "$B/bin/moecap" report "$tmp/s/run" --model "$tmp/s/config.json" --hw "$hw" --out "$d" --quiet --format json --whatif-hw none \
    || { echo "not ok - compare html (report on $hw)"; exit 1; }
done
"$B/bin/moecap" compare "$tmp/hw-test" "$tmp/h100-sxm" --labels "2-core test box,H100 SXM" --out "$out" >/dev/null 2>"$tmp/compare.err" \
  || { echo "not ok - compare html (moecap compare failed)"; exit 1; }
prof="$tmp/profile"
common=(--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync
        --no-first-run --user-data-dir="$prof" --enable-logging=stderr --v=0)
url="file://$(realpath "$out")/compare.html"
timeout 90 "$chrome" "${common[@]}" --dump-dom "$url" >"$out/dom.html" 2>"$out/chromium-dom.log"
timeout 90 "$chrome" "${common[@]}" --screenshot="$out/compare.png" --window-size=1100,1400 "$url" >/dev/null 2>"$out/chromium-shot.log"
/usr/bin/python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
dom = open(out + "/dom.html").read()
probs = []
pts = len(re.findall(r'<circle class="pt"', dom))
if pts < 6: probs.append("DOM has %d radar points, want >= 6 (2 systems x 3+ axes)" % pts)
for must in ("2-core test box", "H100 SXM", "USD / 1M tokens", "value / best value"):
    if must not in dom: probs.append("DOM lacks %r" % must)
logs = open(out + "/chromium-dom.log").read() + open(out + "/chromium-shot.log").read()
errs = [l for l in logs.splitlines() if "CONSOLE" in l or "Uncaught" in l]
if errs: probs.append("console errors: %r" % errs[:3])
try:
    from PIL import Image
    im = Image.open(out + "/compare.png")
    lo, hi = im.convert("L").getextrema()
    colours = len(set(im.convert("RGB").resize((275, 350)).getdata()))
    if hi - lo < 128 or colours < 30: probs.append("blank screenshot: extrema %d..%d, %d colours" % (lo, hi, colours))
except ImportError:
    import os
    if os.path.getsize(out + "/compare.png") < 10000: probs.append("screenshot missing or tiny")
except OSError as e:
    probs.append("no screenshot: %s" % e)
for p in probs: print("# " + p)
print(("not ok" if probs else "ok") + " - compare html renders in chromium (%d radar points, %s/compare.png)" % (pts, out))
sys.exit(1 if probs else 0)
PY
