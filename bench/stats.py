"""Small helpers shared by the benchmarks."""

import os


def pct(values, p: float):
    """The p-th percentile (nearest rank) of ``values``."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(round(p / 100 * (len(s) - 1)))))]


def proc_cpu_ticks(pid: int | str) -> tuple[str, int, int]:
    """(comm, user, system) of ``/proc/<pid>/stat`` (``pid`` may be ``"<pid>/task/<tid>"``
    for one thread), the CPU times in clock ticks
    (``os.sysconf("SC_CLK_TCK")`` per second). OSError when the process is gone."""
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    head, _, rest = raw.rpartition(")")
    fields = rest.split()
    return head[head.find("(") + 1:], int(fields[11]), int(fields[12])


def machine_jiffies() -> list[int]:
    """The machine's CPU time so far by kind, in jiffies: the first line of
    ``/proc/stat`` (user nice system idle iowait irq softirq steal ...)."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def machine_shares(before: list[int], after: list[int]) -> dict:
    """How the machine's CPU time went between two :func:`machine_jiffies`: ``busy``
    (this machine's work, steal excluded) and ``stolen`` (``steal``: time the
    hypervisor gave this machine's virtual CPUs to other guests while they had
    work), as shares of all of it. A virtual machine whose host is oversubscribed
    shows a high ``stolen`` and slower figures with no busy process of its own:
    the same code measured in a quieter hour is faster."""
    d = [b - a for a, b in zip(before, after)]
    total = sum(d[:8]) or 1  # guest times are already inside user/nice
    idle = d[3] + (d[4] if len(d) > 4 else 0)
    steal = d[7] if len(d) > 7 else 0
    return {"busy": round((total - idle - steal) / total, 3),
            "stolen": round(steal / total, 3)}


def _bootstrap(draw, level: float, reps: int, seed: int) -> tuple:
    """Percentile interval ``(low, high)`` of ``reps`` estimates, each
    ``draw(rng)`` on one seeded ``random.Random`` (None: no estimate)."""
    import random

    rng = random.Random(seed)
    estimates = [e for e in (draw(rng) for _ in range(reps)) if e is not None]
    if not estimates:
        return (None, None)
    tail = (1 - level) / 2 * 100
    return (round(pct(estimates, tail), 3), round(pct(estimates, 100 - tail), 3))


def ratio_ci(a, b, level: float = 0.95, reps: int = 2000, seed: int = 0) -> tuple:
    """Percentile-bootstrap interval of median(a) / median(b): ``(low, high)``.

    Each resample draws ``len(a)`` values from ``a`` and ``len(b)`` from ``b``
    with replacement (seeded: the same samples give the same interval). On a
    host whose speed drifts, a ratio of two medians of ten samples moves by
    ±0.1 from run to run; the interval says how far this run's could be off,
    so a target missed (or met) inside it is not a finding."""
    import statistics

    a, b = list(a), list(b)
    if not a or not b:
        return (None, None)

    def draw(rng):
        mb = statistics.median(rng.choices(b, k=len(b)))
        return statistics.median(rng.choices(a, k=len(a))) / mb if mb else None

    return _bootstrap(draw, level, reps, seed)


def median_ci(values, level: float = 0.95, reps: int = 2000, seed: int = 0) -> tuple:
    """Percentile-bootstrap interval of median(values): ``(low, high)``. For paired
    figures (one ratio per round, both sides measured back to back), where a
    drift of the host between rounds cancels inside each ratio."""
    import statistics

    values = list(values)
    if not values:
        return (None, None)
    return _bootstrap(lambda rng: statistics.median(rng.choices(values, k=len(values))),
                      level, reps, seed)
