"""Real tier, issue 16's user session with the unmodified OpenStack client
(python-openstackclient + python-zunclient): tenant networks on the kernel's VXLAN
across two real ``zund serve`` nodes, each in a network namespace the test creates
(underlay 10.214.0.1-2, ``tests.support.netns``), on the shared real dockerd.

The client talks to each node through its loopback relay; it authenticates with
keystoneauth's ``admin_token`` plugin, whose token is noauth's ``user:project``
(so two projects' sessions are two tokens). The networks are defined through the
backend (Zun's client has no network create); everything else is the CLI.
Container addresses come only from the test's networks (10.93.x.0/24).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.tenant_net import A, B, IMAGE, RUNNER, delete, make_net, poll, vxlan_cluster

#: the project's admin: only an admin may ask for a host (``--host``)
A_ADMIN = "admin:proj-a"
B_ADMIN = "admin:proj-b"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with vxlan_cluster(str(tmp_path_factory.mktemp("netosc")), tag="no",
                       subnet="10.214.0") as c:
        yield c


def osc(node, token: str, *args, check: bool = True, fmt_json: bool = False):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_TYPE="admin_token", OS_TOKEN=token, OS_ENDPOINT=node.endpoint)
    argv = ["openstack", "appcontainer", *args] + (["-f", "json"] if fmt_json else [])
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}\n"
                             f"{node.log_tail()}")
    return json.loads(p.stdout) if fmt_json else p


def _run(node, token, name, *args):
    osc(node, token, "run", "--wait", "--name", name, "--host", node.name,
        "--image-pull-policy", "never", *args)
    shown = osc(node, token, "show", name, fmt_json=True)
    shown_all.append((node, token, shown))
    return shown


#: (node, token, shown) of every container the session made, for the cleanup
shown_all: list = []


def _net_ids(node, uuid: str) -> set:
    """The container's networks as ``network list`` asks for them. Through the API:
    the CLI's ``appcontainer network list`` fails client-side with this
    python-zunclient (5.5) and osc-lib (4.7): zunclient passes osc-lib a plain
    function as a column formatter, which osc-lib >= 4 refuses ("Invalid formatter
    provided.") before printing anything the server sent."""
    r = node.api("GET", f"/containers/{uuid}/network_list", token=A)
    assert r.status_code == 200, r.text
    return {n["net_id"] for n in r.json()["networks"]}


def _ip(shown: dict) -> str:
    """The address ``show`` prints (zunclient formats ``addresses`` as text)."""
    return shown["addresses"].split(",")[0].strip()


def _reaches(node, token, name, addr) -> bool:
    return osc(node, token, "exec", name, "ping", "-c1", "-W1", addr,
               check=False).returncode == 0


def _fetch(node, token, name, addr, port) -> bool:
    """An HTTP GET from container ``name`` to addr:port is answered within 2 s
    (busybox ``nc``: this image's ``wget`` crashes; the servers serve /etc)."""
    script = f"printf 'GET /passwd HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {addr} {port}"
    p = osc(node, token, "exec", name, "sh", "-c", script, check=False)
    return "200 OK" in p.stdout


def test_user_session_with_the_unmodified_cli(cluster):
    """run --net on two nodes, exec ping across them, another project's container
    cannot reach them, network attach/list/detach live, and --expose-port opens
    exactly the exposed port to the network (another port stays blocked)."""
    n1, n2 = cluster.nodes
    net_a = make_net(n1, A, "net-a", "10.93.1.0/24")
    make_net(n2, B, "net-b", "10.93.1.0/24")
    net_c = make_net(n1, A, "net-c", "10.93.3.0/24")
    shown_all.clear()
    try:
        a1 = _run(n1, A_ADMIN, "a1", "--net", "network=net-a", IMAGE, *RUNNER)
        a2 = _run(n2, A_ADMIN, "a2", "--net", "network=net-a", IMAGE, *RUNNER)
        assert (a1["host"], a2["host"]) == (n1.name, n2.name)
        ip1, ip2 = _ip(a1), _ip(a2)
        poll(lambda: _reaches(n1, A, "a1", ip2), 30, "a1 -> a2 across nodes")
        # another project's container, on its own network with the same subnet
        _run(n2, B_ADMIN, "b1", "--net", "network=net-b,v4-fixed-ip=10.93.1.201",
             IMAGE, *RUNNER)
        assert not _reaches(n2, B, "b1", ip1)
        # and project b does not see a1 at all
        assert osc(n2, B, "show", "a1", check=False).returncode != 0

        # network attach / list / detach, live
        c1 = _run(n2, A_ADMIN, "c1", "--net", "network=net-c", IMAGE, *RUNNER)
        ip_c1 = _ip(c1)
        assert not _reaches(n1, A, "a1", ip_c1)
        osc(n1, A, "network", "attach", "a1", "--network", "net-c")
        assert _net_ids(n1, a1["uuid"]) == {net_a["uuid"], net_c["uuid"]}
        poll(lambda: _reaches(n1, A, "a1", ip_c1), 30, "a1 -> c1 after attach")
        osc(n1, A, "network", "detach", "a1", "--network", "net-c")
        assert _net_ids(n1, a1["uuid"]) == {net_a["uuid"]}
        assert not _reaches(n1, A, "a1", ip_c1)

        # --expose-port: ingress from the network to port 80 only
        web = ["sh", "-c", "httpd -p 80 -h /etc; httpd -p 81 -h /etc; "
                           'trap "exit 0" TERM; while true; do sleep 1; done']
        w1 = _run(n2, A_ADMIN, "w1", "--net", "network=net-a", "--expose-port", "80/tcp",
                  IMAGE, *web)
        ip_w1 = _ip(w1)
        poll(lambda: _fetch(n1, A, "a1", ip_w1, 80), 30, "exposed port 80 from a1")
        assert not _fetch(n1, A, "a1", ip_w1, 81)
        # port 81 does answer: the network blocks it, not the server
        assert _fetch(n2, A, "w1", "127.0.0.1", 81)
    finally:
        # cleanup through the API: fewer CLI start-ups (each is seconds of imports)
        for node, token, shown in reversed(shown_all):
            delete(node, token, shown["uuid"])
