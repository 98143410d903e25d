"""Simulated tier, issue 16: the vxlan backend turns replicated port membership
into per-port ingress rules (``zund.network.vxlan`` + ``secgroups``), on one
``task.Clock``, with a data plane stand-in that keeps the kernel's state."""

from __future__ import annotations

import pytest
from twisted.internet import task
from twisted.internet.defer import ensureDeferred

from zund.common.context import RequestContext
from zund.network import records as R
from zund.network.vxlan import VxlanConfig, VxlanNetworks

CTX = RequestContext(user_id="alice", project_id="proj-a")


class KernelState:
    """What a real data plane leaves in the kernel: networks and each port's
    rules, and how often each port's rules were rebuilt."""

    def __init__(self):
        self.networks: dict[int, frozenset] = {}
        self.rules: dict[str, object] = {}
        self.rebuilds: dict[str, int] = {}

    async def ensure_network(self, vni, mtu, local_ip, port, vteps, members=()):
        self.networks[vni] = frozenset(vteps)

    async def remove_network(self, vni):
        self.networks.pop(vni, None)

    async def apply_security(self, port, rules, revoked=()):
        self.rules[port.id] = rules
        self.rebuilds[port.id] = self.rebuilds.get(port.id, 0) + 1

    async def drop_security(self, port):
        self.rules.pop(port.id, None)


def _run(coro):
    d = ensureDeferred(coro)
    out = []
    d.addBoth(out.append)
    assert out, "the coroutine did not finish on the simulated clock"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


@pytest.fixture
def backend():
    clock = task.Clock()
    clock.advance(1000)
    kernel = KernelState()
    b = VxlanNetworks(VxlanConfig(node="n1", local_ip="10.212.0.1"), clock, dataplane=kernel)
    b.startService()
    yield b, kernel, clock
    b.stopService()


def _port(b, net, uuid, groups=(), exposed=None):
    [p] = _run(b.allocate(CTX, uuid, "n1", [{"network": net.id}]))
    if groups or exposed:
        p = _run(b.update_security(CTX, p, list(groups), dict(exposed or {})))
    return p


def test_ports_in_default_admit_each_other_and_a_grouped_port_admits_neither(backend):
    """Two ports without groups (default) admit each other; a port in web admits
    neither and neither admits it."""
    b, kernel, _ = backend
    net = _run(b.create_network(CTX, "n", "10.90.1.0/24"))
    p1, p2 = _port(b, net, "c1"), _port(b, net, "c2")
    w = _port(b, net, "c3", groups=["web"])
    _run(b.sync())
    assert kernel.rules[p1.id].sources == (p2.ip_address,)
    assert kernel.rules[p2.id].sources == (p1.ip_address,)
    assert kernel.rules[w.id].sources == ()


def test_changing_a_ports_groups_changes_its_peers_rules(backend):
    """update_security (add_security_group) moves a port into web: the web
    member admits it and the default ones stop admitting it."""
    b, kernel, _ = backend
    net = _run(b.create_network(CTX, "n", "10.90.1.0/24"))
    d, w = _port(b, net, "c1"), _port(b, net, "c2", groups=["web"])
    d2 = _port(b, net, "c3")
    _run(b.update_security(CTX, d, ["web"], {}))
    assert kernel.rules[w.id].sources == (d.ip_address,)
    assert kernel.rules[d2.id].sources == ()


def test_a_member_on_another_node_is_admitted_and_its_tombstone_closes_it_again(backend):
    """A membership another node replicated here counts once the network syncs;
    its deletion removes it again; a sync with no change rebuilds nothing."""
    b, kernel, clock = backend
    net = _run(b.create_network(CTX, "n", "10.90.1.0/24"))
    p = _port(b, net, "c1", groups=["web"])
    theirs = R.NetItem(R.member_key(net.id, "remote"), net.id,
                       {"port": "remote", "ip": "10.90.1.33", "project": "proj-a",
                        "groups": ["web"], "node": "n2"}, (clock.seconds(), "n2"))
    _run(b.kv.handle_put([theirs]))
    _run(b.sync())
    assert kernel.rules[p.id].sources == ("10.90.1.33",)
    before = kernel.rebuilds[p.id]
    _run(b.sync())
    assert kernel.rebuilds[p.id] == before
    _run(b.kv.handle_put([R.NetItem(theirs.key, net.id, theirs.data,
                                    (clock.seconds() + 1, "n2"), deleted=True)]))
    _run(b.sync())
    assert kernel.rules[p.id].sources == ()


def test_another_projects_group_of_the_same_name_is_not_shared(backend):
    """web of proj-b on a (shared) network does not admit proj-a's web."""
    b, kernel, clock = backend
    net = _run(b.create_network(CTX, "n", "10.90.1.0/24"))
    p = _port(b, net, "c1", groups=["web"])
    _run(b.kv.handle_put([R.NetItem(R.member_key(net.id, "x"), net.id,
                                    {"port": "x", "ip": "10.90.1.40", "project": "proj-b",
                                     "groups": ["web"], "node": "n2"},
                                    (clock.seconds(), "n2"))]))
    _run(b.sync())
    assert kernel.rules[p.id].sources == ()


def test_a_released_port_leaves_its_peers_rules_and_the_kernel(backend):
    """Releasing a port drops its rules and removes it from its peers' sources."""
    b, kernel, _ = backend
    net = _run(b.create_network(CTX, "n", "10.90.1.0/24"))
    p1, p2 = _port(b, net, "c1"), _port(b, net, "c2")
    _run(b.release(CTX, "c2", [p2]))
    assert p2.id not in kernel.rules
    assert kernel.rules[p1.id].sources == ()


def test_a_membership_left_behind_by_this_node_is_forgotten_on_sync(backend):
    """A member item of this node naming a port it no longer has (its tombstone
    was lost) is deleted by the next sync and admits nobody."""
    b, kernel, clock = backend
    net = _run(b.create_network(CTX, "n", "10.90.1.0/24"))
    p = _port(b, net, "c1")
    _run(b.kv.handle_put([R.NetItem(R.member_key(net.id, "gone"), net.id,
                                    {"port": "gone", "ip": "10.90.1.50", "project": "proj-a",
                                     "groups": ["default"], "node": "n1"},
                                    (clock.seconds(), "n1"))]))
    _run(b.sync())
    assert kernel.rules[p.id].sources == ()
    assert _run(b.kv.read(net.id))[R.member_key(net.id, "gone")].deleted


def test_a_port_released_while_its_rules_are_being_applied_leaves_no_rules(backend):
    """A sync is applying a port's rules (the data plane's thread still busy) when
    the container is deleted and the port released: once the apply ends, the
    port has no rules in the kernel (CI found a deleted port's chain left behind)."""
    from twisted.internet import defer

    b, kernel, _ = backend
    net = _run(b.create_network(CTX, "n", "10.90.1.0/24"))
    p1, p2 = _port(b, net, "c1"), _port(b, net, "c2")
    _run(b.sync())
    b.applied.pop(p1.id)  # as after a restart: the next sync applies p1's rules again
    gate = defer.Deferred()
    real_apply = kernel.apply_security

    async def slow_apply(port, rules, revoked=()):
        if port.id == p1.id:
            await gate
        await real_apply(port, rules, revoked)

    kernel.apply_security = slow_apply
    syncing = ensureDeferred(b.sync())
    assert not syncing.called  # held inside p1's apply
    releasing = ensureDeferred(b.release(CTX, "c1", [p1]))  # its own sync waits
    assert p1.id not in kernel.rules
    gate.callback(None)
    assert syncing.called and releasing.called
    assert p1.id not in kernel.rules
    assert kernel.rules[p2.id].sources == ()
