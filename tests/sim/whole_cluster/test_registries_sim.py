"""Private registries across a simulated cluster: a registry made through one node
is seen through every node, survives the death of one replica, and the node that
wins a placement pulls with its credentials (fetched at pull time)."""

from __future__ import annotations

from tests.support.harness import RUNNER, SimConfig

MEMBER = "alice:projr"
DOMAIN = "127.0.0.1:5000"


def make_registry(c, which, password="pw", name="myreg"):
    r = c.api(which, "POST", "/registries", token=MEMBER,
              json={"registry": {"name": name, "domain": DOMAIN, "username": "u",
                                 "password": password}})
    assert r.status == 202, (r.status, r.body)
    return r.json["registry"]


def test_a_registry_made_through_one_node_is_seen_through_every_node(make_cluster):
    """Create via node 0; list/show via every node, password masked everywhere."""
    c = make_cluster(SimConfig(nodes=4))
    reg = make_registry(c, 0)
    for i in range(4):
        listed = c.api(i, "GET", "/registries", token=MEMBER).json["registries"]
        assert [(x["uuid"], x["password"]) for x in listed] == [(reg["uuid"], "***")], i


def test_registries_survive_the_death_of_one_replica(make_cluster):
    """One of the three replicas crashes: reads and writes still succeed."""
    c = make_cluster(SimConfig(nodes=4))
    reg = make_registry(c, 0)
    service = c.node(0).parts.api._registries
    victim = service.replicas("projr")[0]
    c.crash(victim)
    alive = next(n.index for n in c.nodes if n.name != victim)
    shown = c.api(alive, "GET", f"/registries/{reg['uuid']}", token=MEMBER)
    assert shown.status == 200 and shown.json["registry"]["name"] == "myreg"
    r = c.api(alive, "PATCH", "/registries/myreg", token=MEMBER,
              json={"registry": {"username": "u2"}})
    assert r.status == 200 and r.json["registry"]["username"] == "u2"


def test_the_owner_node_pulls_with_the_registrys_credentials(make_cluster):
    """Every engine requires the login; the container runs wherever it lands, and
    a wrong password ends in Error naming the refusal."""
    c = make_cluster(SimConfig(nodes=3))
    for node in c.nodes:
        node.runtime.add_registry_image(f"{DOMAIN}/app:1")
        node.runtime.require_registry_login(DOMAIN, "u", "pw")
    make_registry(c, 0)
    made = c.create(1, token=MEMBER, image="app:1", registry="myreg", command=RUNNER,
                    memory=32, cpu=0.1)
    shown = c.wait_status(2, made["uuid"], "Running", token=MEMBER)
    assert shown["image"] == f"{DOMAIN}/app:1"
    make_registry(c, 2, password="wrong", name="badreg")
    bad = c.create(0, token=MEMBER, image="app:1", registry="badreg", command=RUNNER,
                   memory=32, cpu=0.1)
    shown = c.wait_status(1, bad["uuid"], "Error", token=MEMBER)
    assert "unauthorized" in shown["status_reason"]
