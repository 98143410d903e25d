"""The bidder: local admission, scoring and reservations with a TTL.

DESIGN.md "Data flow of one create": a coordinator asks for a BID; the bidder
re-checks the request against its OWN truth (committed records plus live
reservations) under a node-local lock, holds a reservation and answers a score —
or declines with a reason. A COMMIT turns the reservation into a record; a
RELEASE or the TTL frees it.

Invariants (all admission and commit run under ``self._lock``):

1. capacity: for every node, allocations of committed records + live reservations
   never exceed the totals — a reservation counts from BID until its COMMIT has
   written the record (the record counts from then on), so two coordinators racing
   for the last slot can never both win;
2. strict tenant isolation: reservations count as tenants, so two concurrent
   requests from two projects can never both hold an empty ``strict`` node;
3. a reservation being committed never expires (the expiry and RELEASE skip it);
   a reservation that expired can never be committed (``ReservationExpired``).
   ``do_create`` runs OUTSIDE the lock, so bids are not queued behind a commit's
   disk writes: the reservation keeps counting until its record counts (a record
   whose uuid is in the committed view makes its reservation count no more), and
   it is dropped under the lock, so no bid can see neither;
4. exactly once (issue 11 item 1): a reservation is single-use and bound to its
   request's uuid. ``resolve`` (COMMIT_STATUS) answers under the same lock as
   ``commit``: either the record exists (the commit took), or the reservation is
   dropped and its id fenced, so no COMMIT of it — late, duplicated or retried —
   can create the container afterwards. A COMMIT of a reservation already used
   returns the record it made (a retry after a lost answer), never a second one.
   While a commit of a uuid is in flight, another COMMIT or COMMIT_STATUS of that
   uuid waits for its outcome, and a BID for it is declined (``exists``).

Reservations live in memory only: after a restart every one is gone, which is
safe (the coordinators' commits fail, they retry elsewhere).
"""

from __future__ import annotations

import uuid as uuidlib
from collections import Counter
from fractions import Fraction
from typing import Awaitable, Callable, Container, Mapping

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from zund.cluster import policies
from zund.cluster.metadata import LocalNode, NodeFacts
from zund.cluster.types import Bid, Decline, PlacementRequest
from zund.common import errors
from zund.compute import capacity

log = Logger()


@attrs.frozen
class Reservation:
    """Capacity held for one request until ``expires_at`` (bidder's clock)."""

    id: str
    request: PlacementRequest
    expires_at: float
    score: float


@attrs.frozen
class Committed:
    """What the records held on this node add up to (allocations, per-project counts,
    and their uuids). A ``store_view`` may return this instead of the records when it
    keeps the sums up to date itself (cheaper than summing every record per bid)."""

    cpu_used: float = 0.0
    mem_used_mb: int = 0
    disk_used_gb: int = 0
    tenants: Mapping = attrs.field(factory=dict)
    uuids: Container = attrs.field(factory=frozenset)

    @classmethod
    def of(cls, records) -> "Committed":
        records = list(records)
        usage = capacity.usage_of(records)
        return cls(usage.cpu_used, usage.mem_used_mb, usage.disk_used_gb,
                   dict(usage.tenants), frozenset(r.uuid for r in records))


class CommittedLedger:
    """What this node's records add up to, kept in step with the store (its change
    listener, ``Store.add_listener(ledger.on_change)``), so a bid reads sums in
    memory instead of reading and summing every record (issue 13 §1).

    Use it as the bidder's ``store_view``: the first call loads the records once
    (``list_records``); from then on every committed create, save and delete
    arrives through :meth:`on_change` on the reactor thread, right after the
    store's transaction, before the writer's await returns — so a COMMIT's record
    counts here by the time its ``do_create`` returns. The store answers in commit
    order (one thread), so a change heard before the load finished is already in
    the loaded list; a change never replaces a newer generation.

    Which records hold capacity is ``capacity.holds_capacity`` (as
    ``Committed.of``); the cpu sum is exact (fractions), so adding and removing
    0.1 vCPU a million times never drifts from what the records add up to.
    """

    def __init__(self, list_records: Callable[[], Awaitable[list]]):
        self._list_records = list_records
        self._loaded = False
        #: uuid -> (generation, cpu, mem_mb, disk_gb, project or None when it holds
        #: no capacity)
        self._entries: dict[str, tuple] = {}
        self._cpu = Fraction(0)
        self._mem = 0
        self._disk = 0
        self._tenants: Counter = Counter()

    def on_change(self, change) -> None:
        """A ``store.RecordChange`` (``record`` None: deleted)."""
        if change.record is None:
            self._remove(change.uuid)
        else:
            self._put(change.record)

    async def __call__(self) -> Committed:
        if not self._loaded:
            records = await self._list_records()
            for rec in records:
                self._put(rec)
            self._loaded = True
        return self.current()

    def current(self) -> Committed:
        return Committed(float(self._cpu), self._mem, self._disk,
                         {p: n for p, n in self._tenants.items() if n > 0},
                         self._entries.keys())

    async def usage(self) -> capacity.Usage:
        """``capacity.usage_of`` of every record, from memory (the announcer's
        gossip metadata: it listed every record on each publish, ~10% of a node's
        CPU under placement load)."""
        c = await self()
        return capacity.Usage(cpu_used=c.cpu_used, mem_used_mb=c.mem_used_mb,
                              disk_used_gb=c.disk_used_gb,
                              containers=sum(c.tenants.values()), tenants=dict(c.tenants))

    def _put(self, rec) -> None:
        old = self._entries.get(rec.uuid)
        generation = getattr(rec, "generation", 0) or 0
        if old is not None and old[0] > generation:
            return  # an older copy of what is already counted
        self._remove(rec.uuid)
        if capacity.holds_capacity(rec):
            entry = (generation, Fraction(rec.cpu or 0), int(rec.memory or 0),
                     int(rec.disk or 0), rec.project_id)
            self._cpu += entry[1]
            self._mem += entry[2]
            self._disk += entry[3]
            self._tenants[rec.project_id] += 1
        else:
            entry = (generation, Fraction(0), 0, 0, None)
        self._entries[rec.uuid] = entry

    def _remove(self, uuid: str) -> None:
        old = self._entries.pop(uuid, None)
        if old is None or old[4] is None:
            return
        self._cpu -= old[1]
        self._mem -= old[2]
        self._disk -= old[3]
        self._tenants[old[4]] -= 1
        if self._tenants[old[4]] <= 0:
            del self._tenants[old[4]]


def load_of(state: policies.NodeState, project_id: str | None = None,
            plus: PlacementRequest | None = None) -> dict:
    """What a BID_COMMIT answer tells the coordinator of this node's truth: the
    allocations (committed records and live reservations, ``plus`` the request
    just admitted) and how many containers ``project_id`` holds here — the inputs
    of the policies' scores that the gossip metadata carries (``NodeState.from_meta``),
    minus the full tenant table (``messages.BidCommitRequest``: ``load``)."""
    cpu, mem, disk = state.cpu_used, state.mem_used_mb, state.disk_used_gb
    n = state.tenants.get(project_id, 0) if project_id is not None else 0
    if plus is not None:
        cpu += plus.cpu
        mem += plus.memory_mb
        disk += plus.disk_gb or 0
        n += 1
    load = {"cpu_used": round(float(cpu), 6), "mem_used_mb": int(mem),
            "disk_used_gb": int(disk)}
    if project_id is not None:
        load.update(project=project_id, project_n=int(n))
    return load


def _new_id() -> str:
    return str(uuidlib.uuid4())


class Bidder:
    """This node's side of the bid round. One per node; the only writer of its reservations.

    ``capacity_totals``: ``capacity.limits()`` — {cpus, mem_mb, disk_gb} — or a
    callable returning it (read on every bid: the totals are known only once the
    host has been inspected at start).
    ``store_view``: ``async () -> records | Committed``: every record held here
    (``store.list_containers``; records need ``uuid``, ``project_id``, ``cpu``,
    ``memory``, ``disk``), or their sums as a ``Committed``.
    ``local``: this node's ``LocalNode`` (az, runtimes, labels, draining); its
    ``facts`` are read on every bid, so ``local.set_draining(True)`` shows at once.
    A plain ``NodeFacts`` is accepted for nodes whose facts never change.
    ``clock``: ``IReactorTime``. ``new_id``: reservation id factory (uuid4; injectable
    so simulations replay). ``warm``: the runtimes' warm guests
    (``ContainerManager``; None: none), with

    - ``held_capacity() -> capacity.Held``: what they hold outside records,
      used like committed capacity;
    - ``yieldable_capacity() -> capacity.Held``: the part the runtimes give up
      for a container (booted guests);
    - ``yield_capacity(cpu, memory_mb, dry_run=False, request=None, token=None)
      -> capacity.Held``: set aside guests holding that much for the reservation
      ``token`` of ``request`` (a guest of its own shape first), or with
      ``dry_run`` tell what it would set aside;
    - ``keep_pledge(token)``: the reservation became a record: the guest of its
      shape waits for its create, the others go;
    - ``return_pledge(token, room)``: it ended without one: its guests go back to
      the pool as far as ``room`` (free now) holds them.
    """

    def __init__(self, node_name: str, capacity_totals: dict | Callable[[], dict],
                 store_view: Callable[[], Awaitable[list]], clock, ttl_s: float, policy,
                 tenant_mode: str = "off", local: LocalNode | NodeFacts | None = None,
                 new_id: Callable[[], str] = _new_id,
                 volumes_view: Callable[[str, list], Awaitable[list]] | None = None,
                 warm=None):
        if tenant_mode not in policies.TENANT_MODES:
            raise ValueError(f"tenant_mode must be one of {policies.TENANT_MODES}")
        self.node_name = node_name
        self._totals = capacity_totals if callable(capacity_totals) else (
            lambda t=dict(capacity_totals): t)
        self._store_view = store_view
        self._clock = clock
        self.ttl_s = float(ttl_s)
        self.policy = policy
        self.tenant_mode = tenant_mode
        if not isinstance(local, LocalNode):
            local = LocalNode(local)
        self.local = local
        self._new_id = new_id
        #: ``async (project_id, names) -> names held here`` (the volume driver)
        self._volumes_view = volumes_view
        #: the runtimes' warm guests (see the class docstring)
        self._warm = warm
        #: ids of live reservations that warm guests were set aside for
        self._pledged: set[str] = set()
        self._lock = defer.DeferredLock()
        self._reservations: dict[str, Reservation] = {}
        self._timers: dict[str, object] = {}
        self._committing: set[str] = set()
        #: uuid -> Deferreds of callers waiting for the commit of it in flight
        self._inflight: dict[str, list] = {}
        #: reservation ids answered "not held" by ``resolve`` (bounded, oldest
        #: dropped first): a COMMIT naming one is refused as ``ReservationExpired``.
        #: After a restart every reservation is gone anyway, so memory is enough.
        self._fenced: dict[str, str] = {}
        #: reservation ids a coordinator chose for BID_COMMIT -> uuid (bounded like
        #: the fences): each is used once, a repeat never bids again
        self._used: dict[str, str] = {}
        #: this node's truth as of its latest bid (``load_of``; None before any):
        #: what a BID_COMMIT answer carries back to the coordinator
        self.last_load: dict | None = None
        self.stats = Counter()

    # -- read-only views ----------------------------------------------------------

    @property
    def capacity_totals(self) -> dict:
        """{cpus, mem_mb, disk_gb} as of now."""
        return dict(self._totals())

    def reservations(self) -> list[Reservation]:
        """Live reservations (expired ones already dropped)."""
        self._purge()
        return list(self._reservations.values())

    def reservation(self, reservation_id: str) -> Reservation | None:
        self._purge()
        return self._reservations.get(reservation_id)

    def _held_now(self) -> capacity.Held:
        return self._warm.held_capacity() if self._warm is not None else capacity.Held()

    def state_of(self, committed) -> policies.NodeState:
        """The truth: ``committed`` (a ``Committed`` or the records) plus what the
        runtimes hold (warm guests) plus live reservations, as a NodeState. A
        reservation whose uuid already has a record is not counted twice."""
        if not isinstance(committed, Committed):
            committed = Committed.of(committed)
        cpu = committed.cpu_used
        mem = committed.mem_used_mb
        disk = committed.disk_used_gb
        held = self._held_now()
        cpu += held.cpus
        mem += held.mem_mb
        tenants = Counter(committed.tenants)
        for res in self._reservations.values():
            req = res.request
            if req.uuid in committed.uuids:
                continue
            cpu += req.cpu
            mem += req.memory_mb
            disk += req.disk_gb or 0
            tenants[req.project_id] += 1
        facts = self.local.facts
        totals = self._totals()
        give = self._warm.yieldable_capacity() if self._warm is not None \
            else capacity.Held()
        return policies.NodeState(
            name=self.node_name,
            cpus=float(totals.get("cpus", 0)),
            mem_mb=int(totals.get("mem_mb", 0)),
            disk_gb=int(totals.get("disk_gb", 0)),
            cpu_used=cpu, mem_used_mb=int(mem), disk_used_gb=int(disk),
            tenants=dict(tenants), az=facts.az, runtimes=tuple(facts.runtimes),
            labels=dict(facts.labels), draining=facts.draining,
            yield_cpu=give.cpus, yield_mem_mb=give.mem_mb)

    async def hold_if_room(self, cpu: float, memory_mb: int,
                           hold: Callable[[], None]) -> bool:
        """Call ``hold()`` and answer True when this node's free capacity (committed
        records, live reservations and what is held already) fits ``cpu`` and
        ``memory_mb`` more and it is not draining; else False. Under the bid lock,
        so no bid is admitted between the check and ``hold()``: a runtime asks
        this before it boots a warm guest (``LibvirtRuntime.warm_guest_room``),
        whose capacity ``hold()`` makes part of the node's held capacity."""
        async with self._lock:
            self._purge()
            state = self.state_of(await self._store_view())
            if (state.draining or cpu > state.cpu_free + policies.EPS
                    or memory_mb > state.mem_free_mb):
                return False
            hold()
            return True

    # -- the protocol ---------------------------------------------------------------

    async def bid(self, req: PlacementRequest) -> Bid | Decline:
        """Admit ``req`` against this node's truth and hold a reservation, or decline."""
        async with self._lock:
            return await self._admit(req, self._new_id())

    async def _admit(self, req: PlacementRequest, rid: str,
                     bar: float | None = None) -> Bid | Decline:
        """The bid itself; the caller holds ``self._lock``. ``rid``: the new
        reservation's id (this bidder's own, or the coordinator's in BID_COMMIT);
        ``bar``: the score the bid must reach, else it declines as ``outbid``
        (BID_COMMIT) and reserves nothing."""
        self._purge()
        # One live reservation per request uuid: a coordinator's later round
        # supersedes a bid whose answer it never received (it timed out).
        for old, res in list(self._reservations.items()):
            if res.request.uuid == req.uuid and old not in self._committing:
                self._drop(old)
        committed = await self._store_view()
        if not isinstance(committed, Committed):
            committed = Committed.of(committed)
        if req.uuid in committed.uuids or req.uuid in self._inflight:
            self.stats["declined"] += 1
            self.stats["decline_reason.exists"] += 1
            return Decline(self.node_name, f"exists: container {req.uuid} is already here")
        state = self.state_of(committed)
        if req.volumes and self._volumes_view is not None:
            held = await self._volumes_view(req.project_id, list(req.volumes))
            state = attrs.evolve(state, volumes=tuple(held))
        reason = policies.admit(req, state, self.tenant_mode, self.policy)
        if reason is not None:
            self.stats["declined"] += 1
            # by category ("cpu: ..." -> cpu) for zund_bidder_declines{reason}
            self.stats[f"decline_reason.{reason.split(':', 1)[0].strip()}"] += 1
            self.last_load = load_of(state, req.project_id)
            transient = self._only_reserved(req, committed, state)
            if transient:
                self.stats["declined_transient"] += 1
                reason += " (held by placements in flight)"
            return Decline(self.node_name, reason, transient=transient)
        room = self._room_for(req, state)
        if room is None:
            self.stats["declined"] += 1
            self.stats["decline_reason.yield"] += 1
            return Decline(self.node_name, "warm guests: they could not make room "
                                           "for the request", transient=True)
        after, give_up = room
        score = policies.rank_score(self.policy, req, after, self.tenant_mode)
        if bar is not None and score < bar:
            # the load without req, and no warm guest given up for a bid that is not made
            self.last_load = load_of(state, req.project_id)
            self.stats["declined"] += 1
            self.stats["decline_reason.outbid"] += 1
            return Decline(self.node_name, f"outbid: score {score:.4f} is below the next "
                                           f"candidate's {bar:.4f} by metadata")
        if give_up is not None:
            # in the same step as the dry run, so exactly those guests: the
            # reservation takes their place before anything else is admitted.
            # They are set aside, not destroyed: kept for the container if it
            # comes here, back in the pool if not (``_drop``)
            self._warm.yield_capacity(*give_up, request=req, token=rid)
            self._pledged.add(rid)
            self.stats["yielded"] += 1
        state = after
        self.last_load = load_of(state, req.project_id, req)
        expires_at = self._clock.seconds() + self.ttl_s
        self._reservations[rid] = Reservation(rid, req, expires_at, score)
        self._timers[rid] = self._clock.callLater(self.ttl_s, self._expire, rid)
        self.stats["reserved"] += 1
        return Bid(self.node_name, rid, score, expires_at)

    def _room_for(self, req: PlacementRequest, state: policies.NodeState) -> tuple | None:
        """``req`` was admitted against ``state``; when it fits only with what the
        warm guests hold, what they would give up for it (a dry run: none is
        given up here). ``(the state after that, (cpu, memory_mb) to give up or
        None)``; None when the guests waiting now cannot make the room (``state``
        was read before any await of the admission, the volume driver's: a create
        may have claimed a guest since)."""
        short_cpu = req.cpu - state.cpu_free
        short_mem = req.memory_mb - state.mem_free_mb
        if short_cpu <= policies.EPS and short_mem <= 0:
            return state, None
        if self._warm is None:
            return None
        give_up = (max(0.0, short_cpu), max(0, short_mem))
        released = self._warm.yield_capacity(*give_up, dry_run=True, request=req)
        after = attrs.evolve(
            state, cpu_used=state.cpu_used - released.cpus,
            mem_used_mb=state.mem_used_mb - released.mem_mb,
            yield_cpu=max(0.0, state.yield_cpu - released.cpus),
            yield_mem_mb=max(0, state.yield_mem_mb - released.mem_mb))
        if req.cpu > after.cpu_free + policies.EPS or req.memory_mb > after.mem_free_mb:
            return None
        return after, give_up

    def _only_reserved(self, req: PlacementRequest, committed: Committed,
                       state: policies.NodeState) -> bool:
        """Whether ``req``, declined against ``state`` (committed plus reservations),
        would be admitted against the committed records alone: the decline is then
        a passing one (a reservation is committed, released or expires within the
        TTL), and the coordinator may ask again instead of giving up."""
        if not any(res.request.uuid not in committed.uuids
                   for res in self._reservations.values()):
            return False
        held = self._held_now()
        bare = attrs.evolve(state, cpu_used=committed.cpu_used + held.cpus,
                            mem_used_mb=int(committed.mem_used_mb) + held.mem_mb,
                            disk_used_gb=int(committed.disk_used_gb),
                            tenants=dict(committed.tenants))
        return policies.admit(req, bare, self.tenant_mode, self.policy) is None

    async def bid_commit(self, req: PlacementRequest, reservation_id: str,
                         do_create: Callable[[Reservation], Awaitable],
                         existing: Callable[[], Awaitable] | None = None,
                         bar: float | None = None) -> object:
        """BID_COMMIT (the coordinator's fast path): bid for ``req`` and, when this
        node would bid, commit at once under the coordinator's ``reservation_id``
        -> what ``do_create`` returns; else the ``Decline``. ``bar``: the score
        (``policies.rank_score``) this node's must reach, else it declines as
        ``outbid`` (the coordinator's view of the next candidate: this node's own
        truth may have fallen below it since its metadata was published).

        Exactly once, as BID then COMMIT (invariant 4): the bid and the start of
        the commit happen in one hold of the lock, so no RELEASE, expiry or
        ``resolve`` can come between them. A reservation id is single-use: a
        delivery naming one already used (a duplicate, or a retry after a lost
        answer) returns the record the first made, or ``ReservationExpired`` when
        it made none; a fenced id (``resolve`` answered "not held") is always
        refused, so a late BID_COMMIT can never land after the coordinator moved on.
        """
        while True:
            async with self._lock:
                self._purge()
                uuid = req.uuid
                busy = uuid if uuid in self._inflight else None
                if busy is None:
                    if reservation_id in self._fenced or reservation_id in self._used \
                            or reservation_id in self._reservations:
                        return await self._repeated_or_expired(
                            reservation_id, existing if self._used.get(reservation_id) == uuid
                            else None)
                    self._spend(reservation_id, uuid)
                    answer = await self._admit(req, reservation_id, bar)
                    if isinstance(answer, Decline):
                        return answer
                    res = self._reservations[reservation_id]
                    self._committing.add(reservation_id)
                    self._inflight[uuid] = []
                    break
            # a commit of this uuid is in flight (a duplicated delivery): wait for it
            await self._wait_for(busy)
        self.stats["bid_commits"] += 1
        return await self._finish_commit(reservation_id, res, do_create)

    def _spend(self, reservation_id: str, uuid: str) -> None:
        """Mark a coordinator-chosen reservation id as used (bounded, oldest first)."""
        self._used[reservation_id] = uuid
        while len(self._used) > self.MAX_FENCES:
            self._used.pop(next(iter(self._used)))

    async def commit(self, reservation_id: str,
                     do_create: Callable[[Reservation], Awaitable],
                     existing: Callable[[], Awaitable] | None = None) -> object:
        """Turn a live reservation into a record: ``await do_create(reservation)``.

        ``do_create`` writes the record (uuid = ``reservation.request.uuid``) and
        returns what the caller wants back (the record). It runs outside the
        node lock (bids go on meanwhile) while the reservation keeps counting; the
        reservation is dropped under the lock once the record counts, so no bid is
        admitted between "reservation counts" and "record counts" (invariant 3).
        When the reservation is gone, ``existing()`` (the record this
        commit names, or None) decides: a record made by an earlier delivery of
        the same commit is returned (idempotent retry), else ``ReservationExpired``;
        a fenced reservation is always refused. If ``do_create`` raises, the
        reservation is dropped and the error propagates.
        """
        while True:
            async with self._lock:
                self._purge()
                res = self._reservations.get(reservation_id)
                busy = None
                if res is not None:
                    busy = res.request.uuid if res.request.uuid in self._inflight else None
                if busy is None and res is None:
                    return await self._repeated_or_expired(reservation_id, existing)
                if busy is None:
                    uuid = res.request.uuid
                    self._committing.add(reservation_id)
                    self._inflight[uuid] = []
                    break
            # a commit of this uuid is in flight (a duplicated COMMIT): its outcome
            # decides this one (the record it made, or the reservation gone)
            await self._wait_for(busy)
        return await self._finish_commit(reservation_id, res, do_create)

    async def _repeated_or_expired(self, reservation_id: str,
                                   existing: Callable[[], Awaitable] | None) -> object:
        """A delivery whose reservation is gone (or, for BID_COMMIT, already spent):
        the record an earlier delivery made, when ``existing()`` finds one and the
        id is not fenced (an idempotent retry); else ``ReservationExpired``. The
        caller holds ``self._lock``."""
        if existing is not None and reservation_id not in self._fenced:
            found = await existing()
            if found is not None:
                self.stats["commit_repeated"] += 1
                return found
        self.stats["commit_expired"] += 1
        raise errors.ReservationExpired(reservation_id=reservation_id, node=self.node_name)

    async def _finish_commit(self, reservation_id: str, res: Reservation,
                             do_create: Callable[[Reservation], Awaitable]) -> object:
        """``do_create`` outside the lock; then the reservation is dropped and the
        waiters for its uuid are told (invariant 3)."""
        uuid = res.request.uuid
        made = False
        try:
            result = await do_create(res)
            made = True
        finally:
            async with self._lock:
                self._committing.discard(reservation_id)
                self._drop(reservation_id, made=made)
                for waiter in self._inflight.pop(uuid, ()):
                    waiter.callback(None)
        self.stats["committed"] += 1
        return result

    def _wait_for(self, uuid: str) -> defer.Deferred:
        """Fires once the commit of ``uuid`` in flight has finished (either way)."""
        d: defer.Deferred = defer.Deferred()
        self._inflight[uuid].append(d)
        return d

    async def resolve(self, reservation_id: str, uuid: str,
                      lookup: Callable[[], Awaitable]) -> object | None:
        """COMMIT_STATUS: did the commit of ``reservation_id`` for ``uuid`` take?

        Under the node lock (so a commit being made finishes first): the record
        ``lookup()`` finds when this node holds ``uuid``; else None, after dropping
        every reservation of ``uuid`` and fencing ``reservation_id`` — from this
        answer on, the container can only come into being here through a new bid.
        """
        while True:
            async with self._lock:
                if uuid not in self._inflight:
                    found = await lookup()
                    if found is not None:
                        self.stats["resolved_held"] += 1
                        return found
                    for rid, res in list(self._reservations.items()):
                        if res.request.uuid == uuid or rid == reservation_id:
                            self._drop(rid)
                    self._fenced[reservation_id] = uuid
                    while len(self._fenced) > self.MAX_FENCES:
                        self._fenced.pop(next(iter(self._fenced)))
                    self.stats["resolved_fenced"] += 1
                    return None
            # a commit of this uuid is being made: its outcome is the answer
            await self._wait_for(uuid)

    #: fences kept (a fence only matters while its reservation could still be live;
    #: reservations live ``ttl_s``, so a few thousand cover any realistic rate)
    MAX_FENCES = 10000

    def release(self, reservation_id: str) -> None:
        """Free a reservation now. Unknown ids are ignored; one being committed is kept
        (its commit drops it when the record is written)."""
        if reservation_id in self._committing:
            return
        if self._drop(reservation_id):
            self.stats["released"] += 1

    # -- expiry ---------------------------------------------------------------------

    def _drop(self, rid: str, made: bool = False) -> bool:
        """Forget the reservation ``rid``; ``made``: its record was written. The
        warm guests set aside for it are kept for that container, or (no record)
        go back to the pool under the lock, as far as the node has room then."""
        timer = self._timers.pop(rid, None)
        if timer is not None and timer.active():
            timer.cancel()
        dropped = self._reservations.pop(rid, None) is not None
        if rid in self._pledged:
            self._pledged.discard(rid)
            if made:
                self._warm.keep_pledge(rid)
            else:
                d = defer.ensureDeferred(self._return_pledge(rid))
                d.addErrback(lambda f: log.failure("cluster.bid.pledge_not_returned", f))
        return dropped

    async def _return_pledge(self, rid: str) -> None:
        """The guests set aside for ``rid`` (which made no record) go back to the
        pool while the node's free capacity holds them. Until then they count
        nowhere: a bid admitted meanwhile may take their room, and they go."""
        async with self._lock:
            state = self.state_of(await self._store_view())
            self._warm.return_pledge(rid, capacity.Held(
                cpus=max(0.0, state.cpu_free), mem_mb=max(0, state.mem_free_mb)))

    def _expire(self, rid: str) -> None:
        self._timers.pop(rid, None)
        if rid in self._committing:
            return  # invariant 3: a commit in progress keeps its reservation
        if self._drop(rid):
            self.stats["expired"] += 1
            log.debug("cluster.bid.reservation_expired node={node} reservation={rid}",
                      node=self.node_name, rid=rid)

    def _purge(self) -> None:
        """Lazy expiry: the timers may not have run yet (a busy reactor, a paused clock)."""
        now = self._clock.seconds()
        for rid, res in list(self._reservations.items()):
            if res.expires_at <= now and rid not in self._committing:
                self._drop(rid)
                self.stats["expired"] += 1
