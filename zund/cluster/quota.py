"""Per-project quotas across the cluster, with no central database and no overshoot.

Who decides: each project has ONE ledger holder, the first node of the project's
rendezvous order (highest ``sha256(key|node)``) over the alive members. Every
create of the project claims its resources from the holder before placement (one
peer round trip; a local call on the holder itself). The holder grants under a
per-project lock when committed usage + live claims + the demand fit the limits,
so two entry nodes can never both be granted the last unit.

A claim is keyed by the container uuid (a duplicated message grants once). It
becomes usage when the entry node reports the create committed, is dropped when
it reports the placement failed or the container deleted, and when neither
arrives within ``claim_ttl_s`` the holder recounts the project from the real
records (a scatter-gather of the project's containers), which decides it.

When the holder changes (a member died, left or joined above it) the new holder
rebuilds before it grants: usage from the real records on every alive node, plus
the live claims of the node that held the ledger before (the next node in the
order, when alive). A holder that finds a node not answering refuses to grant
(ServiceUnavailable): it never guesses low.

Leases: a claim that reaches the holder may also lease the entry node a block of
the project's headroom (``lease_share``); the holder counts the whole block until
it is handed back or its ``lease_ttl_s`` ends, so usage + claims + leases never
pass the limit. Meanwhile the node claims from its block locally (no round trip)
and hands the block back, with the containers it counted, in its next claim to
that holder or batched (``QuotaLeaseReturn``). A new holder makes every node report
and drop the leases of an earlier one (``QuotaLeasePeek`` with ``revoke``).

Limits set by an admin (``project:<id>`` and ``class:<name>`` keys) are written
to the first ``limit_replicas`` nodes of the key's rendezvous order, versioned
``(seconds, node)``; a write needs a majority of them; a read asks all of them
and the newest version wins (and is written back to the replicas that had an
older one), so the limits survive the death of any one node. The project's
holder is the first replica of its limits, so it grants with a local copy. A
replica keeps its copies in the node's store (``quota_limits`` table) before it
acknowledges them and loads them when it starts, so a restart of every replica
loses nothing an admin was told succeeded.

Who may call: the API (limits, usage), ``ClusterContainers`` (claim/settle), the
peer server (``handle``). Pure parts (``rendezvous``, ``overs``, ``Ledger``) do
no I/O and take ``now``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from typing import Callable

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from zund.cluster import messages
from zund.common import errors
from zund.common.context import RequestContext

log = Logger()

#: the resources Zun counts, in Zun's order
RESOURCES = ("containers", "cpu", "memory", "disk")
#: the states in which a node may hold a ledger or a limit replica
LIVE = frozenset({"alive", "suspect"})
#: Zun's statuses of a container that no longer counts
GONE_STATUSES = frozenset({"Deleted"})
DEFAULT_CLASS = "default"


@attrs.frozen
class QuotaConfig:
    """Plain values from ``[quota]`` (``from_conf``)."""

    containers: int = 40
    cpu: int = 20
    memory: int = 51200
    disk: int = 100
    enforce: bool = True
    claim_ttl_s: float = 30.0
    limit_replicas: int = 3
    rebuild_interval_s: float = 300.0
    #: quota leases: a node holding one claims locally, with no round trip
    leases: bool = True
    #: how long the holder counts a lease; the node uses it for half of that
    lease_ttl_s: float = 20.0
    #: containers one lease holds at most
    lease_max_containers: int = 8
    #: a spent lease waits this long for a claim to the same holder to carry it
    lease_return_delay_s: float = 1.0

    def defaults(self) -> dict:
        return {r: getattr(self, r) for r in RESOURCES}

    @classmethod
    def from_conf(cls, conf) -> "QuotaConfig":
        q = conf.quota
        return cls(containers=q.containers, cpu=q.cpu, memory=q.memory, disk=q.disk,
                   enforce=q.enforce, claim_ttl_s=q.claim_ttl_s,
                   limit_replicas=q.limit_replicas, rebuild_interval_s=q.rebuild_interval_s,
                   leases=q.leases, lease_ttl_s=q.lease_ttl_s,
                   lease_max_containers=q.lease_max_containers,
                   lease_return_delay_s=q.lease_return_delay_s)


# -- pure parts -------------------------------------------------------------------------


def rendezvous(key: str, names) -> list[str]:
    """``names`` in ``key``'s rendezvous (highest random weight) order: every node
    computes the same order from the same members, and a member leaving moves only
    the keys it was first for."""
    def weight(name: str) -> bytes:
        return hashlib.sha256(f"{key}|{name}".encode()).digest()
    return sorted(set(names), key=weight, reverse=True)


def project_key(project_id: str) -> str:
    return f"project:{project_id}"


def class_key(name: str) -> str:
    return f"class:{name}"


def demand(cpu: float, memory_mb: int, disk_gb: int | None) -> dict:
    """What one container counts against its project."""
    return {"containers": 1, "cpu": float(cpu or 0), "memory": int(memory_mb or 0),
            "disk": int(disk_gb or 0)}


def record_demand(rec) -> dict:
    return demand(rec.cpu or 0, int(rec.memory or 0), rec.disk or 0)


def total(amounts) -> dict:
    """The sum of ``amounts``; fractional vCPUs rounded to 1e-6 so that twenty
    0.1-vCPU containers count 2, not 2.0000000000000004 (which would be over a
    limit of 2)."""
    out = dict.fromkeys(RESOURCES, 0)
    for a in amounts:
        for r in RESOURCES:
            out[r] += a.get(r, 0)
    out["cpu"] = round(out["cpu"], 6)
    return out


def overs(limits: dict, used: dict, wanted: dict) -> list[str]:
    """The resources ``wanted`` would take past their limit (``-1``: unlimited),
    sorted as Zun reports them."""
    after = total([used, wanted])
    return sorted(r for r in RESOURCES if limits.get(r, -1) >= 0 and after[r] > limits[r])


def effective_limits(defaults: dict, class_limits: dict | None,
                     project_limits: dict | None) -> dict:
    """Zun's precedence: the project's own value, else the ``default`` class's,
    else the configured default."""
    out = dict(defaults)
    out.update({k: int(v) for k, v in (class_limits or {}).items() if k in RESOURCES})
    out.update({k: int(v) for k, v in (project_limits or {}).items() if k in RESOURCES})
    return out


def quota_exceeded(resources: list[str]) -> errors.QuotaExceeded:
    return errors.QuotaExceeded(resources=str(list(resources)))


def lease_share(limits: dict, held: dict, live_nodes: int, max_containers: int) -> dict | None:
    """A lease's block of the headroom: per limited resource
    ``(limit - held) / (2 * live_nodes)`` rounded down (containers at most
    ``max_containers``), ``-1`` for an unlimited one; None when it would not
    hold one container."""
    out = {}
    parts = 2 * max(1, live_nodes)
    for r in RESOURCES:
        limit = limits.get(r, -1)
        if limit < 0:
            out[r] = -1
            continue
        share = max(0.0, (limit - held[r]) / parts)
        if r == "containers":
            out[r] = min(int(share), max_containers)
        elif r == "cpu":
            out[r] = math.floor(share * 1000) / 1000
        else:
            out[r] = int(share)
    return None if out["containers"] == 0 else out


def counted_part(amounts: dict) -> dict:
    """What a lease's amounts count against the limits (unlimited: nothing)."""
    return {r: max(0, v) for r, v in amounts.items()}


def fits(remaining: dict, wanted: dict) -> bool:
    return all(remaining.get(r, 0) < 0 or wanted.get(r, 0) <= remaining.get(r, 0) + 1e-9
               for r in RESOURCES)


def minus(remaining: dict, wanted: dict, sign: int = 1) -> dict:
    out = dict(remaining)
    for r in RESOURCES:
        if out.get(r, 0) >= 0:
            out[r] = round(out.get(r, 0) - sign * wanted.get(r, 0), 6)
    return out


@attrs.define
class Ledger:
    """One project's counts on its holder. ``usage``: uuid -> demand of committed
    containers; ``claims``: uuid -> (demand, expires_at). Pure: ``now`` comes in."""

    usage: dict = attrs.field(factory=dict)
    claims: dict = attrs.field(factory=dict)
    #: uuids committed since the recount in progress started (kept across it)
    committed_during_rebuild: dict = attrs.field(factory=dict)
    rebuilding: bool = False
    rebuilt_at: float = 0.0
    #: lease_id -> [node, remaining amounts (-1: unlimited), expires_at]
    leases: dict = attrs.field(factory=dict)
    #: uuid -> until: released before a lease return reported them
    released: dict = attrs.field(factory=dict)
    #: claim uuid -> (the lease_id granted with it, until when a repeat of the
    #: claim may arrive: the lease's TTL): a claim is granted one lease at most
    granted_for: dict = attrs.field(factory=dict)

    def in_use(self) -> dict:
        return total(self.usage.values())

    def claimed(self) -> dict:
        """Committed usage plus claims in flight (what the usage view shows; a
        lease adopted from a previous holder, ``lease:<id>``, is not usage)."""
        return total(list(self.usage.values()) + [d for u, (d, _) in self.claims.items()
                                                  if not u.startswith("lease:")])

    def held(self) -> dict:
        """What grants must leave room for: usage, claims and live leases."""
        return total(list(self.usage.values()) + [d for d, _ in self.claims.values()]
                     + [counted_part(a) for _, a, _ in self.leases.values()])

    def grant_lease(self, lease_id: str, node: str, limits: dict, live_nodes: int,
                    max_containers: int, now: float, ttl_s: float,
                    uuid: str | None = None) -> tuple | None:
        """Lease ``node`` a block of the headroom (``lease_share``): ``(lease_id,
        amounts)``, or None when the headroom is too small or ``node`` still holds
        a live lease here. A repeat of the claim ``uuid`` that was granted a lease
        (a duplicated message) is answered that lease again while it lives, so the
        node learns of it whichever answer reaches it, and none once it is over: a
        late copy never leases a block the node would not know of (it would count
        until its TTL)."""
        self.granted_for = {u: g for u, g in self.granted_for.items() if g[1] > now}
        if uuid in self.granted_for:
            granted = self.granted_for[uuid][0]
            again = self.leases.get(granted)
            if again is not None and again[0] == node and again[2] > now:
                return granted, dict(again[1])
            return None
        if any(n == node and expires > now for n, _, expires in self.leases.values()):
            return None
        amounts = lease_share(limits, self.held(), live_nodes, max_containers)
        if amounts is None:
            return None
        self.leases[lease_id] = [node, dict(amounts), now + ttl_s]
        if uuid is not None:
            self.granted_for[uuid] = (lease_id, now + ttl_s)
        return lease_id, amounts

    def return_lease(self, lease_id: str, committed: dict, pending: dict, now: float,
                     ttl_s: float) -> None:
        """A lease is over: its created containers become usage, its creates in
        flight claims; the rest of its block is free. Idempotent; a container
        released meanwhile is not counted."""
        self.leases.pop(lease_id, None)
        self.claims.pop(f"lease:{lease_id}", None)  # adopted from a previous holder
        for u, wanted in committed.items():
            if u in self.released or u in self.usage:
                continue
            self.claims.pop(u, None)
            self.usage[u] = dict(wanted)
            if self.rebuilding:
                self.committed_during_rebuild[u] = dict(wanted)
        for u, wanted in pending.items():
            if u not in self.released and u not in self.usage and u not in self.claims:
                self.claims[u] = (dict(wanted), now + ttl_s)

    def note_released(self, uuid: str, until: float) -> None:
        self.released[uuid] = until

    def claim(self, uuid: str, wanted: dict, limits: dict, now: float, ttl_s: float) -> None:
        """Grant or raise QuotaExceeded. A uuid already claimed or counted is
        granted again (a duplicated message must not count twice)."""
        if uuid in self.usage:
            return
        if uuid in self.claims:
            self.claims[uuid] = (self.claims[uuid][0], now + ttl_s)
            return
        over = overs(limits, self.held(), wanted)
        if over:
            raise quota_exceeded(over)
        self.claims[uuid] = (dict(wanted), now + ttl_s)

    def settle(self, uuid: str, committed: bool) -> bool:
        """Apply a commit or a release; False when the uuid is unknown and
        committed (the ledger then needs a recount)."""
        if not committed:
            self.claims.pop(uuid, None)
            self.usage.pop(uuid, None)
            self.committed_during_rebuild.pop(uuid, None)
            return True
        if uuid in self.claims:
            wanted, _ = self.claims.pop(uuid)
            self.usage[uuid] = wanted
            if self.rebuilding:
                self.committed_during_rebuild[uuid] = wanted
            return True
        return uuid in self.usage

    def expired(self, now: float) -> list[str]:
        return ([u for u, (_, expires) in self.claims.items() if expires <= now]
                + [f"lease:{lid}" for lid, (_, _, expires) in self.leases.items()
                   if expires <= now])

    def rebuild(self, records_usage: dict, adopted_claims: dict, now: float,
                ttl_s: float) -> None:
        """Replace usage with the real records' (plus what was committed while
        the records were gathered); claims found as records become usage; expired
        claims without a record are dropped; ``adopted_claims`` (uuid -> demand,
        from the previous holder) count as fresh claims."""
        usage = dict(records_usage)
        usage.update(self.committed_during_rebuild)
        claims = {}
        for u, (wanted, expires) in self.claims.items():
            if u not in usage and expires > now:
                claims[u] = (wanted, expires)
        for u, wanted in adopted_claims.items():
            if u not in usage and u not in claims:
                claims[u] = (dict(wanted), now + ttl_s)
        self.usage, self.claims = usage, claims
        # a live lease keeps counting its whole block (its created containers may
        # also be in the records: counted twice until it is returned, never less)
        self.leases = {lid: lease for lid, lease in self.leases.items() if lease[2] > now}
        self.released = {u: until for u, until in self.released.items() if until > now}
        self.committed_during_rebuild = {}
        self.rebuilding = False
        self.rebuilt_at = now


@attrs.define
class HeldLease:
    """A lease this node holds (the entry side): ``remaining`` of its block,
    usable until ``use_until`` (this node's clock, from when it asked: half the
    holder's TTL, so it stops before the holder stops counting it), ``used``:
    uuid -> demand of the creates it counted, ``committed``: those created."""

    lease_id: str
    granter: str
    remaining: dict
    use_until: float
    used: dict = attrs.field(factory=dict)
    committed: set = attrs.field(factory=set)

    def take(self, uuid: str, wanted: dict, now: float) -> bool:
        if uuid in self.used:
            return True
        if now >= self.use_until or not fits(self.remaining, wanted):
            return False
        self.remaining = minus(self.remaining, wanted)
        self.used[uuid] = dict(wanted)
        return True

    def give_back(self, uuid: str) -> None:
        wanted = self.used.pop(uuid)
        self.committed.discard(uuid)
        self.remaining = minus(self.remaining, wanted, -1)

    def report(self) -> tuple:
        """``(lease_id, committed, pending)`` as a return carries it."""
        committed = {u: d for u, d in self.used.items() if u in self.committed}
        pending = {u: d for u, d in self.used.items() if u not in self.committed}
        return self.lease_id, committed, pending


@attrs.define
class LimitsTable:
    """This node's replicas of limits: key -> (limits, version); newest wins."""

    entries: dict = attrs.field(factory=dict)

    def put(self, key: str, limits: dict, version: tuple) -> bool:
        held = self.entries.get(key)
        if held is not None and tuple(held[1]) >= tuple(version):
            return False
        self.entries[key] = ({k: int(v) for k, v in limits.items() if k in RESOURCES},
                             tuple(version))
        return True

    def get(self, key: str):
        return self.entries.get(key)


# -- the node's quota service -------------------------------------------------------------


class QuotaService(service.Service):
    """Quotas as seen from node ``node``; a child of the node's service tree after
    the store: ``startService`` loads this node's limit replicas from ``store``.

    ``config``: QuotaConfig; ``clock``: IReactorTime;
    ``view``: ``() -> list[NodeView]`` (gossip, this node included), None for a
        single node (it holds every ledger);
    ``client``: the PeerClient (``call(node, msg)``), None for a single node;
    ``local_records``: ``async (project_id) -> list[ContainerRecord]`` on this node;
    ``list_remote``: ``async (node, ctx) -> list[ContainerRecord]`` (LIST on a peer);
    ``store``: the node's ``zund.store.Store`` that keeps the limit replicas
        (``put_quota_limits`` / ``list_quota_limits``); None: memory only (tests).
    """

    name = "quota"
    #: rendezvous orders remembered (one per project or limits key in use)
    ORDERS_MAX = 4096

    def __init__(self, node: str, config: QuotaConfig, clock, local_records: Callable,
                 view: Callable | None = None, client=None,
                 list_remote: Callable | None = None, store=None):
        self.node = node
        self._store = store
        self.config = config
        self._clock = clock
        self._local_records = local_records
        self._view = view
        self._client = client
        self._list_remote = list_remote
        self.limits = LimitsTable()
        self.ledgers: dict[str, Ledger] = {}
        self._locks: dict[str, defer.DeferredLock] = {}
        self._class_cache: tuple[float, dict] | None = None
        #: key -> (member names, their rendezvous order); never mutated by callers
        self._orders: dict[str, tuple[frozenset, list[str]]] = {}
        #: project -> the lease this node holds from the project's holder
        self.held_leases: dict[str, HeldLease] = {}
        self._lease_timers: dict[str, object] = {}
        self._lease_seq = itertools.count(1)
        #: holder -> spent leases to hand back: [(project_id, lease_id, committed,
        #: pending)], carried by the next claim to it or sent after a short delay
        self._returns: dict[str, list] = {}
        self._return_timers: dict[str, object] = {}
        #: project -> how many times a holder revoked this node's lease of it: a
        #: grant answering a claim sent before a revoke may already be freed there
        self._revokes: dict[str, int] = {}
        #: lease_id -> (project_id, lease_id, committed, pending): returns sent and
        #: not acknowledged (a revoke reports them: they may never arrive)
        self._sending: dict[str, tuple] = {}

    # -- start: the durable limit replicas ---------------------------------------------

    def startService(self):
        super().startService()
        return defer.Deferred.fromCoroutine(self._load())

    def stopService(self):
        for call in [*self._lease_timers.values(), *self._return_timers.values()]:
            if call.active():
                call.cancel()
        self._lease_timers.clear()
        self._return_timers.clear()
        return super().stopService()

    async def _load(self) -> None:
        if self._store is None:
            return
        held = await self._store.list_quota_limits()
        for key, (limits, version) in held.items():
            self.limits.put(key, limits, version)
        log.info("quota.limits.loaded node={node} keys={n}", node=self.node, n=len(held))

    async def _keep(self, key: str, limits: dict, version: tuple) -> None:
        """Hold a replica of ``key``'s limits at ``version`` when it is newer than
        ours: durable in the store first, so an acknowledged copy survives a restart."""
        held = self.limits.get(key)
        if held is not None and tuple(held[1]) >= tuple(version):
            return
        if self._store is not None:
            await self._store.put_quota_limits(key, dict(limits), tuple(version))
        self.limits.put(key, limits, version)

    # -- membership ------------------------------------------------------------------

    def _members(self) -> dict:
        if self._view is None:
            return {}
        return {n.name: n for n in self._view() if n.state in LIVE}

    def _order(self, key: str) -> list[str]:
        members = self._members()
        if not members:
            return [self.node]
        names = frozenset(members) | {self.node}
        # every claim and settle asks: hash the members once per membership
        cached = self._orders.get(key)
        if cached is not None and cached[0] == names:
            return cached[1]
        order = rendezvous(key, names)
        if len(self._orders) >= self.ORDERS_MAX:
            self._orders.clear()
        self._orders[key] = (names, order)
        return order

    def holder(self, project_id: str) -> str:
        return self._order(project_key(project_id))[0]

    def replicas(self, key: str) -> list[str]:
        return self._order(key)[:max(1, self.config.limit_replicas)]

    async def _call(self, name: str, msg):
        node = self._members().get(name)
        if node is None:
            raise errors.ServiceUnavailable(reason=f"node {name} is not alive")
        return await self._client.call(node, msg)

    # -- peer handler ----------------------------------------------------------------

    async def handle(self, msg):
        """Serve a quota peer message (called by the peer server)."""
        if isinstance(msg, messages.QuotaClaimRequest):
            return await self._claim_here(msg.project_id, msg.uuid, msg.resources)
        if isinstance(msg, messages.QuotaSettleRequest):
            return await self._settle_here(msg.project_id, msg.uuid, msg.committed)
        if isinstance(msg, messages.QuotaLimitsPut):
            await self._keep(msg.key, msg.limits, msg.version)
            return None
        if isinstance(msg, messages.QuotaLimitsGet):
            return self.limits.get(msg.key)
        if isinstance(msg, messages.QuotaUsageRequest):
            return await self._usage_here(msg.project_id)
        if isinstance(msg, messages.QuotaClaimsRequest):
            ledger = self.ledgers.get(msg.project_id)
            if ledger is None:
                return {}
            out = {u: d for u, (d, _) in ledger.claims.items()}
            # leases count on the next holder as claims until their TTL
            out.update({f"lease:{lid}": counted_part(a)
                        for lid, (_, a, _) in ledger.leases.items()})
            return out
        if isinstance(msg, messages.QuotaLeaseClaim):
            return await self._lease_claim_here(msg)
        if isinstance(msg, messages.QuotaLeaseReturn):
            for project_id, lease_id, committed, pending in msg.returns:
                await self._return_here(project_id, lease_id, committed, pending)
            return None
        if isinstance(msg, messages.QuotaLeasePeek):
            return self._peek_here(msg.project_id, msg.revoke)
        raise errors.UnsupportedPeerOperation(operation=msg.OP.name, node=self.node)

    # -- claims (the holder side) ----------------------------------------------------

    def _lock(self, project_id: str) -> defer.DeferredLock:
        return self._locks.setdefault(project_id, defer.DeferredLock())

    def _not_holder(self, project_id: str) -> errors.ServiceUnavailable:
        return errors.ServiceUnavailable(
            reason=f"node {self.node} does not hold the quota ledger of project "
                   f"{project_id} (membership changing; retry)")

    async def _ledger(self, project_id: str) -> Ledger:
        """The project's ledger, rebuilt first when this node just became its
        holder, a claim expired or the periodic recount is due. Call under the lock."""
        if self.holder(project_id) != self.node:
            self.ledgers.pop(project_id, None)  # when it comes back, it recounts
            raise self._not_holder(project_id)
        now = self._clock.seconds()
        ledger = self.ledgers.get(project_id)
        due = (ledger is None or ledger.expired(now)
               or now - ledger.rebuilt_at >= self.config.rebuild_interval_s)
        if due:
            fresh = ledger or Ledger()
            fresh.rebuilding = True
            try:
                records, adopted = await self._recount(project_id, ledger is None)
            except BaseException:
                fresh.rebuilding = False
                raise
            fresh.rebuild(records, adopted, self._clock.seconds(), self.config.claim_ttl_s)
            self.ledgers[project_id] = fresh
            log.info("quota.ledger.rebuilt project={project} containers={n} claims={c}",
                     project=project_id, n=len(fresh.usage), c=len(fresh.claims))
            ledger = fresh
        return ledger

    async def _recount(self, project_id: str, takeover: bool) -> tuple[dict, dict]:
        """The project's real usage on every alive node (all must answer), and on a
        takeover the previous holder's live claims."""
        records = list(await self._local_records(project_id))
        ctx = RequestContext(user_id="zund-quota", project_id=project_id)
        others = [n for name, n in self._members().items() if name != self.node]
        adopted: dict = {}
        if others:
            answers = await defer.DeferredList(
                [defer.Deferred.fromCoroutine(self._list_remote(n, ctx)) for n in others],
                consumeErrors=True)
            for (ok, result), n in zip(answers, others):
                if not ok:
                    raise errors.ServiceUnavailable(
                        reason=f"quota of project {project_id}: node {n.name} did not "
                               f"report its containers ({result.getErrorMessage()})")
                records.extend(result)
        usage = {r.uuid: record_demand(r) for r in records
                 if r.project_id == project_id and r.status not in GONE_STATUSES}
        if takeover and (usage or project_id in self.held_leases):
            # leases granted by an earlier holder: their nodes stop using them and
            # report what they counted (creates in flight become claims here).
            # A project with no container anywhere had no lease worth asking for
            # (a brand-new project: no round trips).
            adopted.update(await self._revoke_leases(project_id, others))
        order = self._order(project_key(project_id))
        if takeover and len(order) > 1:
            try:
                adopted.update(await self._call(order[1],
                                                messages.QuotaClaimsRequest(project_id)))
            except errors.ZundError as e:
                # the previous holder is gone: its unsettled claims are either
                # records by now or will never be (claim_ttl_s > one placement)
                log.info("quota.ledger.no_previous_claims project={project} reason={r}",
                         project=project_id, r=str(e))
        return usage, adopted

    async def _revoke_leases(self, project_id: str, others) -> dict:
        used = {}
        for per_lease in self._peek_here(project_id, True).values():
            used.update(per_lease)
        answers = await defer.DeferredList(
            [defer.Deferred.fromCoroutine(self._client.call(
                n, messages.QuotaLeasePeek(project_id, True))) for n in others],
            consumeErrors=True)
        for (ok, result), n in zip(answers, others):
            if ok:
                for per_lease in result.values():
                    used.update(per_lease)
            elif not result.check(errors.UnsupportedPeerOperation):  # older: no leases
                raise errors.ServiceUnavailable(
                    reason=f"quota of project {project_id}: node {n.name} did not "
                           f"report its leases ({result.getErrorMessage()})")
        return used

    async def _effective_limits(self, project_id: str) -> dict:
        own = self.limits.get(project_key(project_id))
        return effective_limits(self.config.defaults(), await self._default_class(),
                                own[0] if own else None)

    async def _default_class(self) -> dict:
        now = self._clock.seconds()
        if self._class_cache is not None and now - self._class_cache[0] < 5.0:
            return self._class_cache[1]
        try:
            found = await self._read(class_key(DEFAULT_CLASS))
        except errors.ServiceUnavailable:
            if self._class_cache is not None:
                return self._class_cache[1]
            raise
        values = found[0] if found else {}
        self._class_cache = (now, values)
        return values

    async def _claim_here(self, project_id: str, uuid: str, wanted: dict) -> None:
        lock = self._lock(project_id)
        await lock.acquire()
        try:
            ledger = await self._ledger(project_id)
            limits = await self._effective_limits(project_id)
            await self._claim_fitting(project_id, ledger, uuid, wanted, limits)
        finally:
            lock.release()

    async def _claim_fitting(self, project_id: str, ledger: Ledger, uuid: str,
                             wanted: dict, limits: dict) -> None:
        """``ledger.claim``; when only the nodes' leases stand in the way, take them
        back first (their creates become claims) rather than refuse a create that
        fits the limit. Call under the project's lock."""
        ttl = self.config.claim_ttl_s
        try:
            return ledger.claim(uuid, wanted, limits, self._clock.seconds(), ttl)
        except errors.QuotaExceeded:
            without_leases = total(list(ledger.usage.values())
                                   + [d for d, _ in ledger.claims.values()])
            if not ledger.leases or overs(limits, without_leases, wanted):
                raise
        by_node: dict[str, list] = {}
        for lease_id, (node, _, _) in ledger.leases.items():
            by_node.setdefault(node, []).append(lease_id)
        for node, lease_ids in sorted(by_node.items()):
            try:
                reported = (self._peek_here(project_id, True) if node == self.node else
                            await self._call(node, messages.QuotaLeasePeek(project_id, True)))
            except errors.ZundError as e:
                log.info("quota.lease.reclaim_failed project={project} node={node} "
                         "reason={r}", project=project_id, node=node, r=str(e))
                continue  # its lease keeps counting until its TTL
            for lease_id, used in reported.items():
                ledger.return_lease(lease_id, {}, used, self._clock.seconds(), ttl)
            # A lease it does not report will never be used there: its grant is
            # still travelling (the claim it answers left the node before this
            # revoke arrived, since the lease was granted before this reclaim took
            # the lock, so the node hands it back unused: ``_accept_lease``), or
            # the node restarted since. It stops counting now.
            for lease_id in lease_ids:
                if lease_id not in reported:
                    ledger.return_lease(lease_id, {}, {}, self._clock.seconds(), ttl)
        ledger.claim(uuid, wanted, limits, self._clock.seconds(), ttl)

    async def _settle_here(self, project_id: str, uuid: str, committed: bool) -> None:
        ledger = self.ledgers.get(project_id)
        if ledger is None:
            return  # not held here: whoever holds it recounts from the records
        if not committed and ledger.leases:
            # a lease's container may be reported after its release: not counted then
            ledger.note_released(uuid, self._clock.seconds() + self.config.lease_ttl_s)
        if not ledger.settle(uuid, committed):
            ledger.rebuilt_at = float("-inf")  # unknown commit: recount on next claim

    async def settle_many(self, settles) -> None:
        """Settles batched by one entry node (``PeerNotes.settles``: ``(project_id,
        uuid, committed)``), in the order they were made."""
        for project_id, uuid, committed in settles:
            await self._settle_here(project_id, uuid, committed)

    async def _usage_here(self, project_id: str) -> dict:
        """What the project holds: committed containers and the creates in flight
        (as Zun counts a container from the moment its create is accepted). A
        create's "committed" settle reaches the holder batched, after the create
        answered (``settle``); its claim counts the same amount meanwhile, so the
        view is exact whichever of the two it reads."""
        lock = self._lock(project_id)
        await lock.acquire()
        try:
            ledger = await self._ledger(project_id)
            counted = [ledger.claimed()]
            known = set(ledger.usage) | set(ledger.claims) | set(ledger.released)
            now = self._clock.seconds()
            # what the nodes holding leases counted (an unused lease is not usage)
            for name in sorted({n for n, _, exp in ledger.leases.values() if exp > now}):
                try:
                    used = (self._peek_here(project_id, False) if name == self.node else
                            await self._call(name, messages.QuotaLeasePeek(project_id)))
                except errors.ServiceUnavailable as e:
                    log.info("quota.usage.lease_unseen project={project} node={node} "
                             "reason={r}", project=project_id, node=name, r=str(e))
                    continue
                for per_lease in used.values():
                    counted.extend(d for u, d in per_lease.items() if u not in known)
                    known |= set(per_lease)
            return total(counted)
        finally:
            lock.release()

    # -- claims (the entry side) -----------------------------------------------------

    async def claim(self, project_id: str, uuid: str, wanted: dict) -> None:
        """Count ``wanted`` for the new container ``uuid`` or raise QuotaExceeded
        (ServiceUnavailable when the holder cannot decide). Retried once on a
        holder that does not answer or is not the holder yet."""
        if not self.config.enforce:
            return
        if self.config.leases and self._client is not None:
            return await self._claim_with_lease(project_id, uuid, wanted)
        msg = messages.QuotaClaimRequest(project_id, uuid, dict(wanted))
        for attempt in range(2):
            holder = self.holder(project_id)
            try:
                if holder == self.node:
                    return await self._claim_here(project_id, uuid, wanted)
                return await self._call(holder, msg)
            except errors.QuotaExceeded:
                raise
            except errors.ServiceUnavailable:
                if attempt:
                    raise

    async def _claim_with_lease(self, project_id: str, uuid: str, wanted: dict) -> None:
        """Claim from this node's lease of the project when it is usable and holds
        ``wanted`` (no round trip); else claim at the holder, handing back the
        spent lease and asking for a new one in the same request."""
        now = self._clock.seconds()
        holder = self.holder(project_id)
        lease = self.held_leases.get(project_id)
        if lease is not None and lease.granter == holder and lease.take(uuid, wanted, now):
            return
        if lease is not None:
            self._queue_return(project_id, self._drop_lease(project_id).report())
        revokes = self._revokes.get(project_id, 0)
        for attempt in range(2):
            holder = self.holder(project_id)
            returns = tuple(self._take_returns(holder))
            msg = messages.QuotaLeaseClaim(project_id, uuid, dict(wanted), self.node,
                                           holder != self.node, returns)
            self._sending.update({r[1]: r for r in returns})
            try:
                if holder == self.node:
                    grant = await self._lease_claim_here(msg)
                else:
                    grant = await self._call(holder, msg)
                self._sent(returns)
                break
            except errors.QuotaExceeded:
                self._sent(returns)
                raise  # the holder applied the returns before it refused
            except errors.ServiceUnavailable:
                self._requeue(holder, returns)
                if attempt:
                    raise
            except BaseException:
                self._requeue(holder, returns)
                raise
        if grant is not None:
            self._accept_lease(project_id, holder, grant, now,
                               revoked=self._revokes.get(project_id, 0) != revokes)

    def _accept_lease(self, project_id: str, granter: str, grant: tuple, asked_at: float,
                      revoked: bool = False):
        lease_id, amounts, ttl_s = grant
        if revoked:
            # revoked while the grant travelled: never used; hand it back as is
            self._queue_return(project_id, (lease_id, {}, {}), granter)
            return
        if project_id in self.held_leases or self.holder(project_id) != granter:
            # a concurrent claim got one first, or the holder changed meanwhile
            self._queue_return(project_id, (lease_id, {}, {}), granter)
            return
        use_until = asked_at + ttl_s / 2
        self.held_leases[project_id] = HeldLease(lease_id, granter, dict(amounts), use_until)
        self._lease_timers[project_id] = self._clock.callLater(
            max(0.0, use_until - self._clock.seconds()), self._lease_due, project_id, lease_id)

    def _drop_lease(self, project_id: str) -> HeldLease:
        call = self._lease_timers.pop(project_id, None)
        if call is not None and call.active():
            call.cancel()
        return self.held_leases.pop(project_id)

    def _lease_due(self, project_id: str, lease_id: str) -> None:
        self._lease_timers.pop(project_id, None)
        lease = self.held_leases.get(project_id)
        if lease is not None and lease.lease_id == lease_id:
            self._queue_return(project_id, self._drop_lease(project_id).report())

    def _queue_return(self, project_id: str, report: tuple, holder: str | None = None):
        """Hand a spent lease back to the holder: with the next claim to it, or
        batched after ``lease_return_delay_s`` (a lost return is repaired by the
        lease's TTL on the holder: it then recounts)."""
        holder = holder or self.holder(project_id)
        self._returns.setdefault(holder, []).append((project_id, *report))
        if holder not in self._return_timers:
            self._return_timers[holder] = self._clock.callLater(
                self.config.lease_return_delay_s, self._flush_returns, holder)

    def _take_returns(self, holder: str) -> list:
        call = self._return_timers.pop(holder, None)
        if call is not None and call.active():
            call.cancel()
        return self._returns.pop(holder, [])

    def _requeue(self, holder: str, returns) -> None:
        self._sent(returns)
        for project_id, *report in returns:
            self._queue_return(project_id, tuple(report), holder)

    def _sent(self, returns) -> None:
        for r in returns:
            if self._sending.get(r[1]) is r:
                del self._sending[r[1]]

    def _flush_returns(self, holder: str) -> None:
        self._return_timers.pop(holder, None)
        returns = tuple(self._returns.pop(holder, []))
        if not returns:
            return

        self._sending.update({r[1]: r for r in returns})

        async def send():
            try:
                if holder == self.node:
                    for project_id, lease_id, committed, pending in returns:
                        await self._return_here(project_id, lease_id, committed, pending)
                else:
                    await self._call(holder, messages.QuotaLeaseReturn(returns))
                self._sent(returns)
            except errors.ZundError as e:
                # maybe applied, maybe not: a revoke still reports them until the
                # holder's TTL of these leases has passed
                log.info("quota.lease.return_failed holder={holder} leases={n} reason={r}",
                         holder=holder, n=len(returns), r=str(e))
                self._clock.callLater(self.config.lease_ttl_s, self._sent, returns)
        defer.Deferred.fromCoroutine(send())

    async def _lease_claim_here(self, msg) -> tuple | None:
        project_id = msg.project_id
        for returned in msg.returns:  # other projects' leases this node holds
            if returned[0] != project_id:
                await self._return_here(*returned)
        lock = self._lock(project_id)
        await lock.acquire()
        try:
            ledger = await self._ledger(project_id)
            now = self._clock.seconds()
            for returned in msg.returns:
                if returned[0] == project_id:
                    ledger.return_lease(*returned[1:], now, self.config.claim_ttl_s)
            limits = await self._effective_limits(project_id)
            await self._claim_fitting(project_id, ledger, msg.uuid, msg.resources, limits)
            now = self._clock.seconds()
            if not (msg.want_lease and self.config.leases):
                return None
            lease_id = f"{self.node}/{now:.6f}/{next(self._lease_seq)}"
            granted = ledger.grant_lease(lease_id, msg.node, limits,
                                         max(1, len(self._members())),
                                         self.config.lease_max_containers, now,
                                         self.config.lease_ttl_s, uuid=msg.uuid)
            return None if granted is None else (*granted, self.config.lease_ttl_s)
        finally:
            lock.release()

    async def _return_here(self, project_id: str, lease_id: str, committed: dict,
                           pending: dict) -> None:
        ledger = self.ledgers.get(project_id)
        if ledger is None:
            return  # not held here: whoever holds it recounts from the records
        ledger.return_lease(lease_id, committed, pending, self._clock.seconds(),
                            self.config.claim_ttl_s)

    def _peek_here(self, project_id: str, revoke: bool) -> dict:
        """lease_id -> the creates this node counted against that lease of the
        project (held, spent and waiting, or returned without acknowledgement);
        with ``revoke`` it stops using them (the asking holder counts them now)."""
        out: dict[str, dict] = {}
        if revoke:
            self._revokes[project_id] = self._revokes.get(project_id, 0) + 1
        for item in list(self._sending.values()):
            if item[0] == project_id:
                out.setdefault(item[1], {}).update({**item[2], **item[3]})
                if revoke:
                    del self._sending[item[1]]
        for holder, queued in list(self._returns.items()):  # spent, not yet handed back
            for item in queued:
                if item[0] == project_id:
                    out.setdefault(item[1], {}).update({**item[2], **item[3]})
            if revoke:
                queued[:] = [item for item in queued if item[0] != project_id]
        lease = self.held_leases.get(project_id)
        if lease is not None:
            if revoke:
                self._drop_lease(project_id)
            out.setdefault(lease.lease_id, {}).update(lease.used)
        return {lid: {u: dict(d) for u, d in used.items()} for lid, used in out.items()}

    async def settle(self, project_id: str, uuid: str, committed: bool) -> None:
        """Tell the holder the claim ``uuid`` committed or released (best effort:
        a lost message is repaired by the holder's recount).

        "Committed" goes to a remote holder batched (the peer client's outbox:
        ``PeerNotes``, with the next request to it or within its ``notes_delay_s``;
        the create does not wait for it): until it lands the claim counts the same
        resources, so no quota decision changes. A release (a failed create, a
        delete) is sent at once, so the quota it frees is free on every node when
        the delete answers."""
        if not self.config.enforce:
            return
        lease = self.held_leases.get(project_id)
        if lease is not None and uuid in lease.used:
            # counted by this node's lease: reported when the lease is handed back
            if committed:
                lease.committed.add(uuid)
            else:
                lease.give_back(uuid)
            return
        holder = self.holder(project_id)
        try:
            if holder == self.node:
                await self._settle_here(project_id, uuid, committed)
            elif committed and hasattr(self._client, "note_settle"):
                node = self._members().get(holder)
                if node is None:
                    raise errors.ServiceUnavailable(reason=f"node {holder} is not alive")
                self._client.note_settle(node, project_id, uuid, committed)
            else:
                await self._call(holder, messages.QuotaSettleRequest(project_id, uuid,
                                                                     committed))
        except errors.ZundError as e:
            log.info("quota.settle_failed project={project} uuid={uuid} reason={r}",
                     project=project_id, uuid=uuid, r=str(e))

    # -- limits -------------------------------------------------------------------------

    async def _read(self, key: str):
        """(limits, version) newest among the key's replicas, or None; written
        back to replicas that answered with an older copy."""
        answers: dict[str, object] = {}
        failures = []
        for name in self.replicas(key):
            if name == self.node:
                answers[name] = self.limits.get(key)
                continue
            try:
                answers[name] = await self._call(name, messages.QuotaLimitsGet(key))
            except errors.ZundError as e:
                failures.append(f"{name}: {e}")
        if not answers:
            raise errors.ServiceUnavailable(
                reason=f"no replica of quota {key} answered: {'; '.join(failures)}")
        found = [a for a in answers.values() if a is not None]
        if not found:
            return None
        newest = max(found, key=lambda a: tuple(a[1]))
        for name, a in answers.items():
            if a is None or tuple(a[1]) < tuple(newest[1]):
                await self._put_one(name, key, newest[0], newest[1])
        return newest

    async def _put_one(self, name: str, key: str, limits: dict, version: tuple) -> bool:
        try:
            if name == self.node:
                await self._keep(key, limits, version)
                return True
            await self._call(name, messages.QuotaLimitsPut(key, dict(limits), tuple(version)))
            return True
        except errors.ZundError as e:
            log.info("quota.limits.put_failed key={key} node={node} reason={r}", key=key,
                     node=name, r=str(e))
            return False

    async def _write(self, key: str, limits: dict, previous=None) -> None:
        """Write ``limits`` at a version newer than ``previous`` (what a read found)
        and this clock's now: a quick second write must still win."""
        now = self._clock.seconds()
        if previous is not None:
            now = max(now, float(previous[1][0]) + 0.001)
        version = (now, self.node)
        targets = self.replicas(key)
        acks = 0
        for name in targets:
            acks += await self._put_one(name, key, limits, version)
        needed = len(targets) // 2 + 1
        if acks < needed:
            raise errors.ServiceUnavailable(
                reason=f"quota {key} reached {acks} of {len(targets)} replicas, "
                       f"{needed} needed")
        if key == class_key(DEFAULT_CLASS):
            self._class_cache = None

    async def get(self, project_id: str) -> dict:
        """The project's limits (own values over the default class over config)."""
        found = await self._read(project_key(project_id))
        return effective_limits(self.config.defaults(), await self._default_class(),
                                found[0] if found else None)

    async def usage(self, project_id: str) -> dict:
        """Committed usage, as the project's holder counts it."""
        holder = self.holder(project_id)
        if holder == self.node:
            return await self._usage_here(project_id)
        return await self._call(holder, messages.QuotaUsageRequest(project_id))

    async def update(self, project_id: str, values: dict) -> dict:
        key = project_key(project_id)
        found = await self._read(key)
        merged = dict(found[0]) if found else {}
        merged.update({k: int(v) for k, v in values.items()})
        await self._write(key, merged, found)
        return effective_limits(self.config.defaults(), await self._default_class(), merged)

    async def delete(self, project_id: str) -> None:
        """Back to the defaults (a newer empty version, so it wins everywhere)."""
        key = project_key(project_id)
        await self._write(key, {}, await self._read(key))

    async def defaults(self) -> dict:
        return effective_limits(self.config.defaults(), await self._default_class(), None)

    async def get_class(self, name: str) -> dict:
        found = await self._read(class_key(name))
        return effective_limits(self.config.defaults(), None, found[0] if found else None)

    async def update_class(self, name: str, values: dict) -> dict:
        key = class_key(name)
        found = await self._read(key)
        merged = dict(found[0]) if found else {}
        merged.update({k: int(v) for k, v in values.items()})
        await self._write(key, merged, found)
        return effective_limits(self.config.defaults(), None, merged)
