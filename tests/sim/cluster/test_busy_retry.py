"""A decline caused only by reservations of placements in flight is transient: the
bidder says so, and the coordinator asks again for a while (``busy_wait_s``) instead of
failing the create with NoValidHost at once.

Found in CI (tests/real/e2e/test_cluster.py, strict isolation): a losing bid's RELEASE
is batched (up to the peer's ``notes_delay_s``, 50 ms), so a node kept looking like
another project's long enough for both rounds of the next create to be refused by every
node, and a create that should have landed ended in Error."""

from __future__ import annotations

import random

import pytest
from twisted.internet import defer, task
from twisted.python.failure import Failure

from zund.cluster import messages, policies, wire
from zund.cluster.bidding import Bidder
from zund.cluster.metadata import NodeFacts
from zund.cluster.placement import PlacementConfig, explain_no_host
from zund.cluster.simnet import SimCluster, SimRecord, run_until_done
from zund.cluster.types import Bid, Decline, PlacementRequest
from zund.common import errors
from zund.gossip.memnet import HeapClock

TOTALS = {"cpus": 2.0, "mem_mb": 2048, "disk_gb": 10}


def req(uuid, project="p1", cpu=1.0, mem=256) -> PlacementRequest:
    return PlacementRequest(request_id="r-" + uuid, uuid=uuid, project_id=project,
                            user_id="u", cpu=cpu, memory_mb=mem)


def done(coro):
    """The value of a coroutine that needs no clock to finish."""
    out = []
    d = defer.ensureDeferred(coro)
    d.addBoth(out.append)
    assert out, "did not finish"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


class Records:
    def __init__(self):
        self.records = []

    async def view(self):
        return list(self.records)


def bidder(mode="strict"):
    store = Records()
    ids = iter(f"res-{i}" for i in range(1000))
    b = Bidder("n1", TOTALS, store.view, task.Clock(), 10.0, policies.SpreadPolicy(), mode,
               NodeFacts(az="nova", runtimes=["runc"]), new_id=lambda: next(ids))
    return b, store


# -- the bidder's side ---------------------------------------------------------------

def test_a_decline_for_another_projects_reservation_is_transient_and_says_so():
    b, store = bidder("strict")
    assert isinstance(done(b.bid(req("a", project="pa"))), Bid)
    answer = done(b.bid(req("b", project="pb")))
    assert isinstance(answer, Decline) and answer.transient is True
    assert answer.reason.startswith("tenant: ")
    assert "held by placements in flight" in answer.reason


def test_a_decline_for_another_projects_record_is_not_transient():
    b, store = bidder("strict")
    store.records.append(SimRecord("a", "pa", 1.0, 256, 0, "n1"))
    answer = done(b.bid(req("b", project="pb")))
    assert isinstance(answer, Decline) and answer.transient is False
    assert "in flight" not in answer.reason


def test_capacity_held_by_a_reservation_is_transient_and_by_records_is_not():
    b, store = bidder("off")
    assert isinstance(done(b.bid(req("a", cpu=1.5))), Bid)
    assert done(b.bid(req("b", cpu=1.0))).transient is True
    # once the reservation became a record the shortage is the node's truth
    b.release(b.reservations()[0].id)
    store.records.append(SimRecord("a", "p1", 1.5, 256, 0, "n1"))
    answer = done(b.bid(req("b", cpu=1.0)))
    assert isinstance(answer, Decline) and answer.reason.startswith("cpu")
    assert answer.transient is False


def test_a_request_too_big_even_for_an_empty_node_is_not_transient():
    b, store = bidder("off")
    assert isinstance(done(b.bid(req("a", cpu=0.5))), Bid)
    assert done(b.bid(req("b", cpu=4.0))).transient is False


def test_an_outbid_bid_commit_answers_with_the_load_without_its_request():
    """A BID_COMMIT below the bar reserves nothing, so the load it carries back (the
    coordinator ranks by it) counts the records only, not the declined request."""
    b, store = bidder("off")
    store.records.append(SimRecord("a", "p1", 0.5, 256, 0, "n1"))

    async def never(res):
        raise AssertionError("an outbid BID_COMMIT must not create")
    answer = done(b.bid_commit(req("b", cpu=1.0, mem=512), "rid-b", never, bar=10.0))
    assert isinstance(answer, Decline) and answer.reason.startswith("outbid")
    assert not b.reservations()
    assert b.last_load == {"cpu_used": 0.5, "mem_used_mb": 256, "disk_used_gb": 0,
                           "project": "p1", "project_n": 1}


# -- the wire ------------------------------------------------------------------------

def test_transient_travels_in_bid_and_bid_commit_answers_and_defaults_to_false():
    d = Decline("n1", "tenant: strict isolation, node hosts project pa", transient=True)
    assert wire.bid_from_dict(wire.bid_to_dict(d)) == d
    body = messages.BidCommitRequest.answer_to_body(d)
    assert messages.BidCommitRequest.answer_from_body(body).transient is True
    # an older node's answers have no such field: a decline it sends is not transient
    old = {"decline": {"node": "n1", "reason": "cpu: need 1"}}
    assert wire.bid_from_dict(old).transient is False
    assert messages.BidCommitRequest.answer_from_body(
        {"accepted": False, "reason": "cpu: need 1"}).transient is False
    assert "transient" not in messages.BidCommitRequest.answer_to_body(
        Decline("n1", "cpu: need 1"))


@pytest.mark.parametrize("bad", ["yes", 1, None, [True]])
def test_a_malformed_transient_flag_is_a_wire_error(bad):
    with pytest.raises(wire.WireError):
        wire.bid_from_dict({"decline": {"node": "n1", "reason": "x", "transient": bad}})
    # in a BID_COMMIT answer only a literal true counts
    assert messages.BidCommitRequest.answer_from_body(
        {"accepted": False, "reason": "x", "transient": bad}).transient is False


# -- the coordinator's side ----------------------------------------------------------

def sim(fast_path: bool, **cfg) -> SimCluster:
    clock = HeapClock()
    clock.advance(1000.0)
    return SimCluster(clock, random.Random(3), n_nodes=2, totals=dict(TOTALS),
                      config=PlacementConfig(tenant_mode="strict", fast_path=fast_path,
                                             **cfg), latency=(0.0005, 0.002))


def occupy(c: SimCluster) -> tuple[str, str]:
    """node-0 hosts project pa (a record; the view still shows it empty); node-1
    holds a reservation of project pb (a losing bid whose release has not arrived).
    -> (that reservation's id, "node-1")"""
    c.nodes["node-0"].add(SimRecord("a", "pa", 1.0, 256, 0, "node-0"))
    d = defer.ensureDeferred(c.nodes["node-1"].bidder.bid(req("b", project="pb")))
    (bid,) = run_until_done(c.clock, [d])
    assert isinstance(bid, Bid)
    return bid.reservation_id, "node-1"


@pytest.mark.parametrize("fast_path", [False, True])
def test_a_create_waits_for_a_reservation_in_flight_and_lands_when_it_is_released(fast_path):
    c = sim(fast_path)
    rid, name = occupy(c)
    c.clock.callLater(0.3, c.nodes[name].bidder.release, rid)
    started = c.clock.seconds()
    (out,) = run_until_done(c.clock, [c.place("node-0", req("c", project="pc"))])
    if isinstance(out, Failure):
        out.raiseException()
    record, decision = out
    assert record["host"] == name and decision["winner"] == name
    # placed only after the release, by a round beyond max_rounds
    assert c.clock.seconds() - started >= 0.3
    assert len(decision["rounds"]) > c.config.max_rounds
    assert c.nodes["node-0"].coordinator.stats["busy_retries"] >= 1
    assert not c.violations


@pytest.mark.parametrize("fast_path", [False, True])
def test_a_reservation_held_past_busy_wait_ends_in_no_valid_host_saying_why(fast_path):
    c = sim(fast_path, busy_wait_s=0.5)
    occupy(c)  # never released within the wait (TTL 10 s)
    started = c.clock.seconds()
    (out,) = run_until_done(c.clock, [c.place("node-0", req("c", project="pc"))])
    assert isinstance(out, Failure) and out.check(errors.NoValidHost)
    waited = c.clock.seconds() - started
    assert 0.3 <= waited <= 1.0
    message = str(out.value)
    assert "1 was held by other placements in flight (try again)" in message, message
    assert "1 hosted another project" in message, message


@pytest.mark.parametrize("fast_path", [False, True])
def test_declines_by_committed_records_fail_at_once_without_waiting(fast_path):
    c = sim(fast_path)
    c.nodes["node-0"].add(SimRecord("a", "pa", 1.0, 256, 0, "node-0"))
    c.nodes["node-1"].add(SimRecord("b", "pb", 1.0, 256, 0, "node-1"))
    # the view still shows both empty: only the bidders know
    started = c.clock.seconds()
    (out,) = run_until_done(c.clock, [c.place("node-0", req("c", project="pc"))])
    assert isinstance(out, Failure) and out.check(errors.NoValidHost)
    assert c.clock.seconds() - started < 0.05
    assert c.nodes["node-0"].coordinator.stats["busy_retries"] == 0


def test_busy_wait_zero_fails_at_once():
    c = sim(False, busy_wait_s=0.0)
    occupy(c)
    started = c.clock.seconds()
    (out,) = run_until_done(c.clock, [c.place("node-0", req("c", project="pc"))])
    assert isinstance(out, Failure) and out.check(errors.NoValidHost)
    assert c.clock.seconds() - started < 0.05


def test_the_message_names_busy_nodes():
    message = explain_no_host(req("x"), {"n1": "busy", "n2": "busy", "n3": "tenant"}, {})
    assert "2 were held by other placements in flight (try again)" in message
