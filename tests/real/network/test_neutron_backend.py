"""The Neutron network backend against a real neutron-server (tools/neutron.sh:
Keystone tokens, MariaDB, ML2 with an agentless test mechanism driver) — the
caller's own token makes networks and ports, zund's service user binds them."""

from __future__ import annotations

import datetime
import ipaddress
import uuid as uuidlib

import pytest
import pytest_twisted
from twisted.internet import reactor, task, threads

from zund.common import errors
from zund.network import errors as net_errors
from zund.network.neutron import DEVICE_OWNER, NeutronClient, NeutronNetworks

from tests.real.e2e.keystone import real_keystone  # noqa: F401 (fixture)
from tests.support.neutron_service import real_neutron  # noqa: F401 (fixture)

NODE = "zund-nn-1"


def blocking(fn, *args, **kwargs):
    return threads.deferToThread(fn, *args, **kwargs)


def backend(neutron, node=NODE, timeout_s=20.0) -> NeutronNetworks:
    return NeutronNetworks(NeutronClient(neutron.service_adapter()), node, blocking, reactor,
                           port_active_timeout_s=timeout_s, port_poll_interval_s=0.1)


def admin_port(neutron, port_id):
    """The port as Neutron's admin sees it (binding included), or None."""
    r = neutron.adapter().get(f"/v2.0/ports/{port_id}", raise_exc=False)
    return r.json()["port"] if r.status_code == 200 else None


@pytest.fixture
def cleanup(real_neutron):  # noqa: F811
    """Networks (and their ports) the test made, deleted as admin afterwards."""
    made: list[str] = []
    yield made
    admin = real_neutron.adapter()
    for net_id in reversed(made):
        ports = admin.get("/v2.0/ports", params={"network_id": net_id}).json()["ports"]
        for p in ports:
            admin.delete(f"/v2.0/ports/{p['id']}", raise_exc=False)
        admin.delete(f"/v2.0/networks/{net_id}", raise_exc=False)


async def tick_past(created_at: str) -> None:
    """Until the wall clock is past ``created_at`` (Neutron stamps whole seconds), so
    the next network is strictly younger; bounded."""
    deadline = reactor.seconds() + 5
    while datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") \
            <= created_at:
        assert reactor.seconds() < deadline, "clock did not move past " + created_at
        await task.deferLater(reactor, 0.05, lambda: None)


@pytest_twisted.ensureDeferred
async def test_port_for_a_container_is_active_bound_to_the_node_and_owned_by_zun(
        real_neutron, cleanup):  # noqa: F811
    """allocate: a compute:zun port with the container as device, bound to the node,
    ACTIVE, plugged as a bridge port with its subnet; release deletes it."""
    b = backend(real_neutron)
    a = real_neutron.context("a-member", "project-a")
    net = await b.create_network(a, "nn-a1", cidr="10.77.1.0/24")
    cleanup.append(net.id)
    assert (net.project_id, net.cidr, net.backend, net.shared) == (
        a.project_id, "10.77.1.0/24", "neutron", False)
    uuid = str(uuidlib.uuid4())
    [port] = await b.allocate(a, uuid, NODE, [{"network": "nn-a1"}])
    assert port.net_id == net.id and port.device_id == uuid and port.host == NODE
    assert port.vif_type == "bridge" and port.vif_details["bridge_name"].startswith("brq")
    assert port.vif_details["cidr"] == "10.77.1.0/24" and port.mtu == net.mtu
    assert ipaddress.ip_address(port.ip_address) in ipaddress.ip_network("10.77.1.0/24")
    seen = admin_port(real_neutron, port.id)
    assert (seen["status"], seen["binding:host_id"], seen["device_owner"],
            seen["device_id"], seen["project_id"]) == ("ACTIVE", NODE, DEVICE_OWNER, uuid,
                                                       a.project_id)
    assert b.ports_of(uuid) == [port]
    # a restarted node finds its ports in Neutron
    again = backend(real_neutron)
    await again.load_ports()
    assert [p.id for p in again.ports_of(uuid)] == [port.id]

    await b.release(a, uuid, [port])
    assert admin_port(real_neutron, port.id) is None
    assert b.ports_of(uuid) == []
    await b.release(a, uuid, [port])  # idempotent


@pytest_twisted.ensureDeferred
async def test_another_projects_network_is_not_found_and_cannot_be_used(
        real_neutron, cleanup):  # noqa: F811
    """Project B neither sees, resolves, uses nor deletes project A's private network."""
    b = backend(real_neutron)
    a_ctx = real_neutron.context("a-member", "project-a")
    b_ctx = real_neutron.context("b-member", "project-b")
    net = await b.create_network(a_ctx, "nn-private-a", cidr="10.77.2.0/24")
    cleanup.append(net.id)
    assert net.id not in [n.id for n in await b.list_networks(b_ctx)]
    for ref in (net.id, "nn-private-a"):
        with pytest.raises(net_errors.NetworkNotFound):
            await b.get_network(b_ctx, ref)
        with pytest.raises(net_errors.NetworkNotFound):
            await b.allocate(b_ctx, str(uuidlib.uuid4()), NODE, [{"network": ref}])
        with pytest.raises(net_errors.NetworkNotFound):
            await b.delete_network(b_ctx, ref)
    assert (await b.get_network(a_ctx, net.id)).name == "nn-private-a"
    with pytest.raises(net_errors.PolicyForbidden):
        await b.create_network(b_ctx, "nn-shared-by-member", shared=True)


@pytest_twisted.ensureDeferred
async def test_default_network_is_the_oldest_own_else_the_oldest_shared(
        real_neutron, cleanup):  # noqa: F811
    """Zun's rule: the project's oldest network, else the oldest shared one, else
    none (and a create without nets then fails with NoDefaultNetwork)."""
    b = backend(real_neutron)
    admin = real_neutron.context("admin", "admin")
    b_ctx = real_neutron.context("b-member", "project-b")
    assert await b.default_network(b_ctx) is None
    with pytest.raises(net_errors.NoDefaultNetwork):
        await b.allocate(b_ctx, str(uuidlib.uuid4()), NODE, [{}])
    s1 = await b.create_network(admin, "nn-shared-1", cidr="10.77.3.0/24", shared=True)
    cleanup.append(s1.id)
    await tick_past(s1.created_at)
    s2 = await b.create_network(admin, "nn-shared-2", cidr="10.77.4.0/24", shared=True)
    cleanup.append(s2.id)
    assert (await b.default_network(b_ctx)).id == s1.id
    own1 = await b.create_network(b_ctx, "nn-b1", cidr="10.77.5.0/24")
    cleanup.append(own1.id)
    await tick_past(own1.created_at)
    own2 = await b.create_network(b_ctx, "nn-b2")
    cleanup.append(own2.id)
    assert ipaddress.ip_network(own2.cidr).subnet_of(ipaddress.ip_network("10.96.0.0/12"))
    assert (await b.default_network(b_ctx)).id == own1.id
    uuid = str(uuidlib.uuid4())
    [port] = await b.allocate(b_ctx, uuid, NODE, [{}])
    assert port.net_id == own1.id
    await b.release(b_ctx, uuid, [port])


@pytest_twisted.ensureDeferred
async def test_release_deletes_zunds_ports_and_hands_back_user_supplied_ones(
        real_neutron, cleanup):  # noqa: F811
    """A user's own port (nets: port) is bound and used but only unbound on release;
    a fixed address is honoured once and refused while in use; a network with
    ports cannot be deleted."""
    b = backend(real_neutron)
    a = real_neutron.context("a-member", "project-a")
    net = await b.create_network(a, "nn-a2", cidr="10.77.6.0/24")
    cleanup.append(net.id)
    user_port = real_neutron.adapter("a-member", "project-a").post("/v2.0/ports", json={
        "port": {"network_id": net.id, "name": "mine"}}).json()["port"]
    uuid = str(uuidlib.uuid4())
    ports = await b.allocate(a, uuid, NODE, [{"port": user_port["id"]},
                                             {"network": net.id, "v4-fixed-ip": "10.77.6.50"}])
    assert [p.id for p in ports][0] == user_port["id"]
    assert ports[1].ip_address == "10.77.6.50"
    assert admin_port(real_neutron, user_port["id"])["status"] == "ACTIVE"
    with pytest.raises(net_errors.AddressInUse):
        await b.allocate(a, str(uuidlib.uuid4()), NODE,
                         [{"network": net.id, "v4-fixed-ip": "10.77.6.50"}])
    with pytest.raises(net_errors.NetworkInUse):
        await b.delete_network(a, net.id)
    # another container cannot take a port in use
    with pytest.raises(errors.Conflict):
        await b.allocate(a, str(uuidlib.uuid4()), NODE, [{"port": user_port["id"]}])

    await b.release(a, uuid, ports)
    assert admin_port(real_neutron, ports[1].id) is None
    kept = admin_port(real_neutron, user_port["id"])
    assert (kept["device_id"], kept["device_owner"], kept["binding:host_id"]) == ("", "", "")
    real_neutron.adapter("a-member", "project-a").delete(f"/v2.0/ports/{user_port['id']}")
    await b.delete_network(a, net.id)
    with pytest.raises(net_errors.NetworkNotFound):
        await b.get_network(a, net.id)


@pytest_twisted.ensureDeferred
async def test_exposed_ports_open_a_security_group_removed_with_the_port(
        real_neutron, cleanup):  # noqa: F811
    """update_security: exposed 80/tcp becomes an ingress rule in the container's own
    group, added to the port's groups; release deletes that group."""
    b = backend(real_neutron)
    a = real_neutron.context("a-member", "project-a")
    net = await b.create_network(a, "nn-a3", cidr="10.77.7.0/24")
    cleanup.append(net.id)
    uuid = str(uuidlib.uuid4())
    [port] = await b.allocate(a, uuid, NODE, [{"network": net.id}])
    with pytest.raises(errors.InvalidInput):
        await b.update_security(a, port, [], {"80/sctp": {}})
    secured = await b.update_security(a, port, [], {"80/tcp": {}})
    user = real_neutron.adapter("a-member", "project-a")
    [sg] = user.get("/v2.0/security-groups",
                    params={"name": f"zund-expose-{uuid}"}).json()["security_groups"]
    assert sg["id"] in secured.security_groups and len(secured.security_groups) == 2
    assert {(r["protocol"], r["port_range_min"]) for r in sg["security_group_rules"]
            if r["direction"] == "ingress"} == {("tcp", 80)}
    await b.release(a, uuid, [secured])
    assert user.get("/v2.0/security-groups",
                    params={"name": f"zund-expose-{uuid}"}).json()["security_groups"] == []


@pytest_twisted.ensureDeferred
async def test_port_never_active_fails_clearly_and_is_rolled_back(
        real_neutron, cleanup):  # noqa: F811
    """A port bound to a host whose agent never reports it up: NetworkError naming
    the port, the host and the timeout; the port made for it is deleted."""
    stuck = "zund-nn-stuck-1"
    b = backend(real_neutron, node=stuck, timeout_s=1.0)
    a = real_neutron.context("a-member", "project-a")
    net = await b.create_network(a, "nn-a4", cidr="10.77.8.0/24")
    cleanup.append(net.id)
    uuid = str(uuidlib.uuid4())
    with pytest.raises(net_errors.NetworkError) as exc:
        await b.allocate(a, uuid, stuck, [{"network": net.id}])
    assert "did not become ACTIVE within 1s" in str(exc.value) and stuck in str(exc.value)
    left = real_neutron.adapter().get("/v2.0/ports", params={"device_id": uuid}).json()
    assert left["ports"] == [] and b.ports_of(uuid) == []


@pytest_twisted.ensureDeferred
async def test_backend_from_neutron_config_finds_neutron_in_the_catalog_and_reloads_ports(
        real_neutron, cleanup, tmp_path):  # noqa: F811
    """``[neutron]`` with zund's service user: the node's backend (own thread pool)
    finds Neutron through Keystone's catalog and, started, holds this node's ports."""
    from zund.conf import make_conf
    from zund.network import neutron

    ks = real_neutron.keystone
    conf_file = tmp_path / "zund.conf"
    conf_file.write_text(
        "[neutron]\nauth_type = password\n"
        f"auth_url = {ks.auth_url}\nusername = {ks.service_user}\npassword = {ks.password}\n"
        f"project_name = {ks.service_project}\nuser_domain_name = Default\n"
        f"project_domain_name = Default\nregion_name = {ks.region}\n"
        "valid_interfaces = public\nport_active_timeout = 20\n")
    conf = make_conf()
    conf(["--config-file", str(conf_file)], project="zund", default_config_files=[])
    node = "zund-nn-conf-1"
    made = neutron.from_conf(conf, reactor, node)
    a = real_neutron.context("a-member", "project-a")
    made.startService()
    try:
        net = await made.create_network(a, "nn-a5", cidr="10.77.9.0/24")
        cleanup.append(net.id)
        uuid = str(uuidlib.uuid4())
        [port] = await made.allocate(a, uuid, node, [{"network": net.id}])
    finally:
        await made.stopService()
    again = neutron.from_conf(conf, reactor, node)
    again.startService()
    try:
        await again.wait_loaded()
        assert [p.id for p in again.ports_of(uuid)] == [port.id]
        await again.release(a, uuid, again.ports_of(uuid))
        assert admin_port(real_neutron, port.id) is None
    finally:
        await again.stopService()
