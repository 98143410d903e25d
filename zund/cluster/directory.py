"""Where does container X live? (DESIGN "Reads and actions on any node")

Order of a lookup: this node's store → the recent-placement cache (uuid → owner
node, filled after placements, successful lookups and lists) → every live peer
in parallel. A node is the single authority for its containers, so the cache is
only a hint: a cached owner is always asked, except when gossip says it is dead
or gone — then the last known record is returned with status ``Unknown`` (a dead
node's containers are reported, not silently dropped).

``list_all`` is the scatter-gather behind ``GET /v1/containers``: every live node
including this one; a peer that fails or times out is named in ``partial_nodes``
(the API puts them in ``Zund-Partial-Nodes``), never dropped silently.

Who may call: the API layer (and the placement coordinator for ``remember``).
"""

from __future__ import annotations

import collections
from typing import Callable

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from zund.cluster import wire
from zund.cluster.types import NodeView
from zund.common import errors
from zund.compute import states
from zund.compute.manager import is_uuid_like
from zund.records import ContainerRecord

log = Logger()

#: gossip states of nodes worth asking (a suspect may still answer)
LIVE_STATES = frozenset({"alive", "suspect"})
#: gossip states whose containers are reported as Unknown from the cache
GONE_STATES = frozenset({"dead", "left"})


@attrs.define
class _Entry:
    node: str
    record: ContainerRecord | None
    at: float


def _visible(ctx, rec: ContainerRecord) -> bool:
    """The manager's lookup scoping, for records we answer from the cache."""
    return bool(ctx.is_admin) or rec.project_id == ctx.project_id


class Directory:
    """Finds the owner of a container and forwards calls to it.

    ``local_manager``: this node's ContainerManager;
    ``peers``: callable() -> list[NodeView], the current gossip view (this node
    may be in it; it is skipped by name);
    ``client``: a PeerClient (locate, list_containers, call). Remote hits are
    refreshed by their owner (``locate(..., refresh=True)``), so a remote record is
    as fresh as a local one after ``ContainerManager.refresh``;
    ``clock``: IReactorTime for the cache's expiry;
    ``local_node``: this node's name (default: ``local_manager.config.node``).
    """

    def __init__(self, local_manager, peers: Callable[[], list[NodeView]], client, clock,
                 cache_ttl_s: float = 300.0, *, local_node: str | None = None,
                 max_cache_entries: int = 10_000):
        self._manager = local_manager
        self._peers = peers
        self._client = client
        self._clock = clock
        self.cache_ttl_s = cache_ttl_s
        self.local_node = local_node if local_node is not None else local_manager.config.node
        self.max_cache_entries = max_cache_entries
        self._cache: collections.OrderedDict[str, _Entry] = collections.OrderedDict()

    # -- cache -----------------------------------------------------------------------

    def remember(self, uuid: str, node: NodeView | str,
                 record: ContainerRecord | dict | None = None) -> None:
        """Note that ``node`` owns ``uuid`` (after a placement; ``record`` may be
        the commit's wire dict). A later remember without a record keeps the
        last known record."""
        name = node.name if isinstance(node, NodeView) else node
        if name == self.local_node:
            return
        if isinstance(record, dict):
            try:
                record = wire.record_from_dict(record)
            except wire.WireError:
                record = None
        key = uuid.lower()
        old = self._cache.pop(key, None)
        if record is None and old is not None and old.node == name:
            record = old.record
        self._cache[key] = _Entry(name, record, self._clock.seconds())
        while len(self._cache) > self.max_cache_entries:
            self._cache.popitem(last=False)

    def forget(self, uuid: str) -> None:
        self._cache.pop(uuid.lower(), None)

    def cached_owner(self, uuid: str) -> str | None:
        entry = self._cached(uuid.lower())
        return None if entry is None else entry.node

    def _cached(self, key: str) -> _Entry | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if self._clock.seconds() - entry.at > self.cache_ttl_s:
            del self._cache[key]
            return None
        return entry

    # -- views -----------------------------------------------------------------------

    def _remote_views(self) -> dict[str, NodeView]:
        return {n.name: n for n in self._peers() if n.name != self.local_node}

    @staticmethod
    def _unknown(rec: ContainerRecord) -> ContainerRecord:
        return rec.copy(status=states.UNKNOWN, task_state=None,
                        status_reason="The node hosting this container is not reachable.")

    # -- locate ----------------------------------------------------------------------

    async def locate(self, ctx, ident: str) -> tuple[NodeView | None, ContainerRecord]:
        """(owner, record): owner None means this node. Raises ContainerNotFound,
        Conflicts (a name on several nodes), or ServiceUnavailable when it is not
        found on the nodes that answered but some live nodes did not answer."""
        try:
            return None, await self._manager.lookup(ctx, ident)
        except errors.ContainerNotFound:
            pass
        views = self._remote_views()
        if is_uuid_like(ident):
            found = await self._locate_cached(ctx, ident.lower(), views)
            if found is not None:
                return found
        return await self._scatter_locate(ctx, ident, views)

    async def _locate_cached(self, ctx, key: str, views: dict[str, NodeView]):
        entry = self._cached(key)
        if entry is None:
            return None
        node = views.get(entry.node)
        if node is None or node.state in GONE_STATES:
            if entry.record is None:
                return None  # nothing to report; the peers are asked
            if not _visible(ctx, entry.record):
                raise errors.ContainerNotFound(ident=key)
            node = node or NodeView(name=entry.node, state="dead", api="", peer="", meta={})
            log.info("directory.owner_gone uuid={uuid} node={node} state={state}",
                     uuid=key, node=node.name, state=node.state)
            return node, self._unknown(entry.record)
        try:
            rec = await self._client.locate(node, ctx, key, refresh=True)
        except errors.ContainerNotFound:
            self.forget(key)
            return None  # deleted, or placed elsewhere after all: ask everyone
        except errors.ServiceUnavailable:
            if entry.record is not None and _visible(ctx, entry.record):
                return node, self._unknown(entry.record)
            raise
        self.remember(key, node, rec)
        return node, rec

    async def _scatter_locate(self, ctx, ident: str, views: dict[str, NodeView]):
        nodes = [n for n in views.values() if n.state in LIVE_STATES]
        if not nodes:
            raise errors.ContainerNotFound(ident=ident)
        calls = [defer.Deferred.fromCoroutine(self._client.locate(n, ctx, ident, refresh=True))
                 for n in nodes]
        by_uuid = is_uuid_like(ident)
        if by_uuid:
            # uuids are unique: the first hit wins
            outcome = await defer.DeferredList(calls, fireOnOneCallback=True,
                                               consumeErrors=True)
            if isinstance(outcome, tuple):
                rec, index = outcome
                self.remember(rec.uuid, nodes[index], rec)
                return nodes[index], rec
            results = outcome
        else:
            results = await defer.DeferredList(calls, consumeErrors=True)
        hits, unanswered, conflict = [], [], False
        for node, (ok, value) in zip(nodes, results):
            if ok:
                hits.append((node, value))
            elif value.check(errors.ContainerNotFound):
                continue
            elif value.check(errors.Conflicts):
                conflict = True
            else:
                unanswered.append(node.name)
                log.info("directory.locate_failed node={node} ident={ident} reason={reason}",
                         node=node.name, ident=ident, reason=value.getErrorMessage())
        if conflict or len(hits) > 1:
            raise errors.Conflicts(name=ident)
        if hits:
            node, rec = hits[0]
            self.remember(rec.uuid, node, rec)
            return node, rec
        if unanswered:
            raise errors.ServiceUnavailable(
                reason=f"container {ident} was not found on the nodes that answered; "
                       f"no answer from {', '.join(sorted(unanswered))}")
        raise errors.ContainerNotFound(ident=ident)

    # -- list ------------------------------------------------------------------------

    async def list_all(self, ctx, all_projects: bool = False
                       ) -> tuple[list[ContainerRecord], list[str]]:
        """Every visible record on every live node, and the names of live peers that
        did not answer (in time). A failure of the local store is raised."""
        nodes = [n for n in self._remote_views().values() if n.state in LIVE_STATES]
        local = defer.Deferred.fromCoroutine(self._manager.list(ctx, all_projects=all_projects))
        remote = [defer.Deferred.fromCoroutine(
            self._client.list_containers(n, ctx, all_projects)) for n in nodes]
        results = await defer.DeferredList([local] + remote, consumeErrors=True)
        ok, value = results[0]
        if not ok:
            value.raiseException()
        records = list(value)
        partial = []
        for node, (ok, value) in zip(nodes, results[1:]):
            if not ok:
                partial.append(node.name)
                log.warn("directory.list_partial node={node} reason={reason}",
                         node=node.name, reason=value.getErrorMessage())
                continue
            for rec in value:
                self.remember(rec.uuid, node, rec)
            records.extend(value)
        return records, sorted(partial)

    # -- forwarding ------------------------------------------------------------------

    async def forward(self, ctx, node: NodeView | None, rec: ContainerRecord, method: str,
                      **kwargs):
        """Run ``ContainerManager.<method>`` for ``rec`` on its owner (as returned by
        :meth:`locate`): locally when ``node`` is None, else over peer RPC. The
        ``refresh`` method takes no ctx locally, as on the manager."""
        if node is None:
            fn = getattr(self._manager, method)
            if method == "refresh":
                return await fn(rec, **kwargs)
            return await fn(ctx, rec, **kwargs)
        if node.state in GONE_STATES:
            raise errors.ServiceUnavailable(
                reason=f"node {node.name} hosting container {rec.uuid} is {node.state}")
        return await self._client.call(node, ctx, rec.uuid, method, **kwargs)
