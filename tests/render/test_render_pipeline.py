#!/usr/bin/python3
"""The renderers on a real report: a tiny MoE model run by moe-ref under libmoecap.so,
`moecap report --format json,md,html`, then report.html / report.md are checked against
report.json itself (structure, SVG well-formedness, heatmap geometry from the model's
layer and expert counts, headline figures formatted as the renderer's documented rules
say). Skipped when the pipeline before the renderer cannot run here."""
import json, os, re, subprocess, sys, tempfile
import xml.etree.ElementTree as ET
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from preload import preload_env  # noqa: E402
from tap import FAILS, check_problems, skip  # noqa: E402

root = os.environ.get("MOECAP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
build = os.path.join(root, os.environ.get("BUILD", "build"))
moeref, moecap, shim = (os.path.join(build, "bin", "moe-ref"), os.path.join(build, "bin", "moecap"),
                        os.path.join(build, "lib", "libmoecap.so"))
ns = {"__file__": os.path.join(root, "tests", "render", "test_render.py")}
src = open(ns["__file__"]).read()
exec(src[:src.index("fx = json.load")], ns)  # reuse structure() / svgs()
structure, svgs = ns["structure"], ns["svgs"]

for f in (moeref, moecap, shim):
    if not os.path.exists(f):
        skip("render pipeline", "%s not built" % f); sys.exit(0)
d = tempfile.mkdtemp(prefix="mc-render-pipe-")
env = preload_env(shim)
env["MOECAP_OUT"] = os.path.join(d, "run")
steps = [
    [moeref, "gen", "--arch", "mixtral", "--out", os.path.join(d, "model"), "--layers", "3", "--hidden", "64",
     "--experts", "8", "--top-k", "2", "--vocab", "256", "--seed", "3"],
    None,
    [moecap, "report", os.path.join(d, "run"), "--model", os.path.join(d, "model"), "--hw", "h100-sxm",
     "--out", os.path.join(d, "rep"), "--format", "json,md,html"],
]
r = subprocess.run(steps[0], capture_output=True, text=True)
if r.returncode: skip("render pipeline", "moe-ref gen failed: %s" % r.stderr.strip()[-200:]); sys.exit(0)
r = subprocess.run([moeref, "run", "--model", os.path.join(d, "model"), "--batch", "2", "--prompt-len", "6", "--gen", "8"],
                   capture_output=True, text=True, env=env)
if r.returncode: skip("render pipeline", "moe-ref run under the shim failed: %s" % r.stderr.strip()[-200:]); sys.exit(0)
r = subprocess.run(steps[2], capture_output=True, text=True)
if r.returncode: skip("render pipeline", "moecap report failed: %s" % r.stderr.strip()[-200:]); sys.exit(0)

rep = json.load(open(os.path.join(d, "rep", "report.json")))
html = open(os.path.join(d, "rep", "report.html"), encoding="utf-8").read()
md = open(os.path.join(d, "rep", "report.md"), encoding="utf-8").read()
c, probs = structure(html)
check_problems("real report.html well-formed, self-contained", probs)
try:
    sv = svgs(html)
    check_problems("real report svgs parse", [] if len(sv) >= 4 else ["%d svgs" % len(sv)])
except ET.ParseError as e:
    sv = []; check_problems("real report svgs parse", [str(e)])

SVG = "{http://www.w3.org/2000/svg}"
heat = [s for s in sv if "heatmap" in (s.get("class") or "")]
probs = []
L, E = len(rep["model"]["moe_layers"]), rep["model"]["num_experts"]
if L != 3 or E != 8: probs.append("report model says %d MoE layers x %d experts, generated 3 x 8" % (L, E))
if not heat: probs.append("no heatmap")
else:
    cells = [x for x in heat[0].iter(SVG + "rect") if "cell" in (x.get("class") or "")]
    if len(cells) != L * E: probs.append("%d cells, want %d" % (len(cells), L * E))
    vals = sorted(int(re.search(r": (\d+)$", x.find(SVG + "title").text).group(1)) for x in cells)
    want = sorted(v for row in rep["expert_load"]["tokens"] for v in row)
    if vals != want: probs.append("cell values differ from report.json expert_load.tokens")
check_problems("heatmap: MoE layers x experts of the generated model, values from report.json", probs)

def pct(v): return "%.2f %%" % (v * 100) if v * 100 >= 0.01 else "%.2g %%" % (v * 100)
text = " ".join(" ".join(c.text).split())
probs = []
a = rep["aggregate"]
for k in ("s_mbu", "mbu"):
    if k in a and pct(a[k]) not in text: probs.append("%s %s not in HTML" % (k, pct(a[k])))
    if k in a and pct(a[k]) not in md: probs.append("%s %s not in Markdown" % (k, pct(a[k])))
if "| steps | %d |" % a["steps"] not in md: probs.append("step count %d not in Markdown summary" % a["steps"])
n_steps = len(rep["steps"])
tl = [s for s in sv if "timeline" in (s.get("class") or "")]
if not tl: probs.append("no timeline")
else:
    solid = [p for p in tl[0].iter(SVG + "polyline") if not p.get("stroke-dasharray")]
    pts = sum(len(p.get("points").split()) for p in solid)
    if pts != n_steps: probs.append("timeline has %d points for %d steps" % (pts, n_steps))
check_problems("headline figures and per-step timeline match report.json", probs)
sys.exit(1 if FAILS else 0)
