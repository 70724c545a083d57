#!/usr/bin/python3
"""Compare the offload facts of moecap's report.json with moe-ref's ground truth
(docs/ground-truth.md "offload", docs/attribution.md §6).

usage: compare_offload.py GT.jsonl REPORT.json NAME
Exact per step: the experts read per layer ("loaded"), experts and bytes loaded, hits,
misses, resident experts and bytes at the step's end; the run's class is CA when any
step after the first loaded experts. Prints one ok / not ok line."""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gt_report import load  # noqa: E402
from tap import check_problems  # noqa: E402


def main():
    gt_path, rep_path, name = sys.argv[1:4]
    gt, rep, steps, bad = load(gt_path, rep_path)
    for g, s in zip(gt, steps):
        i = g['step']
        go, so = g['offload'], s.get('offload')
        if so is None:
            bad.append('step %d: no offload object in the report' % i)
            continue
        for k in ('loaded_experts', 'loaded_bytes', 'hits', 'misses', 'resident_experts', 'resident_bytes'):
            if go[k] != so.get(k):
                bad.append('step %d %s: gt %r report %r' % (i, k, go[k], so.get(k)))
        gl = {l['layer']: l['loaded'] for l in g['layers'] if l.get('loaded')}
        sl = {l['layer']: l['experts'] for l in so.get('loaded', [])}
        if gl != sl:
            bad.append('step %d loaded per layer: gt %r report %r' % (i, gl, sl))
    later_loads = any(g['offload']['loaded_bytes'] for g in gt[1:])
    cls = rep.get('system_class', {}).get('classes', [])
    if later_loads != ('CA' in cls):
        bad.append('class: steps after the first loaded=%r, report classes %r' % (later_loads, cls))
    agg = rep.get('offload', {})
    tot = sum(g['offload']['loaded_bytes'] for g in gt)
    if agg.get('loaded_bytes') != tot:
        bad.append('aggregate loaded_bytes: gt %r report %r' % (tot, agg.get('loaded_bytes')))
    peak = max(g['offload']['resident_bytes'] for g in gt)
    if agg.get('resident_bytes_peak') != peak:
        bad.append('aggregate resident peak: gt %r report %r' % (peak, agg.get('resident_bytes_peak')))
    check_problems('%s: offload per step (loaded experts per layer, bytes, hits/misses, resident) exact, class %s (%d steps)'
                   % (name, cls, len(gt)), bad)


main()
