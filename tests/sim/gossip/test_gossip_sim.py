"""Simulated tier: whole ``GossipService`` nodes on memnet with one task.Clock.

Every run is seeded (SimCluster(seed=...)); a failure replays exactly.
``HeapClock`` is a ``task.Clock`` subclass with a heap instead of a sorted list.
"""

import random

from zund.gossip import codec, config
from zund.gossip.codec import Ack
from zund.gossip.keyring import Keyring
from zund.gossip.sim import SimCluster, sim_addr

KEY1, KEY2 = b"A" * 32, b"B" * 32


def names(n):
    return {f"n{i}" for i in range(n)}


def everyone_sees(cluster, about, state):
    seen = cluster.states_seen(about)
    return bool(seen) and all(s == state for s in seen.values())


def false_events(cluster, kinds=("dead",)):
    return [e for e in cluster.events if e[2] in kinds]


def test_hundred_nodes_converge_after_joining_one_seed():
    """100 nodes joining through one seed all see all 100 alive."""
    c = SimCluster(seed=1)
    c.start_many(100)
    took = c.run_until(c.converged, timeout_s=60, step_s=0.5)
    assert took is not None, "did not converge in 60 simulated seconds"
    assert took <= 10
    assert all(n.stats["dropped_decode"] == 0 for n in c.running())


def test_crashed_node_is_declared_dead_on_every_member():
    """A node that stops answering (no leave) ends up dead in every view."""
    c = SimCluster(seed=2)
    c.start_many(30)
    assert c.run_until(c.converged, 30) is not None
    c.nodes["n7"].stop_without_leave()
    took = c.run_until(lambda: everyone_sees(c, "n7", "dead"), 60)
    # a probe round to notice (1 s), the suspicion's probers' own probes (1 s) and
    # the confirmed minimum 1 * log10(30) = 1.5 s; memberlist's rules needed ~7-8 s
    assert took is not None and took < 8
    assert [e for e in false_events(c) if e[3] != "n7"] == []


def test_a_death_leaves_the_survivors_health_alone():
    """Lifeguard §IV-A: the relays of a probe of a dead member nack in time, so the
    failed probes count against the target, not the askers: after a death every
    survivor's local health score is 0 again, and it probes at its normal rate
    when the next member dies (5 members, relays on the LAN timings)."""
    c = SimCluster(seed=4)
    c.start_many(5)
    assert c.run_until(c.converged, 30) is not None
    c.run(10)
    for victim in ("n1", "n3"):
        c.nodes[victim].stop_without_leave()
        assert c.run_until(lambda: everyone_sees(c, victim, "dead"), 30, step_s=0.01) is not None
        watchers = [n for n in c.running() if n.node_name != victim]
        assert [n._membership.awareness.score for n in watchers] == [0] * len(watchers)
    assert [e for e in false_events(c) if e[3] not in ("n1", "n3")] == []


def test_graceful_leave_is_seen_as_left():
    """stopService announces dead-from-self: peers record left, not dead."""
    c = SimCluster(seed=3)
    c.start_many(10)
    assert c.run_until(c.converged, 30) is not None
    c.nodes["n4"].stopService()
    assert c.run_until(lambda: everyone_sees(c, "n4", "left"), 5, step_s=0.05) is not None
    assert false_events(c, ("dead", "suspect")) == []


def test_no_false_positive_in_an_hour_with_loss_and_slow_nodes():
    """Lifeguard: 20 nodes, 5% loss, 10% of nodes processing 0.1-0.9 s late, 1 h: nobody dies.

    20 rather than 100 nodes keep the simulated hour inside the test time budget
    (~15-25 s on 2 cores).  Slowed nodes get every inbound packet up to 0.9 s late (beyond
    probe_timeout, within probe_interval): they are suspected now and then and
    must refute in time, and their own late acks must not make them kill others.
    """
    c = SimCluster(seed=4, loss=0.05)
    c.start_many(20, seed_count=3)
    assert c.run_until(c.converged, 60) is not None
    rng = random.Random(4)
    for i in rng.sample(range(20), 2):
        c.net.set_slow(sim_addr(i), (0.1, 0.9))
    c.run(3600)
    assert false_events(c, ("dead", "leave")) == []
    assert c.converged()
    suspicions = len(false_events(c, ("suspect",)))
    refutations = len(false_events(c, ("alive",)))
    assert refutations > 0 or suspicions == 0  # suspicions happen and get refuted


def test_partition_heals_and_converges():
    """A 50/50 partition: each half declares the other dead, then they merge again."""
    c = SimCluster(seed=5)
    c.start_many(20, seed_count=2)
    assert c.run_until(c.converged, 30) is not None
    half_a = [sim_addr(i) for i in range(10)]
    half_b = [sim_addr(i) for i in range(10, 20)]
    c.net.partition(half_a, half_b)
    assert c.run_until(lambda: all(everyone_sees_in(c, f"n{i}", "dead", range(10)) for i in range(10, 20)),
                       120, step_s=1) is not None
    c.net.heal()
    took = c.run_until(c.converged, 180, step_s=1)
    assert took is not None, "halves did not merge within 180 s of healing"


def everyone_sees_in(c, about, state, observers):
    views = [{m.name: m.state for m in c.nodes[f"n{i}"].members()} for i in observers]
    return all(v.get(about) == state for v in views)


def test_restarted_node_rejoins_with_higher_incarnation():
    """A crashed node restarted under the same name comes back alive, incarnation above its old one."""
    c = SimCluster(seed=6)
    c.start_many(10)
    assert c.run_until(c.converged, 30) is not None
    c.nodes["n3"].set_metadata(b"v1")  # bumps its incarnation to 2
    c.run(2)
    old_incarnation = c.nodes["n0"]._membership.member("n3").incarnation
    c.nodes["n3"].stop_without_leave()
    assert c.run_until(lambda: everyone_sees(c, "n3", "dead"), 60) is not None
    reborn = c.add_node(3, seeds=[sim_addr(0)])
    assert reborn.local_member().incarnation == 1
    assert c.run_until(c.converged, 30) is not None
    assert reborn.local_member().incarnation > old_incarnation
    for node in c.running():
        view = {m.name: m for m in node.members()}
        assert view["n3"].incarnation == reborn.local_member().incarnation


def test_key_rotation_without_partition():
    """Install new key, make it primary, drop the old one, node by node: no suspicion, no drops."""
    c = SimCluster(seed=7, keys=[KEY1])
    c.start_many(10)
    assert c.run_until(c.converged, 30) is not None
    nodes = list(c.nodes.values())
    for step in (lambda k: k.add_key(KEY2), lambda k: k.use_key(KEY2), lambda k: k.remove_key(KEY1)):
        for node in nodes:
            step(node.keyring)
            c.run(1.5)
    c.run(30)
    assert false_events(c, ("suspect", "dead")) == []
    assert sum(n.stats["dropped_decrypt"] for n in nodes) == 0
    assert all(n.keyring.keys == [KEY2] for n in nodes)
    assert c.converged()


def test_wrong_key_node_cannot_join():
    """A node with a different key is never let in; its packets are counted as dropped."""
    c = SimCluster(seed=8, keys=[KEY1])
    c.start_many(5)
    assert c.run_until(c.converged, 30) is not None
    intruder = c.add_node(50, seeds=[sim_addr(0)], keyring=Keyring([KEY2]))
    c.run(10)
    assert c.converged(names(5) | {"n50"}) is False
    assert all("n50" not in {m.name for m in c.nodes[f"n{i}"].members()} for i in range(5))
    assert c.nodes["n0"].stats["dropped_decrypt"] > 0
    assert not intruder.joined.called


def test_two_clusters_on_one_network_never_merge():
    """The cluster name in every packet keeps clusters apart even with one key."""
    c = SimCluster(seed=9, keys=[KEY1])
    c.start_many(4)
    other = config.lan(cluster_name="other")
    c.config = other
    c.add_node(10, seeds=[sim_addr(0)])
    c.run(20)
    assert "n10" not in {m.name for m in c.nodes["n0"].members()}
    assert c.nodes["n0"].stats["dropped_cluster"] > 0


def test_metadata_update_reaches_everyone_quickly():
    """set_metadata on one node is visible on all 50 within a second; listeners get update."""
    c = SimCluster(seed=10)
    c.start_many(50)
    assert c.run_until(c.converged, 30) is not None
    updates = []
    c.nodes["n1"].add_listener(lambda kind, m: updates.append((kind, m.name, m.meta)))
    c.nodes["n9"].set_metadata(b'{"cpus": 8}')

    def everywhere():
        return all({m.name: m.meta for m in n.members()}["n9"] == b'{"cpus": 8}' for n in c.running())
    took = c.run_until(everywhere, 10, step_s=0.01)
    assert took is not None and took < 1.0
    assert ("update", "n9", b'{"cpus": 8}') in updates
    assert {m.name: m.meta_version for m in c.nodes["n1"].members()}["n9"] == 1


def test_hostile_datagrams_are_counted_not_raised():
    """Garbage, foreign-cluster and oversized datagrams are dropped and counted."""
    c = SimCluster(seed=11)
    c.start_many(3)
    c.run(5)
    target = sim_addr(0)
    attacker = c.net.transport(("127.0.0.99", 1))
    attacker.start(lambda d, a: None, lambda d, a: None)
    rng = random.Random(11)
    for _ in range(200):
        attacker.send(rng.randbytes(rng.randrange(0, 1500)), target)
    attacker.send(codec.encode_packet("evil", [Ack(1)], None), target)
    attacker.send(b"\x01\x00" + b"\x92" * 1000, target)
    c.run(1)
    stats = c.nodes["n0"].stats
    assert stats["dropped_decode"] + stats["dropped_version"] + stats["dropped_oversize"] >= 190
    assert stats["dropped_cluster"] == 1
    assert c.converged()


def test_listener_exceptions_are_contained():
    """A failing listener is counted and does not break the node."""
    c = SimCluster(seed=12)
    c.add_node(0)
    c.nodes["n0"].add_listener(lambda kind, m: 1 / 0)
    c.add_node(1, seeds=[sim_addr(0)])
    assert c.run_until(c.converged, 10) is not None
    assert c.nodes["n0"].stats["listener_errors"] >= 1


def test_join_retries_until_a_seed_answers():
    """startService keeps retrying the seeds until one answers."""
    c = SimCluster(seed=13)
    late = c.add_node(1, seeds=[sim_addr(0)])
    c.run(7)
    assert not late.joined.called and late.stats["join_attempts"] >= 3
    c.add_node(0)
    assert c.run_until(lambda: late.joined.called, 5) is not None
    assert c.run_until(c.converged, 10) is not None


def test_set_metadata_too_large_raises_value_error():
    c = SimCluster(seed=14)
    node = c.add_node(0, start=False)
    node.set_metadata(b"x" * 1024)
    try:
        node.set_metadata(b"x" * 1025)
    except ValueError:
        pass
    else:
        raise AssertionError("expected ValueError")


def test_a_dead_process_on_a_live_host_is_found_sooner_when_the_host_says_so():
    """A crashed process whose host is up: the host answers datagrams to its port
    with ICMP port unreachable (memnet ``unreachable``). Same seed, same kill,
    with and without that word: with it, the first probe of the dead member ends
    at its relays' nacks instead of its deadline (the direct ping's timeout and the
    rest of the interval are not waited out), the confirmations come as fast, and
    every survivor sees it dead sooner; nobody else is suspected and no survivor's
    health score moves."""
    took = {}
    for unreachable in (False, True):
        c = SimCluster(seed=5)
        c.start_many(5)
        assert c.run_until(c.converged, 30) is not None
        c.run(5)
        c.net.unreachable = unreachable
        c.nodes["n2"].stop_without_leave()
        t0 = c.clock.seconds()
        assert c.run_until(lambda: everyone_sees(c, "n2", "dead"), 30, step_s=0.01) is not None
        suspected = min(e[0] for e in c.events if e[2] == "suspect" and e[3] == "n2")
        took[unreachable] = (suspected - t0, c.clock.seconds() - t0)
        survivors = [n for n in c.running() if n.node_name != "n2"]
        assert [n._membership.awareness.score for n in survivors] == [0] * 4
        assert [e for e in c.events if e[2] in ("suspect", "dead") and e[3] != "n2"] == []
        ended_early = sum(n.stats["probes_unreachable"] for n in survivors)
        assert (ended_early > 0) is unreachable
    # the first suspicion: at least the direct ping's timeout and the rest of the
    # probe interval (0.5 s + 0.5 s on the LAN timings) less a few latencies earlier
    assert took[True][0] <= took[False][0] - 0.9, took
    assert took[True][1] < took[False][1], took
