"""Simulated tier: the immediate push of news (zund addition to memberlist).

A metadata change goes out at once to ``gossip_nodes`` random peers, who pass
it on after ``eager_gossip_delay_s``; at most one such out-of-tick round per
``push_min_interval_s`` per node, changes inside the window coalesce.  The
periodic gossip tick is set to 30 s here so that only the push can explain
what the peers see.
"""

from zund.gossip import config
from zund.gossip.sim import SimCluster

SLOW_TICK = config.lan(gossip_interval_s=30.0)


def cluster(n=5, seed=11):
    c = SimCluster(seed=seed, config=SLOW_TICK)
    for i in range(n):
        c.add_node(i, seeds=[])
    c.bootstrap_full()
    c.run(2.0)
    return c


def meta_seen(c, about, value):
    """How many nodes other than ``about`` show ``value`` as its metadata."""
    return sum(1 for name, node in c.nodes.items()
               if name != about and node._membership.member(about).meta == value)


def test_metadata_change_reaches_every_peer_well_before_the_gossip_tick():
    """One change is on all 4 peers within 30 simulated ms though gossip ticks every 30 s."""
    c = cluster()
    c.nodes["n1"].set_metadata(b"cap=7")
    took = c.run_until(lambda: meta_seen(c, "n1", b"cap=7") == 4, 0.03, step_s=0.001)
    assert took is not None and took <= 0.03


def test_metadata_change_reaches_all_of_200_nodes_quickly():
    """At 200 nodes the push plus eager relays inform everyone within 0.5 s, not ticks of 30 s."""
    c = cluster(200, seed=12)
    c.nodes["n5"].set_metadata(b"drain")
    took = c.run_until(lambda: meta_seen(c, "n5", b"drain") == 199, 0.5, step_s=0.01)
    assert took is not None


def test_burst_of_changes_coalesces_into_at_most_two_pushes():
    """Ten changes within 9 ms: peers end with the last one; the origin sends <= 2 rounds of 3 packets."""
    c = cluster()
    origin = c.nodes["n1"]
    c.run(0.5)  # away from the probe that start-up scheduled
    before = origin.stats["packets_sent"]
    for v in range(10):
        origin.set_metadata(b"v%d" % v)
        c.run(0.001)
    c.run(0.05)
    assert meta_seen(c, "n1", b"v9") == 4
    sent = origin.stats["packets_sent"] - before
    assert sent <= 2 * SLOW_TICK.gossip_nodes + 2  # + at most one probe ping and one ack


def test_sustained_changes_are_rate_limited_and_the_last_one_arrives():
    """A change every ms for 1 s: <= 1 push per 20 ms (not 1,000), and the final value is everywhere."""
    c = cluster()
    origin = c.nodes["n1"]
    before = origin.stats["packets_sent"]
    for v in range(1000):
        origin.set_metadata(b"v%d" % v)
        c.run(0.001)
    pushes_allowed = 1.0 / SLOW_TICK.push_min_interval_s + 1
    # every push reaches gossip_nodes peers; probes and acks add ~2 packets per second
    assert origin.stats["packets_sent"] - before <= pushes_allowed * SLOW_TICK.gossip_nodes + 6
    took = c.run_until(lambda: meta_seen(c, "n1", b"v999") == 4, 0.05, step_s=0.001)
    assert took is not None
