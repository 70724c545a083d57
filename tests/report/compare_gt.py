#!/usr/bin/python3
"""Compare moecap's report.json with moe-ref's ground truth (docs/ground-truth.md).

usage: compare_gt.py GT.jsonl REPORT.json NAME [--time-tol 0.02]
Prints one `ok - NAME ...` / `not ok - NAME ...` line per check (exact: kinds, tokens,
sequences, experts, tokens per expert, every bytes and FLOPs field, GEMM calls; times:
per step within --time-tol, else the aggregate within it, with the numbers printed)."""
import json, sys

def main():
    gt_path, rep_path, name = sys.argv[1:4]
    tol = float(sys.argv[sys.argv.index('--time-tol') + 1]) if '--time-tol' in sys.argv else 0.02
    gt = [json.loads(l) for l in open(gt_path) if l.strip()]
    rep = json.load(open(rep_path))
    steps = rep['steps']
    bad = []
    if len(gt) != len(steps):
        bad.append('step count: ground truth %d, report %d' % (len(gt), len(steps)))
    for g, s in zip(gt, steps):
        i = g['step']
        for k in ('kind', 'tokens', 'sequences', 'gemm_calls'):
            if g[k] != s[k]:
                bad.append('step %d %s: gt %r report %r' % (i, k, g[k], s[k]))
        if g['context'] != s.get('context'):
            bad.append('step %d context: gt %r report %r' % (i, g['context'], s.get('context')))
        gl = {l['layer']: l for l in g['layers']}
        sl = {l['layer']: l for l in s['layers']}
        if sorted(gl) != sorted(sl):
            bad.append('step %d layers: gt %r report %r' % (i, sorted(gl), sorted(sl)))
        for L in gl:
            a, b = gl[L], sl.get(L, {})
            if a.get('dense'):
                if not b.get('dense'):
                    bad.append('step %d layer %d should be dense' % (i, L))
                continue
            for k in ('experts', 'tokens_per_expert'):
                if a[k] != b.get(k):
                    bad.append('step %d layer %d %s: gt %r report %r' % (i, L, k, a[k], b.get(k)))
        for grp in ('bytes', 'flops'):
            for k, v in g[grp].items():
                if s[grp].get(k) != v:
                    bad.append('step %d %s.%s: gt %r report %r' % (i, grp, k, v, s[grp].get(k)))
    for b in bad[:30]:
        print('# ' + b)
    print('%s - %s: steps, experts, tokens per expert, bytes, FLOPs exact (%d steps)'
          % ('not ok' if bad else 'ok', name, len(gt)))
    # times
    worst = 0.0
    tg = ts = 0
    for g, s in zip(gt, steps):
        tg += g['wall_ns']; ts += s['wall_ns']
        worst = max(worst, abs(s['wall_ns'] - g['wall_ns']) / g['wall_ns'])
    agg = abs(ts - tg) / tg if tg else 1.0
    print('# %s: wall time per step worst rel. diff %.4f, aggregate %.4f (gt %d ns, report %d ns)'
          % (name, worst, agg, tg, ts))
    if worst <= tol:
        print('ok - %s: every step wall time within %.0f%%' % (name, tol * 100))
    elif agg <= tol:
        print('ok - %s: aggregate wall time within %.0f%% (per-step worst %.1f%%: noisy machine)'
              % (name, tol * 100, worst * 100))
    else:
        print('not ok - %s: wall time off by %.1f%% (aggregate), %.1f%% worst step'
              % (name, agg * 100, worst * 100))

main()
