"""Keeps this node's gossip metadata in step with its store.

After every allocation change (create, delete, resize) the manager notifies, and
so do the runtimes when the capacity their warm guests hold changes;
the announcer coalesces notifications and publishes at most every
``min_interval_s`` — and always after a change (DESIGN.md "Gossip metadata").

Under load that interval is how stale the entry nodes' view of this node is
(the placement fast path ranks by it: ``zund.cluster.placement``), so it is
short (0.1 s); but every publication reaches every member, so with ``members``
given the interval grows with the cluster to keep the whole cluster's metadata
updates under ``CLUSTER_UPDATES_PER_S`` (5 nodes: 0.1 s; 1,000: 0.5 s; a node
whose allocations change less often than that publishes each change at once).
"""

from __future__ import annotations

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from zund.cluster import metadata
from zund.cluster.metadata import LocalNode
from zund.compute import capacity

log = Logger()

#: metadata publications per second the whole cluster may make under load (each
#: reaches every member): ``members`` nodes publish at most every
#: members / this seconds
CLUSTER_UPDATES_PER_S = 2000.0


class MetadataAnnouncer(service.Service):
    """A child of the node's service tree, started before gossip joins (so the first
    join already carries this node's metadata) and stopped after gossip left.

    ``local``: this node's ``LocalNode``; a change of its facts (addresses known,
    draining) is announced like a change of allocations.
    """

    name = "announcer"

    def __init__(self, gossip, manager, local: LocalNode, clock, min_interval_s: float = 0.1,
                 usage=None, members=None):
        #: ``async () -> capacity.Usage`` kept in memory (``CommittedLedger.usage``);
        #: None: summed from every record on each publish
        self._usage = usage
        self._gossip = gossip
        self._manager = manager
        self.local = local
        self._clock = clock
        self._min_interval_s = min_interval_s
        #: ``() -> int``: how many members the cluster has (None: ``min_interval_s``)
        self._members = members
        self._last_published = float("-inf")
        self._pending = None
        self._running: defer.Deferred | None = None
        self._dirty = False
        self.published = 0

    def startService(self) -> defer.Deferred:
        super().startService()
        self._manager.listeners.append(self._on_change)
        self._manager.watch_held(self.changed)
        self.local.listeners.append(self._on_facts)
        return self.publish_now()

    def stopService(self) -> None:
        super().stopService()
        if self._on_change in self._manager.listeners:
            self._manager.listeners.remove(self._on_change)
        self._manager.unwatch_held(self.changed)
        if self._on_facts in self.local.listeners:
            self.local.listeners.remove(self._on_facts)
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None

    def _on_facts(self, facts) -> None:
        self.changed()

    def _on_change(self, event: str, rec) -> None:
        self.changed()

    def changed(self) -> None:
        """Something that the metadata reflects changed: publish soon."""
        self._dirty = True
        if self._pending is not None and self._pending.active():
            return
        wait = max(0.0, self._last_published + self.interval_s() - self._clock.seconds())
        self._pending = self._clock.callLater(wait, self._fire)

    def interval_s(self) -> float:
        """The least time between two publications: ``min_interval_s``, or longer
        in a cluster so big that its members publishing that often would exceed
        ``CLUSTER_UPDATES_PER_S``."""
        if self._members is None:
            return self._min_interval_s
        try:
            n = int(self._members())
        except Exception:
            log.failure("cluster.metadata.members_failed")
            return self._min_interval_s
        return max(self._min_interval_s, n / CLUSTER_UPDATES_PER_S)

    def _fire(self) -> None:
        self._pending = None
        if self._running is not None:
            return  # the running publish re-checks _dirty when it ends
        self.publish_now()

    def publish_now(self) -> defer.Deferred:
        self._dirty = False
        d = defer.Deferred.fromCoroutine(self._publish())
        self._running = d

        def done(result):
            self._running = None
            if self._dirty:
                self.changed()
            return result

        d.addBoth(done)
        d.addErrback(lambda f: log.failure("cluster.metadata.publish_failed", f))
        return d

    async def build(self) -> metadata.NodeMeta:
        if self._usage is not None:
            usage = await self._usage()
        else:
            usage = capacity.usage_of(await self._manager.store.list_containers())
        facts = self._manager.host_facts or capacity.detect_host(self._manager.capacity_config)
        limits = capacity.limits(self._manager.capacity_config, facts)
        usage = capacity.with_held(usage, self._manager.held_capacity())
        return metadata.build(self.local.facts, usage, limits, usage.tenants, host=facts,
                              yieldable=self._manager.yieldable_capacity())

    async def _publish(self) -> None:
        meta = await self.build()
        self._gossip.set_metadata(metadata.encode(meta))
        self._last_published = self._clock.seconds()
        self.published += 1
        log.debug("cluster.metadata.published", containers=meta.cap.containers)
