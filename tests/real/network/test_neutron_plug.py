"""Real tier, issue 16 §3: Neutron ports plugged into live Docker containers.

Two real ``zund serve`` processes (Docker runtime, ``auth_strategy = keystone``,
``[network] driver = neutron``), each in a network namespace the test creates,
joined by a veth underlay (10.217.0.1-2, ``tests.support.netns``). Neutron
(tools/neutron.sh, ``vxlan`` tenant networks) binds ports with the agentless test
mechanism driver (tests/support/neutron_mech.py): vif_type ``bridge`` on
``brq<net-id[:11]>``, the removed linuxbridge driver's naming. No agent exists
here, so the test plays its part, as the linuxbridge agent did: in each node's
namespace, that bridge plus a VXLAN device ``vxlan-<VNI>`` (the network's
segmentation id) flooding to the other node's underlay address. Containers get
only the addresses of the subnet the test made in Neutron (10.78.1.0/24), so all
traffic stays between addresses the test assigned.

Keystone and Neutron listen on the host's loopback, which a namespace cannot
reach: for each, the test opens a listening socket on 127.0.0.1 *inside* the
node's namespace, at the same port (so the catalog's URLs work unchanged), and
hands it to a relay process in the host's namespace (``python -m
tests.support.netns relay``, the same relay the node's API is reached through,
the other way round)."""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys
import threading
import urllib.parse

import pytest

from tests.real.e2e.keystone import real_keystone  # noqa: F401 (fixture)
from tests.support.netns import ROOT, NetnsCluster, ip
from tests.support.neutron_service import real_neutron  # noqa: F401 (fixture)
from tests.support.tenant_net import IMAGE, RUNNER, execute, poll, remove_leftovers
from zund.network.neutron import DEVICE_OWNER
from zund.network.plugger import sandbox_name

CIDR = "10.78.1.0/24"
CLONE_NEWNET = 0x40000000


def _listener_in(ns: str, port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:``port`` of namespace ``ns``: made by a
    short-lived thread that enters ``ns`` (a network namespace is per thread), so
    no other thread of the test ever changes namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    out: dict = {}

    def work():
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                out["error"] = OSError(ctypes.get_errno(), f"setns {ns}")
                return
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(128)
            out["sock"] = s
        except OSError as e:
            out["error"] = e
        finally:
            os.close(target)  # the thread ends here, in ``ns``: nothing else runs on it

    t = threading.Thread(target=work, name=f"listener-in-{ns}")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["sock"]


class HostServices:
    """Relays from the node's namespace to services on the host's loopback."""

    def __init__(self):
        self.socks: list[socket.socket] = []
        self.procs: list[subprocess.Popen] = []

    def relay(self, ns: str, url: str) -> None:
        port = urllib.parse.urlsplit(url).port
        sock = _listener_in(ns, port)
        self.socks.append(sock)
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.support.netns", "relay", "--fd", str(sock.fileno()),
             "--to", f"127.0.0.1:{port}", "--parent", str(os.getpid())],
            pass_fds=(sock.fileno(),), cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def close(self) -> None:
        for proc in self.procs:  # only the relays started here, by PID
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        for sock in self.socks:
            sock.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, real_keystone, real_neutron):  # noqa: F811
    ks = real_keystone
    extra = {
        **ks.node_config(),
        "network": {"driver": "neutron", "sandbox_image": IMAGE},
        "neutron": {"auth_type": "password", "auth_url": ks.auth_url,
                    "username": ks.service_user, "password": ks.password,
                    "project_name": ks.service_project, "user_domain_name": "Default",
                    "project_domain_name": "Default", "region_name": ks.region,
                    "valid_interfaces": "public", "port_active_timeout": "30",
                    "port_poll_interval": "0.1"},
        "docker": {"network_mode": "none"},
    }
    cluster = NetnsCluster(str(tmp_path_factory.mktemp("nplug")), n=2, tag="npl",
                           subnet="10.217.0", runtimes="docker", extra=extra)
    relays = HostServices()
    try:
        cluster.setup()
        for n in cluster.nodes:
            relays.relay(n.ns, ks.auth_url)
            relays.relay(n.ns, real_neutron.url)
            n.start()
        admin = ks.token("a-admin", "project-a")

        def _listed(n):
            r = n.api("GET", "/hosts", token=admin)
            return r.status_code == 200 and len(r.json().get("hosts") or []) == 2

        poll(lambda: all(_listed(n) for n in cluster.nodes), 60, "both nodes list both")
        yield cluster
    finally:
        cluster.close()
        relays.close()
        remove_leftovers({n.name for n in cluster.nodes})


def play_agent(cluster, net: dict) -> None:
    """What Neutron's linuxbridge agent did for a VXLAN network, on every node:
    the bridge the ports name, and on it a VXLAN device (learning on) that floods
    unknown destinations to the other nodes' underlay addresses."""
    vni = str(net["provider:segmentation_id"])
    bridge, vxlan = "brq" + net["id"][:11], "vxlan-" + vni
    for n in cluster.nodes:
        ip("-n", n.ns, "link", "add", bridge, "type", "bridge")
        ip("-n", n.ns, "link", "add", vxlan, "type", "vxlan", "id", vni, "local", n.addr,
           "dev", "eth0", "dstport", "4789")
        for other in cluster.nodes:
            if other is not n:
                subprocess.run(["ip", "netns", "exec", n.ns, "bridge", "fdb", "append",
                                "00:00:00:00:00:00", "dev", vxlan, "dst", other.addr],
                               check=True, capture_output=True, timeout=30)
        ip("-n", n.ns, "link", "set", vxlan, "master", bridge, "up")
        ip("-n", n.ns, "link", "set", bridge, "up")


@pytest.fixture
def tenant_net(real_neutron, cluster):  # noqa: F811
    """Project A's network and subnet, made in Neutron by a-member; the test then
    plays the (absent) agent on every node. Deleted as admin afterwards (ports
    first); the bridges go with the namespaces."""
    user = real_neutron.adapter("a-member", "project-a")
    net = user.post("/v2.0/networks", json={"network": {"name": "np-net-a"}}).json()["network"]
    try:
        user.post("/v2.0/subnets", json={"subnet": {
            "network_id": net["id"], "cidr": CIDR, "ip_version": 4,
            "name": "np-sub-a"}})
        seen = real_neutron.adapter().get(f"/v2.0/networks/{net['id']}").json()["network"]
        assert seen["provider:network_type"] == "vxlan", seen
        play_agent(cluster, seen)
        yield net
    finally:
        admin = real_neutron.adapter()
        for p in admin.get("/v2.0/ports", params={"network_id": net["id"]}).json()["ports"]:
            admin.delete(f"/v2.0/ports/{p['id']}", raise_exc=False)
        admin.delete(f"/v2.0/networks/{net['id']}", raise_exc=False)


def _sandbox_exists(uuid: str) -> bool:
    import docker

    client = docker.APIClient()
    try:
        client.inspect_container(sandbox_name(uuid))
        return True
    except docker.errors.NotFound:
        return False
    finally:
        client.close()


def _pings(node, token, uuid, addr) -> bool:
    return execute(node, token, uuid, "ping", "-c1", "-W1", addr)["exit_code"] == 0


def test_neutron_ports_are_plugged_into_live_containers_that_talk_and_are_released(
        cluster, real_neutron, real_keystone, tenant_net):  # noqa: F811
    """A container on each node on one Neutron network: each holds its Neutron
    port's fixed IP and MAC (port ACTIVE, compute:zun, bound to its node), they
    ping each other across the nodes, and deleting a container deletes its port."""
    member = real_keystone.token("a-member", "project-a")
    # image_pull_policy and host are an admin's (Zun's policy): a-admin, in project a
    admin = real_keystone.token("a-admin", "project-a")
    neutron = real_neutron.adapter()
    n1, n2 = cluster.nodes
    placed = []  # (node, record)
    try:
        for n in (n1, n2):
            r = n1.api("POST", "/containers?run=true", token=admin, json={
                "image": IMAGE, "name": "np-" + n.name, "command": RUNNER, "host": n.name,
                "image_pull_policy": "never", "nets": [{"network": tenant_net["id"]}]})
            assert r.status_code == 202, r.text
            placed.append((n, n.wait_status(r.json()["uuid"], "Running", 90, token=member)))
        addrs = []
        for n, rec in placed:
            [entry] = rec["addresses"][tenant_net["id"]]
            [port] = neutron.get("/v2.0/ports",
                                 params={"device_id": rec["uuid"]}).json()["ports"]
            assert (port["id"], port["status"], port["device_owner"],
                    port["binding:host_id"], port["binding:vif_type"]) == (
                entry["port"], "ACTIVE", DEVICE_OWNER, n.name, "bridge")
            assert [f["ip_address"] for f in port["fixed_ips"]] == [entry["addr"]]
            assert entry["mac_addr"] == port["mac_address"]
            # inside the container: the port's MAC and address on eth0
            shown = execute(n, member, rec["uuid"], "ip", "-o", "addr", "show", "eth0")
            assert f"{entry['addr']}/24" in shown["output"], shown
            link = execute(n, member, rec["uuid"], "ip", "-o", "link", "show", "eth0")
            assert port["mac_address"] in link["output"], link
            addrs.append(entry["addr"])
        (_, c1), (_, c2) = placed
        assert addrs[0] != addrs[1]
        assert _pings(n1, member, c1["uuid"], addrs[1])  # across the nodes
        assert _pings(n2, member, c2["uuid"], addrs[0])

        port_id = c1["addresses"][tenant_net["id"]][0]["port"]
        r = n1.api("DELETE", f"/containers/{c1['uuid']}?force=true", token=admin)
        assert r.status_code == 204, r.text
        poll(lambda: n1.api("GET", f"/containers/{c1['uuid']}",
                             token=admin).status_code == 404, 60, "c1 deleted")
        placed.pop(0)
        assert neutron.get(f"/v2.0/ports/{port_id}", raise_exc=False).status_code == 404
        assert not _sandbox_exists(c1["uuid"])
        assert not _pings(n2, member, c2["uuid"], addrs[0])
    finally:
        for n, rec in placed:
            n.api("DELETE", f"/containers/{rec['uuid']}?force=true", token=admin)
            poll(lambda u=rec["uuid"], n=n: n.api("GET", f"/containers/{u}",
                                                   token=admin).status_code == 404,
                  60, f"{rec['uuid']} deleted")
