#!/usr/bin/python3
"""Renderers (postproc/render/): render hand-written report.json fixtures to HTML and
Markdown and check the content against values derived by hand from the fixture: formatted
figures, escaping, well-formed SVG (parsed as XML), heatmap geometry and colours, timeline
point order, histogram totals, no external resources, and robustness to absent fields."""
import html.parser, json, os, re, subprocess, sys
import xml.etree.ElementTree as ET
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import FAILS, check_problems  # noqa: E402

root = os.environ.get("MOECAP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
tool = os.path.join(root, os.environ.get("BUILD", "build"), "tests", "render_tool")
fix = os.path.join(root, "tests", "render", "fixtures")
SVG = "{http://www.w3.org/2000/svg}"


def render(kind, name):
    r = subprocess.run([tool, kind, os.path.join(fix, name)], capture_output=True)
    return r.returncode, r.stdout.decode("utf-8"), r.stderr.decode("utf-8", "replace")

VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
class Checker(html.parser.HTMLParser):
    """Strict-ish structure check: every non-void element closed in order; collects tags."""
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.tags, self.attrs, self.text = [], [], [], [], []
    def handle_starttag(self, tag, attrs):
        self.tags.append(tag); self.attrs.extend(attrs)
        if tag not in VOID: self.stack.append(tag)
    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag); self.attrs.extend(attrs)
    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("unexpected </%s>, open: %s" % (tag, self.stack[-3:]))
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag: pass
        else:
            self.stack.pop()
    def handle_data(self, d): self.text.append(d)

def structure(doc):
    c = Checker(); c.feed(doc); c.close()
    probs = list(c.errors)
    if c.stack: probs.append("unclosed elements: %s" % c.stack)
    if "script" in c.tags: probs.append("a <script> element is present")
    if "img" in c.tags or "link" in c.tags or "iframe" in c.tags: probs.append("external-resource element present")
    for k, v in c.attrs:
        if k in ("src",) or (k == "href" and v and not v.startswith("#")) or k.startswith("on"):
            probs.append("attribute %s=%r" % (k, v))
    if re.search(r"url\((?!#)", doc) or "@import" in doc: probs.append("external url() in CSS")
    return c, probs

def svgs(doc):
    out = []
    for m in re.finditer(r"<svg\b.*?</svg>", doc, re.S):
        out.append(ET.fromstring(m.group(0)))  # raises on malformed XML
    return out

fx = json.load(open(os.path.join(fix, "full.json")))
rc, doc, err = render("html", "full.json")
check_problems("html renders (exit 0)", [] if rc == 0 and doc.startswith("<!DOCTYPE html>") else ["rc %d %s" % (rc, err)])
c, probs = structure(doc)
check_problems("html well-formed, no script, no external resources", probs)

text = " ".join(" ".join(c.text).split())
# Figures formatted by rules written independently here (fraction -> 2-decimal percent, ...).
expect = ["12.34 %", "34.56 %", "0.12 %", "0.21 %",            # S-MBU, MBU, S-MFU, MFU
          "5.00 %", "12.69 %", "14.00 %", "35.53 %",          # prefill / decode S-MBU, MBU
          "2195.1", "975.6", "750 \u00b5s", "4 ms", "810 \u00b5s", "1.025 ms", "720 \u00b5s",
          "4.847 MB", "13.1 MB", "120 kB", "25.11 MFLOP", "88 MFLOP",
          "3.35 TB/s", "989.4 TFLOPS", "spec-sheet peaks", "4.81 %", "13.02 %", "12.64 %",
          "NVIDIA H100 SXM5 80GB", "bf16",
          "Client side (moecap bench)", "44 ms", "60.5 ms", "70.25 ms", "1.25 s", "81.82 %", "352.0"]
check_problems("html shows the fixture's figures formatted", ["missing %r" % e for e in expect if e not in text])

# Escaping: the hostile strings appear as text, never as markup.
probs = []
for s in ["m<img src=x onerror=alert(1)>", "unknown tensor <script>alert('x')</script> & \"quoted\" | pipe",
          "runs/a<b>&c", "<b>not bold</b>"]:
    if s not in text: probs.append("text %r not shown verbatim" % s)
for raw in ["<script>", "<img", "<b>not"]:
    if raw in doc: probs.append("raw %r in HTML" % raw)
check_problems("html escapes strings from the report", probs)

try:
    sv = svgs(doc)
    check_problems("every inline svg parses as XML", [] if len(sv) >= 5 else ["only %d svg elements" % len(sv)])
except ET.ParseError as e:
    sv = []
    check_problems("every inline svg parses as XML", [str(e)])

def cls(e): return (e.get("class") or "").split()
heat = [s for s in sv if "heatmap" in cls(s)]
probs = []
if len(heat) != 2: probs.append("%d heatmaps, want 2 (tokens, activations)" % len(heat))
else:
    cells = [r for r in heat[0].iter(SVG + "rect") if "cell" in cls(r)]
    L, E = len(fx["expert_load"]["layers"]), fx["expert_load"]["num_experts"]
    if len(cells) != L * E: probs.append("%d cells, want layers x experts = %d" % (len(cells), L * E))
    # Each cell's tooltip names its layer/expert and the count from the fixture.
    got = {}
    for r in cells:
        m = re.match(r"layer (\d+), expert (\d+): (\d+)$", r.find(SVG + "title").text or "")
        if not m: probs.append("cell title %r" % r.find(SVG + "title").text); continue
        got[(int(m.group(1)), int(m.group(2)))] = (int(m.group(3)), r.get("fill").lower(), float(r.get("x")), float(r.get("y")))
    for li, layer in enumerate(fx["expert_load"]["layers"]):
        for e in range(E):
            v = fx["expert_load"]["tokens"][li][e]
            if got.get((layer, e), (None,))[0] != v: probs.append("cell L%d e%d: %r, want %d" % (layer, e, got.get((layer, e)), v))
    # Colour scale: the maximum (layer 2, expert 0: 20) is viridis' top (#fde725), zero (layer 1,
    # expert 3) its bottom (#440154).
    if got.get((2, 0), (0, ""))[1] != "#fde725": probs.append("max cell colour %r" % (got.get((2, 0)),))
    if got.get((1, 3), (0, ""))[1] != "#440154": probs.append("zero cell colour %r" % (got.get((1, 3)),))
    # Geometry: columns advance with expert, rows with layer.
    if got and not (got[(0, 1)][2] > got[(0, 0)][2] and got[(1, 0)][3] > got[(0, 0)][3]): probs.append("cell layout not row=layer, column=expert")
    legend = [t.text for t in heat[0].iter(SVG + "text")]
    if "20" not in legend or "tokens routed to the expert" not in legend: probs.append("legend lacks scale max / label: %r" % legend[-6:])
    if not heat[0].findall(".//" + SVG + "linearGradient"): probs.append("no colour-scale gradient")
check_problems("heatmap: layers x experts cells with values, colours and legend", probs)

tl = [s for s in sv if "timeline" in cls(s)]
probs = []
if len(tl) != 2: probs.append("%d timelines, want 2 (S-MBU/MBU, S-MFU/MFU)" % len(tl))
else:
    lines = tl[0].findall(".//" + SVG + "polyline")
    solid = [p for p in lines if not p.get("stroke-dasharray")]
    dashed = [p for p in lines if p.get("stroke-dasharray")]
    if len(solid) != 1 or len(dashed) != 1: probs.append("want one solid (S-MBU) and one dashed (MBU) line, got %d/%d" % (len(solid), len(dashed)))
    else:
        pts = [tuple(map(float, p.split(","))) for p in solid[0].get("points").split()]
        vals = [s["s_mbu"] for s in fx["steps"]]
        if len(pts) != len(vals): probs.append("%d points for %d steps" % (len(pts), len(vals)))
        else:
            xs = [p[0] for p in pts]
            if xs != sorted(xs): probs.append("x not increasing with step")
            # Higher utilisation is drawn higher (smaller y), proportionally from a common baseline.
            for i in range(len(vals)):
                for j in range(len(vals)):
                    if vals[i] > vals[j] + 1e-9 and not pts[i][1] < pts[j][1]:
                        probs.append("step %d (%.3f) not above step %d (%.3f)" % (i, vals[i], j, vals[j])); break
            dpts = [tuple(map(float, p.split(","))) for p in dashed[0].get("points").split()]
            # Dense MBU = 2.8 x S-MBU in the fixture: the dashed line is above the solid one.
            if any(d[1] >= s_[1] for d, s_ in zip(dpts, pts)): probs.append("MBU line not above S-MBU line")
check_problems("timeline: one point per step, ordered, dense above sparse", probs)

hist = [s for s in sv if "histogram" in cls(s)]
probs = []
if len(hist) != 1: probs.append("%d histograms" % len(hist))
else:
    n = {"prefill": 0, "decode": 0}
    for t in hist[0].iter(SVG + "title"):
        m = re.search(r": (\d+) (prefill|decode|mixed/other) step", t.text or "")
        if m: n[m.group(2)] = n.get(m.group(2), 0) + int(m.group(1))
    if n.get("prefill") != 1 or n.get("decode") != 11: probs.append("bar counts %r, want prefill 1, decode 11" % n)
    marks = [t.text for t in hist[0].iter(SVG + "text") if t.text in ("p50", "p90", "p99")]
    if sorted(marks) != ["p50", "p90", "p99"]: probs.append("percentile marks %r" % marks)
check_problems("histogram: every step counted once by kind, p50/p90/p99 marked", probs)

# ---- Markdown -------------------------------------------------------------------------
rc, md, err = render("md", "full.json")
probs = [] if rc == 0 else ["rc %d %s" % (rc, err)]
for e in ["| S-MBU | 12.34 % | 5.00 % | 12.69 % |", "| MBU (dense: all experts) | 34.56 % | 14.00 % | 35.53 % |",
          "| S-MFU | 0.12 % | 0.40 % | 0.09 % |", "| tokens/s | 2195.1 | 4000.0 | 1330.4 |",
          "| step wall time | 12 | 1.025 ms | 720 \u00b5s | 750 \u00b5s | 810 \u00b5s | 4 ms | 4 ms |",
          "| TTFT, server side (prefill step time) | 1 | 4 ms |",
          "| 2 | 20 | 1 | 5 | 4 | 9 | 6 | 3 | 6 |",          # heatmap row of layer 2
          "| prefill | 1 | 4.81 % | 5.00 % | 0.37 % | 0.40 % |",
          "| 6 | decode | 1 | 1 | 810 \u00b5s | 14.00 % | 39.20 % |",
          "| peak memory bandwidth (per device) | 3.35 TB/s |", "spec-sheet peaks",
          "| TTFT | 11 | 45.2 ms | 30.1 ms | 44 ms | 60.5 ms | 70.25 ms | 71 ms |",
          "| E2EL | 11 | 690 ms | 400 ms | 700 ms | 950 ms | 1.25 s | 1.3 s |",
          "| accuracy (correct / scored) | 81.82 % |"]:
    if e not in md: probs.append("missing %r" % e)
for raw in ["<script>", "<img", "<b>"]:
    if raw in md: probs.append("raw %r in Markdown" % raw)
if "a\\|b" not in md: probs.append("pipe in argv not escaped for a table cell")
# Every table row of a table has the same number of cells as its header.
for block in re.split(r"\n\n", md):
    rows = [l for l in block.split("\n") if l.startswith("|")]
    if len(rows) >= 2:
        widths = {len(re.findall(r"(?<!\\)\|", l)) for l in rows}
        if len(widths) != 1: probs.append("ragged table: %r" % rows[:2])
check_problems("markdown: same figures as tables, escaped", probs)

# ---- absent data ------------------------------------------------------------------------
for name in ("partial.json", "empty.json"):
    for kind in ("html", "md"):
        rc, out, err = render(kind, name)
        probs = [] if rc == 0 else ["rc %d: %s" % (rc, err)]
        for bad in ("nan", "inf", "NaN", "(null)"):
            if re.search(r"\b%s\b" % re.escape(bad), out): probs.append("%r printed for an absent value" % bad)
        if "\u2014" not in out: probs.append("absent values not shown as an em dash")
        if "Client side" in out: probs.append("client section shown without client data")
        if kind == "html":
            c, p2 = structure(out); probs += p2
            try: svgs(out)
            except ET.ParseError as e: probs.append("svg: %s" % e)
        check_problems("%s %s: absent fields render without crash or invention" % (kind, name), probs)

rc, out, _ = render("html", "partial.json")
# partial.json: aggregate.mbu is a string and s_mbu null -> both absent, not 0 or 50 %.
probs = []
if "50.00 %" in out: probs.append("a string-typed mbu was shown as a number")
m = re.search(r"S-MBU \(sparsity-aware\)</div><div class=\"v\">([^<]*)<", out)
if not m or m.group(1) != "\u2014": probs.append("null S-MBU card shows %r" % (m and m.group(1)))
cells = re.findall(r"<rect class=\"cell\"[^>]*><title>([^<]*)</title>", out)
# tokens rows [[1,2,null,4],[7]] with 4 experts: 4 numeric cells; the other 4 are "no data".
if len(cells) != 4: probs.append("%d numeric heatmap cells, want 4" % len(cells))
if out.count(": no data</title>") != 4: probs.append("%d no-data cells, want 4" % out.count(": no data</title>"))
check_problems("partial: wrong types read as absent, ragged heatmap drawn as no data", probs)


# Seeded mutation pass: replace random nodes of the full fixture with values of other types
# (null, strings, huge numbers, 1e999 = inf in cJSON, nested junk); every rendering must
# exit 0, stay well-formed and never print nan/inf.
import random, tempfile
rng = random.Random(4)
junk = [None, "x<y>&", -1, 0, 1e308, [], {}, [[1, "a"], None], {"p50": "fast"}, True, 2**70]
def paths(o, pre=()):
    yield pre
    if isinstance(o, dict):
        for k, v in o.items(): yield from paths(v, pre + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o[:6]): yield from paths(v, pre + (i,))
all_paths = [p for p in paths(fx) if p]
probs = []
tmpd = tempfile.mkdtemp(prefix="mc-render-")
for it in range(60):
    doc_ = json.loads(json.dumps(fx))
    for _ in range(rng.randint(1, 12)):
        pth = rng.choice(all_paths)
        o = doc_
        try:
            for k in pth[:-1]: o = o[k]
            o[pth[-1]] = rng.choice(junk)
        except (KeyError, IndexError, TypeError):
            pass
    fn = os.path.join(tmpd, "m%d.json" % it)
    text_ = json.dumps(doc_)
    if it % 2: text_ = text_.replace("1e+308", "1e999")  # cJSON reads 1e999 as inf
    open(fn, "w").write(text_)
    for kind in ("html", "md"):
        r = subprocess.run([tool, kind, fn], capture_output=True)
        o = r.stdout.decode("utf-8", "replace")
        if r.returncode != 0: probs.append("mutation %d %s: rc %d %s" % (it, kind, r.returncode, r.stderr[-200:])); continue
        if re.search(r"\b(nan|inf)\b", o, re.I): probs.append("mutation %d %s: nan/inf printed" % (it, kind))
        if kind == "html":
            c_, p2 = structure(o)
            probs += ["mutation %d: %s" % (it, x) for x in p2[:2]]
            try: svgs(o)
            except ET.ParseError as e: probs.append("mutation %d: svg %s" % (it, e))
check_problems("60 seeded type mutations of the fixture render cleanly", probs[:10])

r = subprocess.run([tool, "html", "/dev/null"], capture_output=True)
check_problems("unparsable input: exit 2, no output", [] if r.returncode == 2 and not r.stdout else ["rc %d" % r.returncode])
sys.exit(1 if FAILS else 0)
