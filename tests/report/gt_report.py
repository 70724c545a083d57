"""Shared by compare_offload.py and compare_ep.py: a ground-truth file and a report.json
side by side."""
import json


def load(gt_path, rep_path):
    """(ground-truth steps, report, report steps, problems so far: the step counts)."""
    gt = [json.loads(l) for l in open(gt_path) if l.strip()]
    rep = json.load(open(rep_path))
    steps = rep['steps']
    bad = [] if len(gt) == len(steps) else ['step count: gt %d report %d' % (len(gt), len(steps))]
    return gt, rep, steps, bad

