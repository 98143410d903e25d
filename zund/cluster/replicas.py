"""Record replicas: copies of each node's container records on R other nodes.

Why: a node is the single authority for its containers, so when it dies nobody
could say what it held. Each record (spec, owner, last known status and its
``generation``, which the owner's store bumps on every change) is copied to the
R nodes chosen by rendezvous hashing of the container uuid over the live
members (:func:`holders`), so any node can show a dead node's containers as
``Unknown`` with their host, also after it restarted itself (copies are kept in
the holder's SQLite store, table ``replicas``).

Two halves:

- :class:`Replicator` (a service on the owner): hears every committed change of
  this node's records from the store, queues one item per holder in a bounded
  queue per peer (a newer item about a uuid replaces the queued older one, as
  memberlist's broadcast queue does), and sends batches asynchronously — a create
  never waits for it. A peer's queue is sent ``coalesce_s`` after its first item
  arrived, so a record's quick successive generations (created, Creating,
  Created, Running) and other records' changes bound for the same holder go in
  one REPLICATE (issue 13: 3.3 REPLICATEs per create without the window). A full queue drops the item and counts it; the periodic
  anti-entropy pass (:meth:`Replicator.anti_entropy`, also run at once when the
  live membership changes) repairs every drop: it tells each live peer which of
  this node's records it should hold (uuid -> generation), the peer drops the
  copies it should no longer hold and answers the ones it lacks. A delete sends
  a tombstone carrying the next generation, so a late copy cannot resurrect it.
  Holders also push the copies they keep of a dead owner to that owner's other
  live holders, so the R copies survive a second failure.
- :class:`ReplicaHolder` (on every node): applies received copies (newer
  generation wins), answers anti-entropy and the replica queries of the
  directory (``zund.cluster.directory``), scoped like the owner's own lookups.

Who may call: the composition root builds both; the peer server calls the
holder; the directory queries it.
"""

from __future__ import annotations

import collections
import hashlib
from typing import Callable

from oslo_utils.uuidutils import is_uuid_like
from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from zund.cluster.messages import ReplicaItem
from zund.cluster.types import NodeView
from zund.store import RecordChange, ReplicaCopy

log = Logger()

#: gossip states of nodes that may hold copies (a suspect may still answer)
LIVE_STATES = frozenset({"alive", "suspect"})
#: gossip states whose records are shown from copies
GONE_STATES = frozenset({"dead", "left"})
#: after a failed send, the next repair pass comes no sooner than this after the last
REPAIR_GAP_S = 5.0
#: how long a peer's queue gathers changes before it is sent: long enough for the
#: generations of one create on the fake runtime, short next to any failure detection
#: (a copy is at most this much older than it would be without the window)
COALESCE_S = 0.05


def holders(uuid: str, owner: str, members, replicas: int) -> list[str]:
    """The ``replicas`` nodes among ``members`` (names; ``owner`` excluded) that
    hold copies of container ``uuid``: highest rendezvous weight first. Pure; every
    node computes the same answer from the same membership, and a membership
    change moves only the copies whose holders changed."""

    def weight(member: str) -> bytes:
        return hashlib.blake2b(f"{uuid.lower()}|{member}".encode(), digest_size=8).digest()

    candidates = sorted({m for m in members if m != owner}, key=weight, reverse=True)
    return candidates[:max(0, replicas)]


def _item(copy: ReplicaCopy) -> ReplicaItem:
    return ReplicaItem(copy.uuid, copy.owner, copy.generation, copy.record)


class ReplicaHolder:
    """The receiving side, over this node's ``Store``. ``node``: this node's name
    (copies of its own records are ignored: its store is the truth)."""

    def __init__(self, node: str, store):
        self.node = node
        self.store = store
        self.stats: collections.Counter = collections.Counter()

    async def receive(self, items: list[ReplicaItem]) -> int:
        copies = [ReplicaCopy(i.uuid.lower(), i.owner, i.generation, i.record)
                  for i in items if i.owner != self.node]
        kept = await self.store.apply_replicas(copies) if copies else 0
        self.stats["received"] += len(items)
        self.stats["kept"] += kept
        return kept

    async def sync(self, owner: str, digest: dict) -> list[str]:
        self.stats["syncs"] += 1
        return await self.store.sync_replicas(owner, {u.lower(): g for u, g in digest.items()})

    async def owners(self) -> list[str]:
        """The owners this node keeps live copies of."""
        return sorted(await self.store.replica_owners())

    async def query(self, ctx, except_owners: list[str], ident: str | None = None,
                    all_projects: bool = False) -> list[ReplicaItem]:
        """Copies visible to ``ctx`` (the owner's own scoping: non-admins see their
        project; admins see every project with ``all_projects`` or when naming one
        container) whose owner is not in ``except_owners``."""
        admin_all = bool(ctx.is_admin) and (all_projects or ident is not None)
        project = None if admin_all else ctx.project_id
        kwargs: dict = {}
        if ident is not None:
            if is_uuid_like(ident):
                kwargs["uuid"] = ident.lower()
            else:
                kwargs["name"] = ident
        excluded = sorted(set(except_owners) | {self.node})
        copies = await self.store.list_replicas(None, project, except_owners=excluded,
                                                **kwargs)
        return [_item(c) for c in copies if c.record is not None]


class Replicator(service.Service):
    """Keeps copies of this node's records on their holders (see the module doc).

    ``node``: this node; ``store``: its ``Store``; ``view``: ``() -> list[NodeView]``
    (gossip, this node possibly included); ``client``: a PeerClient (replicate,
    replica_sync); ``clock``: IReactorTime; ``replicas``: R; ``queue_limit``: items
    queued per peer before drops; ``batch_size``: items per REPLICATE;
    ``anti_entropy_interval_s``: the repair period; ``membership_check_s``: how
    often the live membership is compared with the last one; ``coalesce_s``: how
    long a peer's first queued item waits for more before the queue is sent (0:
    the next reactor turn).

    ``stats`` counts queued, dropped, sent, send_failed, syncs, sync_failed,
    repaired (items re-sent by anti-entropy) and handed_on (dead owners' copies
    pushed to their other holders).
    """

    name = "replicator"

    def __init__(self, node: str, store, view: Callable[[], list[NodeView]], client, clock,
                 *, replicas: int = 2, queue_limit: int = 1000, batch_size: int = 100,
                 anti_entropy_interval_s: float = 30.0, membership_check_s: float = 1.0,
                 coalesce_s: float = COALESCE_S):
        self.node = node
        self.store = store
        self.view = view
        self.client = client
        self.clock = clock
        self.replicas = replicas
        self.queue_limit = queue_limit
        self.batch_size = batch_size
        self.anti_entropy_interval_s = anti_entropy_interval_s
        self.membership_check_s = membership_check_s
        self.coalesce_s = coalesce_s
        self.stats: collections.Counter = collections.Counter()
        self._queues: dict[str, collections.OrderedDict] = {}
        self._sending: set[str] = set()
        self._members: frozenset = frozenset()
        self._loop: task.LoopingCall | None = None
        self._next_pass = 0.0
        self._last_pass_at = float("-inf")
        self._pass: defer.Deferred | None = None
        self._active = False

    # -- lifecycle -----------------------------------------------------------------

    def startService(self):
        super().startService()
        self._active = True
        self.store.add_listener(self._on_change)
        self._next_pass = self.clock.seconds()  # repair at once: copies may be stale
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.membership_check_s, now=False)

    def stopService(self):
        super().stopService()
        self._active = False
        self.store.remove_listener(self._on_change)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._queues.clear()
        running = self._pass
        if running is not None and not running.called:
            # the store closes after us: let the running pass finish
            return running
        return None

    # -- membership --------------------------------------------------------------

    def _live(self) -> dict[str, NodeView]:
        return {n.name: n for n in self.view() if n.state in LIVE_STATES and n.peer}

    def _tick(self) -> None:
        live = self._live()
        members = frozenset(live) | {self.node}
        if members != self._members:
            log.info("replicas.membership node={node} members={members}", node=self.node,
                     members=",".join(sorted(members)))
            self._members = members
            self._next_pass = self.clock.seconds()
        if self.clock.seconds() >= self._next_pass and (self._pass is None or self._pass.called):
            self._next_pass = self.clock.seconds() + self.anti_entropy_interval_s
            self._last_pass_at = self.clock.seconds()
            self._pass = defer.Deferred.fromCoroutine(self.anti_entropy())
            self._pass.addErrback(lambda f: log.failure("replicas.anti_entropy_failed", f))

    def holders_of(self, uuid: str) -> list[str]:
        members = self._members or (frozenset(self._live()) | {self.node})
        return holders(uuid, self.node, members, self.replicas)

    # -- changes -------------------------------------------------------------------

    def _on_change(self, change: RecordChange) -> None:
        if not self._active:
            return
        item = ReplicaItem(change.uuid, self.node, change.generation, change.record)
        for peer in self.holders_of(change.uuid):
            self._enqueue(peer, item)

    def _enqueue(self, peer: str, item: ReplicaItem) -> None:
        queue = self._queues.setdefault(peer, collections.OrderedDict())
        old = queue.get(item.uuid)
        if old is not None:
            if old.generation < item.generation:
                queue[item.uuid] = item  # the newer copy replaces the queued one
        elif len(queue) >= self.queue_limit:
            self.stats["dropped"] += 1  # anti-entropy repairs it
            log.debug("replicas.dropped peer={peer} uuid={uuid}", peer=peer, uuid=item.uuid)
            return
        else:
            queue[item.uuid] = item
        self.stats["queued"] += 1
        if peer not in self._sending:
            self._sending.add(peer)
            self.clock.callLater(self.coalesce_s, self._flush_soon, peer)

    def _flush_soon(self, peer: str) -> None:
        defer.Deferred.fromCoroutine(self._flush(peer)).addErrback(
            lambda f: log.failure("replicas.flush_failed peer={peer}", f, peer=peer))

    async def _flush(self, peer: str) -> None:
        """Send ``peer``'s queue in batches, one request at a time. What arrived
        during a send, less than a full batch, gathers for one more window."""
        again = False
        try:
            while self._active:
                queue = self._queues.get(peer)
                if not queue:
                    return
                batch = [queue.popitem(last=False)[1]
                         for _ in range(min(self.batch_size, len(queue)))]
                node = self._live().get(peer)
                if node is None:
                    self.stats["dropped"] += len(batch)  # not live: anti-entropy repairs
                    continue
                try:
                    await self.client.replicate(node, batch)
                    self.stats["sent"] += len(batch)
                except Exception as e:  # the peer did not take it; anti-entropy repairs
                    self.stats["send_failed"] += len(batch)
                    log.info("replicas.send_failed peer={peer} items={n} reason={reason}",
                             peer=peer, n=len(batch), reason=str(e))
                    queue.clear()
                    # repair soon, but a peer that keeps failing gets one pass per
                    # REPAIR_GAP_S, not one per failure
                    soon = max(self.clock.seconds() + self.membership_check_s,
                               self._last_pass_at + REPAIR_GAP_S)
                    self._next_pass = min(self._next_pass, soon)
                    return
                if queue and len(queue) < self.batch_size and self.coalesce_s > 0:
                    again = True
                    return
        finally:
            if again and self._active:
                self.clock.callLater(self.coalesce_s, self._flush_soon, peer)
            else:
                self._sending.discard(peer)

    # -- anti-entropy ---------------------------------------------------------------

    async def anti_entropy(self) -> None:
        """One repair pass: every live peer learns which of this node's records it
        should hold (and drops the others it holds); what it lacks is queued. Then
        copies this node keeps of dead owners are pushed to their live holders."""
        live = self._live()
        live.pop(self.node, None)
        members = frozenset(live) | {self.node}
        records = {r.uuid: r for r in await self.store.list_containers()}
        digests: dict[str, dict] = {name: {} for name in live}
        for rec in records.values():
            for peer in holders(rec.uuid, self.node, members, self.replicas):
                if peer in digests:
                    digests[peer][rec.uuid] = rec.generation
        names = sorted(digests)
        results = await defer.DeferredList(
            [defer.Deferred.fromCoroutine(
                self.client.replica_sync(live[n], self.node, digests[n])) for n in names],
            consumeErrors=True)
        for name, (ok, value) in zip(names, results):
            self.stats["syncs"] += 1
            if not ok:
                self.stats["sync_failed"] += 1
                log.info("replicas.sync_failed peer={peer} reason={reason}", peer=name,
                         reason=value.getErrorMessage())
                continue
            for uuid in value:
                rec = records.get(uuid)
                if rec is not None:
                    self.stats["repaired"] += 1
                    self._enqueue(name, ReplicaItem(uuid, self.node, rec.generation, rec))
        owned = list(records)
        if owned:
            await self.store.drop_replicas(owned)  # this node owns them now
        await self._hand_on(members)

    async def _hand_on(self, members: frozenset) -> None:
        """Copies of a gone owner's records go to the owner's live holders, so they
        keep R copies while it is away (idempotent: generations decide)."""
        gone = sorted({n.name for n in self.view() if n.state in GONE_STATES}
                      - {self.node})
        if not gone:
            return
        for copy in await self.store.list_replicas(gone):
            for peer in holders(copy.uuid, copy.owner, members, self.replicas):
                if peer != self.node:
                    self.stats["handed_on"] += 1
                    self._enqueue(peer, _item(copy))
