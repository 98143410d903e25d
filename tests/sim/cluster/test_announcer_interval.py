"""How often a node re-announces its gossip metadata under load (the staleness of
the entry nodes' fast-path view): every ``min_interval_s`` (0.1 s) in a small
cluster, every members / ``CLUSTER_UPDATES_PER_S`` seconds in a big one, and a
change after a quiet spell at once."""

from __future__ import annotations

from twisted.internet import task

from zund.cluster import metadata
from zund.cluster.announcer import CLUSTER_UPDATES_PER_S, MetadataAnnouncer
from zund.cluster.metadata import LocalNode


class Gossip:
    def __init__(self, clock):
        self.clock = clock
        self.published_at: list[float] = []

    def set_metadata(self, blob: bytes) -> None:
        self.published_at.append(self.clock.seconds())


class Manager:
    listeners: list = []


class Announcer(MetadataAnnouncer):
    async def build(self):
        return metadata.NodeMeta()


def publications(members: int, changes_every_s: float, for_s: float) -> list[float]:
    """When a node of a ``members``-node cluster published while its allocations
    changed every ``changes_every_s`` for ``for_s`` seconds (from t = 10)."""
    clock = task.Clock()
    clock.advance(10.0)
    gossip = Gossip(clock)
    a = Announcer(gossip, Manager(), LocalNode(), clock, 0.1, members=lambda: members)
    a.publish_now()
    t = 0.0
    while t < for_s:
        clock.advance(changes_every_s)
        t += changes_every_s
        a.changed()
        clock.advance(0)  # what is due now runs now
    clock.advance(5.0)
    return gossip.published_at


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in zip(times, times[1:])]


def test_a_small_cluster_announces_every_tenth_of_a_second_under_load():
    """5 nodes, a change every 10 ms for 1 s: about ten announcements, 0.1 s apart."""
    times = publications(5, 0.01, 1.0)
    assert min(gaps(times)) >= 0.1 - 1e-9 and 9 <= len(times) - 1 <= 11


def test_a_big_cluster_announces_less_often_so_its_gossip_stays_bounded():
    """1,000 nodes: at most every 1000 / CLUSTER_UPDATES_PER_S (0.5 s) under load."""
    times = publications(1000, 0.01, 2.0)
    assert min(gaps(times)) >= 1000 / CLUSTER_UPDATES_PER_S - 1e-9
    assert len(times) - 1 <= 5


def test_a_change_after_a_quiet_spell_is_announced_at_once():
    """Whatever the cluster size, a change long after the last announcement goes out
    without waiting."""
    times = publications(1000, 3.0, 3.0)
    assert times[1] == 13.0
