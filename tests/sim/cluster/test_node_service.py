"""Simulated tier: whole nodes built by ``zund.service.build_node`` in one process on
one clock — fake runtime, in-memory store, gossip over the in-memory network, no
sockets — started and stopped through their service tree."""

from __future__ import annotations

import base64
import json
import random

import pytest
from treq.testing import StubTreq
from twisted.internet import defer

from zund.cluster.metadata import NodeMeta
from zund.common import errors
from zund.compute import capacity
from zund.conf import make_conf
from zund.gossip.memnet import HeapClock, MemoryNetwork
from zund.runtimes.fake import FakeRuntime
from zund.service import NodeService, build_node
from zund.store import Store

GOSSIP_KEY = base64.b64encode(b"k" * 32).decode()
HOST = capacity.HostFacts(cpus=4, mem_total_mb=4096, disk_total_gb=50, architecture="x86_64",
                          os="SimOS", kernel_version="6.0-sim")
START_ORDER = ["store", "observers", "runtimes", "compute", "images", "quota", "registries",
               "flavors", "peer-client", "peer-rpc", "api", "console", "console-ws", "metrics",
               "nova-api", "replicator", "healer", "announcer", "gossip", "control"]


def node_conf(i: int, seeds=()):
    conf = make_conf()
    conf([])
    ip = f"127.0.0.{i}"
    for name, value, group in [
            ("host", f"node{i}", None), ("state_path", f"/nonexistent/zund-node{i}", None),
            ("default_runtime", "runc", None), ("enabled_runtimes", ["fake"], None),
            ("host_ip", ip, "api"), ("port", 9517, "api"),
            ("host_ip", ip, "peer"), ("port", 9518, "peer"),
            ("bind_host", ip, "gossip"), ("bind_port", 9519, "gossip"),
            ("seeds", list(seeds), "gossip"), ("keys", [GOSSIP_KEY], "gossip"),
            ("cluster_name", "sim", "gossip"), ("profile", "local", "gossip"),
            ("reserved_host_memory_mb", 0, "compute"), ("cpu_allocation_ratio", 1.0, "compute"),
            ("ram_allocation_ratio", 1.0, "compute")]:
        conf.set_override(name, value, group=group)
    return conf


def sync_blocking(fn, *a, **kw):
    return defer.maybeDeferred(fn, *a, **kw)


def make_node(i: int, clock, net, seeds=(), runtimes=None) -> NodeService:
    name = f"node{i}"
    return build_node(
        node_conf(i, seeds), clock, random.Random(i),
        runtimes=runtimes if runtimes is not None else {"runc": FakeRuntime(name, clock=clock)},
        host_facts=HOST, store=Store(":memory:", run_blocking=sync_blocking),
        gossip_transport_factory=net.transport, listen=False, id_rng=random.Random(100 + i))


def wait_until(clock, predicate, deadline_s=30.0, step_s=0.05):
    """Advance the simulated clock until ``predicate()`` holds (fail at the deadline)."""
    end = clock.seconds() + deadline_s
    while not predicate():
        assert clock.seconds() < end, "condition not met before the simulated deadline"
        clock.advance(step_s)


def outcome(d: defer.Deferred):
    box = []
    d.addBoth(box.append)
    return box


@pytest.fixture
def world():
    clock = HeapClock()
    clock.advance(1_700_000_000.0)
    return clock, MemoryNetwork(clock, random.Random(1))


def test_the_factory_parents_the_children_in_dependency_order(world):
    """store -> runtimes -> compute -> peer client -> peer RPC -> API -> replicator ->
    announcer -> gossip -> control: the order Twisted starts them (and stops them
    reversed)."""
    clock, net = world
    node = make_node(1, clock, net)
    assert [child.name for child in node] == START_ORDER
    assert not any(child.running for child in node)  # building started nothing


def test_a_node_starts_announces_itself_and_stops_in_process(world):
    """Started on a clock with no sockets, the node's own view shows its typed
    metadata (addresses, runtimes, capacity); stopping stops every child."""
    clock, net = world
    node = make_node(1, clock, net)
    started = outcome(node.startService())
    wait_until(clock, lambda: started)
    assert started == [None]
    assert all(child.running for child in node)
    (me,) = node.parts.view.nodes()
    assert isinstance(me.meta, NodeMeta)
    assert (me.name, me.state, me.api, me.peer) == ("node1", "alive", "127.0.0.1:9517",
                                                    "127.0.0.1:9518")
    assert me.changed_at is not None
    assert me.meta.runtimes == ("runc",) and me.meta.cap.cpus == 4.0
    assert me.meta.hardware.os == "SimOS"

    stopped = outcome(node.stopService())
    wait_until(clock, lambda: stopped)
    assert not any(child.running for child in node)


def test_a_runtime_that_does_not_open_is_not_advertised(world):
    """One broken runtime is dropped from the node's facts; the node still serves."""
    clock, net = world

    class Broken(FakeRuntime):
        async def open(self):
            raise errors.RuntimeUnavailable(runtime="microvm", reason="no kvm here")

    runtimes = {"runc": FakeRuntime("node1", clock=clock),
                "microvm": Broken("node1", clock=clock)}
    node = make_node(1, clock, net, runtimes=runtimes)
    started = outcome(node.startService())
    wait_until(clock, lambda: started)
    assert started == [None]
    assert node.parts.local.facts.runtimes == ("runc",)
    assert node.parts.manager.runtime_names() == ["runc"]


def test_start_fails_when_no_runtime_opens_and_stop_still_closes_what_opened(world):
    """No usable runtime: ``started`` fails with RuntimeUnavailable; stopping
    afterwards stops the parts that did start."""
    clock, net = world

    class Broken(FakeRuntime):
        async def open(self):
            raise errors.RuntimeUnavailable(runtime="runc", reason="engine down")

    node = make_node(1, clock, net, runtimes={"runc": Broken("node1", clock=clock)})
    started = outcome(node.startService())
    wait_until(clock, lambda: started)
    assert started[0].check(errors.RuntimeUnavailable)
    assert not node.getServiceNamed("gossip").running  # never joined
    stopped = outcome(node.stopService())
    wait_until(clock, lambda: stopped)
    assert not any(child.running for child in node)


def test_two_nodes_see_each_other_through_gossip_and_the_api(world):
    """Node 2 joins node 1 over the in-memory network; each node's view carries the
    other's decoded metadata, /v1/hosts on node 2 lists both nodes, and a node
    that starts draining is seen draining by the other."""
    clock, net = world
    n1 = make_node(1, clock, net)
    n2 = make_node(2, clock, net, seeds=["127.0.0.1:9519"])
    for node in (n1, n2):
        outcome(node.startService())

    def sees_both(node):
        views = {v.name: v for v in node.parts.view.nodes()}
        return (set(views) == {"node1", "node2"}
                and all(v.meta is not None and v.state == "alive" for v in views.values()))

    wait_until(clock, lambda: sees_both(n1) and sees_both(n2))
    peer = {v.name: v for v in n2.parts.view.nodes()}["node1"]
    assert peer.peer == "127.0.0.1:9518" and peer.meta.runtimes == ("runc",)

    client = StubTreq(n2.parts.api.resource())
    got = outcome(defer.ensureDeferred(_get_json(client, "http://127.0.0.2:9517/v1/hosts")))
    wait_until(clock, lambda: got)
    hosts = sorted(h["hostname"] for h in got[0]["hosts"])
    assert hosts == ["node1", "node2"]

    rows = {p["name"]: p for p in n1.parts.view.peers()}
    assert rows["node2"]["summary"]["cpu_free"] == 4.0
    json.dumps(rows)  # the control socket serves these rows as JSON

    # a fact changed on one node is announced and reaches the other
    n2.parts.local.set_draining(True)
    wait_until(clock, lambda: {v.name: v for v in n1.parts.view.nodes()}["node2"].meta.draining)


async def _get_json(client, url):
    resp = await client.get(url, headers={"OpenStack-API-Version": "container 1.12"})
    assert resp.code == 200, await resp.text()
    return await resp.json()
