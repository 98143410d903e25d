"""Composition root: builds every object of a node from config and owns the
start/stop order.

Start: store -> runtimes (those that fail to open are dropped and not advertised)
       -> compute manager (recovery) -> cluster parts, peer RPC listening -> API
       listening -> metadata + gossip join -> control socket -> READY=1.
Stop:  STOPPING=1 -> API and control socket stop accepting -> gossip leaves (peers
       stop sending work) -> peer RPC stops -> manager finishes in-flight work ->
       runtimes -> store.

Components receive plain frozen config values built here, never the ConfigOpts.
"""

from __future__ import annotations

import os
import random
import socket

import attrs
from importlib.metadata import entry_points
from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.web.server import Site

from zund.common import errors, sdnotify, utils
from zund.compute import capacity
from zund.compute.manager import ContainerManager, ManagerConfig
from zund.store import Store

log = Logger()


def manager_config(conf) -> ManagerConfig:
    return ManagerConfig(
        node=conf.host,
        default_runtime=conf.default_runtime,
        default_cpu=conf.default_cpu,
        default_memory_mb=conf.default_memory,
        unique_name_scope=conf.compute.unique_container_name_scope,
        image_pull_policy=conf.compute.image_pull_policy,
        sync_interval_s=float(conf.sync_container_state_interval),
        availability_zone=conf.default_availability_zone,
        shutdown_timeout_s=float(conf.shutdown_timeout),
        labels=dict(conf.labels),
    )


def capacity_config(conf) -> capacity.CapacityConfig:
    c = conf.compute
    return capacity.CapacityConfig(
        total_cpus=c.total_cpus, total_memory_mb=c.total_memory_mb,
        total_disk_gb=c.total_disk_gb, reserved_host_cpus=c.reserved_host_cpus,
        reserved_host_memory_mb=c.reserved_host_memory_mb,
        reserved_host_disk_mb=c.reserved_host_disk_mb,
        cpu_allocation_ratio=c.cpu_allocation_ratio,
        ram_allocation_ratio=c.ram_allocation_ratio,
        disk_allocation_ratio=c.disk_allocation_ratio,
        reserve_disk_for_image=c.reserve_disk_for_image,
        state_path=conf.state_path,
    )


def load_runtime_factory(name: str):
    """The ``zund.runtimes`` entry point called ``name``."""
    for ep in entry_points(group="zund.runtimes"):
        if ep.name == name:
            return ep.load()
    raise errors.RuntimeUnavailable(runtime=name, reason="no such runtime driver installed")


@attrs.define
class NodeParts:
    """Everything a node is made of (useful to tests)."""

    store: Store
    runtimes: dict
    manager: ContainerManager
    api: object = None
    gossip: object = None
    announcer: object = None
    bidder: object = None
    coordinator: object = None
    directory: object = None
    peer_client: object = None
    facade: object = None
    closers: list = attrs.field(factory=list)


class NodeService(service.MultiService):
    """One zund node. ``startService``/``stopService`` return Deferreds that the
    command line waits for."""

    name = "zund"

    def __init__(self, conf, reactor, rng: random.Random | None = None,
                 runtimes: dict | None = None):
        super().__init__()
        self.conf = conf
        self.reactor = reactor
        self.rng = rng or random.Random()
        self._injected_runtimes = runtimes
        self.parts: NodeParts | None = None
        self._port = None
        self._control_port = None
        self._peer_port = None
        self._meta_cache: dict = {}
        self.api_address: tuple[str, int] | None = None
        self.started = defer.Deferred()

    # building -----------------------------------------------------------------

    def _build_runtimes(self) -> tuple[dict, list]:
        if self._injected_runtimes is not None:
            return dict(self._injected_runtimes), []
        runtimes, closers = {}, []
        for name in self.conf.enabled_runtimes:
            factory = load_runtime_factory(name)
            rt, close = factory(self.conf, self.reactor)
            runtimes[rt.name] = rt
            if close is not None:
                closers.append(close)
        return runtimes, closers

    def build(self) -> NodeParts:
        """The node-local parts. The cluster parts and the API follow in
        ``_build_cluster`` once the host's capacity is known."""
        conf = self.conf
        store = Store(os.path.join(conf.state_path, "zund.sqlite"), reactor=self.reactor)
        runtimes, closers = self._build_runtimes()
        manager = ContainerManager(manager_config(conf), store, runtimes, self.reactor,
                                   capacity_config=capacity_config(conf))
        gossip = self._build_gossip()
        return NodeParts(store=store, runtimes=runtimes, manager=manager, gossip=gossip,
                         closers=closers)

    def _build_cluster(self, parts: NodeParts) -> None:
        from zund.api.app import ApiConfig, ZunAPI  # the API layer sits on top
        from zund.api.policy import make_enforcer
        from zund.cluster import signing
        from zund.cluster.bidding import Bidder
        from zund.cluster.directory import Directory
        from zund.cluster.facade import ClusterContainers
        from zund.cluster.handlers import NodeHandlers
        from zund.cluster.peer_client import PeerClient
        from zund.cluster.peer_server import PeerAPI
        from zund.cluster.placement import Coordinator, PlacementConfig
        from zund.cluster.policies import load_policy
        from zund.conf.peer import peer_config

        conf, node, manager = self.conf, self.conf.host, parts.manager
        pc = peer_config(conf)
        ring = signing.peer_keys(pc.gossip_keys, pc.cluster_name)
        signer = signing.Signer(node, ring.keys, self.reactor)
        verifier = signing.Verifier(node, ring.keys, self.reactor, skew_s=pc.clock_skew_s)
        p = conf.placement
        policy = load_policy(p.policy)
        limits = capacity.limits(manager.capacity_config, manager.host_facts)
        self.node_facts = {"az": conf.default_availability_zone,
                           "runtimes": manager.runtime_names(), "labels": dict(conf.labels),
                           "api": "", "peer": "", "draining": False}
        parts.bidder = Bidder(node, limits, manager.store.list_containers, self.reactor,
                              p.reservation_ttl_s, policy, tenant_mode=p.tenant_isolation,
                              node_facts=self.node_facts)
        parts.peer_client = PeerClient(
            node, signer, timeout_s=pc.timeout_s, slow_timeout_s=pc.slow_call_timeout_s,
            max_response_bytes=pc.max_response_bytes, clock=self.reactor, reactor=self.reactor)
        parts.coordinator = Coordinator(
            node, self.view, parts.peer_client,
            PlacementConfig(policy=p.policy, tenant_mode=p.tenant_isolation,
                            reservation_ttl_s=p.reservation_ttl_s, probe_ratio=p.probe_ratio,
                            probe_all_below=p.probe_all_below, bid_timeout_s=p.bid_timeout_s,
                            max_rounds=p.max_rounds),
            self.reactor, self.rng, policy=policy)
        parts.directory = Directory(manager, self.view, parts.peer_client, self.reactor,
                                    local_node=node)
        parts.facade = ClusterContainers(node, manager, parts.coordinator, parts.directory,
                                         parts.peer_client, self.view, manager.store,
                                         default_runtime=conf.default_runtime)
        self.peer_api = PeerAPI(node, NodeHandlers(manager, parts.bidder), verifier,
                                self.reactor, max_body_bytes=pc.max_body_bytes)
        self.peer_config = pc
        parts.api = ZunAPI(parts.facade, ApiConfig.from_conf(conf), make_enforcer(conf),
                           clock=self.reactor, rng=self.rng)

    def view(self) -> list:
        """The cluster as gossip sees it (this node included), as NodeViews."""
        from zund.cluster.types import NodeView

        out = []
        for m in self._members():
            meta = self._meta_of(m)
            out.append(NodeView(name=m.name, state=m.state, api=meta.get("api", ""),
                                peer=meta.get("peer", ""), meta=meta))
        return out

    def _members(self) -> list:
        gossip = self.parts.gossip if self.parts else None
        return gossip.members() if gossip is not None else []

    def _meta_of(self, member) -> dict:
        """The member's decoded metadata ({} if none), decoded once per version."""
        from zund.cluster import metadata

        key = (member.name, member.meta_version, member.incarnation)
        meta = self._meta_cache.get(key)
        if meta is None:
            meta = metadata.decode(member.meta) or {}
            if len(self._meta_cache) > 4096:
                self._meta_cache.clear()
            self._meta_cache[key] = meta
        return meta

    def _build_gossip(self):
        from zund.conf.gossip import gossip_keys
        from zund.gossip import config as gconfig
        from zund.gossip.keyring import Keyring
        from zund.gossip.service import GossipService

        g = self.conf.gossip
        keys = gossip_keys(self.conf)  # empty: GossipService warns loudly at start
        advertise_host = gconfig.resolve_advertise_host(
            g.bind_host, g.advertise_host,
            lambda: socket.gethostbyname(socket.gethostname()))
        seeds = [utils.parse_hostport(s, 9519) for s in g.seeds]
        return GossipService(
            gconfig.from_values(g.profile, g.cluster_name), self.conf.host,
            bind=(g.bind_host, g.bind_port), advertise=(advertise_host, g.bind_port),
            seeds=seeds, keyring=Keyring.from_base64(keys), clock=self.reactor, rng=self.rng)

    def peers(self) -> list[dict]:
        """Members as `zund peers` shows them (this node included)."""
        from zund.cluster import metadata

        out = []
        for m in self._members():
            meta = self._meta_of(m) or None
            out.append({"name": m.name, "addr": m.addr, "state": m.state,
                        "incarnation": m.incarnation, "last_change": m.state_changed_at,
                        "meta": meta, "summary": metadata.summary(meta)})
        return out

    # lifecycle ------------------------------------------------------------------

    def startService(self):
        service.Service.startService(self)
        d = defer.Deferred.fromCoroutine(self._start())
        d.addCallbacks(self.started.callback, self.started.errback)
        return self.started

    async def _start(self):
        conf = self.conf
        os.makedirs(conf.state_path, exist_ok=True)
        self.parts = parts = self.build()
        await parts.store.open()
        for name, rt in list(parts.runtimes.items()):
            try:
                await rt.open()
            except errors.ZundError as e:
                # A node advertises (and bids for) only runtimes that work here.
                log.error("node.runtime.unavailable runtime={runtime}: {reason}",
                          runtime=name, reason=str(e))
                del parts.runtimes[name]
                parts.manager.runtimes.pop(name, None)
                continue
            log.info("node.runtime.ready runtime={runtime}", runtime=name)
        if not parts.runtimes:
            raise errors.RuntimeUnavailable(runtime=",".join(conf.enabled_runtimes),
                                            reason="no enabled runtime could be opened")
        await parts.manager.startService()
        self._build_cluster(parts)
        pc = self.peer_config
        peer_ep = endpoints.TCP4ServerEndpoint(self.reactor, pc.port, interface=pc.host_ip)
        self._peer_port = await peer_ep.listen(self.peer_api.site())
        ep = endpoints.TCP4ServerEndpoint(self.reactor, conf.api.port,
                                          interface=conf.api.host_ip)
        site = Site(parts.api.resource())
        site.noisy = False
        self._port = await ep.listen(site)
        addr = self._port.getHost()
        self.api_address = (addr.host, addr.port)
        await self._start_cluster(parts)
        await self._start_control()
        log.info("node.ready node={node} api={api}", node=conf.host,
                 api=f"{addr.host}:{addr.port}")
        sdnotify.notify("READY=1\nSTATUS=serving the Zun API")

    async def _start_cluster(self, parts: NodeParts) -> None:
        from zund.cluster.announcer import MetadataAnnouncer

        conf = self.conf
        gossip_host = parts.gossip.local_member().addr.rsplit(":", 1)[0]

        def reachable(host: str) -> str:
            return gossip_host if host in ("0.0.0.0", "::", "") else host

        self.node_facts["api"] = f"{reachable(conf.api.host_ip)}:{self.api_address[1]}"
        peer_host = self.peer_config.advertise_host or reachable(self.peer_config.host_ip)
        self.node_facts["peer"] = f"{peer_host}:{self._peer_port.getHost().port}"
        parts.announcer = MetadataAnnouncer(parts.gossip, parts.manager, self.node_facts,
                                            self.reactor, conf.gossip.metadata_min_interval)
        await parts.announcer.publish_now()
        parts.gossip.startService()
        parts.announcer.start()

    async def _start_control(self) -> None:
        from zund.api.control import ControlAPI
        from zund.cmd.peers import control_socket_path

        path = control_socket_path(self.conf.state_path)
        ep = endpoints.UNIXServerEndpoint(self.reactor, path, mode=0o600, wantPID=True)
        site = Site(ControlAPI(self.peers).resource())
        site.noisy = False
        self._control_port = await ep.listen(site)

    def stopService(self):
        service.Service.stopService(self)
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self):
        sdnotify.notify("STOPPING=1")
        log.info("node.stopping", node=self.conf.host)
        if self._port is not None:
            await self._port.stopListening()
            self._port = None
        if self._control_port is not None:
            await self._control_port.stopListening()
            self._control_port = None
        parts = self.parts
        if parts is None:
            return
        if parts.announcer is not None:
            parts.announcer.stop()
        if parts.gossip is not None and parts.gossip.running:
            # leave first, so peers stop sending work while we drain
            await parts.gossip.stopService()
        if self._peer_port is not None:
            await self._peer_port.stopListening()
            self._peer_port = None
        if parts.peer_client is not None:
            await parts.peer_client.close()
        if parts.manager.running:
            await parts.manager.stopService()
        for name, rt in parts.runtimes.items():
            try:
                await rt.close()
            except Exception:
                log.failure("node.runtime.close_failed", runtime=name)
        for close in parts.closers:
            await defer.maybeDeferred(close)
        await parts.store.close()
        log.info("node.stopped", node=self.conf.host)
