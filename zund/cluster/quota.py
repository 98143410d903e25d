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

    def defaults(self) -> dict:
        return {r: getattr(self, r) for r in RESOURCES}

    @classmethod
    def from_conf(cls, conf) -> "QuotaConfig":
        q = conf.quota
        return cls(containers=q.containers, cpu=q.cpu, memory=q.memory, disk=q.disk,
                   enforce=q.enforce, claim_ttl_s=q.claim_ttl_s,
                   limit_replicas=q.limit_replicas, rebuild_interval_s=q.rebuild_interval_s)


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

    def in_use(self) -> dict:
        return total(self.usage.values())

    def held(self) -> dict:
        return total(list(self.usage.values()) + [d for d, _ in self.claims.values()])

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
        return [u for u, (_, expires) in self.claims.items() if expires <= now]

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
        self.committed_during_rebuild = {}
        self.rebuilding = False
        self.rebuilt_at = now


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

    # -- start: the durable limit replicas ---------------------------------------------

    def startService(self):
        super().startService()
        return defer.Deferred.fromCoroutine(self._load())

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
            return {u: d for u, (d, _) in ledger.claims.items()} if ledger else {}
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
        adopted: dict = {}
        order = self._order(project_key(project_id))
        if takeover and len(order) > 1:
            try:
                adopted = await self._call(order[1],
                                           messages.QuotaClaimsRequest(project_id))
            except errors.ZundError as e:
                # the previous holder is gone: its unsettled claims are either
                # records by now or will never be (claim_ttl_s > one placement)
                log.info("quota.ledger.no_previous_claims project={project} reason={r}",
                         project=project_id, r=str(e))
        return usage, adopted

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
            ledger.claim(uuid, wanted, limits, self._clock.seconds(), self.config.claim_ttl_s)
        finally:
            lock.release()

    async def _settle_here(self, project_id: str, uuid: str, committed: bool) -> None:
        ledger = self.ledgers.get(project_id)
        if ledger is None:
            return  # not held here: whoever holds it recounts from the records
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
            return (await self._ledger(project_id)).held()
        finally:
            lock.release()

    # -- claims (the entry side) -----------------------------------------------------

    async def claim(self, project_id: str, uuid: str, wanted: dict) -> None:
        """Count ``wanted`` for the new container ``uuid`` or raise QuotaExceeded
        (ServiceUnavailable when the holder cannot decide). Retried once on a
        holder that does not answer or is not the holder yet."""
        if not self.config.enforce:
            return
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
