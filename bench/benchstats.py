"""Statistics shared by the Python benchmarks of bench/ (paired ratios over rounds)."""
import random
import statistics


def median_ci(v, n=2000):
    """95 % bootstrap interval of the median (fixed seed: the same data give the same text)."""
    rnd = random.Random(1)
    meds = sorted(statistics.median(rnd.choices(v, k=len(v))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n) - 1]
