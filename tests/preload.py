"""How the Python tests preload libmoecap.so. In sanitizer builds (`make check-san`, SAN=1)
the shim carries ASan/UBSan, whose runtime must come first in the initial library list;
preload_env also turns leak checking off there (the traced programs' leaks are not the
shim's). Tests import it after `sys.path.insert(0, <tests folder>)`."""
import functools
import os
import subprocess


@functools.lru_cache(maxsize=None)
def _asan_runtime():
    return subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()


def preload_line(shim):
    """The LD_PRELOAD value that loads `shim` (ASan's runtime first under SAN=1)."""
    return _asan_runtime() + ":" + shim if os.environ.get("SAN") == "1" else shim


def preload_env(shim, env=None):
    """A copy of `env` (default: os.environ) with LD_PRELOAD loading `shim`, and under SAN=1
    ASAN_OPTIONS starting with detect_leaks=0."""
    e = dict(os.environ if env is None else env)
    e["LD_PRELOAD"] = preload_line(shim)
    if os.environ.get("SAN") == "1":
        e["ASAN_OPTIONS"] = "detect_leaks=0:" + e.get("ASAN_OPTIONS", "")
    return e
