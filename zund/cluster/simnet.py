"""Simulated placement clusters: bidders, coordinators and an in-memory peer client.

Used by tests/cluster and bench/placement.py. Every node is a real ``Bidder`` and a
real ``Coordinator``; only the network (latency on an injected clock, unreachable
and slow nodes), the store (a list of ``SimRecord``) and gossip (metadata published
with an optional lag, like ``MetadataAnnouncer``) are simulated. Everything random
comes from the seeded ``rng``, so a run replays from its seed.

A bid that the coordinator stops waiting for (timeout) still runs to the end on
the bidder, as it would across a real network: its reservation is left for the
TTL to free.
"""

from __future__ import annotations

import random
from collections import Counter

import attrs
from twisted.internet import defer
from twisted.python.failure import Failure
from zope.interface import implementer

from zund.cluster import metadata, policies
from zund.cluster.bidding import Bidder, Committed
from zund.cluster.metadata import LocalNode, NodeFacts, NodeMeta
from zund.cluster.placement import Coordinator, PlacementConfig
from zund.cluster.types import Decline, IPeerClient, NodeView, PlacementRequest
from zund.common import errors
from zund.compute import capacity
from zund.records import CreateRequest


@attrs.define
class SimRecord:
    """The fields of a ``ContainerRecord`` that placement reads."""

    uuid: str
    project_id: str
    cpu: float
    memory: int
    disk: int
    host: str

    @property
    def placed(self) -> bool:
        """Always: a simulated commit only ever records a placed container."""
        return True

    def to_wire(self) -> dict:
        return attrs.asdict(self)


@attrs.define
class SimNode:
    name: str
    totals: dict
    local: LocalNode                # its facts (az, runtimes, labels, draining)
    records: list = attrs.field(factory=list)
    state: str = "alive"            # what the gossip view says about it
    reachable: bool = True          # False: calls fail after the peer timeout
    extra_delay: tuple = (0.0, 0.0)  # added to every hop towards it (a slow node)
    create_delay: tuple = (0.0, 0.0)  # time do_create takes (under the bidder's lock)
    meta: NodeMeta | None = None    # last published gossip metadata
    bidder: Bidder | None = None
    coordinator: Coordinator | None = None
    pending_publish: object = None
    # running sums of ``records`` (what a store that keeps them up to date returns)
    cpu_used: float = 0.0
    mem_used_mb: int = 0
    disk_used_gb: int = 0
    tenants: Counter = attrs.field(factory=Counter)
    uuids: set = attrs.field(factory=set)

    def add(self, rec: SimRecord) -> None:
        self.records.append(rec)
        self.cpu_used += rec.cpu
        self.mem_used_mb += rec.memory
        self.disk_used_gb += rec.disk
        self.tenants[rec.project_id] += 1
        self.uuids.add(rec.uuid)

    def remove(self, uuid: str) -> bool:
        for i, rec in enumerate(self.records):
            if rec.uuid == uuid:
                del self.records[i]
                self.cpu_used -= rec.cpu
                self.mem_used_mb -= rec.memory
                self.disk_used_gb -= rec.disk
                self.tenants[rec.project_id] -= 1
                if not self.tenants[rec.project_id]:
                    del self.tenants[rec.project_id]
                self.uuids.discard(uuid)
                return True
        return False

    def committed(self) -> Committed:
        """Live view (not a copy): read it only under the bidder's lock."""
        return Committed(self.cpu_used, self.mem_used_mb, self.disk_used_gb, self.tenants,
                         self.uuids)

    def usage(self) -> capacity.Usage:
        return capacity.Usage(self.cpu_used, self.mem_used_mb, self.disk_used_gb,
                              len(self.records))


class InvariantViolation(AssertionError):
    pass


def _zero_delay(span: tuple) -> bool:
    return span[0] <= 0 and span[1] <= 0


@implementer(IPeerClient)
class InMemoryPeerClient:
    """``IPeerClient`` over direct calls, with per-hop latency drawn from ``rng`` on ``clock``.

    With zero latency everything completes synchronously (no clock step needed),
    which is how the bench measures the decision path itself.
    """

    def __init__(self, cluster: "SimCluster", latency: tuple = (0.0, 0.0),
                 rpc_timeout_s: float = 5.0):
        self.cluster = cluster
        self.latency = latency
        self.rpc_timeout_s = rpc_timeout_s
        self.calls = Counter()

    def _delay_for(self, node: SimNode) -> float:
        rng = self.cluster.rng
        d = 0.0 if _zero_delay(self.latency) else rng.uniform(*self.latency)
        if not _zero_delay(node.extra_delay):
            d += rng.uniform(*node.extra_delay)
        return d

    async def _remote(self, node: SimNode, make_coro) -> object:
        """Run ``make_coro()`` "on" node after one hop; deliver its outcome after another.

        The caller may cancel (timeout) while waiting: the request is already on its
        way and the remote work is not cancelled, only the answer is dropped (a real
        network behaves so).
        """
        clock = self.cluster.clock
        reply: defer.Deferred = defer.Deferred()

        def fire(outcome):  # a value or a Failure
            if reply.called:
                return  # the caller gave up (timeout): the answer is lost
            if isinstance(outcome, Failure):
                reply.errback(outcome)
            else:
                reply.callback(outcome)

        def deliver(outcome):
            back = self._delay_for(node)
            if back > 0:
                clock.callLater(back, fire, outcome)
            else:
                fire(outcome)

        def arrive():
            defer.Deferred.fromCoroutine(make_coro()).addBoth(deliver)

        if not node.reachable:
            clock.callLater(self.rpc_timeout_s, fire, Failure(
                errors.ServiceUnavailable(reason=f"{node.name} unreachable")))
        else:
            there = self._delay_for(node)
            if there > 0:
                clock.callLater(there, arrive)
            else:
                arrive()
        return await reply

    async def bid(self, node: NodeView, request: PlacementRequest):
        sim = self.cluster.nodes[node.name]
        self.calls[("bid", node.name)] += 1
        try:
            return await self._remote(sim, lambda: self._checked_bid(sim, request))
        except errors.ServiceUnavailable as e:
            return Decline(node.name, f"unreachable: {e}")

    async def _checked_bid(self, sim: SimNode, request: PlacementRequest):
        answer = await sim.bidder.bid(request)
        self.cluster.check(sim)  # a new reservation must keep the invariants too
        return answer

    async def commit(self, node: NodeView, reservation_id: str, ctx, uuid: str,
                     placement: dict, request):
        sim = self.cluster.nodes[node.name]
        self.calls[("commit", node.name)] += 1
        do_create = self.cluster.do_create_for(sim, ctx, request, request.run)
        return await self._remote(sim, lambda: sim.bidder.commit(
            reservation_id, do_create, existing=lambda: _held(sim, uuid)))

    async def bid_commit(self, node: NodeView, request: PlacementRequest,
                         reservation_id: str, ctx, placement: dict, create, bar=None,
                         on_load=None):
        sim = self.cluster.nodes[node.name]
        self.calls[("bid_commit", node.name)] += 1
        do_create = self.cluster.do_create_for(sim, ctx, create, create.run)

        async def there():
            outcome = await sim.bidder.bid_commit(
                request, reservation_id, do_create,
                existing=lambda: _held(sim, request.uuid), bar=bar)
            return outcome, sim.bidder.last_load

        outcome, load = await self._remote(sim, there)
        if on_load is not None and load is not None:
            on_load(load)
        return outcome

    async def commit_status(self, node: NodeView, ctx, uuid: str, reservation_id: str):
        sim = self.cluster.nodes[node.name]
        self.calls[("commit_status", node.name)] += 1
        return await self._remote(sim, lambda: sim.bidder.resolve(
            reservation_id, uuid, lambda: _held(sim, uuid)))

    async def release(self, node: NodeView, reservation_id: str) -> None:
        sim = self.cluster.nodes[node.name]
        self.calls[("release", node.name)] += 1
        try:
            await self._remote(sim, lambda: _call_async(sim.bidder.release, reservation_id))
        except errors.ZundError:
            pass  # best effort (IPeerClient contract)


async def _call_async(fn, *args):
    return fn(*args)


async def _held(sim: SimNode, uuid: str):
    """The wire form of ``uuid``'s record when ``sim`` holds it, else None."""
    rec = next((r for r in sim.records if r.uuid == uuid), None)
    return None if rec is None else rec.to_wire()


class SimCluster:
    """N nodes, each with a ``Bidder`` over an in-memory record list and a ``Coordinator``.

    ``meta_lag_s``: how late a node's gossip metadata reflects a change (0 = at
    once; None = never re-published, the view keeps its first picture).
    ``check``: verify the capacity and strict-tenant invariants on every change.
    """

    def __init__(self, clock, rng: random.Random, n_nodes: int = 5, totals: dict | None = None,
                 config: PlacementConfig | None = None, latency: tuple = (0.0, 0.0),
                 meta_lag_s: float | None = 0.0, runtimes=("runc",), check: bool = True,
                 node_totals: list[dict] | None = None):
        self.clock = clock
        self.rng = rng
        self.config = config or PlacementConfig()
        self.meta_lag_s = meta_lag_s
        self.check_invariants = check
        self.violations: list[str] = []
        self.client = InMemoryPeerClient(self, latency=latency)
        self.nodes: dict[str, SimNode] = {}
        self.policy = policies.load_policy(self.config.policy)
        self._ids = random.Random(rng.random())
        for i in range(n_nodes):
            t = dict(node_totals[i]) if node_totals else dict(
                totals or {"cpus": 16.0, "mem_mb": 32768, "disk_gb": 100})
            self.add_node(f"node-{i}", t, NodeFacts(az="nova", runtimes=runtimes,
                                                    api=f"node-{i}:9517", peer=f"node-{i}:9518"))

    def _new_id(self) -> str:
        return "%032x" % self._ids.getrandbits(128)

    def add_node(self, name: str, totals: dict, facts: NodeFacts) -> SimNode:
        node = SimNode(name=name, totals=totals, local=LocalNode(facts))

        async def store_view(_node=node):
            return _node.committed()

        node.bidder = Bidder(name, totals, store_view, self.clock, self.config.reservation_ttl_s,
                             self.policy, self.config.tenant_mode, node.local, new_id=self._new_id)
        node.coordinator = Coordinator(name, self.view, self.client, self.config, self.clock,
                                       random.Random(self.rng.random()), policy=self.policy)
        self.nodes[name] = node
        self.publish(node)
        return node

    # -- gossip --------------------------------------------------------------------

    def publish(self, node: SimNode) -> None:
        node.pending_publish = None
        node.meta = metadata.build(node.local.facts, node.usage(), node.totals,
                                   dict(node.tenants))

    def changed(self, node: SimNode) -> None:
        if self.meta_lag_s is None:
            return
        if self.meta_lag_s <= 0:
            self.publish(node)
        elif node.pending_publish is None:
            node.pending_publish = self.clock.callLater(self.meta_lag_s, self.publish, node)

    def view(self) -> list[NodeView]:
        return [NodeView(n.name, n.state, f"{n.name}:9517", f"{n.name}:9518", n.meta)
                for n in self.nodes.values()]

    # -- the fake store -------------------------------------------------------------

    def do_create_for(self, node: SimNode, ctx: dict, create: dict, run: bool):
        async def do_create(reservation):
            if not _zero_delay(node.create_delay):
                d = defer.Deferred()
                self.clock.callLater(self.rng.uniform(*node.create_delay), d.callback, None)
                await d
            req = reservation.request
            rec = SimRecord(uuid=req.uuid, project_id=req.project_id, cpu=req.cpu,
                            memory=req.memory_mb, disk=req.disk_gb or 0, host=node.name)
            node.add(rec)
            self.check(node)
            self.changed(node)
            return rec.to_wire()
        return do_create

    def delete(self, node_name: str, uuid: str) -> bool:
        node = self.nodes[node_name]
        if node.remove(uuid):
            self.changed(node)
            return True
        return False

    # -- invariants -----------------------------------------------------------------

    def check(self, node: SimNode | None = None) -> None:
        """Capacity (records + live reservations ≤ totals) and strict tenancy (≤ 1
        project per node, reservations included). Violations are collected."""
        if not self.check_invariants:
            return
        for n in [node] if node is not None else list(self.nodes.values()):
            state = n.bidder.state_of(n.records)  # from the records, not the running sums
            if state.cpu_free < -1e-9 or state.mem_free_mb < 0 or state.disk_free_gb < 0:
                self.violations.append(f"{n.name} oversubscribed (reservations included): {state}")
            committed = capacity.usage_of(n.records)
            if committed.cpu_used > state.cpus + 1e-9 or committed.mem_used_mb > state.mem_mb \
                    or committed.disk_used_gb > state.disk_gb:
                self.violations.append(f"{n.name} records exceed totals: {committed}")
            if self.config.tenant_mode == "strict":
                projects = {p for p, c in state.tenants.items() if c > 0}
                if len(projects) > 1:
                    self.violations.append(f"{n.name} hosts projects {sorted(projects)}")
        if self.violations:
            raise InvariantViolation("; ".join(self.violations[:3]))

    # -- driving ----------------------------------------------------------------------

    def place(self, entry: str, req: PlacementRequest) -> defer.Deferred:
        """Start placing ``req`` at ``entry``; the Deferred fires with (record, decision)."""
        coord = self.nodes[entry].coordinator
        create = CreateRequest(image="busybox", name=f"sim-{req.uuid}", cpu=req.cpu,
                               memory=req.memory_mb, run=True)
        return defer.Deferred.fromCoroutine(coord.place(req, {"project_id": req.project_id},
                                                        create))

    def allocations(self) -> dict:
        return {n.name: capacity.usage_of(n.records) for n in self.nodes.values()}


def run_until_done(clock, deferreds, step_s: float = 0.001, limit_s: float = 600.0) -> list:
    """Advance ``clock`` until every Deferred fired; their outcomes (value or Failure)."""
    results: list = [None] * len(deferreds)
    done = [False] * len(deferreds)

    for i, d in enumerate(deferreds):
        def record(outcome, _i=i):
            results[_i] = outcome
            done[_i] = True
            return None
        d.addBoth(record)
    start = clock.seconds()
    while not all(done):
        if clock.seconds() - start > limit_s:
            raise RuntimeError("simulation did not finish")
        clock.advance(step_s)
    return results
