#!/usr/bin/env python3
"""Compare per-step activated experts and tokens per expert of a moecap report.json with a
truth file (hf_moe_check.py's router-hook truth or moe-ref's ground truth).

usage: compare_layers.py TRUTH.jsonl REPORT.json NAME
Prints one ok / not ok line; the differences (first 20) as '#' lines."""
import json, sys


def main():
    truth_path, rep_path, name = sys.argv[1:4]
    truth = [json.loads(l) for l in open(truth_path) if l.strip()]
    try:
        steps = json.load(open(rep_path))['steps']
    except Exception as e:  # a missing or broken report is a failure, not a crash
        print('# cannot read %s: %s' % (rep_path, e))
        print('not ok - %s: report unreadable' % name)
        return 1
    bad = []
    if len(truth) != len(steps):
        bad.append('steps: truth %d, report %d' % (len(truth), len(steps)))
    for t, s in zip(truth, steps):
        for k in ('tokens', 'sequences'):
            if t.get(k, -1) >= 0 and t[k] != s.get(k):
                bad.append('step %d %s: truth %r report %r' % (t['step'], k, t[k], s.get(k)))
        sl = {l['layer']: l for l in s.get('layers', [])}
        for l in t['layers']:
            if l.get('dense'):
                continue
            r = sl.get(l['layer'], {})
            for k in ('experts', 'tokens_per_expert'):
                if l[k] != r.get(k):
                    bad.append('step %d layer %d %s: truth %r report %r' % (t['step'], l['layer'], k, l[k], r.get(k)))
    for b in bad[:20]:
        print('# ' + b)
    print('%s - %s: experts and tokens per expert (%d steps)' % ('not ok' if bad else 'ok', name, len(truth)))
    return 1 if bad else 0


sys.exit(main())
