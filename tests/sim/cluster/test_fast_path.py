"""The one-shot placement fast path (issue 13 §1): the coordinator sends one
BID_COMMIT to the best sampled candidate by its gossiped metadata; that node bids
against its own truth and commits at once, or declines and the bid round runs.
Exactly once as the bid round's COMMIT: an unheard answer is resolved with
COMMIT_STATUS of the coordinator's reservation id, a fenced id is never used.

The faults are injected at the ``IPeerClient`` seam; outcomes are read from every
node's records and reservations."""

from __future__ import annotations

import random

import pytest
from twisted.internet import defer
from twisted.python.failure import Failure

from zund.cluster.peer_client import PeerRefused, PeerTimeout
from zund.cluster.placement import PlacementConfig
from zund.cluster.simnet import SimCluster, SimRecord, run_until_done
from zund.cluster.types import Decline, PlacementRequest
from zund.common import errors
from zund.gossip.memnet import HeapClock

from tests.sim.cluster.test_exactly_once import with_client

SMALL = {"cpus": 4.0, "mem_mb": 4096, "disk_gb": 20}
#: node-0 is clearly the best by metadata (spread: most free)
BIG = {"cpus": 16.0, "mem_mb": 16384, "disk_gb": 20}


def req(i: int, cpu: float = 1.0) -> PlacementRequest:
    return PlacementRequest(request_id=f"r{i}", uuid=f"u{i}", project_id="p1", user_id="u",
                            cpu=cpu, memory_mb=256)


def cluster(n: int = 3, meta_lag_s=0.0, **cfg) -> SimCluster:
    clock = HeapClock()
    clock.advance(1000.0)
    cfg.setdefault("commit_resolve_s", 5.0)
    cfg.setdefault("probe_all_below", 8)  # every node is sampled: node-0 is the pick
    return SimCluster(clock, random.Random(3), n_nodes=n,
                      node_totals=[BIG] + [SMALL] * (n - 1),
                      config=PlacementConfig(**cfg), latency=(0.0005, 0.002),
                      meta_lag_s=meta_lag_s)


def holders(c: SimCluster, uuid: str) -> list[str]:
    return [n.name for n in c.nodes.values() if any(r.uuid == uuid for r in n.records)]


def place(c: SimCluster, entry: str, r: PlacementRequest):
    (out,) = run_until_done(c.clock, [c.place(entry, r)])
    if isinstance(out, Failure):
        out.raiseException()
    return out


def calls(c: SimCluster, kind: str) -> int:
    return sum(n for (k, _), n in c.client.calls.items() if k == kind)


def no_reservations(c: SimCluster) -> bool:
    return all(not n.bidder.reservations() for n in c.nodes.values())


class FaultyBidCommits:
    """The cluster's peer client with the first BID_COMMIT to ``node`` faulted:
    ``reply`` (done there, answer lost), ``late`` (lost on the way, delivered
    ``late_s`` later), ``refused`` (connection refused) or ``silent`` (answer lost,
    then the node answers nothing, not even COMMIT_STATUS)."""

    def __init__(self, c: SimCluster, node: str, mode: str, late_s: float = 3.0):
        self._inner = c.client
        self._clock = c.clock
        self._cluster = c
        self._node = node
        self.mode = mode
        self.late_s = late_s
        self.late_outcomes: list = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def bid_commit(self, node, request, reservation_id, ctx, placement, create,
                         bar=None, on_load=None):
        args = (node, request, reservation_id, ctx, placement, create, bar, on_load)
        if node.name != self._node:
            return await self._inner.bid_commit(*args)
        self._node = None
        if self.mode in ("reply", "silent"):
            await self._inner.bid_commit(*args)
            if self.mode == "silent":
                self._cluster.nodes[node.name].reachable = False
            raise PeerTimeout(reason=f"peer {node.name} did not answer bid_commit in time")
        if self.mode == "refused":
            raise PeerRefused(reason=f"peer {node.name} refused bid_commit")

        def deliver():
            d = defer.ensureDeferred(self._inner.bid_commit(*args))
            d.addBoth(self.late_outcomes.append)

        self._clock.callLater(self.late_s, deliver)
        raise PeerTimeout(reason=f"peer {node.name} did not answer bid_commit in time")


def test_the_best_node_by_metadata_takes_the_create_in_one_rpc():
    """Accepted: one BID_COMMIT, no bid, no commit, no release; the record is on the
    best node by metadata and the decision says it was the fast path."""
    c = cluster()
    record, decision = place(c, "node-1", req(1))
    assert holders(c, "u1") == ["node-0"] == [record["host"]] == [decision["winner"]]
    assert calls(c, "bid_commit") == 1
    assert calls(c, "bid") == calls(c, "commit") == calls(c, "release") == 0
    assert decision["why"].startswith("fast path: best of 3 by metadata")
    assert decision["rounds"][0]["fast_path"]["outcome"] == "accepted"
    assert no_reservations(c)


def test_a_declining_node_falls_back_to_the_bid_round_and_the_create_lands_elsewhere():
    """The pick's metadata is stale (it drains now): it declines with its reason,
    the bid round asks the others, one of them holds the container, nothing stays
    reserved."""
    c = cluster(meta_lag_s=None)  # the view keeps its first picture
    c.nodes["node-0"].local.set_draining(True)
    record, decision = place(c, "node-1", req(1))
    rnd = decision["rounds"][0]
    assert rnd["fast_path"]["node"] == "node-0"
    assert rnd["fast_path"]["outcome"].startswith("declined: draining")
    assert decision["winner"] != "node-0" and holders(c, "u1") == [decision["winner"]]
    assert len(rnd["bids"]) == 2 and "node-0" not in rnd["bids"]
    assert decision["why"].startswith("fast path to node-0 declined; best spread score")
    c.clock.advance(1.0)
    assert no_reservations(c)


def test_a_lost_answer_is_resolved_as_held_and_never_placed_twice():
    """The node did the work, its answer was lost: COMMIT_STATUS hears "held";
    one copy, no bid round."""
    c = cluster()
    with_client(c, FaultyBidCommits(c, "node-0", "reply"))
    record, decision = place(c, "node-1", req(1))
    c.clock.advance(30)
    assert holders(c, "u1") == ["node-0"] == [record["host"]]
    assert decision["rounds"][0]["commit_resolved"] == {"node-0": "held"}
    assert calls(c, "bid") == 0


def test_a_late_bid_commit_after_the_fence_is_refused_and_the_create_lands_once():
    """Lost on the way there: COMMIT_STATUS answers "not held" (fencing the id), the
    bid round places it elsewhere, and the late BID_COMMIT is refused."""
    c = cluster()
    faulty = FaultyBidCommits(c, "node-0", "late", late_s=3.0)
    with_client(c, faulty)
    _, decision = place(c, "node-1", req(1))
    c.clock.advance(30)
    assert decision["rounds"][0]["commit_resolved"] == {"node-0": "fenced"}
    assert len(faulty.late_outcomes) == 1
    assert faulty.late_outcomes[0].check(errors.ReservationExpired)
    assert holders(c, "u1") == [decision["winner"]] and decision["winner"] != "node-0"
    assert no_reservations(c)


def test_a_refused_connection_falls_back_at_once_without_asking():
    """PeerRefused never delivered the BID_COMMIT: definite, the bid round runs
    without a COMMIT_STATUS."""
    c = cluster()
    with_client(c, FaultyBidCommits(c, "node-0", "refused"))
    _, decision = place(c, "node-1", req(1))
    assert "commit_resolved" not in decision["rounds"][0]
    assert calls(c, "commit_status") == 0
    assert holders(c, "u1") == [decision["winner"]] and decision["winner"] != "node-0"


def test_an_unanswerable_bid_commit_fails_the_create_and_places_it_nowhere_else():
    """Answer lost and the node silent after: ServiceUnavailable (not NoValidHost)
    after commit_resolve_s, with the decision; the one copy is where it was made."""
    c = cluster(commit_resolve_s=4.0)
    with_client(c, FaultyBidCommits(c, "node-0", "silent"))
    with pytest.raises(errors.ServiceUnavailable) as exc:
        place(c, "node-1", req(1))
    assert not isinstance(exc.value, errors.NoValidHost)
    assert exc.value.decision["rounds"][0]["fast_path"]["node"] == "node-0"
    c.clock.advance(30)
    assert holders(c, "u1") == ["node-0"]


def test_a_repeated_bid_commit_returns_the_record_and_after_a_delete_is_refused():
    """A reservation id is single-use: a duplicate answers the record the first
    made; once that container is gone, a duplicate is refused (never re-created)."""
    c = cluster(n=1)
    node = c.nodes["node-0"]
    do_create = c.do_create_for(node, {}, None, False)

    async def held():
        rec = next((r for r in node.records if r.uuid == "u1"), None)
        return None if rec is None else rec.to_wire()

    def bid_commit():
        return defer.ensureDeferred(node.bidder.bid_commit(req(1), "rid-1", do_create, held))

    first, second = run_until_done(c.clock, [bid_commit(), bid_commit()])
    assert first == second and [r.uuid for r in node.records] == ["u1"]
    assert c.delete("node-0", "u1")
    (third,) = run_until_done(c.clock, [bid_commit()])
    assert isinstance(third, Failure) and third.check(errors.ReservationExpired)
    assert node.records == [] and node.bidder.reservations() == []


def test_a_bid_commit_that_would_not_bid_declines_and_reserves_nothing():
    """Too big for the node's truth: the Decline names the resource; nothing held."""
    c = cluster(n=1)
    node = c.nodes["node-0"]
    (answer,) = run_until_done(c.clock, [defer.ensureDeferred(node.bidder.bid_commit(
        req(1, cpu=64.0), "rid-1", c.do_create_for(node, {}, None, False)))])
    assert isinstance(answer, Decline) and answer.reason.startswith("cpu")
    assert node.records == [] and node.bidder.reservations() == []


def test_the_fast_path_off_runs_the_bid_round():
    """``fast_path = false``: bids and a commit, no BID_COMMIT."""
    c = cluster(fast_path=False)
    _, decision = place(c, "node-1", req(1))
    assert calls(c, "bid_commit") == 0 and calls(c, "bid") == 3 and calls(c, "commit") == 1
    assert "fast_path" not in decision["rounds"][0]


def test_a_pick_whose_truth_fell_below_the_next_candidate_declines_as_outbid():
    """Stale metadata shows node-0 empty, it is nearly full in truth: it declines
    ``outbid`` (below the bar) rather than take it, and the bid round places the
    create on a node that is really emptier."""
    c = cluster(meta_lag_s=None)
    c.nodes["node-0"].add(SimRecord(uuid="old", project_id="p0", cpu=14.0, memory=14000,
                                    disk=0, host="node-0"))
    _, decision = place(c, "node-1", req(1))
    fast = decision["rounds"][0]["fast_path"]
    assert fast["node"] == "node-0" and fast["outcome"].startswith("declined: outbid")
    assert decision["winner"] != "node-0" and holders(c, "u1") == [decision["winner"]]
    c.clock.advance(1.0)
    assert no_reservations(c)


def test_a_node_without_bid_commit_is_still_asked_for_a_bid():
    """A node that predates BID_COMMIT (its decline: UnsupportedPeerOperation) is
    the only candidate: the bid round asks it anyway and the create lands there."""
    c = cluster(n=1)

    class OldPeer:
        def __getattr__(self, name):
            return getattr(c.client, name)

        async def bid_commit(self, node, *args, **kwargs):
            return Decline(node.name, "error: UnsupportedPeerOperation: BID_COMMIT")

    with_client(c, OldPeer())
    _, decision = place(c, "node-0", req(1))
    assert decision["winner"] == "node-0" and holders(c, "u1") == ["node-0"]
    assert decision["rounds"][0]["fast_path"]["outcome"].startswith("declined: error")


@pytest.mark.parametrize("fast_path_fresh_s", [1.0, 0.0])
def test_an_entry_node_ranks_by_the_load_its_bid_commits_reported(fast_path_fresh_s):
    """Metadata never republished, 8 creates in a row from one entry node, each 6 %
    of a node: with the load each BID_COMMIT answer carries, the entry node sees its
    own placements at once, so every pick is accepted and the two nodes end even;
    ranking by the stale metadata alone, picks are outbid."""
    clock = HeapClock()
    clock.advance(1000.0)
    c = SimCluster(clock, random.Random(5), n_nodes=2, node_totals=[SMALL, SMALL],
                   config=PlacementConfig(fast_path_fresh_s=fast_path_fresh_s, probe_all_below=8),
                   latency=(0.0005, 0.002), meta_lag_s=None)
    decisions = [place(c, "node-0", PlacementRequest(
        request_id=f"r{i}", uuid=f"u{i}", project_id="p1", user_id="u", cpu=0.25,
        memory_mb=256))[1] for i in range(8)]
    outcomes = [d["rounds"][0]["fast_path"]["outcome"] for d in decisions]
    counts = sorted(len(n.records) for n in c.nodes.values())
    if fast_path_fresh_s:
        assert outcomes == ["accepted"] * 8 and counts == [4, 4]
    else:
        assert any(o.startswith("declined: outbid") for o in outcomes)
    assert sum(counts) == 8
    clock.advance(20.0)
    assert no_reservations(c)
