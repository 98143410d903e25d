"""Small helpers shared by the benchmarks."""


def pct(values, p: float):
    """The p-th percentile (nearest rank) of ``values``."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, int(round(p / 100 * (len(s) - 1)))))]
