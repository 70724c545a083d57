#!/usr/bin/python3
"""`moecap compare` on report.json files written here with known figures:
- the headline values in compare.json equal the reports' (the per-step array is skipped
  unparsed: strings holding brackets, braces and the word "steps" do not confuse it, and a
  nested "steps" count is kept);
- radar geometry: every point's distance from the centre / radius equals the normalised
  value computed here (value / best, cost: best / value);
- classes PA / PC / CA from the measured facts, or the class a report states;
- bad or mismatched inputs: a clear message and exit status 2."""
import copy, json, math, os, subprocess, sys, tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import check_problems, finish  # noqa: E402

root = os.environ.get("MOECAP_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
MC = os.path.join(root, os.environ.get("BUILD", "build"), "bin", "moecap")
tmp = tempfile.mkdtemp(prefix="mc-compare-")


BASE = {
    "schema_version": 1,
    "generator": {"name": "moecap report", "version": "0.1"},
    "run": {"dir": "runs/x", "attribution": {"gemm_weight_bytes_per_element": 2}},
    "model": {"path": "models/tiny", "architecture": "qwen2_moe", "num_layers": 4, "hidden_size": 128,
              "num_experts": 8, "top_k": 2, "moe_intermediate_size": 96, "weight_dtype": "bf16",
              "bytes_per_element": 2, "params": {"total": 1.5e6}},
    "hardware": {"name": "h100-sxm", "kind": "gpu", "devices": 1, "measured": False},
    "aggregate": {"steps": 12, "s_mbu": 0.2, "s_mfu": 0.05, "mbu": 0.4, "mfu": 0.1,
                  "tokens_per_s": {"output": 100.0},
                  "ttft_server_s": {"mean": 0.02}, "tpot_server_s": {"mean": 0.01}},
    "energy": {"joules": 50.0, "estimated": False, "method": "measured"},
    "cost": {"owned": {"per_1m_tokens_usd": 2.0, "per_1m_input_tokens_usd": 1.0, "per_1m_output_tokens_usd": 4.0}},
    "memory": {"peak_device_bytes": 2e9},
    "notes": [],
}


def report(name, changes, steps_first=False):
    r = copy.deepcopy(BASE)
    for path, v in changes.items():
        o = r
        ks = path.split(".")
        for k in ks[:-1]:
            o = o.setdefault(k, {})
        if v is None:
            o.pop(ks[-1], None)
        else:
            o[ks[-1]] = v
    r["run"]["dir"] = "runs/" + name
    # a per-step array that a naive scanner would trip over
    steps = [{"step": i, "kind": "decode", "note": "]}{\"steps\": [\\\"]", "layers": [{"experts": [1, 2]}]} for i in range(50)]
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "report.json"), "w") as f:
        if steps_first:
            f.write('{"steps": ' + json.dumps(steps) + ", " + json.dumps(r)[1:])
        else:
            r["steps"] = steps
            json.dump(r, f, indent=1)
    return d


def compare(args):
    return subprocess.run([MC, "compare"] + args, capture_output=True, text=True)


# three systems: A baseline bf16, B quantized (1 B/weight) faster and cheaper with lower
# accuracy, C offloading (expert bytes moved during decode) cheap and slow
A = report("sysA", {"client.summary.accuracy.accuracy": 0.8})
Bq = report("sysB", {"run.attribution.gemm_weight_bytes_per_element": 1, "aggregate.tokens_per_s.output": 250.0,
                     "cost.owned.per_1m_tokens_usd": 0.5, "aggregate.s_mbu": 0.5, "aggregate.s_mfu": 0.02,
                     "client.summary.accuracy.accuracy": 0.6, "energy.estimated": True}, steps_first=True)
C = report("sysC", {"offload.loaded_bytes": 3e9, "offload.steps_loading_after_first": 7, "aggregate.tokens_per_s.output": 20.0,
                    "cost.owned.per_1m_tokens_usd": 1.0, "aggregate.s_mbu": 0.1, "aggregate.s_mfu": None,
                    "client.summary.accuracy.accuracy": 0.8, "hardware.devices": 2})
out = os.path.join(tmp, "out")
r = compare([A, Bq, C, "--out", out])
probs = [] if r.returncode == 0 else ["rc %d: %s" % (r.returncode, r.stderr)]
if not probs:
    cj = json.load(open(os.path.join(out, "compare.json")))
    runs = cj["runs"]
    if [x["label"] for x in runs] != ["sysA", "sysB", "sysC"]: probs.append("labels %r" % [x["label"] for x in runs])
    want = {"sysA": (100.0, 2.0, 0.8, 0.2), "sysB": (250.0, 0.5, 0.6, 0.5), "sysC": (20.0, 1.0, 0.8, 0.1)}
    for x in runs:
        v = x["values"]
        got = (v["output tokens/s (server, busy)"], v["USD / 1M tokens"], v["accuracy"], v["S-MBU"])
        if got != want[x["label"]]: probs.append("%s values %r want %r" % (x["label"], got, want[x["label"]]))
    if runs[2]["values"]["S-MFU"] is not None: probs.append("absent S-MFU should be null")
    if not runs[1]["energy_estimated"]: probs.append("estimated energy not carried")
    for f in ("compare.md", "compare.html", "radar.svg"):
        if not os.path.getsize(os.path.join(out, f)): probs.append(f + " empty")
    if "| S-MBU |" not in r.stdout or "(estimated)" not in r.stdout: probs.append("stdout table: %r" % r.stdout[:400])
check_problems("headline figures equal the reports' (steps skipped, in any position)", probs)

# ---- radar geometry ----
probs = []
if os.path.exists(os.path.join(out, "radar.svg")):
    svg = ET.parse(os.path.join(out, "radar.svg")).getroot()
    cx, cy, R = (float(svg.get(k)) for k in ("data-cx", "data-cy", "data-radius"))
    raw = {"Cost": [2.0, 0.5, 1.0], "Accuracy": [0.8, 0.6, 0.8], "Performance": [100.0, 250.0, 20.0],
           "S-MBU": [0.2, 0.5, 0.1], "S-MFU": [0.05, 0.02, None]}
    expect = {}
    for ax, vals in raw.items():
        present = [v for v in vals if v is not None]
        for i, v in enumerate(vals):
            if v is None: continue
            expect[(i, ax)] = min(present) / v if ax == "Cost" else v / max(present)
    ns = "{http://www.w3.org/2000/svg}"
    pts = [c for c in svg.iter(ns + "circle") if c.get("class") == "pt"]
    seen = set()
    for c in pts:
        key = (int(c.get("data-run")), c.get("data-axis"))
        seen.add(key)
        rad = math.hypot(float(c.get("cx")) - cx, float(c.get("cy")) - cy) / R
        if key not in expect: probs.append("unexpected point %r" % (key,))
        elif abs(rad - expect[key]) > 1e-4: probs.append("%r: radius %.6f, normalised value %.6f" % (key, rad, expect[key]))
    if seen != set(expect): probs.append("points %r, want %r" % (sorted(seen), sorted(expect)))
    # outward is better: the best run on every axis sits on the outer ring
    for ax in raw:
        if max(v for (i, a), v in expect.items() if a == ax) != 1.0: probs.append("best on %s not at 1" % ax)
    text = " ".join(t.text or "" for t in svg.iter(ns + "text"))
    for must in ("value / best value", "lower is better", "higher is better", "USD / 1M tokens", "not measured: S-MFU"):
        if must not in text: probs.append("figure lacks %r" % must)
else:
    probs.append("no radar.svg")
check_problems("radar: each point's radius = its normalised value; normalisation stated in the figure", probs)

# ---- classes ----
probs = []
if os.path.exists(os.path.join(out, "compare.json")):
    cls = {x["label"]: (x["class"], x["class_reason"]) for x in json.load(open(os.path.join(out, "compare.json")))["runs"]}
    for lab, want, fact in (("sysA", "PA", "2 B/weight"), ("sysB", "PC", "1 B/weight (quantized)"), ("sysC", "CA", "3 GB")):
        if cls[lab][0] != want or fact not in cls[lab][1]: probs.append("%s: %r, want %s with %r" % (lab, cls[lab], want, fact))
D = report("sysD", {"system_class": {"classes": ["PC", "CA"], "evidence": {"PC": "int4 weights", "CA": "engine offloads 6 of 8 experts"}}})
E = report("sysE", {"offload.loaded_bytes": 1e9, "offload.steps_loading_after_first": 0})   # loaded once, up front
r = compare([A, D, E])
if r.returncode != 0 or "PC+CA — stated by the report: PC: int4 weights; CA: engine offloads 6 of 8 experts;" not in r.stdout \
        or "**sysE**: PA" not in r.stdout:
    probs.append("stated class not used: %r" % r.stdout[-400:])
check_problems("classes PA / PC / CA from the measured facts, with the reason; a stated class is used", probs)

# ---- bad and mismatched inputs ----
notjson = os.path.join(tmp, "bad.json"); open(notjson, "w").write("{ not json")
arr = os.path.join(tmp, "arr.json"); open(arr, "w").write("[1, 2]")
nodoc = os.path.join(tmp, "other.json"); open(nodoc, "w").write('{"hello": 1}')
empty = os.path.join(tmp, "emptydir"); os.makedirs(empty)
v2 = report("v2", {"schema_version": 2})
other = report("othermodel", {"model.num_experts": 64})
probs = []
for args, pat in (([], "at least one"), ([os.path.join(tmp, "nope")], "No such file"), ([empty], "no report.json"),
                  ([notjson], "not a JSON object"), ([arr], "not a JSON object"), ([nodoc], "not a moecap report"),
                  ([v2], "schema_version 2"), ([A, other], "different models"), ([A, "--axes", "cost,speed"], "--axes"),
                  ([A, "--axes", "cost,accuracy"], "at least 3 axes"), ([A, Bq, "--labels", "x"], "--labels has 1"),
                  ([A, "--frobnicate"], "unknown")):
    r = compare(args)
    if r.returncode != 2 or pat not in r.stderr:
        probs.append("%r: rc %d, stderr %r (want %r)" % ([os.path.basename(a) for a in args], r.returncode, r.stderr[:200], pat))
r = compare([A, other, "--any-model"])
if r.returncode != 0: probs.append("--any-model refused: %s" % r.stderr)
check_problems("bad or mismatched inputs exit 2 with the reason", probs)
sys.exit(finish(tmp))
