"""Quota leases, the pure parts: a lease's share of the headroom, the holder's
ledger counting leases, their return and expiry, and a node's held lease."""

from __future__ import annotations

import pytest

from zund.cluster import messages
from zund.cluster.quota import HeldLease, Ledger, demand, lease_share
from zund.common import errors

LIMITS = {"containers": 40, "cpu": 20, "memory": 51200, "disk": 100}
ONE = demand(0.5, 512, 1)


def test_a_lease_is_a_share_of_the_headroom_capped_and_never_more_than_it():
    """(limit - held) / (2 * nodes) per resource, containers capped, unlimited -1."""
    held = {"containers": 10, "cpu": 5.0, "memory": 1000, "disk": 0}
    share = lease_share(dict(LIMITS, disk=-1), held, 5, 8)
    assert share == {"containers": 3, "cpu": 1.5, "memory": 5020, "disk": -1}
    assert lease_share(LIMITS, dict(held, containers=0), 1, 8)["containers"] == 8
    assert lease_share(LIMITS, dict(held, containers=39), 5, 8) is None


def test_leases_and_claims_never_sum_past_the_limit():
    """Granting leases to every node and claiming the rest: held never exceeds the limit."""
    ledger = Ledger()
    limits = {"containers": 10, "cpu": -1, "memory": -1, "disk": -1}
    granted = 0
    for i in range(20):
        a = ledger.grant_lease(f"L{i}", f"n{i}", limits, 5, 8, 0.0, 10.0)
        granted += a[1]["containers"] if a else 0
    claimed = 0
    for i in range(20):
        try:
            ledger.claim(f"u{i}", demand(0, 0, 0), limits, 0.0, 30.0)
            claimed += 1
        except errors.QuotaExceeded:
            pass
    assert granted + claimed == 10
    assert ledger.held()["containers"] == 10


def test_one_live_lease_per_node_and_an_expired_lease_asks_for_a_recount():
    """A node holding a live lease gets no second one; at its TTL the ledger is due."""
    ledger = Ledger()
    assert ledger.grant_lease("L1", "n1", LIMITS, 5, 8, 0.0, 10.0) is not None
    assert ledger.grant_lease("L2", "n1", LIMITS, 5, 8, 1.0, 10.0) is None
    assert ledger.expired(9.9) == []
    assert ledger.expired(10.0) == ["lease:L1"]
    ledger.rebuild({}, {}, 10.0, 30.0)
    assert ledger.leases == {} and ledger.held()["containers"] == 0


def test_a_repeated_claim_is_answered_the_lease_it_was_granted_and_never_another():
    """A duplicated claim message gets the same lease (id and block) again, not
    None: whichever answer reaches the node, it knows the lease the holder counts.
    Another claim of that node gets none while it lives. Once it is returned, a
    late copy of the claim gets nothing (a block the node would never know of),
    while a new claim gets a new lease."""
    ledger = Ledger()
    first = ledger.grant_lease("L1", "n1", LIMITS, 5, 8, 0.0, 10.0, uuid="u1")
    assert first is not None and first[0] == "L1"
    assert ledger.grant_lease("L2", "n1", LIMITS, 5, 8, 0.5, 10.0, uuid="u1") == first
    assert ledger.grant_lease("L3", "n1", LIMITS, 5, 8, 0.5, 10.0, uuid="u2") is None
    assert set(ledger.leases) == {"L1"}
    ledger.return_lease("L1", {"u1": ONE}, {}, 1.0, 30.0)
    assert ledger.grant_lease("L4", "n1", LIMITS, 5, 8, 1.0, 10.0, uuid="u1") is None
    assert ledger.grant_lease("L5", "n1", LIMITS, 5, 8, 1.0, 10.0, uuid="u3")[0] == "L5"
    assert set(ledger.leases) == {"L5"}


def test_a_returned_lease_frees_its_block_and_counts_its_containers_once():
    """Created containers become usage, creates in flight claims, a released one
    nothing; a second copy of the return changes nothing."""
    ledger = Ledger()
    ledger.grant_lease("L1", "n1", LIMITS, 1, 8, 0.0, 10.0)
    assert ledger.held()["containers"] == 8
    ledger.note_released("u3", 10.0)
    for _ in range(2):
        ledger.return_lease("L1", {"u1": ONE, "u3": ONE}, {"u2": ONE}, 1.0, 30.0)
    assert set(ledger.usage) == {"u1"} and set(ledger.claims) == {"u2"}
    assert ledger.held()["containers"] == 2 and ledger.claimed()["containers"] == 2


def test_a_lease_adopted_from_a_previous_holder_is_dropped_by_its_return():
    """The next holder counts a lease as the claim ``lease:<id>`` until it is returned."""
    ledger = Ledger()
    ledger.rebuild({}, {"lease:L1": {"containers": 4}}, 0.0, 30.0)
    assert ledger.held()["containers"] == 4 and ledger.claimed()["containers"] == 0
    ledger.return_lease("L1", {"u1": ONE}, {}, 1.0, 30.0)
    assert ledger.held()["containers"] == 1


def test_a_held_lease_counts_creates_until_its_block_or_its_time_runs_out():
    """take() fits the remaining block before use_until; give_back() refunds it."""
    lease = HeldLease("L1", "h", {"containers": 2, "cpu": 1.0, "memory": -1, "disk": -1}, 5.0)
    assert lease.take("u1", ONE, 0.0) and lease.take("u2", ONE, 0.0)
    assert not lease.take("u3", ONE, 0.0)
    lease.give_back("u2")
    assert lease.take("u3", ONE, 0.0)
    assert not lease.take("u4", demand(0, 0, 0), 5.0)
    lease.committed.add("u1")
    assert lease.report() == ("L1", {"u1": ONE}, {"u3": ONE})


@pytest.mark.parametrize("msg", [
    messages.QuotaLeaseClaim("p", "u", {"containers": 1}, "n1", True,
                             (("p", "L1", {"u0": {"containers": 1}}, {}),)),
    messages.QuotaLeaseReturn((("p", "L1", {"u0": {"cpu": 0.5}}, {"u1": {"containers": 1}}),
                               ("q", "L2", {}, {}))),
    messages.QuotaLeasePeek("p", True),
])
def test_lease_messages_survive_the_wire(msg):
    """Each lease op decodes to what was encoded."""
    assert type(msg).from_body(msg.to_body()) == msg


def test_a_lease_grant_answer_survives_the_wire():
    """The grant (id, amounts, ttl) and "no lease" both round-trip."""
    grant = ("L1", {"containers": 3, "cpu": -1}, 10.0)
    cls = messages.QuotaLeaseClaim
    assert cls.answer_from_body(cls.answer_to_body(grant)) == grant
    assert cls.answer_from_body(cls.answer_to_body(None)) is None


def test_a_lease_peek_answer_survives_the_wire():
    """The per-lease report of a peek round-trips."""
    used = {"L1": {"u1": {"containers": 1, "cpu": 0.5}}, "L2": {}}
    cls = messages.QuotaLeasePeek
    assert cls.answer_from_body(cls.answer_to_body(used)) == used
