"""Real tier, issue 16: security groups enforced by the vxlan backend, across two
real ``zund serve`` processes each in a network namespace the test creates
(underlay 10.215.0.1-2, ``tests.support.netns``), with the shared real dockerd.

Containers get addresses only from the networks the test defines (10.92.x.0/24),
so all traffic stays between addresses the test assigned. Helpers are the ones of
``test_network_vxlan``. One cluster serves the module."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.tenant_net import (A, addr, delete, execute, make_net, pings, poll, run,
                                      vxlan_cluster)

#: answers "hi" on 8080 and 8081 (busybox nc, one process per connection)
SERVER = ["sh", "-c", "nc -ll -p 8080 -e echo hi & nc -ll -p 8081 -e echo hi & "
                      'trap "exit 0" TERM; while true; do sleep 1; done']
OLD = {"OpenStack-API-Version": "container 1.14"}  # add/remove_security_group


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with vxlan_cluster(str(tmp_path_factory.mktemp("netsg")), tag="ns", subnet="10.215.0",
                       extra={"docker": {"network_mode": "none"}}) as c:
        yield c


def _connects(node, uuid: str, addr: str, port: int) -> bool:
    """A TCP connection from ``uuid`` to ``addr:port`` gets the server's answer."""
    out = execute(node, A, uuid, "sh", "-c", f"nc -w 2 {addr} {port} </dev/null")
    return out["exit_code"] == 0 and "hi" in (out.get("output") or "")


def _port_rules(node) -> list[str]:
    """The per-port iptables/ip6tables rules left in the node's namespace."""
    out = []
    for tool in ("iptables", "ip6tables"):
        p = subprocess.run(["ip", "netns", "exec", node.ns, tool, "-w", "5", "-S"],
                           capture_output=True, text=True, timeout=30)
        out += [line for line in p.stdout.splitlines() if "zsg-" in line or "physdev" in line]
    return out


def _replies(node, uuid: str, after_s: float = 0.0) -> int:
    """How many echo replies the background ping of ``uuid`` has logged so far
    (read ``after_s`` seconds from now, in the container)."""
    out = execute(node, A, uuid, "sh", "-c",
                f"sleep {after_s}; grep -c 'bytes from' /tmp/flow || true")["output"]
    return int(out.strip().splitlines()[-1] or 0)


def _group(node, uuid: str, action: str, name: str) -> None:
    r = node.api("POST", f"/containers/{uuid}/{action}_security_group?name={name}",
                 token=A, headers=OLD)
    assert r.status_code == 202, r.text


def test_groups_admit_their_members_only_and_change_live(cluster):
    """On one network: w1 (node 1) and w2 (node 2) in group web reach each other;
    d2 (node 2, no group: default) and w1 do not; adding web to d2 live opens
    w1 to it, removing it closes it again."""
    n1, n2 = cluster.nodes
    net = make_net(n1, A, "net-sg", "10.92.1.0/24")
    w1 = run(n1, A, "w1", n1.name, [{"network": "net-sg"}], security_groups=["web"],
              command=SERVER)
    w2 = run(n2, A, "w2", n2.name, [{"network": "net-sg"}], security_groups=["web"])
    d2 = run(n2, A, "d2", n2.name, [{"network": "net-sg"}])
    try:
        ip_w1, ip_w2, ip_d2 = (addr(r, net["uuid"]) for r in (w1, w2, d2))
        poll(lambda: pings(n2, A, w2["uuid"], ip_w1), 20, "w2 -> w1 (web, across nodes)")
        poll(lambda: pings(n1, A, w1["uuid"], ip_w2), 20, "w1 -> w2 (web, across nodes)")
        assert _connects(n2, w2["uuid"], ip_w1, 8080)
        assert not pings(n2, A, d2["uuid"], ip_w1)
        assert not _connects(n2, d2["uuid"], ip_w1, 8080)
        assert not pings(n1, A, w1["uuid"], ip_d2)
        # d2 joins web live: w1 (on the other node) lets it in
        _group(n2, d2["uuid"], "add", "web")
        poll(lambda: pings(n2, A, d2["uuid"], ip_w1), 20, "d2 -> w1 after add web")
        assert _connects(n2, d2["uuid"], ip_w1, 8081)
        shown = n1.api("GET", f"/containers/{d2['uuid']}", token=A).json()
        assert shown["security_groups"] == ["web"]
        # and leaves it: closed again, a flow already under way included (one
        # ping process: its echoes are one conntrack entry, ESTABLISHED)
        execute(n2, A, d2["uuid"], "sh", "-c", f"ping -i 0.2 {ip_w1} >/tmp/flow 2>&1 &")
        poll(lambda: _replies(n2, d2["uuid"]) > 0, 10, "the flow d2 -> w1 answered")
        _group(n1, d2["uuid"], "remove", "web")
        poll(lambda: not pings(n2, A, d2["uuid"], ip_w1), 20, "d2 -> w1 closed again")
        settled = poll(lambda: (lambda a: a if a == _replies(n2, d2["uuid"], 1.0) else 0)(
            _replies(n2, d2["uuid"])), 20, "the flow under way stopped")
        assert settled > 0
        assert pings(n2, A, w2["uuid"], ip_w1)
    finally:
        for rec in (w1, w2, d2):
            delete(n1, A, rec["uuid"])


def test_an_exposed_port_opens_just_that_port(cluster):
    """e1 (node 1) exposes 8080/tcp: c2 (node 2, default group) connects to 8080
    but neither to 8081 nor by ping; c1 on e1's own node is held the same way."""
    n1, n2 = cluster.nodes
    net = make_net(n1, A, "net-ex", "10.92.2.0/24")
    e1 = run(n1, A, "e1", n1.name, [{"network": "net-ex"}],
              exposed_ports={"8080/tcp": {}}, command=SERVER)
    c2 = run(n2, A, "c2", n2.name, [{"network": "net-ex"}])
    c1 = run(n1, A, "c1", n1.name, [{"network": "net-ex"}])
    try:
        ip_e1 = addr(e1, net["uuid"])
        poll(lambda: _connects(n2, c2["uuid"], ip_e1, 8080), 20, "c2 -> e1:8080")
        assert not _connects(n2, c2["uuid"], ip_e1, 8081)
        assert not pings(n2, A, c2["uuid"], ip_e1)
        assert _connects(n1, c1["uuid"], ip_e1, 8080)
        assert not _connects(n1, c1["uuid"], ip_e1, 8081)
    finally:
        for rec in (e1, c2, c1):
            delete(n1, A, rec["uuid"])
    # released ports take their rules with them
    assert _port_rules(n1) == [] and _port_rules(n2) == []
