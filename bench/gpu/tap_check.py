#!/usr/bin/env python3
"""Kernel-parameter tap check: the MC_REC_TOPK_TAP records (type 40, see docs/gpu.md) of a
moe-ref --moe fused run must give, per step and MoE layer, exactly the ground truth's
activated experts and tokens per expert.

usage: tap_check.py RUN_DIR GROUND_TRUTH.jsonl NAME   (prints ok / not ok lines)
Reads the .mct files directly (stdlib only) so it does not depend on `moecap dump`
knowing the record type."""
import glob, json, os, struct, sys

MC_REC_STRING, MC_REC_TOPK_TAP = 2, 40


def records(path):
    data = open(path, 'rb').read()
    if data[:7] != b'MOECAPT':
        return
    hsize = struct.unpack_from('<I', data, 12)[0]
    hflags = struct.unpack_from('<Q', data, 16)[0]
    seg = 1 << ((hflags >> 8) & 0xff) if hflags & 1 else 0  # segmented (the shim's): a size-0 header is unwritten space up to the next segment boundary
    off = hsize
    while off + 8 <= len(data):
        typ, _flags, size = struct.unpack_from('<HHI', data, off)
        if size == 0 and seg:
            off = (off // seg + 1) * seg
            continue
        if size < 8 or off + size > len(data):
            break
        yield typ, data[off + 8:off + size]
        off += size


def main():
    run, gt_path, name = sys.argv[1:4]
    strings, taps = {}, []
    for f in sorted(glob.glob(os.path.join(run, '*.mct'))):
        for typ, p in records(f):
            if typ == MC_REC_STRING:
                sid, n = struct.unpack_from('<II', p, 0)
                strings[sid] = p[8:8 + n].decode('utf-8', 'replace')
            elif typ == MC_REC_TOPK_TAP:
                t_ns, corr, rows, k, experts, invalid = struct.unpack_from('<QQqqqq', p, 0)
                kname, tname, dev, _pad = struct.unpack_from('<IIiI', p, 48)
                counts = struct.unpack_from('<%dI' % experts, p, 64)
                taps.append((t_ns, rows, k, tname, counts, invalid))
    taps.sort()
    gt = [json.loads(l) for l in open(gt_path) if l.strip()]
    want = []
    for s in gt:
        for l in s['layers']:
            if not l.get('dense'):
                want.append((s['step'], l['layer'], s['tokens'], l['experts'], l['tokens_per_expert']))
    bad = []
    if len(taps) != len(want):
        bad.append('tap records: %d, MoE layer-steps in ground truth: %d' % (len(taps), len(want)))
    for (t_ns, rows, k, tname, counts, invalid), (step, layer, tokens, ex, tpe) in zip(taps, want):
        got_ex = [e for e, c in enumerate(counts) if c]
        got_tpe = [c for c in counts if c]
        if rows != tokens or got_ex != ex or got_tpe != tpe or invalid:
            bad.append('step %d layer %d: tap rows %d experts %s counts %s invalid %d; truth tokens %d experts %s counts %s'
                       % (step, layer, rows, got_ex, got_tpe, invalid, tokens, ex, tpe))
    for b in bad[:20]:
        print('# ' + b)
    print('%s - %s: kernel-parameter tap = ground truth (%d layer-steps)' % ('not ok' if bad else 'ok', name, len(want)))
    return 1 if bad else 0


sys.exit(main())
