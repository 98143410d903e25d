"""A whole zund cluster in one process on one clock (the simulated tier).

Every node is the real service tree of ``zund.service.build_node``: Store
(SQLite in memory, synchronous), the fake runtime, ContainerManager, Bidder,
Coordinator, Directory, the cluster implementation behind the Zun API, PeerAPI +
PeerClient (signed, msgpack), GossipService and MetadataAnnouncer, started and
stopped in the tree's order. Only the networks are simulated: peer RPC and the
Zun API over ``memrpc.LoopbackNetwork`` (in-memory HTTP with a seeded fault
model), gossip over ``zund.gossip.memnet.MemoryNetwork``. Time is one
``HeapClock``; every random choice (container uuids, reservation ids and
signature nonces included) comes from ``random.Random(seed)``.

Node composition lives in :func:`build_node` only; the rest drives the cluster.
"""

from __future__ import annotations

import base64
import json as _json
import random

import attrs
import treq
from twisted.internet import defer
from twisted.python.failure import Failure

from zund.gossip.memnet import HeapClock, MemoryNetwork
from tests.support.memrpc import LinkFaults, LoopbackNetwork

GOSSIP_KEY = b"sim-gossip-key-0123456789abcdef0"
EPOCH = 1_700_000_000.0
API_PORT, PEER_PORT, GOSSIP_PORT = 9517, 9518, 9519
#: an argv the fake runtime runs for ever with a single timer
RUNNER = ["sleep", "1000000"]


def node_host(index: int) -> str:
    """Node ``index`` (0-based) binds 127.0.0.<index+1>, as a local dev cluster does."""
    return f"127.0.{(index + 1) // 250}.{(index + 1) % 250}"


def node_name(index: int) -> str:
    return f"node-{index}"


@attrs.frozen
class SimConfig:
    """The knobs of one simulated cluster (plain values)."""

    nodes: int = 4
    #: HostFacts of each node: cpus, memory MiB, disk GiB
    cpus: int = 8
    memory_mb: int = 16384
    disk_gb: int = 100
    tenant_isolation: str = "off"
    policy: str = "spread"
    peer_timeout_s: float = 2.0
    bid_timeout_s: float = 1.0
    #: [placement] fast_path (BID_COMMIT first; False: the full bid round)
    fast_path: bool = True
    #: [placement] busy_wait_s (asking again while declines are only reservations)
    busy_wait_s: float = 2.0
    #: gossip: the memnet's one-way latency range
    gossip_latency: tuple = (0.0005, 0.002)
    metadata_min_interval_s: float = 0.2
    sync_interval_s: float = 3600.0
    #: index -> {"cpus"|"memory_mb"|"disk_gb"|"labels": value} for single nodes
    per_node: dict = attrs.field(factory=dict)

    def of_node(self, index: int, field: str):
        return self.per_node.get(index, {}).get(field, getattr(self, field, None))


@attrs.define
class SimNode:
    """One node: its service tree (``zund.service.NodeService``) and its parts."""

    index: int
    name: str
    host: str
    service: object      # the NodeService root; start/stop go through it
    runtime: object      # the FakeRuntime
    up: bool = False     # serving and gossiping
    opened: bool = False  # started and not stopped (its store is open, also after a crash)

    @property
    def parts(self):
        return self.service.parts

    @property
    def store(self):
        return self.parts.store

    @property
    def api_address(self) -> str:
        return f"{self.host}:{API_PORT}"

    @property
    def peer_address(self) -> str:
        return f"{self.host}:{PEER_PORT}"


def peer_operation(path: str, body: bytes, sender: str | None = None,
                   target: str | None = None) -> str:
    """The peer operation a request carries (``"COMMIT"``, ``"BID"``, ...), for
    faults per kind of call; ``"?"`` for anything else. Peer bodies are sealed
    with the cluster key, which the simulation knows: it opens them as the target
    would (sender and target are part of the seal)."""
    from zund.cluster import messages, sealing, signing, wire

    try:
        ring = signing.peer_keys([base64.b64encode(GOSSIP_KEY).decode()], "sim")
        body = sealing.sealer_for(ring).open(body, sealing.request_aad(sender or "",
                                                                       target or ""))
        return messages.Op(wire.unpack_map(body, len(body) + 1)["op"]).name
    except (sealing.Unsealable, wire.WireError, KeyError, ValueError, TypeError):
        return "?"


def sync_blocking(fn, *a, **kw):
    """The Store's ``run_blocking`` for the simulation: run at once, on the caller."""
    return defer.maybeDeferred(fn, *a, **kw)


def node_conf(cfg: SimConfig, index: int):
    """The node's ConfigOpts, as its zund.conf file would say."""
    from zund.conf import make_conf

    host = node_host(index)
    conf = make_conf()
    conf([])
    overrides = [
        ("host", node_name(index), None),
        ("state_path", f"/nonexistent/zund-sim-{index}", None),  # never touched
        ("default_runtime", "runc", None), ("enabled_runtimes", ["fake"], None),
        ("labels", dict(cfg.of_node(index, "labels") or {}), None),
        ("sync_container_state_interval", int(cfg.sync_interval_s), None),
        ("host_ip", host, "api"), ("port", API_PORT, "api"),
        ("host_ip", host, "peer"), ("port", PEER_PORT, "peer"),
        ("timeout_s", cfg.peer_timeout_s, "peer"),
        ("slow_call_timeout_s", max(1.0, cfg.peer_timeout_s), "peer"),
        ("bind_host", host, "gossip"), ("bind_port", GOSSIP_PORT, "gossip"),
        ("seeds", [f"{node_host(0)}:{GOSSIP_PORT}"] if index else [], "gossip"),
        ("keys", [base64.b64encode(GOSSIP_KEY).decode()], "gossip"),
        ("cluster_name", "sim", "gossip"), ("profile", "local", "gossip"),
        ("metadata_min_interval", cfg.metadata_min_interval_s, "gossip"),
        ("reserved_host_memory_mb", 0, "compute"),
        ("policy", cfg.policy, "placement"),
        ("tenant_isolation", cfg.tenant_isolation, "placement"),
        ("bid_timeout_s", cfg.bid_timeout_s, "placement"),
        ("fast_path", cfg.fast_path, "placement"),
        ("busy_wait_s", cfg.busy_wait_s, "placement"),
    ]
    for name, value, group in overrides:
        conf.set_override(name, value, group=group)
    return conf


def build_node(sim: "SimCluster", index: int, runtime=None, store=None) -> SimNode:
    """The one place that composes a simulated node: ``zund.service.build_node``
    with the fake runtime, an in-memory synchronous store, gossip on the memnet,
    peer RPC through the loopback network, nothing listening, and every random
    choice (ids and nonces included) drawn from the run's seed. No I/O here.
    ``runtime``/``store``: a restarted node's engine (it outlives zund, as Docker
    does) and its store (what was durable at the crash); default: new ones."""
    from zund.compute import capacity
    from zund.runtimes.fake import FakeRuntime
    from zund.service import build_node as build_service_tree
    from zund.store import Store

    cfg, clock = sim.config, sim.clock
    name, host = node_name(index), node_host(index)
    runtime = runtime if runtime is not None else FakeRuntime(name, clock=clock)
    host_facts = capacity.HostFacts(cpus=cfg.of_node(index, "cpus"),
                                    mem_total_mb=cfg.of_node(index, "memory_mb"),
                                    disk_total_gb=cfg.of_node(index, "disk_gb"),
                                    architecture="x86_64", os="SimOS", kernel_version="6.0-sim")
    root = build_service_tree(
        node_conf(cfg, index), clock, random.Random(sim.rng.getrandbits(64)),
        runtimes={runtime.name: runtime}, host_facts=host_facts,
        store=store if store is not None else Store(":memory:", run_blocking=sync_blocking),
        gossip_transport_factory=sim.gossip_net.transport,
        peer_http_client=sim.peers.peer_client(name, host), listen=False,
        enforcer=sim.enforcer, id_rng=random.Random(sim.rng.getrandbits(64)),
        resolve_own_host=lambda: host)
    return SimNode(index=index, name=name, host=host, service=root, runtime=runtime)


@attrs.frozen
class Response:
    status: int
    headers: dict  # lower-case name -> last value
    body: bytes

    @property
    def json(self):
        return _json.loads(self.body)


class SimulationStuck(AssertionError):
    pass


class SimCluster:
    """N nodes on one clock. ``seed`` decides every random choice of the run."""

    def __init__(self, seed: int, config: SimConfig | None = None,
                 faults: LinkFaults | None = None, enforcer=None):
        from zund.api.policy import make_enforcer

        self.seed = seed
        self.config = config or SimConfig()
        self.rng = random.Random(seed)
        self.clock = HeapClock()
        self.clock.advance(EPOCH)
        self.peers = LoopbackNetwork(self.clock, random.Random(self.rng.getrandbits(64)),
                                     faults or LinkFaults(), classify=peer_operation)
        self.gossip_net = MemoryNetwork(self.clock, random.Random(self.rng.getrandbits(64)),
                                        latency=self.config.gossip_latency)
        # every node's policy (default: the in-code rules; tests may load a file)
        self.enforcer = enforcer if enforcer is not None else make_enforcer()
        self._http = self.peers.http_client()
        self.nodes: list[SimNode] = [build_node(self, i) for i in range(self.config.nodes)]

    # -- driving the clock -----------------------------------------------------------

    def wait(self, d: defer.Deferred, timeout_s: float = 60.0, step_s: float = 0.01):
        """Advance the clock until ``d`` fires (at most ``timeout_s`` simulated seconds);
        its result, or its exception raised."""
        out: list = []
        d.addBoth(out.append)
        deadline = self.clock.seconds() + timeout_s
        while not out:
            if self.clock.seconds() >= deadline:
                raise SimulationStuck(f"not done after {timeout_s} simulated s (seed {self.seed})")
            self.clock.advance(step_s)
        if isinstance(out[0], Failure):
            out[0].raiseException()
        return out[0]

    def run(self, coro, timeout_s: float = 60.0):
        return self.wait(defer.Deferred.fromCoroutine(coro), timeout_s)

    def run_until(self, predicate, timeout_s: float = 60.0, step_s: float = 0.05) -> float:
        """Advance until ``predicate()``; the simulated seconds it took."""
        start = self.clock.seconds()
        while not predicate():
            if self.clock.seconds() - start >= timeout_s:
                raise SimulationStuck(f"condition not met after {timeout_s} simulated s "
                                      f"(seed {self.seed})")
            self.clock.advance(step_s)
        return self.clock.seconds() - start

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # -- lifecycle -------------------------------------------------------------------

    async def _start_node(self, node: SimNode) -> None:
        node.opened = True
        await node.service.startService()
        self.peers.serve(node.peer_address, node.name, node.parts.peer_api.resource())
        self.peers.serve(node.api_address, node.name, node.parts.api.resource())
        node.up = True

    async def _stop_node(self, node: SimNode) -> None:
        node.up = False
        self.peers.unserve(node.api_address)
        self.peers.unserve(node.peer_address)
        await node.service.stopService()
        node.opened = False

    def start(self, converge_timeout_s: float = 60.0) -> "SimCluster":
        """Start every node and wait until every node's gossip view shows every node
        alive with its metadata."""
        for node in self.nodes:
            self.run(self._start_node(node))
        self.run_until(self.converged, converge_timeout_s)
        return self

    def stop(self) -> None:
        for node in reversed(self.nodes):
            if node.opened:
                self.run(self._stop_node(node))

    def crash(self, which) -> None:
        """Node ``which`` dies without a word (kill -9): its addresses refuse
        connections and its gossip goes silent, no leave announced. Its store stays
        readable for :meth:`records`."""
        node = self.node(which)
        node.up = False
        self.peers.unserve(node.api_address)
        self.peers.unserve(node.peer_address)
        node.parts.announcer.stopService()
        self.wait(node.parts.gossip.stop_without_leave())

    def converged(self) -> bool:
        names = {n.name for n in self.nodes if n.up}
        for node in self.nodes:
            if not node.up:
                continue
            seen = {m.name for m in node.parts.gossip.members()
                    if m.state == "alive" and m.meta}
            if seen != names:
                return False
        return True

    def node(self, which) -> SimNode:
        if isinstance(which, SimNode):
            return which
        if isinstance(which, int):
            return self.nodes[which]
        return next(n for n in self.nodes if n.name == which)

    # -- faults ------------------------------------------------------------------------

    def partition(self, *groups, gossip: bool = True) -> None:
        """Cut the cluster into groups of nodes (indexes or names) for peer RPC, and
        for gossip too unless ``gossip=False`` (the peer port alone is cut: gossip
        keeps showing the nodes alive); nodes not listed reach everyone."""
        named = [[self.node(x).name for x in g] for g in groups]
        self.peers.partition(*named)
        if gossip:
            self.gossip_net.partition(*[[(self.node(x).host, GOSSIP_PORT) for x in g]
                                        for g in groups])

    def heal(self) -> None:
        self.peers.heal()
        self.gossip_net.heal()

    # -- the Zun API ---------------------------------------------------------------------

    def request_async(self, which, method: str, path: str, *, json=None, token: str = "admin:demo",
                      version: str = "1.40", headers: dict | None = None) -> defer.Deferred:
        """Send one Zun API request to node ``which``; a Deferred of ``Response``.
        ``headers``: extra request headers (name -> value)."""
        node = self.node(which)
        extra = {k: [v] for k, v in (headers or {}).items()}
        headers = {"OpenStack-API-Version": [f"container {version}"],
                   "X-Auth-Token": [token], "Content-Type": ["application/json"], **extra}
        data = _json.dumps(json).encode() if json is not None else None

        async def go():
            resp = await self._http.request(method, f"http://{node.api_address}/v1{path}",
                                            headers=headers, data=data)
            body = await treq.content(resp)
            hdrs = {k.decode().lower(): v[-1].decode() for k, v in resp.headers.getAllRawHeaders()}
            return Response(resp.code, hdrs, body)

        return defer.Deferred.fromCoroutine(go())

    def api(self, which, method: str, path: str, timeout_s: float = 60.0, **kw) -> Response:
        return self.wait(self.request_async(which, method, path, **kw), timeout_s)

    def create(self, which, token: str = "admin:demo", **body) -> dict:
        body.setdefault("image", "zund-test/busybox:latest")
        body.setdefault("command", RUNNER)
        r = self.api(which, "POST", "/containers?run=true", json=body, token=token)
        assert r.status == 202, (r.status, r.body)
        return r.json

    def wait_status(self, which, uuid: str, status: str, token: str = "admin:demo",
                    timeout_s: float = 60.0) -> dict:
        got = {}

        def reached():
            r = self.api(which, "GET", f"/containers/{uuid}", token=token)
            got["last"] = r.json if r.status == 200 else r.status
            return r.status == 200 and r.json["status"] == status \
                and r.json.get("task_state") is None

        self.run_until(reached, timeout_s, step_s=0.1)
        return got["last"]

    # -- the truth, read from every node's store ----------------------------------------------

    def records(self) -> dict:
        """uuid -> [names of the nodes whose store holds a record of it] (crashed
        nodes included: their records still exist)."""
        out: dict = {}
        for node in self.nodes:
            if not node.opened:
                continue
            for rec in self.run(node.store.list_containers()):
                out.setdefault(rec.uuid, []).append(node.name)
        return out
