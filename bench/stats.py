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
