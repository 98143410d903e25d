"""Small helpers shared by the benchmarks."""

import os


def pct(values, p: float):
    """The p-th percentile (nearest rank) of ``values``."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(round(p / 100 * (len(s) - 1)))))]


def proc_cpu_ticks(pid: int) -> tuple[str, int, int]:
    """(comm, user, system) of ``/proc/<pid>/stat``, the CPU times in clock ticks
    (``os.sysconf("SC_CLK_TCK")`` per second). OSError when the process is gone."""
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    head, _, rest = raw.rpartition(")")
    fields = rest.split()
    return head[head.find("(") + 1:], int(fields[11]), int(fields[12])


def ratio_ci(a, b, level: float = 0.95, reps: int = 2000, seed: int = 0) -> tuple:
    """Percentile-bootstrap interval of median(a) / median(b): ``(low, high)``.

    Each resample draws ``len(a)`` values from ``a`` and ``len(b)`` from ``b``
    with replacement (seeded: the same samples give the same interval). On a
    host whose speed drifts, a ratio of two medians of ten samples moves by
    ±0.1 from run to run; the interval says how far this run's could be off,
    so a target missed (or met) inside it is not a finding."""
    import random
    import statistics

    a, b = list(a), list(b)
    if not a or not b:
        return (None, None)
    rng = random.Random(seed)
    ratios = []
    for _ in range(reps):
        mb = statistics.median(rng.choices(b, k=len(b)))
        if mb:
            ratios.append(statistics.median(rng.choices(a, k=len(a))) / mb)
    if not ratios:
        return (None, None)
    tail = (1 - level) / 2 * 100
    return (round(pct(ratios, tail), 3), round(pct(ratios, 100 - tail), 3))


def median_ci(values, level: float = 0.95, reps: int = 2000, seed: int = 0) -> tuple:
    """Percentile-bootstrap interval of median(values): ``(low, high)``. For paired
    figures (one ratio per round, both sides measured back to back), where a
    drift of the host between rounds cancels inside each ratio."""
    import random
    import statistics

    values = list(values)
    if not values:
        return (None, None)
    rng = random.Random(seed)
    medians = [statistics.median(rng.choices(values, k=len(values))) for _ in range(reps)]
    tail = (1 - level) / 2 * 100
    return (round(pct(medians, tail), 3), round(pct(medians, 100 - tail), 3))
