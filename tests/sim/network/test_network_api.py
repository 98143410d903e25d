"""Simulated tier, issue 16: the Zun network API over the real node-local stack
(ZunAPI → LocalContainers → ContainerManager → SQLite → fake runtime) with the
vxlan backend's control plane (``zund.network.vxlan``, one node, no data plane):
networks per project, ``nets`` on create, addresses, attach/detach, delete
refused while in use, and the hostile-input fuzz of every network route."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.sim.api.conftest import NODE, Stack
from tests.support.fuzzing import ROUTES, check_answer, requests_for, route_params
from zund.api.policy import make_enforcer
from zund.network.node import NodeNetworks
from zund.network.vxlan import VxlanConfig, VxlanNetworks

A = "alice:proj-a"
B = "bob:proj-b"
ADMIN_A = "admin:proj-a"


class NetStack(Stack):
    def __init__(self, tmp_path, enforcer):
        super().__init__(tmp_path, enforcer)
        self.backend = VxlanNetworks(VxlanConfig(node=NODE, local_ip="10.212.0.1"),
                                     self.clock)
        self.backend.startService()
        self.manager.lifecycle.networks = NodeNetworks(NODE, self.backend)

    def api(self, containers=None, config=None):
        api = super().api(containers, config)
        api.networks = self.backend
        return api

    def close(self):
        self.backend.stopService()
        super().close()


@pytest.fixture(scope="module")
def enforcer():
    return make_enforcer()


@pytest.fixture
def net_stack(tmp_path, enforcer):
    s = NetStack(tmp_path, enforcer)
    yield s
    s.close()


@pytest.fixture
def api(net_stack):
    return net_stack.client()


def _net(api, token, name, cidr=None, **extra):
    body = {"name": name, **extra}
    if cidr:
        body["cidr"] = cidr
    return api.post("/networks", json={"network": body}, token=token)


def test_networks_are_per_project_and_another_projects_network_is_404(api):
    """A project sees its own networks; another project's member gets 404 for it
    and cannot put a container on it."""
    r = _net(api, A, "net-a", "10.90.1.0/24")
    assert r.status == 200, r.body
    net = r.json["network"]
    assert net["cidr"] == "10.90.1.0/24" and net["mtu"] == 1450 and net["segmentation_id"]
    assert [n["name"] for n in api.get("/networks", token=A).json["networks"]] == ["net-a"]
    assert api.get("/networks", token=B).json["networks"] == []
    assert api.get(f"/networks/{net['uuid']}", token=B).status == 404
    r = api.post("/containers", token="admin:proj-b",
                 json={"image": "zund-test/busybox:latest", "nets": [{"network": net["uuid"]}]})
    assert r.status == 404, r.body


@pytest.mark.parametrize("body,field", [
    ({"name": "x", "cidr": "10.1.2.3/24"}, "cidr"),
    ({"name": "x", "cidr": "fd00::/64"}, "cidr"),
    ({"name": "x", "cidr": "10.0.0.0/30"}, "cidr"),
    ({"cidr": "10.1.2.0/24"}, "name"),
    ({"name": "x", "shared": "maybe"}, "shared"),
    ({"name": "x", "color": "red"}, "color"),
])
def test_bad_network_bodies_are_400_naming_the_field(api, body, field):
    """Each malformed create names its field in Zun's errors body."""
    r = api.post("/networks", json={"network": body}, token=A)
    assert r.status == 400, r.body
    assert field in r.error["detail"]


def test_shared_networks_need_an_admin_and_are_seen_by_every_project(api):
    """A member's shared network is refused (403); an admin's is listed by all."""
    assert _net(api, A, "pub", shared=True).status == 403
    assert _net(api, ADMIN_A, "pub", shared=True).status == 200
    assert [n["name"] for n in api.get("/networks", token=B).json["networks"]] == ["pub"]


def test_nets_on_create_give_addresses_and_network_delete_waits_for_its_ports(net_stack, api):
    """A container on a network has an address from its subnet; the network's
    delete is 409 while the container exists and 204 after it is gone."""
    net = _net(api, A, "net-a", "10.90.1.0/24").json["network"]
    r = api.post("/containers?run=true", token=A,
                 json={"image": "zund-test/busybox:latest", "nets": [{"network": "net-a"}]})
    assert r.status == 202, r.body
    uuid = r.json["uuid"]
    addrs = r.json["addresses"][net["uuid"]]
    assert addrs[0]["addr"].startswith("10.90.1.") and addrs[0]["version"] == 4
    listed = api.get(f"/containers/{uuid}/network_list", token=A).json["networks"]
    assert listed[0]["fixed_ips"][0]["ip_address"] == addrs[0]["addr"]
    assert api.delete(f"/networks/{net['uuid']}", token=A, version="1.27").status == 409
    assert api.delete(f"/containers/{uuid}?force=true", token=ADMIN_A).status == 204
    net_stack.settle()
    assert api.delete(f"/networks/{net['uuid']}", token=A, version="1.27").status == 204
    assert api.get(f"/networks/{net['uuid']}", token=A).status == 404


def test_fixed_ip_taken_twice_is_a_conflict(api):
    """The same v4-fixed-ip for a second container: 409, the first keeps it."""
    _net(api, A, "net-a", "10.90.1.0/24")
    body = {"image": "zund-test/busybox:latest",
            "nets": [{"network": "net-a", "v4-fixed-ip": "10.90.1.77"}]}
    assert api.post("/containers", token=A, json=body).status == 202
    r = api.post("/containers", token=A, json=body)
    assert r.status == 409, r.body


def test_attach_and_detach_change_the_addresses(net_stack, api):
    """network_attach adds a port on the named network, network_detach removes it
    (by network, and by port from 1.17)."""
    _net(api, A, "net-a", "10.90.1.0/24")
    net_b = _net(api, A, "net-b", "10.90.2.0/24").json["network"]
    r = api.post("/containers?run=true", token=A,
                 json={"image": "zund-test/busybox:latest", "nets": [{"network": "net-a"}]})
    uuid = r.json["uuid"]
    net_stack.settle()
    r = api.post(f"/containers/{uuid}/network_attach?network=net-b&fixed_ip=10.90.2.9",
                 token=A)
    assert r.status == 200, r.body
    rec = api.get(f"/containers/{uuid}", token=A).json
    assert rec["addresses"][net_b["uuid"]][0]["addr"] == "10.90.2.9"
    port = rec["addresses"][net_b["uuid"]][0]["port"]
    r = api.post(f"/containers/{uuid}/network_attach?network=net-b", token=A)
    assert r.status == 400 and "network" in r.error["detail"]
    r = api.post(f"/containers/{uuid}/network_detach?port={port}", token=A)
    assert r.status == 200, r.body
    assert net_b["uuid"] not in api.get(f"/containers/{uuid}", token=A).json["addresses"]
    r = api.post(f"/containers/{uuid}/network_detach?network=net-b", token=A)
    assert r.status == 400


def test_security_groups_are_kept_on_the_container(net_stack, api):
    """add/remove_security_group change the container's security_groups."""
    _net(api, A, "net-a", "10.90.1.0/24")
    r = api.post("/containers?run=true", token=A, json={
        "image": "zund-test/busybox:latest", "nets": [{"network": "net-a"}],
        "security_groups": ["web"]})
    uuid = r.json["uuid"]
    net_stack.settle()
    assert api.post(f"/containers/{uuid}/add_security_group?name=db", token=A,
                    version="1.14").status == 202
    assert api.get(f"/containers/{uuid}", token=A).json["security_groups"] == ["web", "db"]
    assert api.post(f"/containers/{uuid}/remove_security_group?name=web", token=A,
                    version="1.14").status == 202
    assert api.get(f"/containers/{uuid}", token=A).json["security_groups"] == ["db"]


_NET_ROUTES = [p for p in route_params()
               if "network" in p[0] or "security_group" in p[0] or p[0] == "container_create"]


@pytest.mark.parametrize("route,method", _NET_ROUTES)
def test_network_routes_never_answer_5xx_with_a_backend(net_stack, route, method):
    """Hostile requests to the network routes with the vxlan backend configured:
    never a 5xx, errors in Zun's format."""
    target = net_stack.add("fuzz-target")
    client = net_stack.client()
    _net(client, "admin:demo", "fuzz-net", "10.90.9.0/24")

    @settings(max_examples=12, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(requests_for(ROUTES[route], method, (target.name, target.uuid, "fuzz-net")))
    def run(req):
        r = client.request(req.method, req.path, data=req.body, version=None, token=None,
                           content_type=None, headers=req.headers)
        check_answer(r.status, r.headers, r.body, req)

    run()
