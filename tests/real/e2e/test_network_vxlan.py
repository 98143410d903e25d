"""Real tier, issue 16: tenant networks on the kernel's VXLAN across real ``zund
serve`` processes, each in a network namespace the test creates (underlay
10.212.0.1-2 on a bridge, ``tests.support.netns``), with the shared real dockerd.

Each node's bridges, VXLAN devices and veths are made inside its own namespace;
containers get addresses only from networks the test created (10.90.x.0/24 and
10.91.x.0/24), so all traffic stays between addresses the test assigned.

One cluster serves every test of the module (start-up is most of the time)."""

from __future__ import annotations

import pytest

from tests.support.tenant_net import (A, B, IMAGE, addr, delete, execute, make_net, pings,
                                      poll, rebuild_bridge, run, vxlan_cluster)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with vxlan_cluster(str(tmp_path_factory.mktemp("netvx")), tag="nv", subnet="10.212.0",
                       extra={"docker": {"network_mode": "none"}}) as c:
        yield c


def test_containers_on_one_network_talk_across_nodes_and_other_projects_cannot(cluster):
    """a1 (node 1) and a2 (node 2) on net-a ping each other; b1 on project b's
    net-b (same addresses) reaches neither; another project sees net-a as 404."""
    n1, n2 = cluster.nodes
    net_a = make_net(n1, A, "net-a", "10.90.1.0/24")
    net_b = make_net(n2, B, "net-b", "10.90.1.0/24")
    assert n2.api("GET", f"/networks/{net_a['uuid']}", token=B).status_code == 404
    r = n2.api("POST", "/containers", token="admin:proj-b",
               json={"image": IMAGE, "nets": [{"network": net_a["uuid"]}]})
    assert r.status_code == 404, r.text
    a1 = run(n1, A, "a1", n1.name, [{"network": "net-a"}])
    a2 = run(n2, A, "a2", n2.name, [{"network": "net-a"}])
    # same subnet, another project's network: a distinct address that would
    # reach a1/a2 if the networks were not isolated
    b1 = run(n2, B, "b1", n2.name, [{"network": "net-b", "v4-fixed-ip": "10.90.1.200"}])
    try:
        ip1, ip2 = addr(a1, net_a["uuid"]), addr(a2, net_a["uuid"])
        assert ip1 != ip2
        poll(lambda: pings(n1, A, a1["uuid"], ip2), 20, "a1 -> a2 across nodes")
        assert pings(n2, A, a2["uuid"], ip1)
        assert not pings(n2, B, b1["uuid"], ip1)
        assert not pings(n2, B, b1["uuid"], ip2)
        listed = n2.api("GET", f"/containers/{a1['uuid']}/network_list", token=A).json()
        assert listed["networks"][0]["net_id"] == net_a["uuid"]
        # a network in use is not deleted
        r = n2.api("DELETE", f"/networks/{net_a['uuid']}", token=A)
        assert r.status_code == 409, r.text
        # node 1's bridge is deleted under a1: the sync makes it again with a1's
        # veth on it, and the two containers talk again
        rebuild_bridge(n1, net_a)
        poll(lambda: pings(n1, A, a1["uuid"], ip2), 20, "a1 -> a2 after the bridge came back")
        assert pings(n2, A, a2["uuid"], ip1)
        assert not pings(n2, B, b1["uuid"], ip1)
    finally:
        for rec, tok in ((a1, A), (a2, A), (b1, B)):
            delete(n1, tok, rec["uuid"])


def test_attach_detach_live_and_restarts_keep_the_address(cluster):
    """A running container gets a second network live and loses it again; its
    address survives a reboot through the API, a restart-policy restart by
    dockerd (the sandbox keeps the namespace) and a rebuild."""
    n1, n2 = cluster.nodes
    net_c = make_net(n1, A, "net-c", "10.90.3.0/24")
    net_d = make_net(n1, A, "net-d", "10.90.4.0/24")
    c1 = run(n1, A, "c1", n1.name, [{"network": "net-c"}],
              restart_policy={"Name": "always"})
    d1 = run(n2, A, "d1", n2.name, [{"network": "net-d"}])
    try:
        ip_c = addr(c1, net_c["uuid"])
        ip_d = addr(d1, net_d["uuid"])
        assert not pings(n1, A, c1["uuid"], ip_d)
        r = n1.api("POST", f"/containers/{c1['uuid']}/network_attach?network=net-d", token=A)
        assert r.status_code == 200, r.text
        poll(lambda: pings(n1, A, c1["uuid"], ip_d), 20, "attached c1 -> d1")
        r = n1.api("POST", f"/containers/{c1['uuid']}/network_detach?network=net-d", token=A)
        assert r.status_code == 200, r.text
        assert not pings(n1, A, c1["uuid"], ip_d)
        assert list(n1.api("GET", f"/containers/{c1['uuid']}", token=A)
                    .json()["addresses"]) == [net_c["uuid"]]
        # reboot through the API
        r = n1.api("POST", f"/containers/{c1['uuid']}/reboot", token=A)
        assert r.status_code == 202, r.text
        n1.wait_status(c1["uuid"], "Running", 60, token=A)
        out = execute(n1, A, c1["uuid"], "ip", "-4", "-o", "addr", "show")["output"]
        assert ip_c in out
        # the process exits: dockerd's restart policy starts it again, same address
        execute(n1, A, c1["uuid"], "kill", "1")
        out = poll(lambda: (lambda o: o if ip_c in o else None)(
            execute(n1, A, c1["uuid"], "ip", "-4", "-o", "addr", "show")["output"]),
            30, "address after dockerd's restart")
        assert ip_c in out
        # a rebuild makes a new app container: it joins the same sandbox
        r = n1.api("POST", f"/containers/{c1['uuid']}/rebuild", token=A, json={})
        assert r.status_code == 202, r.text
        poll(lambda: n1.api("GET", f"/containers/{c1['uuid']}", token=A).json()
              .get("task_state") is None, 60, "rebuild done")
        n1.wait_status(c1["uuid"], "Running", 60, token=A)
        out = execute(n1, A, c1["uuid"], "ip", "-4", "-o", "addr", "show")["output"]
        assert ip_c in out
    finally:
        delete(n1, A, c1["uuid"])
        delete(n2, A, d1["uuid"])


def test_network_definitions_and_nodes_blocks_survive_a_node_death(cluster):
    """With node 2 stopped, node 1 still lists and serves project a's networks
    (definitions are replicated), and a new container on node 1 gets an address
    outside every block node 2 holds."""
    n1, n2 = cluster.nodes
    net_e = make_net(n2, A, "net-e", "10.90.5.0/24")
    e2 = run(n2, A, "e2", n2.name, [{"network": "net-e"}])
    ip_e2 = addr(e2, net_e["uuid"])
    n2.terminate()
    try:
        names = {n["name"] for n in n1.api("GET", "/networks", token=A).json()["networks"]}
        assert "net-e" in names
        cluster.wait_hosts(lambda node, hosts: hosts.get(n2.name) == "down", 60,
                           "node 2 down", nodes=[n1])
        e1 = run(n1, A, "e1", n1.name, [{"network": "net-e"}])
        ip_e1 = addr(e1, net_e["uuid"])
        size = 16
        assert int(ip_e1.rsplit(".", 1)[1]) // size != int(ip_e2.rsplit(".", 1)[1]) // size
        delete(n1, A, e1["uuid"])
    finally:
        n2.start()
        cluster.wait_hosts(lambda node, hosts: hosts.get(n2.name) == "up", 60, "node 2 back")
        delete(n2, A, e2["uuid"])
