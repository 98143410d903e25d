"""Simulated tier: coordinators and bidders on the in-memory peer client, one
``HeapClock``; random per-hop delays make calls interleave. Invariants are checked
by ``SimCluster`` on every reservation and every record written."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.python.failure import Failure

from zund.cluster.placement import PlacementConfig
from zund.cluster.simnet import SimCluster, run_until_done
from zund.cluster.types import PlacementRequest
from zund.common import errors
from zund.gossip.memnet import HeapClock

SMALL = {"cpus": 4.0, "mem_mb": 4096, "disk_gb": 20}


def req(i, cpu=1.0, mem=512, project="p1", **kw) -> PlacementRequest:
    return PlacementRequest(request_id=f"r{i}", uuid=f"u{i}", project_id=project, user_id="u",
                            cpu=cpu, memory_mb=mem, **kw)


def cluster(seed=0, n=4, totals=SMALL, latency=(0.0005, 0.003), meta_lag_s=0.0, **cfg):
    # these tests read the bid round's decision; the fast path has test_fast_path.py
    cfg.setdefault("fast_path", False)
    clock = HeapClock()
    clock.advance(1000.0)
    return SimCluster(clock, random.Random(seed), n_nodes=n, totals=totals,
                      config=PlacementConfig(**cfg), latency=latency, meta_lag_s=meta_lag_s)


def place_one(c: SimCluster, entry: str, r: PlacementRequest):
    (out,) = run_until_done(c.clock, [c.place(entry, r)])
    if isinstance(out, Failure):
        out.raiseException()
    return out


def test_places_on_a_node_and_returns_the_decision():
    """The winner holds the record; the decision names candidates, bids, winner and why."""
    c = cluster()
    record, decision = place_one(c, "node-0", req(1))
    assert record["uuid"] == "u1" and record["host"] == decision["winner"]
    assert [r.uuid for r in c.nodes[decision["winner"]].records] == ["u1"]
    rnd = decision["rounds"][0]
    # d = 2 of the 4 candidates are asked (power of two choices)
    assert rnd["candidates"] == 4 and len(rnd["bids"]) == 2 and decision["why"]
    # every other bid was released: no reservation is left anywhere
    c.clock.advance(1.0)
    assert all(not n.bidder.reservations() for n in c.nodes.values())


def test_request_too_big_for_any_node_is_no_valid_host():
    """Nothing fits by metadata: NoValidHost, nobody asked, the decision says why."""
    c = cluster()
    with pytest.raises(errors.NoValidHost) as exc:
        place_one(c, "node-0", req(1, cpu=64.0))
    assert sum(c.client.calls.values()) == 0
    assert "no candidate" in exc.value.decision["why"]


def test_stale_metadata_is_caught_by_the_bidder():
    """The view says there is room (never re-published); the bidders decline: NoValidHost."""
    c = cluster(n=2, meta_lag_s=None)
    for i in range(8):
        place_one(c, "node-0", req(i))
    with pytest.raises(errors.NoValidHost) as exc:
        place_one(c, "node-1", req(99))
    declines = exc.value.decision["rounds"][0]["declines"]
    assert set(declines) == {"node-0", "node-1"}
    assert all(r.startswith("cpu") for r in declines.values())


def test_dead_and_draining_nodes_are_not_asked():
    """Nodes the view shows dead, or whose metadata says draining, get no BID."""
    c = cluster(n=4)
    c.nodes["node-1"].state = "dead"
    c.nodes["node-2"].local.set_draining(True)
    c.publish(c.nodes["node-2"])
    for i in range(6):
        _, decision = place_one(c, "node-0", req(i, cpu=0.5))
        assert decision["winner"] in ("node-0", "node-3")
    asked = {name for (kind, name) in c.client.calls if kind == "bid"}
    assert asked == {"node-0", "node-3"}


def test_a_bidder_that_times_out_is_skipped():
    """A slow bidder counts as a decline ('timeout'); the placement goes elsewhere and its
    orphaned reservation expires after the TTL."""
    c = cluster(n=3, bid_timeout_s=0.1, reservation_ttl_s=2.0)
    slow = c.nodes["node-2"]
    slow.extra_delay = (0.5, 0.6)
    _, decision = place_one(c, "node-0", req(1))
    assert decision["winner"] != "node-2"
    assert decision["rounds"][0]["declines"]["node-2"].startswith("timeout")
    c.clock.advance(1.0)
    assert len(slow.bidder.reservations()) == 1  # the late bid reserved anyway
    c.clock.advance(2.0)
    assert slow.bidder.reservations() == []


def test_failed_commit_falls_back_to_the_next_bid():
    """The best bidder's reservation expires before COMMIT arrives: the next bid wins."""
    c = cluster(n=2, reservation_ttl_s=0.05, latency=(0.0, 0.0))
    # node-0 is emptier (spread prefers it) but every hop to it takes 0.1 s, so by the
    # time the COMMIT arrives its reservation is gone.
    place_one(c, "node-1", req(0, cpu=2.0, requested_host="node-1"))
    c.nodes["node-0"].extra_delay = (0.03, 0.03)
    c.nodes["node-1"].bidder.ttl_s = 10.0  # the fallback's reservation outlives the detour
    _, decision = place_one(c, "node-1", req(1, cpu=1.0))
    rnd = decision["rounds"][0]
    assert "ReservationExpired" in rnd["commit_failures"]["node-0"]
    assert decision["winner"] == "node-1" and "failed commit" in decision["why"]


def test_unreachable_node_is_declined_and_others_win():
    """An alive-looking but unreachable node yields a decline, not a hang."""
    c = cluster(n=3, bid_timeout_s=0.2)
    c.nodes["node-1"].reachable = False
    _, decision = place_one(c, "node-0", req(1))
    assert decision["winner"] != "node-1"
    assert decision["rounds"][0]["declines"]["node-1"].startswith("timeout")


def test_large_cluster_asks_only_a_sample():
    """With more candidates than probe_all_below, d·k = 2 nodes are asked in round 1."""
    c = cluster(n=20, totals={"cpus": 64.0, "mem_mb": 65536, "disk_gb": 20})
    _, decision = place_one(c, "node-0", req(1))
    assert len(decision["rounds"][0]["asked"]) == 2


def run_burst(c: SimCluster, requests, rng: random.Random, window_s: float,
              deletes: int = 0) -> list:
    """Start every request at a random instant in ``window_s`` from a random entry node,
    optionally deleting random containers meanwhile; run to completion."""
    names = list(c.nodes)
    holders = []
    for r in requests:
        h = {}
        c.clock.callLater(rng.uniform(0, window_s),
                          lambda r=r, h=h, e=rng.choice(names): h.update(d=c.place(e, r)))
        holders.append(h)

    def delete_one():
        node = c.nodes[rng.choice(names)]
        if node.records:
            c.delete(node.name, rng.choice(node.records).uuid)
    for _ in range(deletes):
        c.clock.callLater(rng.uniform(0, window_s), delete_one)
    c.clock.advance(window_s + 1e-6)
    return run_until_done(c.clock, [h["d"] for h in holders], step_s=0.01)


def assert_no_oversubscription(c: SimCluster):
    for node in c.nodes.values():
        cpu = sum(r.cpu for r in node.records)
        mem = sum(r.memory for r in node.records)
        assert cpu <= node.totals["cpus"] + 1e-9 and mem <= node.totals["mem_mb"], node.name
    assert c.violations == []


def assert_outcomes_are_placements_or_no_valid_host(results):
    for out in results:
        if isinstance(out, Failure):
            assert out.check(errors.NoValidHost), out.getTraceback()


@pytest.mark.parametrize("policy", ["spread", "binpack"])
def test_500_concurrent_requests_never_oversubscribe(policy):
    """500 requests race for less capacity than they want: every node stays within its
    totals, every request is placed or NoValidHost, and placed ones are on exactly one node."""
    rng = random.Random(42)
    c = cluster(seed=42, n=8, totals={"cpus": 16.0, "mem_mb": 16384, "disk_gb": 100},
                meta_lag_s=0.05, policy=policy, reservation_ttl_s=0.5)
    requests = [req(i, cpu=rng.choice((0.25, 0.5, 1.0, 2.0)), mem=rng.choice((128, 512, 1024)),
                    project=f"p{rng.randrange(6)}") for i in range(500)]
    results = run_burst(c, requests, rng, window_s=0.5)
    assert_outcomes_are_placements_or_no_valid_host(results)
    assert_no_oversubscription(c)
    placed = [out[0]["uuid"] for out in results if not isinstance(out, Failure)]
    on_nodes = [r.uuid for n in c.nodes.values() for r in n.records]
    assert sorted(placed) == sorted(on_nodes)
    # demand (≈ 500 cpu) exceeds supply (128): the cluster ends up nearly full
    assert sum(r.cpu for n in c.nodes.values() for r in n.records) >= 0.9 * 128


def test_500_concurrent_requests_keep_strict_tenant_isolation():
    """strict: under 500 racing requests from 5 projects no node ever holds two projects."""
    rng = random.Random(7)
    c = cluster(seed=7, n=10, totals={"cpus": 16.0, "mem_mb": 16384, "disk_gb": 100},
                meta_lag_s=0.05, tenant_mode="strict", reservation_ttl_s=0.5)
    requests = [req(i, cpu=rng.choice((0.25, 0.5, 1.0)), mem=256,
                    project=f"p{rng.randrange(5)}") for i in range(500)]
    results = run_burst(c, requests, rng, window_s=1.0, deletes=50)
    assert_outcomes_are_placements_or_no_valid_host(results)
    assert_no_oversubscription(c)
    for node in c.nodes.values():
        assert len({r.project_id for r in node.records}) <= 1
    assert sum(1 for out in results if not isinstance(out, Failure)) > 100


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1),
       n_nodes=st.integers(1, 6),
       n_requests=st.integers(1, 40),
       n_projects=st.integers(1, 4),
       mode=st.sampled_from(["off", "prefer", "strict"]),
       policy=st.sampled_from(["spread", "binpack"]),
       max_latency=st.sampled_from([0.0, 0.001, 0.01, 0.05]),
       meta_lag=st.sampled_from([None, 0.0, 0.01, 0.2]),
       ttl=st.sampled_from([0.02, 0.1, 10.0]),
       bid_timeout=st.sampled_from([0.01, 0.05, 2.0]),
       window=st.sampled_from([0.0, 0.01, 0.2]),
       deletes=st.integers(0, 10),
       slow_node=st.booleans())
def test_interleavings_never_break_capacity_or_strict_isolation(
        seed, n_nodes, n_requests, n_projects, mode, policy, max_latency, meta_lag, ttl,
        bid_timeout, window, deletes, slow_node):
    """Hypothesis picks delays, TTLs, timeouts, request mixes and deletes: the invariants
    (checked on every reservation and record) always hold, and every request ends as a
    placement or NoValidHost."""
    rng = random.Random(seed)
    clock = HeapClock()
    clock.advance(1000.0)
    c = SimCluster(clock, random.Random(seed + 1), n_nodes=n_nodes,
                   totals={"cpus": 3.0, "mem_mb": 2048, "disk_gb": 10},
                   config=PlacementConfig(policy=policy, tenant_mode=mode, reservation_ttl_s=ttl,
                                          bid_timeout_s=bid_timeout),
                   latency=(0.0, max_latency), meta_lag_s=meta_lag)
    if slow_node:
        c.nodes["node-0"].extra_delay = (0.0, 0.1)
        c.nodes["node-0"].create_delay = (0.0, 0.05)
    requests = [req(i, cpu=rng.choice((0.5, 1.0, 1.5)), mem=rng.choice((256, 512)),
                    project=f"p{rng.randrange(n_projects)}") for i in range(n_requests)]
    results = run_burst(c, requests, rng, window_s=window, deletes=deletes)
    assert_outcomes_are_placements_or_no_valid_host(results)
    assert_no_oversubscription(c)
    if mode == "strict":
        for node in c.nodes.values():
            assert len({r.project_id for r in node.records}) <= 1
    # every placed uuid lives on exactly one node (deleted ones on none)
    on_nodes = [r.uuid for n in c.nodes.values() for r in n.records]
    assert len(on_nodes) == len(set(on_nodes))
    # with no more activity, every reservation eventually expires or was released
    clock.advance(ttl + 1.0)
    assert all(not n.bidder.reservations() for n in c.nodes.values())


def test_request_error_at_commit_propagates_without_trying_other_nodes():
    """A refusal that is the request's fault (InvalidInput) reaches the caller with the
    decision; no other node gets a COMMIT and every reservation is released."""
    c = cluster(n=3)

    def refusing(node, ctx, create, run):
        async def do_create(reservation):
            raise errors.InvalidInput(field="image", reason="bad reference")
        return do_create
    c.do_create_for = refusing
    with pytest.raises(errors.InvalidInput) as exc:
        place_one(c, "node-0", req(1))
    assert exc.value.decision["why"] == "commit refused: InvalidInput"
    assert sum(n for (kind, _), n in c.client.calls.items() if kind == "commit") == 1
    c.clock.advance(0.1)
    assert all(not n.bidder.reservations() for n in c.nodes.values())
