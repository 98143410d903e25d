"""Where does container X live? (DESIGN "Reads and actions on any node")

Order of a lookup (:meth:`Directory.find`): this node's store → the
recent-placement cache (uuid → owner node, filled after placements, successful
lookups and lists) → every live peer in parallel (``LOCATE``: a store lookup on
the peer, no runtime round trip). A node is the single authority for its
containers, so the cache is only a hint: the caller sends its one owner call to
the cached owner and relocates once (:meth:`find` with ``use_cache=False``) when
that owner answers not found. When gossip says a cached owner is dead or gone,
the last known record is returned with status ``Unknown`` (a dead node's
containers are reported, not silently dropped).

Routing follows the node that HOLDS the record, never ``rec.host``: a record
nobody could host (kept by its entry node) is found in that node's store like
any other.

``list_all`` is the scatter-gather behind ``GET /v1/containers``: every live node
including this one; a peer that fails or times out is named in the listing's
``partial_nodes`` (the API puts them in ``Zund-Partial-Nodes``), never dropped.

Record replicas (``zund.cluster.replicas``): when an owner is dead, gone from
the view or does not answer, its records are read from the copies this node and
the answering peers keep (``REPLICA_QUERY``) and shown with status ``Unknown``
and their host — in lists, and by uuid or name. The owner's own answer always
wins: a copy is used only for an owner that did not answer, one per uuid (the
highest generation). A list whose replica query missed a peer names it (and the
owners it may have held copies of) in ``partial_nodes``.

Who may call: the cluster containers (``zund.cluster.facade``).
"""

from __future__ import annotations

import collections
from typing import Callable

import attrs
from oslo_utils.uuidutils import is_uuid_like
from twisted.internet import defer
from twisted.logger import Logger

from zund.cluster.types import NodeView
from zund.common import errors
from zund.compute import states
from zund.compute.interface import Listing
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


@attrs.frozen
class Located:
    """Where a container lives. ``node`` None: this node holds it. ``record``: as
    found (None when only the cache's owner is known); ``from_cache``: the owner
    came from the cache and was not asked; ``gone``: gossip says the owner is dead
    or left, ``record`` is its last known state with status Unknown."""

    uuid: str
    node: NodeView | None
    record: ContainerRecord | None = None
    from_cache: bool = False
    gone: bool = False


def _visible(ctx, rec: ContainerRecord) -> bool:
    """The manager's lookup scoping, for records we answer from the cache."""
    return bool(ctx.is_admin) or rec.project_id == ctx.project_id


class Directory:
    """Finds the owner of a container.

    ``local``: this node's ``zund.compute.local.LocalContainers`` (``locate``,
    ``list``, ``node``);
    ``peers``: callable() -> list[NodeView], the current gossip view (this node
    may be in it; it is skipped by name);
    ``client``: a PeerClient (locate, list_containers);
    ``clock``: IReactorTime for the cache's expiry;
    ``local_node``: this node's name (default: ``local.node``).
    """

    def __init__(self, local, peers: Callable[[], list[NodeView]], client, clock,
                 cache_ttl_s: float = 300.0, *, local_node: str | None = None,
                 max_cache_entries: int = 10_000, replicas=None):
        self._local = local
        #: this node's zund.cluster.replicas.ReplicaHolder (None: no replica reads)
        self._replicas = replicas
        self._peers = peers
        self._client = client
        self._clock = clock
        self.cache_ttl_s = cache_ttl_s
        self.local_node = local_node if local_node is not None else local.node
        self.max_cache_entries = max_cache_entries
        self._cache: collections.OrderedDict[str, _Entry] = collections.OrderedDict()

    # -- cache -----------------------------------------------------------------------

    def remember(self, uuid: str, node: NodeView | str,
                 record: ContainerRecord | None = None) -> None:
        """Note that ``node`` owns ``uuid`` (after a placement, a lookup, a list or
        an owner call). A later remember without a record keeps the last known
        record."""
        name = node.name if isinstance(node, NodeView) else node
        if name == self.local_node:
            return
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

    # -- find ----------------------------------------------------------------------

    async def find(self, ctx, ident: str, all_projects: bool = False, *,
                   use_cache: bool = True) -> Located:
        """Where ``ident`` (uuid or name, scoped by ``ctx``) lives. Raises
        ContainerNotFound, Conflicts (a name on several nodes), or
        ServiceUnavailable when it is not found on the nodes that answered but
        some live nodes did not answer. At most one round of LOCATE calls."""
        try:
            rec = await self._local.locate(ctx, ident, all_projects)
            return Located(rec.uuid, None, rec)
        except errors.ContainerNotFound:
            pass
        views = self._remote_views()
        if use_cache and is_uuid_like(ident):
            found = self._find_cached(ctx, ident.lower(), views)
            if found is not None:
                return found
        return await self._scatter_locate(ctx, ident, all_projects, views)

    def _find_cached(self, ctx, key: str, views: dict[str, NodeView]) -> Located | None:
        entry = self._cached(key)
        if entry is None:
            return None
        node = views.get(entry.node)
        if node is not None and node.state not in GONE_STATES:
            return Located(key, node, entry.record, from_cache=True)
        if entry.record is None or entry.record.auto_heal:
            # nothing to report, or it may have been healed elsewhere
            # (zund.cluster.healer): the peers are asked
            return None
        if not _visible(ctx, entry.record):
            raise errors.ContainerNotFound(ident=key)
        node = node or NodeView(name=entry.node, state="dead", api="", peer="", meta=None)
        log.info("directory.owner_gone uuid={uuid} node={node} state={state}",
                 uuid=key, node=node.name, state=node.state)
        return Located(key, node, self.unknown(entry.record), gone=True)

    def last_known(self, ctx, uuid: str) -> ContainerRecord | None:
        """The cached record of ``uuid`` with status Unknown (for an owner that did
        not answer), if the cache has one ``ctx`` may see."""
        entry = self._cached(uuid.lower())
        if entry is None or entry.record is None or not _visible(ctx, entry.record):
            return None
        return self.unknown(entry.record)

    @staticmethod
    def unknown(rec: ContainerRecord) -> ContainerRecord:
        return rec.copy(status=states.UNKNOWN, task_state=None,
                        status_reason="The node hosting this container is not reachable.")

    async def _scatter_locate(self, ctx, ident: str, all_projects: bool,
                              views: dict[str, NodeView]) -> Located:
        nodes = [n for n in views.values() if n.state in LIVE_STATES]
        if not nodes:
            found = await self._from_replicas(ctx, ident, all_projects, [], views)
            if found is not None:
                return found
            raise errors.ContainerNotFound(ident=ident)
        calls = [defer.Deferred.fromCoroutine(
            self._client.locate(n, ctx, ident, all_projects)) for n in nodes]
        if is_uuid_like(ident):
            # uuids are unique: the first hit wins
            outcome = await defer.DeferredList(calls, fireOnOneCallback=True,
                                               consumeErrors=True)
            if isinstance(outcome, tuple):
                rec, index = outcome
                self.remember(rec.uuid, nodes[index], rec)
                return Located(rec.uuid, nodes[index], rec)
            results = outcome
        else:
            results = await defer.DeferredList(calls, consumeErrors=True)
        hits, unanswered, conflict, answered = [], [], False, []
        for node, (ok, value) in zip(nodes, results):
            if ok:
                hits.append((node, value))
            elif value.check(errors.ContainerNotFound):
                answered.append(node)
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
            return Located(rec.uuid, node, rec)
        found = await self._from_replicas(ctx, ident, all_projects, answered, views)
        if found is not None:
            return found
        if unanswered:
            raise errors.ServiceUnavailable(
                reason=f"container {ident} was not found on the nodes that answered; "
                       f"no answer from {', '.join(sorted(unanswered))}")
        raise errors.ContainerNotFound(ident=ident)

    # -- replica copies -------------------------------------------------------------

    async def _replica_items(self, ctx, answered: list[NodeView], ident: str | None,
                             all_projects: bool) -> tuple[list, list[str]]:
        """Copies of records of owners other than this node and ``answered``,
        kept here or by ``answered``; and the names of those that did not answer."""
        if self._replicas is None:
            return [], []
        except_owners = sorted({n.name for n in answered} | {self.local_node})
        calls = [defer.Deferred.fromCoroutine(
            self._replicas.query(ctx, except_owners, ident, all_projects))]
        calls += [defer.Deferred.fromCoroutine(self._client.replica_query(
            n, ctx, except_owners, ident, all_projects)) for n in answered]
        results = await defer.DeferredList(calls, consumeErrors=True)
        items, failed = [], []
        for who, (ok, value) in zip([self.local_node] + [n.name for n in answered], results):
            if ok:
                items.extend(value)
            else:
                failed.append(who)
                log.info("directory.replica_query_failed node={node} reason={reason}",
                         node=who, reason=value.getErrorMessage())
        return items, failed

    @staticmethod
    def _newest(items) -> dict:
        """uuid -> the item with the highest generation."""
        best: dict = {}
        for item in items:
            old = best.get(item.uuid)
            if old is None or item.generation > old.generation:
                best[item.uuid] = item
        return best

    def _owner_view(self, owner: str, views: dict[str, NodeView]) -> NodeView:
        node = views.get(owner)
        return node or NodeView(name=owner, state="dead", api="", peer="", meta=None)

    async def _from_replicas(self, ctx, ident: str, all_projects: bool,
                             answered: list[NodeView],
                             views: dict[str, NodeView]) -> Located | None:
        """``ident`` from the copies of owners that did not say "not found": its
        last known record with status Unknown, or None. Conflicts when a name
        matches several containers."""
        items, _failed = await self._replica_items(ctx, answered, ident, all_projects)
        best = self._newest(items)
        if not best:
            return None
        if len(best) > 1:
            raise errors.Conflicts(name=ident)
        item = next(iter(best.values()))
        node = self._owner_view(item.owner, views)
        log.info("directory.from_replica uuid={uuid} owner={owner} state={state} "
                 "generation={generation}", uuid=item.uuid, owner=item.owner,
                 state=node.state, generation=item.generation)
        return Located(item.uuid, node, self.unknown(item.record), gone=True)

    # -- list ------------------------------------------------------------------------

    async def list_all(self, ctx, all_projects: bool = False) -> Listing:
        """Every visible record on every live node, the copies of the records of
        every other owner (status Unknown), and the names of live peers that did
        not answer (in time). A failure of the local store is raised.

        The copies are asked for in the same parallel round as the lists (so a list
        costs no extra latency); only when a live peer did not answer its list is
        a second round asked for that peer's copies."""
        nodes = [n for n in self._remote_views().values() if n.state in LIVE_STATES]
        local = defer.Deferred.fromCoroutine(self._local.list(ctx, all_projects))
        remote = [defer.Deferred.fromCoroutine(
            self._client.list_containers(n, ctx, all_projects)) for n in nodes]
        copies = defer.Deferred.fromCoroutine(
            self._replica_items(ctx, nodes, None, all_projects))
        results = await defer.DeferredList([local] + remote, consumeErrors=True)
        items, failed = await copies  # never fails: failures are named in ``failed``
        ok, value = results[0]
        if not ok:
            value.raiseException()
        records = list(value.records)
        partial, answered = [], []
        for node, (ok, value) in zip(nodes, results[1:]):
            if not ok:
                partial.append(node.name)
                log.warn("directory.list_partial node={node} reason={reason}",
                         node=node.name, reason=value.getErrorMessage())
                continue
            answered.append(node)
            for rec in value:
                self.remember(rec.uuid, node, rec)
            records.extend(value)
        if partial:
            # the copies of the owners that did not answer, from those that did
            items, failed = await self._replica_items(ctx, answered, None, all_projects)
        # a node back from the dead may list a copy that was healed elsewhere until
        # it removes it (zund.cluster.healer): the highest generation is the live one
        newest: dict = {}
        for r in records:
            if r.uuid not in newest or r.generation > newest[r.uuid].generation:
                newest[r.uuid] = r
        records = list(newest.values())
        # the owner's own record wins over any copy
        seen = {r.uuid for r in records}
        copied = [item for uuid, item in self._newest(items).items() if uuid not in seen]
        records.extend(self.unknown(item.record) for item in copied)
        if failed:
            # a holder did not answer: copies may be missing; name it and every
            # owner gossip says is gone
            partial.extend(failed)
            partial.extend(n.name for n in self._remote_views().values()
                           if n.state in GONE_STATES)
        return Listing(records, frozenset(partial) - {self.local_node})
