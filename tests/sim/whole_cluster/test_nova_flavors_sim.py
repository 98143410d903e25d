"""Flavors made through the compute API on a simulated cluster (real build_node,
fake runtime, in-memory peer RPC, one clock): created through one node, seen and
bootable through every node, and kept when one of their three holders dies."""

from __future__ import annotations

from tests.support.harness import SimConfig

from .test_nova_sim import NovaSim

ADMIN = "admin:demo"


def test_a_flavor_made_through_node_1_survives_a_holder_and_boots_through_node_3(
        make_cluster):
    """Create (with an extra spec) through node 0; crash one of its holders that
    is neither entry node; show, list and boot a server with it through node 2;
    a later extra spec write through node 3 still reaches a majority."""
    c = make_cluster(SimConfig(nodes=4))
    nova = NovaSim(c)
    code, body = nova.request(0, "POST", "/flavors", json={"flavor": {
        "name": "sim.custom", "id": "sim-1", "ram": 96, "vcpus": 1, "disk": 0}})
    assert code == 200, body
    code, body = nova.request(0, "POST", "/flavors/sim-1/os-extra_specs",
                              json={"extra_specs": {"zund:note": "made-on-0"}})
    assert code == 200, body
    holders = c.node(0).parts.nova_api._flavor_store.kv.holders("all")
    assert len(holders) == 3
    victim = next(n for n in holders if n not in (c.node(0).name, c.node(2).name))
    c.crash(victim)
    code, shown = nova.request(2, "GET", "/flavors/sim-1")
    assert code == 200, shown
    assert (shown["flavor"]["ram"], shown["flavor"]["extra_specs"]) == (
        96, {"zund:note": "made-on-0"})
    code, listed = nova.request(2, "GET", "/flavors")
    assert "sim.custom" in [f["name"] for f in listed["flavors"]]
    # a create also claims quota, whose holder may be the dead node: boot once the
    # survivors have declared it dead (the quota rule, not the flavors')
    c.run_until(lambda: all(n.parts.facade.quota.holder("demo") != victim
                            for n in c.nodes if n.up), timeout_s=120)
    code, made = nova.request(2, "POST", "/servers", json={"server": {
        "name": "on-custom", "flavorRef": "sim-1", "imageRef": "zund-test/server:latest"}})
    assert code == 202, made
    nova.wait_status(2, made["server"]["id"], "ACTIVE")
    code, server = nova.request(2, "GET", f"/servers/{made['server']['id']}")
    assert server["server"]["flavor"]["original_name"] == "sim.custom"
    code, body = nova.request(3, "PUT", "/flavors/sim-1/os-extra_specs/zund:note",
                              json={"zund:note": "changed-on-3"})
    assert code == 200, body
    code, shown = nova.request(1, "GET", "/flavors/sim-1/os-extra_specs/zund:note")
    assert (code, shown) == (200, {"zund:note": "changed-on-3"})


def test_a_deleted_flavor_is_gone_through_every_node(make_cluster):
    """Delete through node 2 a flavor made through node 0: 404 through every node,
    and its name may be reused."""
    c = make_cluster(SimConfig(nodes=3))
    nova = NovaSim(c)
    code, _ = nova.request(0, "POST", "/flavors", json={"flavor": {
        "name": "gone", "id": "gone-1", "ram": 64, "vcpus": 1}})
    assert code == 200
    assert nova.request(2, "DELETE", "/flavors/gone-1")[0] == 202
    for i in range(3):
        assert nova.request(i, "GET", "/flavors/gone-1")[0] == 404, i
    code, body = nova.request(1, "POST", "/flavors", json={"flavor": {
        "name": "gone", "id": "gone-2", "ram": 64, "vcpus": 1}})
    assert code == 200, body
