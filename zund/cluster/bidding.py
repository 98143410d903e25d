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
3. a reservation being committed never expires (its ``do_create`` runs under the
   lock and the expiry skips it); a reservation that expired can never be
   committed (``ReservationExpired``);
4. exactly once (issue 11 item 1): a reservation is single-use and bound to its
   request's uuid. ``resolve`` (COMMIT_STATUS) answers under the same lock as
   ``commit``: either the record exists (the commit took), or the reservation is
   dropped and its id fenced, so no COMMIT of it — late, duplicated or retried —
   can create the container afterwards. A COMMIT of a reservation already used
   returns the record it made (a retry after a lost answer), never a second one.

Reservations live in memory only: after a restart every one is gone, which is
safe (the coordinators' commits fail, they retry elsewhere).
"""

from __future__ import annotations

import uuid as uuidlib
from collections import Counter
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
    so simulations replay).
    """

    def __init__(self, node_name: str, capacity_totals: dict | Callable[[], dict],
                 store_view: Callable[[], Awaitable[list]], clock, ttl_s: float, policy,
                 tenant_mode: str = "off", local: LocalNode | NodeFacts | None = None,
                 new_id: Callable[[], str] = _new_id,
                 volumes_view: Callable[[str, list], Awaitable[list]] | None = None):
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
        self._lock = defer.DeferredLock()
        self._reservations: dict[str, Reservation] = {}
        self._timers: dict[str, object] = {}
        self._committing: set[str] = set()
        #: reservation ids answered "not held" by ``resolve`` (bounded, oldest
        #: dropped first): a COMMIT naming one is refused as ``ReservationExpired``.
        #: After a restart every reservation is gone anyway, so memory is enough.
        self._fenced: dict[str, str] = {}
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

    def state_of(self, committed) -> policies.NodeState:
        """The truth: ``committed`` (a ``Committed`` or the records) plus live
        reservations, as a NodeState. A reservation whose uuid already has a record
        is not counted twice."""
        if not isinstance(committed, Committed):
            committed = Committed.of(committed)
        cpu = committed.cpu_used
        mem = committed.mem_used_mb
        disk = committed.disk_used_gb
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
        return policies.NodeState(
            name=self.node_name,
            cpus=float(totals.get("cpus", 0)),
            mem_mb=int(totals.get("mem_mb", 0)),
            disk_gb=int(totals.get("disk_gb", 0)),
            cpu_used=cpu, mem_used_mb=int(mem), disk_used_gb=int(disk),
            tenants=dict(tenants), az=facts.az, runtimes=tuple(facts.runtimes),
            labels=dict(facts.labels), draining=facts.draining)

    # -- the protocol ---------------------------------------------------------------

    async def bid(self, req: PlacementRequest) -> Bid | Decline:
        """Admit ``req`` against this node's truth and hold a reservation, or decline."""
        async with self._lock:
            self._purge()
            # One live reservation per request uuid: a coordinator's later round
            # supersedes a bid whose answer it never received (it timed out).
            for rid, res in list(self._reservations.items()):
                if res.request.uuid == req.uuid and rid not in self._committing:
                    self._drop(rid)
            committed = await self._store_view()
            if not isinstance(committed, Committed):
                committed = Committed.of(committed)
            if req.uuid in committed.uuids:
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
                return Decline(self.node_name, reason)
            score = policies.rank_score(self.policy, req, state, self.tenant_mode)
            rid = self._new_id()
            expires_at = self._clock.seconds() + self.ttl_s
            self._reservations[rid] = Reservation(rid, req, expires_at, score)
            self._timers[rid] = self._clock.callLater(self.ttl_s, self._expire, rid)
            self.stats["reserved"] += 1
            return Bid(self.node_name, rid, score, expires_at)

    async def commit(self, reservation_id: str,
                     do_create: Callable[[Reservation], Awaitable],
                     existing: Callable[[], Awaitable] | None = None) -> object:
        """Turn a live reservation into a record: ``await do_create(reservation)``.

        ``do_create`` writes the record (uuid = ``reservation.request.uuid``) and
        returns what the caller wants back (the record). It runs under the
        node lock, so no bid is admitted between "reservation counts" and "record
        counts". When the reservation is gone, ``existing()`` (the record this
        commit names, or None) decides: a record made by an earlier delivery of
        the same commit is returned (idempotent retry), else ``ReservationExpired``;
        a fenced reservation is always refused. If ``do_create`` raises, the
        reservation is dropped and the error propagates.
        """
        async with self._lock:
            self._purge()
            res = self._reservations.get(reservation_id)
            if res is None:
                if existing is not None and reservation_id not in self._fenced:
                    found = await existing()
                    if found is not None:
                        self.stats["commit_repeated"] += 1
                        return found
                self.stats["commit_expired"] += 1
                raise errors.ReservationExpired(reservation_id=reservation_id,
                                                node=self.node_name)
            self._committing.add(reservation_id)
            try:
                result = await do_create(res)
            finally:
                self._committing.discard(reservation_id)
                self._drop(reservation_id)
            self.stats["committed"] += 1
            return result

    async def resolve(self, reservation_id: str, uuid: str,
                      lookup: Callable[[], Awaitable]) -> object | None:
        """COMMIT_STATUS: did the commit of ``reservation_id`` for ``uuid`` take?

        Under the node lock (so a commit being made finishes first): the record
        ``lookup()`` finds when this node holds ``uuid``; else None, after dropping
        every reservation of ``uuid`` and fencing ``reservation_id`` — from this
        answer on, the container can only come into being here through a new bid.
        """
        async with self._lock:
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

    def _drop(self, rid: str) -> bool:
        timer = self._timers.pop(rid, None)
        if timer is not None and timer.active():
            timer.cancel()
        return self._reservations.pop(rid, None) is not None

    def _expire(self, rid: str) -> None:
        self._timers.pop(rid, None)
        if rid in self._committing:
            return  # invariant 3: a commit in progress keeps its reservation
        if self._reservations.pop(rid, None) is not None:
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
