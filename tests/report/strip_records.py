#!/usr/bin/python3
"""Removes records from a .mct trace (in place) to test a fallback path on a real trace:
`device-maps` drops MC_REC_FILE_MAP records with device >= 0 (the shim's device file maps,
how = 3), so the report must name device weights by joining host->device copies with the
host file maps itself (docs/attribution.md section 3b); `router-taps` drops MC_REC_ROUTER_TAP
records, so fused layers get their experts from kernel-parameter taps alone (section 4c).

usage: strip_records.py FILE.mct device-maps|router-taps    Prints how many records were removed."""
import struct, sys

FILE_MAP, ROUTER_TAP = 8, 16


def main():
    path, what = sys.argv[1], sys.argv[2]
    assert what in ('device-maps', 'router-taps'), 'unknown selection ' + what
    data = open(path, 'rb').read()
    magic, vmaj, vmin, hsize = struct.unpack_from('<8sHHI', data, 0)
    hflags = struct.unpack_from('<Q', data, 16)[0]
    seg = 1 << ((hflags >> 8) & 0xff) if hflags & 1 else 0  # segmented (the shim's): a size-0 header is unwritten space up to the next segment boundary
    assert magic == b'MOECAPT\0', 'not a moecap trace'
    keep, removed, off = [], 0, hsize
    while off + 8 <= len(data):
        rtype, flags, size = struct.unpack_from('<HHI', data, off)
        if size == 0 and seg:
            off = (off // seg + 1) * seg
            continue
        assert size >= 8 and size % 8 == 0 and off + size <= len(data), 'bad record at %d' % off
        rec = data[off:off + size]
        # mc_rec_file_map: header(8) t_ns addr file_offset length (4 x u64) path_str(u32) device(i32)
        if what == 'router-taps' and rtype == ROUTER_TAP:
            removed += 1
        elif what == 'device-maps' and rtype == FILE_MAP and size >= 48 and struct.unpack_from('<i', rec, 44)[0] >= 0:
            removed += 1
        else:
            keep.append(rec)
        off += size
    open(path, 'wb').write(data[:hsize] + b''.join(keep))
    print(removed)


if __name__ == '__main__':
    main()
