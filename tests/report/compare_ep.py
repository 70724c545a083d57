#!/usr/bin/python3
"""Compare the expert-parallel facts of moecap's report.json with moe-ref's ground truth
(docs/ground-truth.md "expert_parallel", docs/attribution.md §9).

usage: compare_ep.py GT.jsonl REPORT.json NAME
Exact per step, per worker process (matched by pid): activated experts, routed expert
weight bytes, FLOPs, GEMM calls; activation bytes exchanged; over the run the per-process
heatmap equals the tokens per expert of the experts that process owns (expert % N == rank);
the run's class includes PA; the utilisation denominators' devices come from the trace: the
N + 1 processes ran CPU GEMMs on one host, which is one CPU (hardware.devices 1). Prints one
ok / not ok line."""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gt_report import load  # noqa: E402
from tap import check_problems  # noqa: E402


def main():
    gt_path, rep_path, name = sys.argv[1:4]
    gt, rep, steps, bad = load(gt_path, rep_path)
    n = gt[0]['expert_parallel']['processes'] if gt else 0
    pids = {}
    heat = {}
    for g, s in zip(gt, steps):
        i, ge, se = g['step'], g['expert_parallel'], s.get('expert_parallel')
        if se is None:
            bad.append('step %d: no expert_parallel object in the report' % i)
            continue
        if ge['comm_bytes'] != se['comm_bytes']:
            bad.append('step %d comm_bytes: gt %r report %r' % (i, ge['comm_bytes'], se['comm_bytes']))
        rp = {p['pid']: p for p in se['processes']}
        for p in ge['per_process']:
            pids[p['pid']] = p['rank']
            q = rp.get(p['pid'])
            if not p['activated_experts'] and q is None:
                continue
            for k in ('activated_experts', 'routed_expert_weights', 'flops', 'gemm_calls'):
                if q is None or p[k] != q.get(k):
                    bad.append('step %d rank %d %s: gt %r report %r' % (i, p['rank'], k, p[k], q and q.get(k)))
        for lay in g['layers']:
            for x, t in zip(lay.get('experts', []), lay.get('tokens_per_expert', [])):
                heat[(x % n, lay['layer'], x)] = heat.get((x % n, lay['layer'], x), 0) + t
    moe_layers = sorted({l['layer'] for l in gt[0]['layers'] if not l.get('dense')}) if gt else []
    for p in rep.get('expert_parallel', {}).get('processes', []):
        r = pids.get(p['pid'])
        if r is None:
            bad.append('report process %d is no worker of the ground truth' % p['pid'])
            continue
        for li, row in enumerate(p['expert_load_tokens']):
            for x, t in enumerate(row):
                want = heat.get((r, moe_layers[li], x), 0) if x % n == r else 0
                if t != want:
                    bad.append('heatmap rank %d layer %d expert %d: gt %d report %d' % (r, moe_layers[li], x, want, t))
    hw = rep.get('hardware', {})
    seen = hw.get('devices_seen', {})
    if (hw.get('devices'), hw.get('devices_from'), seen.get('cpu_hosts'), seen.get('cpu_processes'), seen.get('gpus')) != \
            (1, 'trace', 1, n + 1, 0):
        bad.append('devices: %r from %r, seen %r (want 1 CPU from the trace, %d processes)'
                   % (hw.get('devices'), hw.get('devices_from'), seen, n + 1))
    if 'PA' not in rep.get('system_class', {}).get('classes', []):
        bad.append('class: %r' % rep.get('system_class'))
    check_problems('%s: per-process experts, bytes, FLOPs, calls, bytes exchanged, heatmaps exact; class PA (%d steps, %d workers)'
                   % (name, len(gt), n), bad)


main()
