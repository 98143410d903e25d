"""Exactly-once placement (issue 11 item 1) on the placement simulation: a commit
whose outcome the coordinator did not hear is resolved with that node before any
fallback, and a late commit can never make a second copy.

The faults are injected at the ``IPeerClient`` seam (a commit answer lost, a commit
delivered late); the outcome is read from every node's records."""

from __future__ import annotations

import random

import pytest
from twisted.internet import defer
from twisted.python.failure import Failure

from zund.cluster.peer_client import PeerRefused, PeerTimeout
from zund.cluster.placement import PlacementConfig
from zund.cluster.simnet import SimCluster, run_until_done
from zund.cluster.types import PlacementRequest
from zund.common import errors
from zund.gossip.memnet import HeapClock


def req(i: int) -> PlacementRequest:
    return PlacementRequest(request_id=f"r{i}", uuid=f"u{i}", project_id="p1", user_id="u",
                            cpu=1.0, memory_mb=256)


def cluster(n: int = 3, **cfg) -> SimCluster:
    clock = HeapClock()
    clock.advance(1000.0)
    cfg.setdefault("commit_resolve_s", 5.0)
    # every node is asked in each round (the default samples d = 2): the scenarios
    # below lose the first commit to EVERY node and need a fresh node in round 2
    cfg.setdefault("probe_all_below", 8)
    # these scenarios fault the bid round's COMMIT; the fast path's BID_COMMIT has
    # its own (test_fast_path.py)
    cfg.setdefault("fast_path", False)
    return SimCluster(clock, random.Random(7), n_nodes=n,
                      totals={"cpus": 4.0, "mem_mb": 4096, "disk_gb": 20},
                      config=PlacementConfig(**cfg))


def holders(c: SimCluster, uuid: str) -> list[str]:
    return [n.name for n in c.nodes.values() if any(r.uuid == uuid for r in n.records)]


def place(c: SimCluster, entry: str, r: PlacementRequest):
    (out,) = run_until_done(c.clock, [c.place(entry, r)])
    if isinstance(out, Failure):
        out.raiseException()
    return out


class LosingCommits:
    """The cluster's peer client, with the first commit to each node in ``nodes``
    lost on the way back (``mode="reply"``: the node did it), lost on the way there
    and delivered ``late_s`` later (``mode="late"``), or refused (``mode="refused"``)."""

    def __init__(self, c: SimCluster, nodes: set[str], mode: str, late_s: float = 3.0):
        self._inner = c.client
        self._clock = c.clock
        self._nodes = set(nodes)
        self.mode = mode
        self.late_s = late_s
        self.late_outcomes: list = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def commit(self, node, reservation_id, ctx, uuid, placement, request):
        if node.name not in self._nodes:
            return await self._inner.commit(node, reservation_id, ctx, uuid, placement, request)
        self._nodes.discard(node.name)
        if self.mode == "reply":
            await self._inner.commit(node, reservation_id, ctx, uuid, placement, request)
            raise PeerTimeout(reason=f"peer {node.name} did not answer commit in time")
        if self.mode == "refused":
            raise PeerRefused(reason=f"peer {node.name} refused commit")

        def deliver():
            d = defer.ensureDeferred(self._inner.commit(node, reservation_id, ctx, uuid,
                                                        placement, request))
            d.addBoth(self.late_outcomes.append)

        self._clock.callLater(self.late_s, deliver)
        raise PeerTimeout(reason=f"peer {node.name} did not answer commit in time")


def with_client(c: SimCluster, client) -> None:
    for node in c.nodes.values():
        node.coordinator._peers = client


def test_a_commit_whose_answer_was_lost_is_confirmed_not_placed_again():
    """The winner did the work but its answer was lost: the coordinator asks it,
    hears "held", and the container exists once, on that node."""
    c = cluster()
    everyone = set(c.nodes)
    with_client(c, LosingCommits(c, everyone, "reply"))
    record, decision = place(c, "node-0", req(1))
    c.clock.advance(30)
    assert holders(c, "u1") == [decision["winner"]] == [record["host"]]
    assert decision["rounds"][0]["commit_resolved"] == {decision["winner"]: "held"}
    assert not decision["rounds"][0]["commit_failures"]


def test_a_commit_delivered_late_after_the_fence_is_refused():
    """The commit was delayed, not lost: the node answers "not held" (and fences
    the reservation), the next bid wins, and the late commit is refused."""
    c = cluster()
    losing = LosingCommits(c, set(c.nodes), "late", late_s=3.0)
    with_client(c, losing)
    _, decision = place(c, "node-0", req(1))
    c.clock.advance(30)
    assert len(losing.late_outcomes) >= 1
    assert all(isinstance(o, Failure) and o.check(errors.ReservationExpired)
               for o in losing.late_outcomes)
    assert holders(c, "u1") == [decision["winner"]]
    assert "fenced" in decision["rounds"][0]["commit_resolved"].values()


def test_a_refused_connection_falls_back_without_asking():
    """A commit whose connection was refused never reached the node: definite, so
    the next bid is tried at once."""
    c = cluster()
    first = LosingCommits(c, set(), "refused")
    with_client(c, first)
    # find the node the coordinator will pick first by a dry run on a twin cluster
    twin = cluster()
    _, dry = place(twin, "node-0", req(1))
    first._nodes = {dry["winner"]}
    _, decision = place(c, "node-0", req(1))
    assert decision["winner"] != dry["winner"]
    assert "commit_resolved" not in decision["rounds"][0]
    assert holders(c, "u1") == [decision["winner"]]


def test_an_unanswerable_commit_fails_the_create_and_places_it_nowhere_else():
    """The commit answer was lost and the node then stopped answering: after
    ``commit_resolve_s`` the create fails with ServiceUnavailable, no fallback ran,
    and it is not an unplaceable NoValidHost either."""
    c = cluster(commit_resolve_s=4.0)
    losing = LosingCommits(c, set(c.nodes), "reply")

    async def no_status(node, ctx, uuid, reservation_id):
        c.nodes[node.name].reachable = False
        raise PeerTimeout(reason=f"peer {node.name} did not answer commit_status in time")

    losing.commit_status = no_status
    with_client(c, losing)
    start = c.clock.seconds()
    with pytest.raises(errors.ServiceUnavailable) as exc:
        place(c, "node-0", req(1))
    assert not isinstance(exc.value, errors.NoValidHost)
    assert c.clock.seconds() - start >= 3.0
    c.clock.advance(30)
    assert len(holders(c, "u1")) == 1  # the one that did the work, nobody else


def test_a_repeated_commit_returns_the_record_it_made():
    """A COMMIT delivered twice answers the same record both times: one record."""
    c = cluster(n=1)
    node = c.nodes["node-0"]
    bid = run_until_done(c.clock, [defer.ensureDeferred(node.bidder.bid(req(1)))])[0]
    do_create = c.do_create_for(node, {}, None, False)

    async def held():
        rec = next((r for r in node.records if r.uuid == "u1"), None)
        return None if rec is None else rec.to_wire()

    first, second = run_until_done(c.clock, [
        defer.ensureDeferred(node.bidder.commit(bid.reservation_id, do_create, held)),
        defer.ensureDeferred(node.bidder.commit(bid.reservation_id, do_create, held))])
    assert first == second and [r.uuid for r in node.records] == ["u1"]


def test_a_fenced_reservation_can_never_be_committed():
    """Once COMMIT_STATUS answered "not held", a COMMIT of that reservation is
    refused, even while its TTL would still run."""
    c = cluster(n=1)
    node = c.nodes["node-0"]
    bid = run_until_done(c.clock, [defer.ensureDeferred(node.bidder.bid(req(1)))])[0]

    async def held():
        return None

    (answer,) = run_until_done(c.clock, [defer.ensureDeferred(
        node.bidder.resolve(bid.reservation_id, "u1", held))])
    assert answer is None
    (late,) = run_until_done(c.clock, [defer.ensureDeferred(node.bidder.commit(
        bid.reservation_id, c.do_create_for(node, {}, None, False), held))])
    assert isinstance(late, Failure) and late.check(errors.ReservationExpired)
    assert node.records == [] and node.bidder.reservations() == []
