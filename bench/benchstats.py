"""Statistics shared by the Python benchmarks of bench/ (paired ratios over rounds), and how
they bind their runs to one CPU."""
import os
import random
import statistics


def median_ci(v, n=2000):
    """95 % bootstrap interval of the median (fixed seed: the same data give the same text)."""
    rnd = random.Random(1)
    meds = sorted(statistics.median(rnd.choices(v, k=len(v))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n) - 1]


def pin_preexec():
    """preexec_fn for subprocess that binds the child to CPU $PIN_CPU, or None when unset
    (bench/shim-e2e.py says why runs are pinned on this project's VM)."""
    pin = os.environ.get("PIN_CPU")
    return (lambda: os.sched_setaffinity(0, {int(pin)})) if pin else None
