#!/usr/bin/env python3
"""CPU vs CUDA moe-ref on the same model and prompts (f32, loop style): with the same
routing the two ground truths must agree on every accounting field (bytes, FLOPs, GEMM
calls, kinds, tokens, context, experts), and mostly on the sampled tokens (f32 sums in a
different order can flip a near-tie). Prints ok / not ok lines and the share of equal tokens.

usage: compare_engines.py CPU_GT.jsonl CUDA_GT.jsonl NAME"""
import json, sys


def main():
    cpu = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    gpu = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
    name = sys.argv[3]
    bad, same, total = [], 0, 0
    if len(cpu) != len(gpu):
        bad.append('steps: cpu %d cuda %d' % (len(cpu), len(gpu)))
    for c, g in zip(cpu, gpu):
        for k in ('kind', 'tokens', 'sequences', 'context', 'gemm_calls', 'layers'):
            if c[k] != g[k]:
                bad.append('step %d %s differs' % (c['step'], k))
        for grp in ('bytes', 'flops'):
            for k, v in c[grp].items():
                if g[grp].get(k) != v:
                    bad.append('step %d %s.%s: cpu %s cuda %s' % (c['step'], grp, k, v, g[grp].get(k)))
        same += sum(1 for a, b in zip(c['sampled'], g['sampled']) if a == b)
        total += len(c['sampled'])
    for b in bad[:20]:
        print('# ' + b)
    print('%s - %s: CUDA ground truth = CPU ground truth (accounting, routing)' % ('not ok' if bad else 'ok', name))
    print('# %s: %d of %d sampled tokens equal' % (name, same, total))
    return 1 if bad else 0


sys.exit(main())
