"""The kernel's own answer to "can this process count hardware events?", asked with
perf_event_open(2) through ctypes, independently of cpuprof's C code: the oracle for
whether cpuprof may load libpapi. Returns (usable, errno); (None, 0) where the syscall
number is not known (not x86-64)."""
import ctypes, os, platform, struct

PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS = 0, 1
NR_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}

def probe():
    nr = NR_PERF_EVENT_OPEN.get(platform.machine())
    if nr is None: return None, 0
    # struct perf_event_attr, PERF_ATTR_SIZE_VER0 = 64 bytes: type, size, config,
    # sample_period, sample_type, read_format, flag bits (disabled=bit 0,
    # exclude_kernel=bit 5, exclude_hv=bit 6), then wakeup_events, bp_type, config1.
    attr = struct.pack("<IIQQQQQIIQ", PERF_TYPE_HARDWARE, 64, PERF_COUNT_HW_INSTRUCTIONS,
                       0, 0, 0, 1 | 1 << 5 | 1 << 6, 0, 0, 0)
    buf = ctypes.create_string_buffer(attr, len(attr))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(nr), buf, ctypes.c_int(0), ctypes.c_int(-1), ctypes.c_int(-1), ctypes.c_ulong(0))
    if fd < 0: return False, ctypes.get_errno()
    os.close(fd)
    return True, 0

if __name__ == "__main__":
    print(probe())
