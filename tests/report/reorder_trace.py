#!/usr/bin/python3
"""Moves every record of the given types to the end of a .mct trace (in place), keeping
the order of the others: the layout of a server's trace, where the main thread's ring
(weight-file maps) reaches the file after the scheduler thread's GEMMs (records of
different threads are in flush order, not time order; docs/attribution.md section 1).

usage: reorder_trace.py FILE.mct TYPE... (record type numbers, include/moecap/trace_format.h)
Prints how many records moved and how many GEMM records (types 4, 18) they now follow."""
import struct, sys


def main():
    path, types = sys.argv[1], {int(t) for t in sys.argv[2:]}
    data = open(path, 'rb').read()
    magic, vmaj, vmin, hsize = struct.unpack_from('<8sHHI', data, 0)
    hflags = struct.unpack_from('<Q', data, 16)[0]
    seg = 1 << ((hflags >> 8) & 0xff) if hflags & 1 else 0  # segmented (the shim's): a size-0 header is unwritten space up to the next segment boundary
    assert magic == b'MOECAPT\0', 'not a moecap trace'
    keep, moved, off, gemms_before = [], [], hsize, 0
    while off + 8 <= len(data):
        rtype, flags, size = struct.unpack_from('<HHI', data, off)
        if size == 0 and seg:
            off = (off // seg + 1) * seg
            continue
        assert size >= 8 and size % 8 == 0 and off + size <= len(data), 'bad record at %d' % off
        rec = data[off:off + size]
        (moved if rtype in types else keep).append(rec)
        if rtype in (4, 18):   # GEMM, compact CPU GEMM
            gemms_before += 1
        off += size
    assert off >= len(data), 'trailing bytes'
    open(path, 'wb').write(data[:hsize] + b''.join(keep) + b''.join(moved))
    print('%d %d' % (len(moved), gemms_before))


if __name__ == '__main__':
    main()
