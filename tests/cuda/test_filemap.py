#!/usr/bin/python3
"""Host->device copies of weight-file bytes become device FILE_MAP records (how = 3) through
the real libmoecap.so: build/tests/cuda/filemap_prog maps / reads a safetensors file written
by `moe-ref gen` and copies parts of it to libfakecuda.so's device. Expected file offsets
are computed here from the file's own header (offset = src - region start + region's file
offset); every record is also checked against the file's bytes: the bytes the program
copied from the named host stretch must equal the file at the named offset.

Cases: whole / partial / tensor-straddling copies from a mapping (and one at a file
offset), a MAP_FIXED page inside a mapping (copy across the seam = two records), pread and
read buffers and a copy across two preads into one buffer, no record after munmap, from a
stack buffer or from a buffer the program overwrote, a fork child whose trace starts with
the parent's weight-file maps (and no duplicates in the parent's), and threads mapping /
unmapping / reading while another copies (no crash; ASan clean under make check-san), and,
where the emulated CUDA runtime (tests/cuda/emu) is built, the CUDA reference engine's own
weight upload (f32: one device map per tensor, exactly its bytes; bf16: none)."""
import bisect
import glob
import json
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from preload import preload_env  # noqa: E402
from tap import FAILS, check, skip  # noqa: E402

ROOT = os.environ.get("MOECAP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
SHIM = os.path.join(BUILD, "lib", "libmoecap.so")
MOECAP = os.path.join(BUILD, "bin", "moecap")
MOEREF = os.path.join(BUILD, "bin", "moe-ref")
PROG = os.path.join(BUILD, "tests", "cuda", "filemap_prog")
SAN = os.environ.get("SAN", "0") == "1"
FAKE_DEVICE = 3           # tests/cuda/fake_cuda.h
PAGE = os.sysconf("SC_PAGE_SIZE")
DEF_TYPES = {"string", "callsite", "mapping", "tensor", "note", "clock"}


def run(out, args, **extra):
    env = preload_env(SHIM)
    env.update({"MOECAP_OUT": out, "MOECAP_CUPTI": "0", "MOECAP_NVML": "0"})
    env.update({k: str(v) for k, v in extra.items()})
    p = subprocess.run([PROG] + [str(a) for a in args], env=env, capture_output=True, text=True, timeout=120)
    traces = {}
    for f in sorted(glob.glob(os.path.join(out, "*.mct"))):
        d = subprocess.run([MOECAP, "dump", f], capture_output=True, text=True)
        traces[f] = [json.loads(l) for l in d.stdout.splitlines() if l.strip()]
    copies = []
    for line in p.stdout.splitlines():
        w = line.split()
        if w[0] == "copy":
            copies.append({"dst": int(w[1], 16), "src": int(w[2], 16), "n": int(w[3]),
                           "data": None if w[4] == "-" else bytes.fromhex(w[4])})
    return p, traces, copies


def dev_maps(recs):
    return [r for r in recs if r["type"] == "file_map" and r["device"] >= 0]


def host_maps(recs):
    return [r for r in recs if r["type"] == "file_map" and r["device"] < 0]


def judge(copies, recs, path, data):
    """(copy index, offset in the copy, length, file offset) of every device map, and the
    problems found checking each against the file's bytes."""
    got, bad = [], []
    order = sorted(range(len(copies)), key=lambda i: copies[i]["dst"])   # device ranges are disjoint
    starts = [copies[i]["dst"] for i in order]
    for r in dev_maps(recs):
        addr = int(r["addr"], 16)
        j = bisect.bisect_right(starts, addr) - 1
        if j < 0 or addr >= copies[order[j]]["dst"] + copies[order[j]]["n"]:
            bad.append("record outside every copy: %s" % r)
            continue
        i = order[j]
        c = copies[i]
        k, n, off = addr - c["dst"], r["length"], r["file_offset"]
        if k + n > c["n"]:
            bad.append("record longer than its copy: %s" % r)
        if c["data"] is None:
            bad.append("copy %d from unmapped memory named: %s" % (i, r))
        elif c["data"][k:k + n] != data[off:off + n]:
            bad.append("bytes at copy %d +%d are not file bytes [%d, %d)" % (i, k, off, off + n))
        if r["path_str_text"] != path or r["how"] != 3 or r["device"] != FAKE_DEVICE:
            bad.append("path/how/device wrong: %s" % r)
        got.append((i, k, n, off))
    return sorted(got), bad


def check_copies(name, p, traces, copies, expected, path, data):
    recs = [r for t in traces.values() for r in t]
    got, bad = judge(copies, recs, path, data)
    ok = p.returncode == 0 and not bad and got == sorted(expected)
    check(ok, name, "rc %d %s\nexpected %s\ngot      %s\n%s" % (p.returncode, p.stderr[-600:], sorted(expected), got,
                                                                 "\n".join(bad)))


def gen_model(tmp):
    d = os.path.join(tmp, "model")
    subprocess.run([MOEREF, "gen", "--arch", "mixtral", "--out", d], check=True, capture_output=True)
    path = os.path.realpath(os.path.join(d, "model.safetensors"))
    data = open(path, "rb").read()
    hlen = struct.unpack("<Q", data[:8])[0]
    hdr = json.loads(data[8:8 + hlen])
    tens = {k: (8 + hlen + v["data_offsets"][0], 8 + hlen + v["data_offsets"][1])
            for k, v in hdr.items() if k != "__metadata__"}
    return path, data, tens


def main():
    for need in (SHIM, MOECAP, MOEREF, PROG):
        if not os.path.exists(need):
            check(False, "filemap setup", "missing " + need)
            return 1
    with tempfile.TemporaryDirectory() as tmp:
        path, data, tens = gen_model(tmp)
        # A routed expert's weight at least two pages long, not at the start of the data.
        name = next(k for k in sorted(tens) if ".experts.3." in k and tens[k][1] - tens[k][0] >= 2 * PAGE)
        tb, te = tens[name]
        tl = te - tb
        n = [0]

        def outdir():
            n[0] += 1
            return os.path.join(tmp, "run%d" % n[0])

        # Mapping of the whole file: the whole tensor, its second half (async copy), 32 bytes
        # across its start (one mapping: one record, starting 16 bytes before the tensor).
        p, t, c = run(outdir(), [path, "map", 0, 0, "copy", 0, tb, tl, "copya", 0, tb + tl // 2, tl - tl // 2,
                                 "copy", 0, tb - 16, 32])
        check_copies("mmap: whole tensor, its second half, a copy across its start: exact file offsets (%s)" % name,
                     p, t, c, [(0, 0, tl, tb), (1, 0, tl - tl // 2, tb + tl // 2), (2, 0, 32, tb - 16)], path, data)

        # A mapping at a file offset: offset = src - map start + map offset.
        mo = (tb // PAGE) * PAGE
        p, t, c = run(outdir(), [path, "map", mo, 0, "copy", 0, tb - mo, tl])
        check_copies("mmap at file offset %d: copy of the tensor named at %d" % (mo, tb), p, t, c, [(0, 0, tl, tb)], path, data)

        # MAP_FIXED puts file page 3 over page 1 of the mapping: copies across both seams give
        # two records each.
        p, t, c = run(outdir(), [path, "map", 0, 0, "mapfixed", 0, 1, 3 * PAGE, 1,
                                 "copy", 0, PAGE - 8, 16, "copy", 0, 2 * PAGE - 8, 16])
        check_copies("MAP_FIXED page inside a mapping: copies across the seams name each side",
                     p, t, c, [(0, 0, 8, PAGE - 8), (0, 8, 8, 3 * PAGE), (1, 0, 8, 4 * PAGE - 8), (1, 8, 8, 2 * PAGE)], path, data)

        # pread / read into malloc'ed buffers; two preads into one buffer, copy across the seam.
        y = 40000
        p, t, c = run(outdir(), [path, "pread", tb, tl, "copy", 0, 0, tl, "read", tb + 64, 256, "copy", 1, 32, 64,
                                 "pread", tb, 2 * 4096, "preadat", 2, 4096, y, 4096, "copy", 2, 4080, 32])
        check_copies("pread and read buffers: copies named; a copy across two preads gives two records",
                     p, t, c, [(0, 0, tl, tb), (1, 0, 64, tb + 96), (2, 0, 16, tb + 4080), (2, 16, 16, y)], path, data)

        # Nothing to name: after munmap, from the stack, from a buffer the program overwrote.
        p, t, c = run(outdir(), [path, "map", 0, 0, "copy", 0, tb, 64, "unmap", 0, "copy", 0, tb, 64,
                                 "copystack", 256, "pread", tb, 4096, "scribble", 1, 0, 4096, "copy", 1, 0, 64])
        recs = [r for tr in t.values() for r in tr]
        memcpys = [r for r in recs if r["type"] == "memcpy"]
        check_copies("after munmap, from unrelated memory, from an overwritten read buffer: no record (4 copies, 1 named)",
                     p, t, c, [(0, 0, 64, tb)], path, data)
        check(len(memcpys) == 4, "  ... and all 4 copies themselves recorded", memcpys)

        # fork: the child's trace starts with the parent's weight-file maps.
        p, t, c = run(outdir(), [path, "map", 0, 0, "pread", tb, 4096, "fork", "copy", 0, tb, 64, "copy", 1, 8, 64])
        files = list(t.values())
        parent = [r for r in files if r and not any(m["type"] == "memcpy" for m in r)]
        child = [r for r in files if r and any(m["type"] == "memcpy" for m in r)]
        ok = p.returncode == 0 and len(files) == 2 and len(parent) == 1 and len(child) == 1
        check(ok, "fork: two traces, the copies in the child's",
              "rc %d %s %d files" % (p.returncode, p.stderr[-300:], len(files)))
        if ok:
            par, chi = parent[0], child[0]
            ph = [(r["addr"], r["file_offset"], r["length"], r["how"]) for r in host_maps(par)]
            ch = [(r["addr"], r["file_offset"], r["length"], r["how"]) for r in host_maps(chi)]
            want = [(0, len(data), 0), (tb, 4096, 2)]
            check(sorted((o, l, h) for _, o, l, h in ph) == sorted(want),
                  "fork: parent's trace has each weight-file map once", ph)
            first_ring = next(i for i, r in enumerate(chi) if i > 0 and r["type"] not in DEF_TYPES and
                              not (r["type"] == "file_map" and r["device"] < 0))
            early = [i for i, r in enumerate(chi) if r["type"] == "file_map" and r["device"] < 0]
            check(sorted(ch) == sorted(ph) and early and max(early) < first_ring,
                  "fork: child's trace starts with the parent's weight-file maps (before its own records)",
                  "parent %s\nchild %s\nfirst own record #%d, maps at %s" % (ph, ch, first_ring, early))
            check_copies("fork: child's copies from the inherited mapping and buffer are named",
                         p, {"c": chi}, c, [(0, 0, 64, tb), (1, 0, 64, tb + 8)], path, data)

        # Threads mapping, unmapping and reading the file while this one copies from a mapping.
        p, t, c = run(outdir(), [path, "map", 0, 0, "churn", 3000])
        expected = [(i, 0, 64, (i % 7) * 1000) for i in range(len(c))]
        asan = "AddressSanitizer" in p.stderr or "runtime error" in p.stderr
        check_copies("threads map/unmap/read while another copies: every copy named exactly (%d copies)" % len(c),
                     p, t, c, expected, path, data)
        check(p.returncode == 0 and not asan and len(c) == 3000, "  ... no crash%s" % (", no sanitizer report" if SAN else ""),
              p.stderr[-1500:])
        case_cuda_engine(tmp, os.path.dirname(path))
    return 1 if FAILS else 0


def case_cuda_engine(tmp, mdir):
    """The CUDA reference engine's own weight upload, on the CPU emulation of the CUDA
    runtime (tests/cuda/emu) when it is built: f32 weights are copied straight from the
    mapped file, so every tensor must get one device map covering exactly its bytes; bf16
    weights are converted on the host first, so none may be named."""
    emu = os.path.join(BUILD, "tests", "cuda", "emu", "libmoeref-cuda-emu.so")
    if not os.path.exists(emu):
        skip("CUDA engine weight upload named per tensor", "emulated CUDA runtime not built")
        return
    for dtype in ("f32", "bf16"):
        out = os.path.join(tmp, "engine-" + dtype)
        env = preload_env(SHIM)
        env.update({"MOECAP_OUT": out, "MOECAP_CUPTI": "0", "MOECAP_NVML": "0",
                    "MOE_REF_CUDA_LIB": emu})
        p = subprocess.run([MOEREF, "run", "--device", "cuda", "--moe", "loop", "--dtype", dtype, "--model", mdir,
                            "--batch", "1", "--prompt-len", "4", "--gen", "2"], env=env, capture_output=True,
                           text=True, timeout=300)
        recs = []
        for f in sorted(glob.glob(os.path.join(out, "*.mct"))):
            d = subprocess.run([MOECAP, "dump", f], capture_output=True, text=True)
            recs += [json.loads(l) for l in d.stdout.splitlines() if l.strip()]
        tens = sorted((r["file_begin"], r["file_end"]) for r in recs if r["type"] == "tensor")
        dm = sorted((r["file_offset"], r["file_offset"] + r["length"]) for r in dev_maps(recs))
        want = tens if dtype == "f32" else []
        what = ("one device map per tensor, exactly its bytes (%d)" % len(tens) if dtype == "f32"
                else "host-converted weights not named")
        check(p.returncode == 0 and len(tens) > 0 and dm == want, "CUDA engine (%s, emulated runtime): %s" % (dtype, what),
              "rc %d %s\ntensors %s\ndevice maps %s" % (p.returncode, p.stderr[-400:], tens[:5], dm[:5]))


if __name__ == "__main__":
    sys.exit(main())
