"""Bidder on a ``task.Clock``: admission against its own truth, reservations with a
TTL, commit/release, and the invariants under interleaved calls."""

from __future__ import annotations

import pytest
from twisted.internet import defer, task
from twisted.python.failure import Failure

from zund.cluster import policies
from zund.cluster.bidding import Bidder, Committed
from zund.cluster.metadata import NodeFacts
from zund.cluster.simnet import SimRecord
from zund.cluster.types import Bid, Decline, PlacementRequest
from zund.common import errors
from zund.compute import capacity

TOTALS = {"cpus": 2.0, "mem_mb": 2048, "disk_gb": 10}


def req(uuid="u1", cpu=1.0, mem=512, project="p1", **kw) -> PlacementRequest:
    return PlacementRequest(request_id="r-" + uuid, uuid=uuid, project_id=project, user_id="u",
                            cpu=cpu, memory_mb=mem, **kw)


class FakeStore:
    """A record list; ``create`` is what a commit's do_create does."""

    def __init__(self):
        self.records: list = []

    async def view(self):
        return list(self.records)

    def create_fn(self, delay_d: defer.Deferred | None = None, fail: Exception | None = None):
        async def do_create(res):
            if delay_d is not None:
                await delay_d
            if fail is not None:
                raise fail
            r = res.request
            rec = SimRecord(r.uuid, r.project_id, r.cpu, r.memory_mb, r.disk_gb, "n1")
            self.records.append(rec)
            return rec.to_wire()
        return do_create


def make(clock=None, ttl=10.0, mode="off", facts=None, store=None, policy="spread"):
    clock = clock or task.Clock()
    store = store or FakeStore()
    ids = iter(f"res-{i}" for i in range(10_000))
    b = Bidder("n1", TOTALS, store.view, clock, ttl, policies.load_policy(policy), mode,
               NodeFacts(**(facts if facts is not None else {"az": "nova", "runtimes": ["runc"]})),
               new_id=lambda: next(ids))
    return b, clock, store


def result(coro_or_d):
    """The outcome of something that must already have finished (no reactor here)."""
    d = coro_or_d if isinstance(coro_or_d, defer.Deferred) else defer.ensureDeferred(coro_or_d)
    out = []
    d.addBoth(out.append)
    assert out, "did not complete synchronously"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def test_bid_holds_a_reservation_that_counts_against_capacity():
    """Two 1-cpu bids fill a 2-cpu node; the third is declined for cpu."""
    b, _, _ = make()
    assert isinstance(result(b.bid(req("a"))), Bid)
    assert isinstance(result(b.bid(req("b"))), Bid)
    third = result(b.bid(req("c")))
    assert isinstance(third, Decline) and third.reason.startswith("cpu")


def test_release_frees_the_capacity_at_once():
    """After RELEASE the slot can be bid for again."""
    b, _, _ = make()
    first = result(b.bid(req("a", cpu=2.0)))
    assert isinstance(result(b.bid(req("b"))), Decline)
    b.release(first.reservation_id)
    assert isinstance(result(b.bid(req("b"))), Bid)


def test_reservation_frees_after_ttl():
    """A reservation neither committed nor released expires after reservation_ttl_s."""
    b, clock, _ = make(ttl=5.0)
    bid = result(b.bid(req("a", cpu=2.0)))
    assert bid.expires_at == 5.0
    clock.advance(4.9)
    assert isinstance(result(b.bid(req("b"))), Decline)
    clock.advance(0.1)
    assert b.reservations() == [] and b.stats["expired"] == 1
    assert isinstance(result(b.bid(req("b"))), Bid)


def test_lazy_purge_frees_expired_reservation_even_if_timer_did_not_run():
    """Admission drops expired reservations itself (a late timer changes nothing)."""
    b, clock, _ = make(ttl=5.0)
    result(b.bid(req("a", cpu=2.0)))
    clock.rightNow += 6.0  # time passes without the timer firing
    assert isinstance(result(b.bid(req("b", cpu=2.0))), Bid)


def test_commit_after_expiry_raises_reservation_expired():
    """COMMIT of an expired reservation is refused and creates nothing."""
    b, clock, store = make(ttl=1.0)
    bid = result(b.bid(req("a")))
    clock.advance(1.0)
    with pytest.raises(errors.ReservationExpired):
        result(b.commit(bid.reservation_id, store.create_fn()))
    assert store.records == []


def test_commit_of_unknown_or_released_reservation_is_refused():
    """A released reservation cannot be committed."""
    b, _, store = make()
    bid = result(b.bid(req("a")))
    b.release(bid.reservation_id)
    with pytest.raises(errors.ReservationExpired):
        result(b.commit(bid.reservation_id, store.create_fn()))


def test_commit_turns_reservation_into_record_without_double_counting():
    """After COMMIT the record counts and the reservation is gone: capacity used once."""
    b, _, store = make()
    bid = result(b.bid(req("a")))
    wire = result(b.commit(bid.reservation_id, store.create_fn()))
    assert wire["uuid"] == "a" and b.reservations() == []
    state = b.state_of(store.records)
    assert state.cpu_used == 1.0 and state.tenants == {"p1": 1}
    assert isinstance(result(b.bid(req("b"))), Bid)
    assert isinstance(result(b.bid(req("c"))), Decline)


def test_reservation_being_committed_does_not_expire_and_keeps_counting():
    """While do_create runs (outside the lock) the TTL passes: the commit still
    succeeds, and a concurrent bid is answered at once, counting the reservation."""
    b, clock, store = make(ttl=1.0)
    bid = result(b.bid(req("a", cpu=2.0)))
    gate = defer.Deferred()
    commit_d = defer.ensureDeferred(b.commit(bid.reservation_id, store.create_fn(gate)))
    clock.advance(5.0)
    answer = result(b.bid(req("b")))  # not queued behind the commit's writes
    assert isinstance(answer, Decline) and answer.reason.startswith("cpu")
    assert not commit_d.called
    b.release(bid.reservation_id)  # a stray RELEASE during the commit is ignored
    gate.callback(None)
    assert result(commit_d)["uuid"] == "a"
    after = result(b.bid(req("c")))
    assert isinstance(after, Decline) and after.reason.startswith("cpu")


def test_a_duplicated_commit_during_the_first_returns_the_same_record():
    """A COMMIT delivered twice while the first is being made: one record, both
    deliveries answered with it."""
    b, _, store = make()
    bid = result(b.bid(req("a")))
    gate = defer.Deferred()
    first = defer.ensureDeferred(b.commit(bid.reservation_id, store.create_fn(gate)))

    async def existing():
        return next((r.to_wire() for r in store.records if r.uuid == "a"), None)

    second = defer.ensureDeferred(b.commit(bid.reservation_id, store.create_fn(),
                                           existing=existing))
    assert not second.called
    gate.callback(None)
    assert result(first)["uuid"] == result(second)["uuid"] == "a"
    assert [r.uuid for r in store.records] == ["a"]


def test_commit_status_during_a_commit_answers_its_outcome():
    """COMMIT_STATUS asked while the commit is being made waits and answers "held"
    (never fences a reservation whose record is about to exist)."""
    b, _, store = make()
    bid = result(b.bid(req("a")))
    gate = defer.Deferred()
    commit_d = defer.ensureDeferred(b.commit(bid.reservation_id, store.create_fn(gate)))

    async def lookup():
        return next((r.to_wire() for r in store.records if r.uuid == "a"), None)

    status = defer.ensureDeferred(b.resolve(bid.reservation_id, "a", lookup))
    assert not status.called
    gate.callback(None)
    assert result(commit_d)["uuid"] == "a" and result(status)["uuid"] == "a"


def test_a_bid_for_a_uuid_being_committed_is_declined_as_existing():
    """A late BID of a container whose commit is in flight here is declined (exists)."""
    b, _, store = make()
    bid = result(b.bid(req("a", cpu=0.5)))
    gate = defer.Deferred()
    commit_d = defer.ensureDeferred(b.commit(bid.reservation_id, store.create_fn(gate)))
    answer = result(b.bid(req("a", cpu=0.5)))
    assert isinstance(answer, Decline) and answer.reason.startswith("exists")
    gate.callback(None)
    assert result(commit_d)["uuid"] == "a"


def test_failed_create_drops_the_reservation_and_propagates():
    """If do_create raises, the error reaches the caller and the capacity is free again."""
    b, _, store = make()
    bid = result(b.bid(req("a", cpu=2.0)))
    boom = errors.RuntimeUnavailable(runtime="runc", reason="x")
    with pytest.raises(errors.RuntimeUnavailable):
        result(b.commit(bid.reservation_id, store.create_fn(fail=boom)))
    assert b.reservations() == []


def test_strict_isolation_counts_reservations_as_tenants():
    """strict: a reservation of project A makes an empty node refuse project B."""
    b, _, _ = make(mode="strict")
    assert isinstance(result(b.bid(req("a", project="A"))), Bid)
    answer = result(b.bid(req("b", project="B")))
    assert isinstance(answer, Decline) and answer.reason.startswith("tenant")
    assert isinstance(result(b.bid(req("c", project="A"))), Bid)


def test_strict_isolation_holds_for_two_concurrent_bids_on_an_empty_node():
    """Two projects bid at the same instant on an empty strict node: exactly one wins."""
    clock = task.Clock()
    store = FakeStore()
    gate = defer.Deferred()

    async def slow_view():
        await gate  # both bids are in flight before either reads the store
        return list(store.records)
    ids = iter(range(100))
    b = Bidder("n1", TOTALS, slow_view, clock, 10.0, policies.SpreadPolicy(), "strict",
               NodeFacts(runtimes=["runc"]), new_id=lambda: str(next(ids)))
    d1 = defer.ensureDeferred(b.bid(req("a", project="A")))
    d2 = defer.ensureDeferred(b.bid(req("b", project="B")))
    gate.callback(None)
    answers = [result(d1), result(d2)]
    assert sorted(type(a).__name__ for a in answers) == ["Bid", "Decline"]


@pytest.mark.parametrize("request_kw, facts, category", [
    ({"runtime": "microvm"}, {"runtimes": ["runc"]}, "runtime"),
    ({"availability_zone": "az9"}, {"runtimes": ["runc"], "az": "nova"}, "az"),
    ({"labels": {"gpu": "1"}}, {"runtimes": ["runc"]}, "labels"),
    ({"requested_host": "n2"}, {"runtimes": ["runc"]}, "host"),
    ({}, {"runtimes": ["runc"], "draining": True}, "draining"),
])
def test_bidder_rechecks_hard_filters_against_its_own_facts(request_kw, facts, category):
    """The bidder declines what the (possibly stale) gossip view let through."""
    b, _, _ = make(facts=facts)
    answer = result(b.bid(req(**request_kw)))
    assert isinstance(answer, Decline) and answer.reason.split(":")[0] == category


def test_draining_flag_is_read_live():
    """Setting the node's draining fact takes effect on the next bid."""
    b, _, _ = make()
    b.local.set_draining(True)
    assert isinstance(result(b.bid(req("a"))), Decline)
    b.local.set_draining(False)
    assert isinstance(result(b.bid(req("a"))), Bid)


def test_a_new_bid_for_the_same_uuid_supersedes_the_old_reservation():
    """A coordinator re-asking (its first answer was lost) does not hold two slots."""
    b, _, _ = make()
    first = result(b.bid(req("a", cpu=2.0)))
    second = result(b.bid(req("a", cpu=2.0)))
    assert isinstance(second, Bid) and second.reservation_id != first.reservation_id
    assert [r.id for r in b.reservations()] == [second.reservation_id]


def test_bid_for_a_container_already_here_is_declined():
    """A uuid that already has a record here is not placed twice."""
    b, _, store = make()
    store.records.append(SimRecord("a", "p1", 1.0, 512, 0, "n1"))
    answer = result(b.bid(req("a")))
    assert isinstance(answer, Decline) and answer.reason.startswith("exists")


def test_store_view_may_return_running_sums():
    """A Committed summary is accepted in place of the records."""
    clock = task.Clock()

    async def view():
        return Committed(cpu_used=1.5, mem_used_mb=0, disk_used_gb=0, tenants={"x": 1},
                         uuids={"old"})
    b = Bidder("n1", TOTALS, view, clock, 10.0, policies.SpreadPolicy(), "off",
               NodeFacts(runtimes=["runc"]))
    assert isinstance(result(b.bid(req("a", cpu=0.5))), Bid)
    assert isinstance(result(b.bid(req("b", cpu=0.5))), Decline)


def test_bid_score_carries_the_tenant_tier():
    """prefer: the tier shows in the score: 2 = hosts the project, 1 = empty node."""
    b, _, store = make(mode="prefer")
    empty_bid = result(b.bid(req("a")))
    assert empty_bid.score // policies.TIER_WIDTH == 1
    b.release(empty_bid.reservation_id)
    store.records.append(SimRecord("z", "p1", 0.5, 128, 0, "n1"))
    assert result(b.bid(req("b"))).score // policies.TIER_WIDTH == 2



class Pool:
    """A runtime's warm guests as the bidder sees them (``ContainerManager``'s
    ``held_capacity``, ``yieldable_capacity``, ``yield_capacity``,
    ``keep_pledge`` and ``return_pledge``): guests booting (held, not given up)
    and booted (held, set aside for a reservation the newest first, like
    ``LibvirtRuntime.yield_capacity``); memory only, one shape: a guest set aside
    for a reservation that made its container is destroyed (the real runtime's
    preference for the container's own shape is tested against QEMU)."""

    def __init__(self):
        self.booting: list[int] = []
        self.ready: list[int] = []
        #: reservation id -> the guests set aside for it
        self.pledges: dict[str, list[int]] = {}
        self.destroyed: list[int] = []

    @property
    def mem_mb(self) -> int:
        return sum(self.booting) + sum(self.ready)

    def held_capacity(self) -> capacity.Held:
        return capacity.Held(mem_mb=self.mem_mb, count=len(self.booting) + len(self.ready))

    def yieldable_capacity(self) -> capacity.Held:
        return capacity.Held(mem_mb=sum(self.ready), count=len(self.ready))

    def yield_capacity(self, cpu: float, memory_mb: int, dry_run: bool = False,
                       request=None, token=None) -> capacity.Held:
        waiting = list(self.ready)
        released = capacity.Held()
        while released.mem_mb < memory_mb and waiting:
            released += capacity.Held(mem_mb=waiting.pop(), count=1)
        if not dry_run:
            taken = self.ready[len(waiting):]
            del self.ready[len(waiting):]
            self.pledges[token] = taken
        return released

    def keep_pledge(self, token: str) -> None:
        self.destroyed += self.pledges.pop(token, [])

    def return_pledge(self, token: str, room: capacity.Held) -> capacity.Held:
        back = capacity.Held()
        for mem_mb in self.pledges.pop(token, []):
            if back.mem_mb + mem_mb <= room.mem_mb:
                back += capacity.Held(mem_mb=mem_mb, count=1)
                self.ready.append(mem_mb)
            else:
                self.destroyed.append(mem_mb)
        return back

    def hold(self, mem_mb: int):
        def hold():
            self.booting.append(mem_mb)
        return hold

    def booted(self, mem_mb: int) -> None:
        self.ready.append(mem_mb)


def make_held(facts=None, view=None, volumes_view=None, clock=None):
    held = Pool()
    ids = iter(f"res-{i}" for i in range(10_000))
    b = Bidder("n1", TOTALS, view or FakeStore().view, clock or task.Clock(), 10.0,
               policies.load_policy("spread"), "off",
               facts or NodeFacts(az="nova", runtimes=["runc"]), new_id=lambda: next(ids),
               volumes_view=volumes_view, warm=held)
    return b, held


def boot(b: Bidder, held: Pool, *mem_mbs: int) -> None:
    """Warm guests of ``mem_mbs`` MiB, each held through the bidder (it must have
    room) and then booted."""
    for mem_mb in mem_mbs:
        assert result(b.hold_if_room(0.0, mem_mb, held.hold(mem_mb))) is True
        held.booted(held.booting.pop())


def test_a_warm_guest_is_held_only_when_it_fits_beside_committed_and_reserved():
    """hold_if_room counts live reservations: with 1,536 of 2,048 MiB reserved a
    512 MiB guest is held, a second one is not (and hold() is not called)."""
    b, held = make_held()
    assert isinstance(result(b.bid(req("a", cpu=0.5, mem=1536))), Bid)
    assert result(b.hold_if_room(0.5, 512, held.hold(512))) is True
    assert held.mem_mb == 512
    assert result(b.hold_if_room(0.5, 512, held.hold(512))) is False
    assert held.mem_mb == 512


def test_held_capacity_is_used_capacity_for_bids():
    """While a 1,024 MiB warm guest boots (held, not yet one the node can give
    up), a 1,536 MiB request is declined for memory, naming what is free, and not
    as a passing decline (no reservation causes it); a 1,024 MiB one still fits."""
    b, held = make_held()
    assert result(b.hold_if_room(0.0, 1024, held.hold(1024))) is True
    declined = result(b.bid(req("big", cpu=0.5, mem=1536)))
    assert isinstance(declined, Decline) and not declined.transient
    assert declined.reason == "memory: need 1536 MiB, free 1024 of 2048"
    assert isinstance(result(b.bid(req("fits", cpu=0.5, mem=1024))), Bid)


def test_booted_warm_guests_make_room_for_a_request_that_fits_only_without_them():
    """Two booted 768 MiB guests leave 512 MiB free: a 1,024 MiB request is
    admitted, one guest (the newest) is given up for it and the other stays; the
    node's truth then has the reservation where that guest was, and the next
    1,024 MiB request takes the second guest's place too, after which nothing fits."""
    b, held = make_held()
    boot(b, held, 768, 768)
    assert isinstance(result(b.bid(req("a", cpu=0.5, mem=1024))), Bid)
    assert held.ready == [768] and held.mem_mb == 768
    assert b.state_of([]).mem_used_mb == 1024 + 768
    assert isinstance(result(b.bid(req("b", cpu=0.5, mem=1024))), Bid)
    assert held.ready == [] and b.state_of([]).mem_used_mb == 2048
    declined = result(b.bid(req("c", cpu=0.5, mem=1)))
    assert isinstance(declined, Decline)
    assert declined.reason.startswith("memory: need 1 MiB, free 0 of 2048")


def test_warm_guests_stay_when_the_request_fits_beside_them():
    b, held = make_held()
    boot(b, held, 1024)
    assert isinstance(result(b.bid(req("a", cpu=0.5, mem=1024))), Bid)
    assert held.ready == [1024]


def test_a_request_too_big_even_without_the_warm_guests_leaves_them_alone():
    """free 1,024 + the guest's 512 is 1,536 MiB: a 1,600 MiB request is declined,
    naming the free memory with the guest's, and the guest stays."""
    b, held = make_held()
    assert isinstance(result(b.bid(req("a", cpu=0.5, mem=512))), Bid)
    boot(b, held, 512)
    declined = result(b.bid(req("big", cpu=0.5, mem=1600)))
    assert isinstance(declined, Decline)
    assert declined.reason.startswith("memory: need 1600 MiB, free 1536 of 2048")
    assert held.ready == [512]


def test_no_guest_is_given_up_for_a_request_the_guests_left_cannot_make_room_for():
    """Two booted 768 MiB guests, 512 MiB free: a 1,300 MiB request with a volume
    is admitted on a truth read before the volume driver answers. Meanwhile a
    create claims one guest, so the one left cannot make the room: the request
    is declined as passing and that guest is not destroyed for it."""
    answer = defer.Deferred()

    async def volumes_view(project_id, names):
        return await answer

    b, held = make_held(volumes_view=volumes_view)
    boot(b, held, 768, 768)
    bid = defer.ensureDeferred(b.bid(req("a", cpu=0.5, mem=1300, volumes=("v1",))))
    assert not bid.called
    held.ready.pop()  # a create claimed the newest guest
    answer.callback(["v1"])
    declined = result(bid)
    assert isinstance(declined, Decline) and declined.transient
    assert declined.reason.startswith("warm guests")
    assert held.ready == [768]


def test_a_bid_commit_outbid_after_counting_the_guests_gives_none_of_them_up():
    """Two booted 768 MiB guests, 512 MiB free: a BID_COMMIT for 1,024 MiB fits
    only by giving up one, and its score then is below the coordinator's bar. It
    is declined as outbid, reserves nothing, both guests stay, and the load it
    answers with still counts them."""
    b, held = make_held()
    boot(b, held, 768, 768)

    async def never(res):
        raise AssertionError("an outbid BID_COMMIT must not create")
    answer = result(b.bid_commit(req("a", cpu=0.5, mem=1024), "rid-a", never, bar=10.0))
    assert isinstance(answer, Decline) and answer.reason.startswith("outbid")
    assert held.ready == [768, 768] and not b.reservations()
    assert b.last_load["mem_used_mb"] == 1536


def test_a_guest_set_aside_for_a_bid_that_is_released_goes_back_to_the_pool():
    """Two booted 768 MiB guests, 512 MiB free: a 1,024 MiB bid sets one aside
    (not destroyed); the coordinator took another node and releases the bid: the
    guest is back in the pool and held again, none was destroyed."""
    b, held = make_held()
    boot(b, held, 768, 768)
    bid = result(b.bid(req("a", cpu=0.5, mem=1024)))
    assert isinstance(bid, Bid)
    assert held.ready == [768] and held.pledges == {bid.reservation_id: [768]}
    b.release(bid.reservation_id)
    assert held.ready == [768, 768] and held.pledges == {} and held.destroyed == []
    assert b.state_of([]).mem_used_mb == 1536


def test_a_guest_set_aside_for_a_bid_that_expires_goes_back_to_the_pool():
    clock = task.Clock()
    b, held = make_held(clock=clock)
    boot(b, held, 768, 768)
    assert isinstance(result(b.bid(req("a", cpu=0.5, mem=1024))), Bid)
    clock.advance(10.0)
    assert not b.reservations()
    assert held.ready == [768, 768] and held.destroyed == []


def test_a_guest_set_aside_for_a_bid_whose_room_was_taken_meanwhile_is_destroyed():
    """A 1,536 MiB guest, 512 MiB free: a 1,024 MiB bid sets it aside, leaving
    1,024 MiB free, which a second bid then takes. When the first is released the
    node has no room for the guest any more: it is destroyed, not returned, and
    the node's truth stays within its capacity."""
    b, held = make_held()
    boot(b, held, 1536)
    first = result(b.bid(req("a", cpu=0.5, mem=1024)))
    assert isinstance(first, Bid) and held.ready == []
    assert isinstance(result(b.bid(req("b", cpu=0.5, mem=1024))), Bid)
    b.release(first.reservation_id)
    assert held.ready == [] and held.destroyed == [1536]
    assert b.state_of([]).mem_used_mb == 1024


def test_a_guest_set_aside_for_a_committed_bid_is_not_returned():
    """The bid's record is written: the guest set aside for it stays out of the
    pool (the runtime keeps it for the container or destroys it), and the node's
    truth counts the record where the guest was."""
    store = FakeStore()
    b, held = make_held(view=store.view)
    boot(b, held, 768, 768)
    bid = result(b.bid(req("a", cpu=0.5, mem=1024)))
    result(b.commit(bid.reservation_id, store.create_fn()))
    assert held.ready == [768] and held.pledges == {} and held.destroyed == [768]
    assert b.state_of(store.records).mem_used_mb == 1024 + 768


def test_a_guest_set_aside_for_a_commit_that_fails_goes_back_to_the_pool():
    store = FakeStore()
    b, held = make_held(view=store.view)
    boot(b, held, 768, 768)
    bid = result(b.bid(req("a", cpu=0.5, mem=1024)))
    with pytest.raises(RuntimeError):
        result(b.commit(bid.reservation_id, store.create_fn(fail=RuntimeError("disk full"))))
    assert held.ready == [768, 768] and held.destroyed == [] and not store.records


def test_a_new_warm_guest_needs_room_beside_the_booted_ones():
    """hold_if_room counts every warm guest as used, booted or not: what the
    booted ones could give up to a container is no room for another guest."""
    b, held = make_held()
    boot(b, held, 1024, 1024)
    assert result(b.hold_if_room(0.0, 512, held.hold(512))) is False
    assert held.ready == [1024, 1024] and held.booting == []


def test_a_draining_node_holds_no_warm_guest():
    b, held = make_held(facts=NodeFacts(az="nova", runtimes=["runc"], draining=True))
    assert result(b.hold_if_room(0.0, 128, held.hold(128))) is False
    assert held.mem_mb == 0


def test_hold_waits_for_a_bid_in_flight_and_sees_its_reservation():
    """The check runs under the bid lock: a hold asked while a bid holds the lock
    (its store read still pending) is decided after it, counting its reservation."""
    pending = defer.Deferred()

    async def slow_view():
        await pending
        return []

    b, held = make_held(view=slow_view)
    bid = defer.ensureDeferred(b.bid(req("a", cpu=0.5, mem=1536)))
    hold = defer.ensureDeferred(b.hold_if_room(0.0, 1024, held.hold(1024)))
    assert not bid.called and not hold.called
    pending.callback(None)
    assert isinstance(result(bid), Bid)
    assert result(hold) is False and held.mem_mb == 0
