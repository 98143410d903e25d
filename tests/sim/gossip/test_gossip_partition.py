"""Simulated tier: a partition's minority is declared dead on the whole majority at
(almost) the same time: no majority member misses the ``suspect``/``dead`` news and
waits out its own unconfirmed suspicion (broadcast counting, zund/gossip/broadcast.py).

Seeded runs (``SimCluster(seed=...)``) that replay exactly; the seeds include ones
where a majority member used to learn a death 6-9 s after the others.
"""

import pytest

from zund.gossip import config
from zund.gossip.sim import SimCluster, sim_addr
from zund.gossip.suspicion import suspicion_timeout


def _dead_at(seed: int, n: int, minority: int, profile: str) -> tuple[dict, float]:
    """{(observer, member): seconds after the partition it saw member dead} for the
    majority observers and minority members, and the confirmation time of n."""
    c = SimCluster(seed=seed, config=getattr(config, profile)())
    c.start_many(n, seed_count=1)
    assert c.run_until(c.converged, 30) is not None
    c.run(5)
    cut = n - minority
    c.net.partition([sim_addr(i) for i in range(cut)], [sim_addr(i) for i in range(cut, n)])
    t0 = c.clock.seconds()
    c.events.clear()
    majority = {f"n{i}" for i in range(cut)}
    members = {f"n{i}" for i in range(cut, n)}
    everyone = {(o, m) for o in majority for m in members}
    dead = {}

    def all_dead():
        for t, observer, kind, about in c.events:
            if kind == "dead" and (observer, about) in everyone:
                dead.setdefault((observer, about), t - t0)
        return len(dead) == len(everyone)

    assert c.run_until(all_dead, 60, step_s=0.25) is not None, "a death was never seen"
    cfg = c.config
    return dead, suspicion_timeout(cfg.suspicion_min_mult, n, cfg.probe_interval_s)


@pytest.mark.parametrize("profile,n,minority,seed", [
    ("lan", 5, 2, 10), ("lan", 5, 2, 11), ("lan", 7, 3, 1), ("lan", 7, 3, 4), ("lan", 7, 3, 9),
    ("lan", 12, 5, 3), ("local", 5, 2, 0), ("local", 5, 2, 1), ("local", 5, 2, 2)])
def test_every_majority_member_learns_a_death_within_the_confirmation_time(profile, n, minority,
                                                                           seed):
    """Once one majority member declares a minority member dead, every other majority
    member does within the confirmation time (a fully confirmed suspicion's timeout)."""
    dead, confirmation_s = _dead_at(seed, n, minority, profile)
    for member in {m for _, m in dead}:
        times = [t for (_, m), t in dead.items() if m == member]
        assert max(times) - min(times) <= confirmation_s, (member, sorted(times))
