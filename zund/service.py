"""Composition root: ``build_node`` builds every object of a node from config and
parents them, as Twisted services, under one ``NodeService`` in dependency order.

Children, in start order (each waits for the one before it to have started;
stop runs the same list backwards, each waiting for the one after it):

    store -> runtimes (those that fail to open are dropped and not advertised)
    -> compute manager (recovery) -> peer client -> peer RPC listening
    -> API listening -> record replicator (zund.cluster.replicas) -> metadata
    announcer (first announcement, with the addresses) -> gossip (join, from
    the seeds and the member snapshot) -> control socket; then READY=1.

So stopping is: STOPPING=1 -> control socket closes -> gossip leaves (peers stop
sending work) -> announcer -> replicator (its running repair pass ends) -> API
and peer RPC stop accepting -> peer client closes -> manager finishes in-flight
work -> runtimes -> store.

Constructors do no I/O: sockets, files and engine connections open in the
children's ``startService``. Components receive plain frozen config values built
here, never the ConfigOpts. No domain work lives in the root: the gossip view is
``zund.cluster.view.ClusterView``, this node's own facts ``LocalNode``.
"""

from __future__ import annotations

import os
import random
import socket
import uuid as uuidlib
from typing import Callable

import attrs
from stevedore import driver
from stevedore import exception as stevedore_exc
from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.web.server import Site

from zund.api import auth as api_auth
from zund.api.app import ApiConfig, ZunAPI
from zund.api.nova.app import NovaAPI
from zund.api.nova.flavors import flavors_from_conf
from zund.conf import nova_api as nova_api_conf
from zund.api.control import ControlAPI
from zund.api.policy import make_enforcer
from zund.cluster import messages, sealing, signing, wire
from zund.cluster.announcer import MetadataAnnouncer
from zund.cluster.bidding import Bidder, CommittedLedger
from zund.cluster.directory import Directory
from zund.cluster.facade import ClusterContainers
from zund.cluster.handlers import NodeHandlers
from zund.cluster.metadata import LocalNode, NodeFacts
from zund.cluster.channel import PeerPortFactory
from zund.cluster.peer_client import PeerClient
from zund.cluster.peer_server import PeerAPI
from zund.cluster.placement import Coordinator, PlacementConfig
from zund.cluster.quota import QuotaConfig, QuotaService
from zund.cluster.flavors import FlavorService
from zund.cluster.registries import RegistryService
from zund.network import factory as network_factory
from zund.registries import NodeKey
from zund.cluster.healer import Healer, ServiceMarks
from zund.cluster.replicas import ReplicaHolder, Replicator
from zund.cluster.policies import load_policy
from zund.cluster.view import ClusterView
from zund.common import errors, paths, sdnotify
from zund.common.http import FixedBodyLimit, HardenedSite, Refusal
from zund.compute import capacity
from zund.compute.local import LocalContainers
from zund.compute.manager import ContainerManager, ManagerConfig
from zund.console.service import ConsoleConfig, ConsoleService
from zund.events import EventJournal
from zund.metrics import NodeMetrics, RecordCensus, metrics_resource
from zund.conf import safety
from zund.conf.cluster import replica_config
from zund.conf.gossip import gossip_keys
from zund.conf.listeners import listener_limits
from zund.conf.peer import peer_config
from zund.gossip import config as gossip_config
from zund.gossip.keyring import Keyring
from zund.gossip.member import parse_addr
from zund.gossip.service import GossipService
from zund.images.wiring import build_images
from zund.store import Store

log = Logger()

RUNTIME_GROUP = "zund.runtimes"
DEFAULT_GOSSIP_PORT = 9519


# -- plain config values ---------------------------------------------------------------

def manager_config(conf) -> ManagerConfig:
    return ManagerConfig(
        node=conf.host,
        default_runtime=conf.default_runtime,
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


def placement_config(conf) -> PlacementConfig:
    p = conf.placement
    return PlacementConfig(policy=p.policy, tenant_mode=p.tenant_isolation,
                           reservation_ttl_s=p.reservation_ttl_s, probe_ratio=p.probe_ratio,
                           probe_all_below=p.probe_all_below, bid_timeout_s=p.bid_timeout_s,
                           max_rounds=p.max_rounds, busy_wait_s=p.busy_wait_s,
                           commit_resolve_s=p.commit_resolve_s,
                           fast_path=p.fast_path, fast_path_slack=p.fast_path_slack,
                           fast_path_fresh_s=p.fast_path_fresh_s)


def load_runtime_factory(name: str):
    """The ``zund.runtimes`` entry point called ``name`` (loaded by stevedore)."""
    try:
        return driver.DriverManager(RUNTIME_GROUP, name, invoke_on_load=False).driver
    except stevedore_exc.NoMatches as e:
        raise errors.RuntimeUnavailable(
            runtime=name, reason="no such runtime driver installed") from e


# -- leaf services: one resource each, opened in startService ---------------------------

class StoreService(service.Service):
    """Opens the node's store (creating ``state_path``) and closes it last."""

    name = "store"

    def __init__(self, store: Store, state_path: str | None):
        self.store = store
        self._state_path = state_path

    def startService(self):
        super().startService()
        if self._state_path:
            os.makedirs(self._state_path, exist_ok=True)
        return defer.Deferred.fromCoroutine(self.store.open())

    def stopService(self):
        super().stopService()
        return defer.Deferred.fromCoroutine(self.store.close())


class RuntimesService(service.Service):
    """Opens every runtime; one that fails to open is dropped (``on_dropped(name)``)
    and not advertised; with none left, start fails. ``on_ready(names)`` then
    tells the node what it offers. Stop closes them, then runs ``closers``."""

    name = "runtimes"

    def __init__(self, runtimes: dict, closers: list, on_dropped: Callable[[str], None],
                 on_ready: Callable[[list[str]], None]):
        self.runtimes = runtimes
        self._closers = closers
        self._on_dropped = on_dropped
        self._on_ready = on_ready

    def startService(self):
        super().startService()
        return defer.Deferred.fromCoroutine(self._open())

    async def _open(self) -> None:
        wanted = ",".join(self.runtimes)
        for name, rt in list(self.runtimes.items()):
            try:
                await rt.open()
            except errors.ZundError as e:
                # A node advertises (and bids for) only runtimes that work here.
                log.error("node.runtime.unavailable runtime={runtime}: {reason}",
                          runtime=name, reason=str(e))
                del self.runtimes[name]
                self._on_dropped(name)
                continue
            log.info("node.runtime.ready runtime={runtime}", runtime=name)
        if not self.runtimes:
            raise errors.RuntimeUnavailable(runtime=wanted,
                                            reason="no enabled runtime could be opened")
        self._on_ready(sorted(self.runtimes))

    def stopService(self):
        super().stopService()
        return defer.Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        for name, rt in self.runtimes.items():
            try:
                await rt.close()
            except Exception:
                log.failure("node.runtime.close_failed", runtime=name)
        for close in self._closers:
            await defer.maybeDeferred(close)


class ClosingService(service.Service):
    """Runs ``close()`` (sync or async) on stop: for parts with nothing to open."""

    def __init__(self, name: str, close: Callable):
        self.name = name
        self._close = close

    def stopService(self):
        super().stopService()
        return defer.maybeDeferred(self._close)


class StartingService(service.Service):
    """Runs ``start()`` (sync or async) on start: for parts that only need to read
    something once the earlier children are up (e.g. the observers' first census)."""

    def __init__(self, name: str, start: Callable):
        self.name = name
        self._start = start

    def startService(self):
        super().startService()
        result = self._start()
        if hasattr(result, "__await__"):
            return defer.Deferred.fromCoroutine(result)
        return defer.maybeDeferred(lambda: result)


def _console_factory(console):
    from twisted.internet import protocol

    class FirstUseFactory(protocol.Factory):
        """Builds the websocket factory at the first connection: autobahn costs
        ~4.6 MB of RSS, and most nodes never open a console (issue 13 §5)."""

        real = None

        def buildProtocol(self, addr):
            if self.real is None:
                from zund.console.ws import server_factory

                self.real = server_factory(console)
                self.real.doStart()
            return self.real.buildProtocol(addr)

        def stopFactory(self):
            if self.real is not None:
                self.real.doStop()

    return FirstUseFactory()


class ListeningService(service.Service):
    """Serves ``resource_factory()`` on ``endpoint`` from startService until stop.

    ``endpoint=None``: nothing listens (an in-process node reached through
    StubTreq or an in-memory transport); ``on_port(configured_port)`` still runs.
    ``on_port(port)`` gets the port actually listened on (``0`` in the config
    means "any free port").
    """

    def __init__(self, name: str, endpoint, resource_factory: Callable,
                 configured_port: int, on_port: Callable[[int], None] | None = None,
                 site_factory: Callable | None = None):
        self.name = name
        self._endpoint = endpoint
        self._resource_factory = resource_factory
        #: resource -> Site (zund.common.http.HardenedSite for public listeners)
        self._site_factory = site_factory or Site
        self._configured_port = configured_port
        self._on_port = on_port
        self.port = None

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) listened on, or None."""
        if self.port is None:
            return None
        addr = self.port.getHost()
        return (getattr(addr, "host", None) or getattr(addr, "name", ""),
                getattr(addr, "port", 0))

    def startService(self):
        super().startService()
        return defer.Deferred.fromCoroutine(self._listen())

    async def _listen(self) -> None:
        number = self._configured_port
        if self._endpoint is not None:
            site = self._site_factory(self._resource_factory())
            site.noisy = False
            self.port = await self._endpoint.listen(site)
            number = getattr(self.port.getHost(), "port", number)
        if self._on_port is not None:
            self._on_port(number)

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is None:
            return None
        return defer.maybeDeferred(port.stopListening)


class OptionalListeningService(ListeningService):
    """A listener the node can serve without (the console websockets, metrics): a
    port that cannot be bound is logged as an error and the node starts anyway —
    an auxiliary port clash must not take the Zun API down. (The console then
    answers 503 "no console listener"; a scrape finds nothing.)"""

    async def _listen(self) -> None:
        from twisted.internet.error import CannotListenError

        try:
            await super()._listen()
        except CannotListenError as e:
            self.port = None
            log.error("node.listen_failed part={part} error={error}", part=self.name,
                      error=str(e))


def _peer_refusal(limit: int) -> Refusal:
    """413 for an oversized peer request, as a peer protocol error the caller decodes."""
    return Refusal(413, wire.CONTENT_TYPE, wire.pack(messages.encode_error(
        errors.RequestEntityTooLarge(limit=limit))))


# -- the root -------------------------------------------------------------------------------

@attrs.define
class NodeParts:
    """Everything a node is made of, for tests and simulations to reach. Built by
    ``build_node``; read-only for callers."""

    local: LocalNode
    store: Store
    runtimes: dict
    manager: ContainerManager
    containers: LocalContainers
    view: ClusterView
    gossip: GossipService
    announcer: MetadataAnnouncer
    bidder: Bidder
    coordinator: Coordinator
    directory: Directory
    peer_client: PeerClient
    peer_api: PeerAPI
    facade: ClusterContainers
    api: ZunAPI
    control: ControlAPI
    replicator: Replicator | None = None
    replica_holder: ReplicaHolder | None = None
    #: the Nova-compatible compute API (None when [nova_api] enabled = false)
    nova_api: NovaAPI | None = None
    healer: Healer | None = None
    metrics: NodeMetrics | None = None
    journal: EventJournal | None = None
    console: ConsoleService | None = None


class NodeService(service.MultiService):
    """One zund node: a ``MultiService`` whose children (see the module docstring)
    start strictly one after the other in the order they were parented, and stop
    in reverse, each waiting for the previous one. ``startService`` returns (and
    ``started`` fires with) a Deferred that fires once the node serves; then
    ``api_address`` is the Zun API's (host, port) when it listens.

    Built by ``build_node``; callers use startService/stopService only.
    """

    name = "zund"

    def __init__(self, node_name: str, parts: NodeParts | None = None):
        super().__init__()
        self.node_name = node_name
        self.parts = parts
        self.started = defer.Deferred()

    @property
    def api_address(self) -> tuple[str, int] | None:
        try:
            child = self.getServiceNamed("api")
        except KeyError:
            return None
        return child.address

    def startService(self):
        service.Service.startService(self)
        d = defer.Deferred.fromCoroutine(self._start())
        d.addCallbacks(self.started.callback, self.started.errback)
        return self.started

    async def _start(self) -> None:
        for child in list(self):
            await defer.maybeDeferred(child.startService)
        log.info("node.ready node={node} api={api}", node=self.node_name,
                 api=":".join(map(str, self.api_address or ("-",))))
        sdnotify.notify("READY=1\nSTATUS=serving the Zun API")

    def stopService(self):
        service.Service.stopService(self)
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        sdnotify.notify("STOPPING=1")
        log.info("node.stopping node={node}", node=self.node_name)
        for child in reversed(list(self)):
            if not child.running:
                continue
            try:
                await defer.maybeDeferred(child.stopService)
            except Exception:
                # one part failing to stop must not keep the store open
                log.failure("node.stop_failed part={part}", part=child.name)
        log.info("node.stopped node={node}", node=self.node_name)


# -- the factory -------------------------------------------------------------------------------

def _default_runtimes(conf, reactor) -> tuple[dict, list]:
    runtimes, closers = {}, []
    for name in conf.enabled_runtimes:
        rt, close = load_runtime_factory(name)(conf, reactor)
        runtimes[rt.name] = rt
        if close is not None:
            closers.append(close)
    return runtimes, closers


def _resolve_own_host() -> str:
    return socket.gethostbyname(socket.gethostname())


def _uuid_from(rng: random.Random) -> Callable[[], str]:
    return lambda: str(uuidlib.UUID(int=rng.getrandbits(128), version=4))


def build_node(conf, reactor, rng: random.Random | None = None, *,
               runtimes: dict | None = None,
               host_facts: capacity.HostFacts | None = None,
               store: Store | None = None,
               gossip_transport_factory: Callable | None = None,
               peer_http_client=None,
               listen: bool = True,
               enforcer=None,
               id_rng: random.Random | None = None,
               resolve_own_host: Callable[[], str] = _resolve_own_host,
               gossip_snapshot_path: str | None = None) -> NodeService:
    """Build one node from ``conf`` (a ``zund.conf.make_conf()`` ConfigOpts, parsed).

    Nothing opens here; ``node.startService()`` starts the children in order.

    ``reactor``: clock and reactor of every part (``IReactorTime``; the global
        reactor in production, a ``task.Clock`` for a whole node in one process).
    ``rng``: the node's randomness; each consumer gets its own ``Random`` seeded
        from it, so a simulation replays from one seed. Default: OS-seeded.
    ``runtimes``: name -> IRuntime to use instead of loading ``enabled_runtimes``
        entry points (e.g. ``{"runc": FakeRuntime(...)}``); they are still opened
        in start and closed in stop.
    ``host_facts``: the host's cpus/memory/disk instead of inspecting /proc.
    ``store``: a ``Store`` instead of ``<state_path>/zund.sqlite`` (e.g. an
        in-memory one with a synchronous ``run_blocking``); ``state_path`` is then
        not created.
    ``gossip_transport_factory``: ``bind_addr -> transport`` for gossip
        (``zund.gossip.memnet.MemoryNetwork.transport``) instead of UDP/TCP.
    ``peer_http_client``: a treq-like client for peer RPC (in-memory transport)
        instead of treq over TCP.
    ``listen``: False = no API, peer RPC or control socket port is opened (reach
        ``node.parts.api`` / ``node.parts.peer_api`` resources in memory); the
        advertised addresses are then ``[api] host_ip:port`` / ``[peer]``'s.
    ``enforcer``: a ``PolicyEnforcer`` instead of ``make_enforcer(conf)``.
    ``id_rng``: draw container uuids, reservation ids and peer nonces from this
        ``Random`` (simulations replay); default: uuid4 / ``secrets``.
    ``resolve_own_host``: what this host's address is when gossip binds a
        wildcard and no ``advertise_host`` is set (default: DNS of the hostname).
    ``gossip_snapshot_path``: where gossip keeps its last known members (default:
        ``<state_path>/gossip-members.json``; none with an injected ``store``
        unless given here).
    """
    rng = rng if rng is not None else random.Random()
    node = conf.host
    # what this node may expose (noauth API and keyless clusters stay on loopback);
    # UnsafeConfig propagates: `zund serve` prints it and exits non-zero
    plan = safety.plan_from_conf(conf)
    for warning in plan.warnings:
        log.warn("{warning}", warning=warning)
    new_id = _uuid_from(id_rng) if id_rng is not None else None
    nonce_source = (lambda: "%032x" % id_rng.getrandbits(128)) if id_rng is not None else None

    # this node's own facts: one cell, read by the bidder and the announcer
    local = LocalNode(NodeFacts(az=conf.default_availability_zone, labels=dict(conf.labels)))

    # node-local parts
    if store is None:
        store = Store(paths.store_path(conf.state_path), reactor=reactor)
        state_path = conf.state_path
    else:
        state_path = None
    if runtimes is None:
        runtimes, closers = _default_runtimes(conf, reactor)
    else:
        runtimes, closers = dict(runtimes), []
    manager_kwargs = {} if new_id is None else {"new_uuid": new_id}
    manager = ContainerManager(manager_config(conf), store, runtimes, reactor,
                               capacity_config=capacity_config(conf), host_facts=host_facts,
                               **manager_kwargs)
    enforcer = enforcer if enforcer is not None else make_enforcer(conf)
    containers = LocalContainers(manager, enforcer)

    # gossip and the view over it
    g = conf.gossip
    advertise_host = gossip_config.resolve_advertise_host(plan.gossip_host, g.advertise_host,
                                                          resolve_own_host)
    seeds = [parse_addr(s, DEFAULT_GOSSIP_PORT) for s in g.seeds]  # ValueError on junk
    gossip = GossipService(
        gossip_config.from_values(g.profile, g.cluster_name), node,
        bind=(plan.gossip_host, g.bind_port), advertise=(advertise_host, g.bind_port),
        seeds=seeds, keyring=Keyring.from_base64(gossip_keys(conf)),  # empty: warned at start
        clock=reactor, rng=random.Random(rng.getrandbits(64)),
        transport_factory=gossip_transport_factory,
        snapshot_path=gossip_snapshot_path or (
            paths.gossip_snapshot_path(state_path) if state_path else None))
    view = ClusterView(gossip.members)
    # operator marks (forced down) applied to the gossip view (zund.cluster.healer)
    marks = ServiceMarks(os.path.join(state_path, "service-marks.json") if state_path else None,
                         local=node)
    nodes = marks.wrap(view.nodes)

    # the cluster parts
    pc = peer_config(conf)
    ring = signing.peer_keys(pc.gossip_keys, pc.cluster_name)
    signer_kwargs = {} if nonce_source is None else {"nonce_source": nonce_source}
    signer = signing.Signer(node, ring.keys, reactor, **signer_kwargs)
    verifier = signing.Verifier(node, ring.keys, reactor, skew_s=pc.clock_skew_s)
    sealer = sealing.sealer_for(ring)  # None without [gossip] keys: plaintext, warned
    pconf = placement_config(conf)
    policy = load_policy(pconf.policy)
    bidder_kwargs = {} if new_id is None else {"new_id": new_id}
    # bids read the committed sums in memory, kept in step with the store's changes
    committed = CommittedLedger(store.list_containers)
    store.add_listener(committed.on_change)
    bidder = Bidder(node, lambda: capacity.limits(manager.capacity_config, manager.host_facts),
                    committed, reactor, pconf.reservation_ttl_s, policy,
                    tenant_mode=pconf.tenant_mode, local=local,
                    volumes_view=manager.volumes_held, warm=manager,
                    **bidder_kwargs)
    # a runtime's warm guests hold capacity: one boots only when the bidder has room,
    # and a draining node (it wins no bid) keeps none
    pooled = [rt for rt in runtimes.values() if hasattr(rt, "warm_guest_room")]
    for rt in pooled:
        rt.warm_guest_room = bidder.hold_if_room
        local.listeners.append(lambda facts, rt=rt: rt.retire_pool() if facts.draining else None)
    peer_client = PeerClient(node, signer, peer_http_client, timeout_s=pc.timeout_s,
                             slow_timeout_s=pc.slow_call_timeout_s,
                             max_response_bytes=pc.max_response_bytes, clock=reactor,
                             reactor=reactor, sealer=sealer,
                             notes_delay_s=pc.notes_delay_s,
                             # an injected HTTP client (the simulation) carries every call
                             channel=pc.channel and peer_http_client is None)
    coordinator = Coordinator(node, nodes, peer_client, pconf, reactor,
                              random.Random(rng.getrandbits(64)), policy=policy)
    rc = replica_config(conf)
    replica_holder = ReplicaHolder(node, store)
    replicator = Replicator(node, store, nodes, peer_client, reactor,
                            replicas=rc.replicas, queue_limit=rc.queue_limit,
                            anti_entropy_interval_s=rc.anti_entropy_interval_s)
    directory = Directory(containers, nodes, peer_client, reactor, local_node=node,
                          replicas=replica_holder)
    quota = QuotaService(node, QuotaConfig.from_conf(conf), reactor,
                         local_records=store.list_containers, view=view.nodes,
                         client=peer_client, list_remote=peer_client.list_containers,
                         store=store)
    facade = ClusterContainers(node, containers, coordinator, directory, peer_client,
                               nodes, default_runtime=conf.default_runtime,
                               rng=random.Random(rng.getrandbits(64)), quota=quota)
    # images: records on the node that pulled them, reached through the cluster
    images = build_images(conf, reactor, node, store, runtimes, manager.tasks, peer_client,
                          view.nodes, state_path, new_uuid=new_id)
    manager.lifecycle.glance = images.local.glance
    # private registries: per project on 3 rendezvous nodes, passwords encrypted
    # at rest with this node's key (zund.cluster.registries)
    registries = RegistryService(
        node, reactor, view=view.nodes, client=peer_client, store=store,
        key=NodeKey(os.path.join(state_path, "registry.key") if state_path else None),
        new_id=new_id)
    manager.lifecycle.registries = registries
    # tenant networks (issue 16): [network] driver; parts are None with "none"
    networks = network_factory.build(
        conf, reactor, node, view=view.nodes, client=peer_client, state_path=state_path,
        wire_docker=any(type(rt).__name__ in ("DockerRuntime", "LibvirtRuntime")
                        for rt in runtimes.values())
        and state_path is not None,
        local_ip=conf.peer.host_ip if conf.peer.host_ip not in ("0.0.0.0", "", "::")
        else advertise_host, new_id=new_id)
    manager.lifecycle.networks = networks.node
    # flavors made through the compute API: one group on 3 rendezvous nodes
    # (zund.cluster.flavors); the configured ones are read-only defaults
    configured_flavors = flavors_from_conf(conf)
    flavors = FlavorService(node, reactor, defaults=configured_flavors, view=view.nodes,
                            client=peer_client, store=store)
    healer = Healer(node, store, nodes, coordinator, peer_client, manager.lifecycle, local,
                    reactor, marks, replicas=rc.replicas, resume=manager.reconciler.resume,
                    new_request_id=None if new_id is None else (lambda: "req-" + new_id()))
    # recovery starts no auto_heal record before the healer checked it did not move
    manager.reconciler.hold = healer.hold_for_check
    handlers = NodeHandlers(containers, bidder, replica_holder, quota=quota,
                            images=images.local, registries=registries)
    handlers.healer = healer
    handlers.networks = networks.backend
    handlers.flavors = flavors
    peer_api = PeerAPI(node, handlers,
                       verifier,
                       reactor,
                       max_body_bytes=pc.max_body_bytes, sealer=sealer)
    # calls this node makes to itself (its own bid, a quota ledger it holds, ...) run
    # in-process: same messages, no HTTP round trip (zund.cluster.peer_client)
    peer_client.local = peer_api
    authenticator, auth_service = api_auth.from_conf(conf, reactor)
    # what operators watch (issue 14): per-node metrics registry, event journal,
    # and the interactive console; each reads what the parts already announce
    metrics = NodeMetrics(node, clock=reactor)
    journal = EventJournal(node, reactor, capacity=conf.event_journal_size)
    census = RecordCensus()
    metrics.sources.update(coordinator=coordinator, bidder=bidder, peer_api=peer_api,
                           gossip=gossip, records=census, quota=quota,
                           replicator=replicator, replica_holder=replica_holder)
    for rt in pooled:  # the micro-VM runtime's warm pool
        metrics.sources["microvm"] = rt
    metrics.sources.setdefault("figures", {}).update(  # store group commit (issue 13)
        zund_store_commits=lambda: store.commits,
        zund_store_write_transactions=lambda: store.transactions)
    peer_client.observer = metrics.observe_peer
    manager.lifecycle.runtime_view = metrics.timed_runtime
    gossip.add_listener(metrics.observe_member)
    gossip.add_listener(journal.on_member)
    coordinator.observers.append(
        lambda outcome, uuid, decision: metrics.observe_placement(
            outcome, float(decision.get("elapsed_s") or 0.0)))
    coordinator.observers.append(journal.on_placement)
    store.add_listener(census.on_change)
    store.add_listener(journal.on_record_change)
    console = ConsoleService(
        node, ConsoleConfig(port=conf.console.port, max_sessions=conf.console.max_sessions,
                            token_ttl_s=conf.console.token_ttl_s,
                            idle_timeout_s=conf.console.idle_timeout_s),
        reactor, manager, metrics=metrics, journal=journal)
    if conf.console.enabled:
        containers.console = console
    api = ZunAPI(facade, ApiConfig.from_conf(conf), enforcer, clock=reactor,
                 rng=random.Random(rng.getrandbits(64)), authenticator=authenticator,
                 quotas=quota, images=images.cluster, registries=registries,
                 services=healer, console=console if conf.console.enabled else None)
    api.request_observer = metrics.observe_api
    api.networks = networks.backend
    # the Nova-compatible compute API: the same containers, identity, policy, quotas
    nova_api = nova_host = None
    if conf.nova_api.enabled:
        nova_api = NovaAPI(facade, ApiConfig.from_conf(conf), enforcer,
                           flavors=configured_flavors, flavor_store=flavors,
                           glance=images.local.glance is not None,
                           public_url=conf.nova_api.public_url, clock=reactor,
                           rng=random.Random(rng.getrandbits(64)),
                           authenticator=authenticator, quotas=quota)
        nova_host, nova_warning = nova_api_conf.listen_host(conf)
        if nova_warning:
            log.warn("{warning}", warning=nova_warning)
    announcer = MetadataAnnouncer(gossip, manager, local, reactor,
                                  conf.gossip.metadata_min_interval, usage=committed.usage,
                                  members=lambda: len(gossip.members()))
    control = ControlAPI(view.peers, events=journal, clock=reactor, services=healer)

    # addresses peers use: a wildcard bind is reached at the gossip address
    def reachable(host: str) -> str:
        return advertise_host if host in ("0.0.0.0", "::", "") else host

    api_host = reachable(plan.api_host)
    peer_host = pc.advertise_host or reachable(plan.peer_host)

    if listen:
        api_ep = endpoints.TCP4ServerEndpoint(reactor, conf.api.port, interface=plan.api_host)
        peer_ep = endpoints.TCP4ServerEndpoint(reactor, pc.port, interface=plan.peer_host)
        control_ep = endpoints.UNIXServerEndpoint(
            reactor, paths.control_socket_path(conf.state_path), mode=0o600, wantPID=True)
        console_ep = endpoints.TCP4ServerEndpoint(reactor, conf.console.port,
                                                  interface=plan.api_host)
        metrics_ep = endpoints.TCP4ServerEndpoint(reactor, conf.metrics.port,
                                                  interface=conf.metrics.host_ip)
    else:
        api_ep = peer_ep = control_ep = console_ep = metrics_ep = None

    def console_listening(port: int) -> None:
        console.public_base = f"ws://{api_host}:{port}"

    async def seed_observers() -> None:
        records = await store.list_containers()
        census.seed(records)
        journal.seed_records(records)

    def dropped(name: str) -> None:
        manager.runtimes.pop(name, None)

    parts = NodeParts(local=local, store=store, runtimes=runtimes, manager=manager,
                      containers=containers, view=view, gossip=gossip, announcer=announcer,
                      bidder=bidder, coordinator=coordinator, directory=directory,
                      peer_client=peer_client, peer_api=peer_api, facade=facade, api=api,
                      control=control, replicator=replicator, replica_holder=replica_holder,
                      healer=healer, metrics=metrics, journal=journal, console=console,
                      nova_api=nova_api)
    root = NodeService(node, parts)
    children = [
        StoreService(store, state_path),
        StartingService("observers", seed_observers),
        RuntimesService(runtimes, closers, dropped,
                        lambda names: local.update(runtimes=tuple(names))),
        manager,
        images.service,
        quota,  # loads this node's limit replicas from the store
        registries,  # loads this node's registry copies from the store
        *networks.services,  # network copies, this node's ports, the data plane
        flavors,  # loads this node's copies of API-made flavors from the store
        ClosingService("peer-client", peer_client.close),
        ListeningService("peer-rpc", peer_ep, peer_api.resource, pc.port,
                         lambda port: local.set_addresses(peer=f"{peer_host}:{port}"),
                         # the channel and HTTP on one port (zund.cluster.channel)
                         site_factory=lambda resource: PeerPortFactory(
                             HardenedSite(
                                 resource, FixedBodyLimit(pc.max_body_bytes, _peer_refusal),
                                 listener_limits(conf, "peer"), reactor, name="peer-rpc",
                                 access_log=False),
                             peer_api, reactor,
                             header_timeout_s=listener_limits(conf, "peer").header_timeout_s,
                             idle_timeout_s=listener_limits(conf, "peer").idle_timeout_s)),
        *([auth_service] if auth_service is not None else []),
        ListeningService("api", api_ep, api.resource, conf.api.port,
                         lambda port: local.set_addresses(api=f"{api_host}:{port}"),
                         site_factory=lambda resource: HardenedSite(
                             resource, api, listener_limits(conf, "api"), reactor, name="api")),
        *([console, OptionalListeningService("console-ws", console_ep,
                                     lambda: _console_factory(console), conf.console.port,
                                     console_listening, site_factory=lambda f: f)]
          if conf.console.enabled else []),
        *([OptionalListeningService("metrics", metrics_ep, lambda: metrics_resource(metrics),
                            conf.metrics.port)] if conf.metrics.enabled else []),
        *([OptionalListeningService(
            "nova-api", endpoints.TCP4ServerEndpoint(reactor, conf.nova_api.port,
                                                     interface=nova_host) if listen else None,
            nova_api.resource, conf.nova_api.port,
            site_factory=lambda resource: HardenedSite(
                resource, nova_api, listener_limits(conf, "api"), reactor, name="nova-api"))]
          if nova_api is not None else []),
        replicator,
        healer,
        announcer,
        gossip,
        ListeningService("control", control_ep, control.resource, 0),
    ]
    for child in children:
        child.setServiceParent(root)
    return root
