#!/usr/bin/python3
"""Adds kernel-parameter tap records to a trace of `moe-ref run --device cuda --moe fused`
made where CUPTI cannot run (the CUDA emulation), as the collector would write them on a GPU:
for the i-th launch of `mr_fused_topk` (interposition MC_REC_API records, in file order =
step-major, MoE-layer order) one MC_REC_TOPK_TAP with that layer's tokens per expert from the
engine's ground truth, and (unless --no-api) one CUPTI driver-API record (api 97) with the
launch's thread, host time and a fresh correlation id. All are appended at the end of the file
(CUPTI buffers and host functions write late). Used to test the report's join
(docs/attribution.md section 4c) on a real engine trace.

usage: inject_topk.py FILE.mct GT.jsonl [--no-api]     Prints the number of taps added."""
import json, struct, sys

STRING, API, TOPK_TAP = 2, 15, 40


def rec(rtype, payload):
    size = 8 + len(payload)
    pad = (-size) % 8
    return struct.pack('<HHI', rtype, 0, size + pad) + payload + b'\0' * pad


def main():
    path, gt_path = sys.argv[1], sys.argv[2]
    with_api = '--no-api' not in sys.argv
    data = open(path, 'rb').read()
    magic, _, _, hsize = struct.unpack_from('<8sHHI', data, 0)
    hflags = struct.unpack_from('<Q', data, 16)[0]
    seg = 1 << ((hflags >> 8) & 0xff) if hflags & 1 else 0  # segmented (the shim's): a size-0 header is unwritten space up to the next segment boundary
    assert magic == b'MOECAPT\0', 'not a moecap trace'
    strings, launches, off = {}, [], hsize
    while off + 8 <= len(data):
        rtype, _, size = struct.unpack_from('<HHI', data, off)
        if size == 0 and seg:
            off = (off // seg + 1) * seg
            continue
        assert size >= 8 and off + size <= len(data), 'bad record at %d' % off
        if rtype == STRING:
            sid, ln = struct.unpack_from('<II', data, off + 8)
            strings[sid] = data[off + 16:off + 16 + ln].decode('utf-8', 'replace')
        elif rtype == API:
            t0, t1, a0, a1, corr, tid, dev, name, api, res = struct.unpack_from('<QQQQQiiIHH', data, off + 8)
            launches.append((t0, t1, tid, name, api))
        off += size
    tops = [l for l in launches if strings.get(l[3]) == 'mr_fused_topk' and l[4] < 96]
    counts = []   # per (step, MoE layer): tokens per expert, indexed by expert id
    for line in open(gt_path):
        if not line.strip():
            continue
        s = json.loads(line)
        for ly in s['layers']:
            if ly.get('dense'):
                continue
            c = {}
            for e, n in zip(ly['experts'], ly['tokens_per_expert']):
                c[e] = n
            counts.append((s['tokens'], c))
    assert len(tops) == len(counts), '%d mr_fused_topk launches, %d MoE layer steps' % (len(tops), len(counts))
    nid = max(strings) + 1 if strings else 1
    extra = [rec(STRING, struct.pack('<II', nid, len('moe-ref.fused_topk')) + b'moe-ref.fused_topk\0')]
    taps = []
    experts = 1 + max(max(c) for _, c in counts if c)
    for i, ((t0, t1, tid, name, _), (tokens, c)) in enumerate(zip(tops, counts)):
        corr = 1000000 + i
        if with_api:
            extra.append(rec(API, struct.pack('<QQQQQiiIHH', t0, t1, 0, 0, corr, tid, -1, name, 97, 0)))
        cnt = [c.get(e, 0) for e in range(experts)]
        k = sum(cnt) // tokens
        taps.append(rec(TOPK_TAP, struct.pack('<QQqqqqIIiI', t1 + 1, corr, tokens, k, experts, 0, name, nid, 0, 0)
                        + struct.pack('<%dI' % experts, *cnt)))
    open(path, 'wb').write(data + b''.join(extra) + b''.join(reversed(taps)))
    print(len(taps))


if __name__ == '__main__':
    main()
