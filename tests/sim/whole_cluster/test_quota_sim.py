"""Quotas across a simulated cluster: one ledger holder per project, zero overshoot
under concurrency, lost and duplicated peer messages, holder death, and limits that
survive a restart of every replica."""

from __future__ import annotations

from twisted.internet import defer

from tests.support.harness import SimConfig, build_node, sync_blocking
from tests.support.memrpc import LinkFaults
from zund.store import Store

ADMIN = "admin:demo"
TENANT = "alice:projq"


def set_quota(c, which, project, **limits):
    r = c.api(which, "PUT", f"/quotas/{project}", json=limits, token=ADMIN)
    assert r.status == 200, (r.status, r.body)
    return r.json


def create_through_five(c, count: int, token: str = TENANT) -> list:
    ds = [c.request_async(i % 5, "POST", "/containers?run=true", token=token,
                          json={"image": "zund-test/busybox:latest", "name": f"q{i}",
                                "command": ["sleep", "1000000"], "memory": 32, "cpu": 0.1})
          for i in range(count)]
    return c.wait(defer.gatherResults(ds), timeout_s=300)


def live_of(c, project: str) -> set:
    out = set()
    for node in c.nodes:
        if node.opened:
            out |= {r.uuid for r in c.run(node.store.list_containers(project))
                    if r.status != "Deleted"}
    return out


def test_fifty_concurrent_creates_through_five_nodes_end_with_exactly_the_quota(make_cluster):
    """Container quota 20, 50 concurrent creates via 5 entry nodes: 20 accepted,
    30 refused with Zun's 403, exactly 20 containers exist."""
    c = make_cluster(SimConfig(nodes=5))
    set_quota(c, 0, "projq", containers=20, cpu=-1, memory=-1, disk=-1)
    answers = create_through_five(c, 50)
    accepted = [r for r in answers if r.status == 202]
    refused = [r for r in answers if r.status == 403]
    assert len(accepted) == 20 and len(refused) == 30, [r.status for r in answers]
    assert refused[0].json["errors"][0]["detail"]== "Quota exceeded for resources: ['containers']"
    assert len(live_of(c, "projq")) == 20
    shown = c.api(3, "GET", "/quotas/projq?usages=true", token=TENANT).json
    assert shown["containers"] == {"limit": 20, "in_use": 20}


def test_zero_overshoot_with_lost_and_duplicated_peer_messages(make_cluster):
    """Quota claims and settles dropped, duplicated and delayed: never more than
    the quota exists, and every accepted create has its container."""
    c = make_cluster(SimConfig(nodes=5))
    set_quota(c, 0, "projq", containers=20, cpu=-1, memory=-1, disk=-1)
    c.peers.kind_faults["QUOTA_CLAIM"] = LinkFaults(drop_reply=0.1, duplicate=0.3,
                                                    delay=(0.001, 0.05))
    c.peers.kind_faults["QUOTA_SETTLE"] = LinkFaults(drop_request=0.3, duplicate=0.3)
    answers = create_through_five(c, 50)
    accepted = {r.json["uuid"] for r in answers if r.status == 202}
    live = live_of(c, "projq")
    assert len(live) <= 20
    assert accepted <= live
    assert all(r.status in (202, 403, 503) for r in answers), [r.status for r in answers]


def test_deleting_a_container_frees_its_quota(make_cluster):
    """At the quota, a create is refused; after one delete the next create is accepted."""
    c = make_cluster(SimConfig(nodes=3))
    set_quota(c, 0, "projq", containers=2)
    made = [c.create(i, token=TENANT, name=f"d{i}", memory=32, cpu=0.1)["uuid"] for i in (0, 1)]
    r = c.api(2, "POST", "/containers", token=TENANT,
              json={"image": "zund-test/busybox:latest", "name": "d2", "memory": 32})
    assert r.status == 403
    assert c.api(2, "DELETE", f"/containers/{made[0]}?stop=True", token=TENANT).status == 204
    c.create(1, token=TENANT, name="d3", memory=32, cpu=0.1)


def test_holder_death_keeps_the_limits_and_rebuilds_the_usage(make_cluster):
    """The project's ledger holder dies: the admin's limits are still read from the
    remaining replicas, the new holder recounts real usage and refuses past it."""
    c = make_cluster(SimConfig(nodes=5))
    set_quota(c, 0, "projq", containers=4, cpu=-1, memory=-1, disk=-1)
    holder = c.nodes[0].parts.facade.quota.holder("projq")
    entries = [n.index for n in c.nodes if n.name != holder]
    for k in range(3):
        c.create(entries[k], token=TENANT, name=f"h{k}", memory=32, cpu=0.1)
    c.crash(holder_index := next(n.index for n in c.nodes if n.name == holder))
    c.run_until(lambda: all(
        n.parts.facade.quota.holder("projq") != holder for n in c.nodes if n.up), timeout_s=120)
    ttl = c.nodes[entries[0]].parts.facade.quota.config.claim_ttl_s
    c.advance(ttl)
    entry = entries[0]
    assert c.api(entry, "GET", "/quotas/projq", token=TENANT).json["containers"] == 4
    survivors = [n for n in c.nodes if n.up]
    created_on_dead = len(c.run(c.nodes[holder_index].store.list_containers("projq")))
    live_before = 3 - created_on_dead
    statuses = []
    for k in range(3):
        r = c.api(entry, "POST", "/containers", token=TENANT,
                  json={"image": "zund-test/busybox:latest", "name": f"after{k}", "memory": 32})
        statuses.append(r.status)
    assert statuses.count(202) == 4 - live_before, (statuses, live_before)
    assert len(set().union(*[{r.uuid for r in c.run(n.store.list_containers("projq"))}
                             for n in survivors])) == 4


def test_limits_survive_a_restart_of_all_their_replicas(make_cluster, tmp_path):
    """Every replica of a project's limits is killed and restarted on its own store
    file: the admin's limits are still served, through any node, and enforced."""
    c = make_cluster(SimConfig(nodes=5), start=False)

    def file_store(i):
        return Store(str(tmp_path / f"node-{i}.sqlite"), run_blocking=sync_blocking)

    c.nodes = [build_node(c, i, store=file_store(i)) for i in range(len(c.nodes))]
    c.start()
    set_quota(c, 0, "projq", containers=2, cpu=-1)
    replicas = c.nodes[0].parts.facade.quota.replicas("project:projq")
    assert len(replicas) == 3
    for name in replicas:  # kill -9 all three: nothing but their store files remain
        old = c.node(name)
        c.crash(old.index)
        c.run(old.store.close())
        old.opened = False
    for name in replicas:
        old = c.node(name)
        c.nodes[old.index] = build_node(c, old.index, runtime=old.runtime,
                                        store=file_store(old.index))
        c.run(c._start_node(c.nodes[old.index]))
    c.run_until(c.converged, timeout_s=120)
    for node in c.nodes:
        shown = c.api(node.index, "GET", "/quotas/projq", token=TENANT)
        assert shown.status == 200 and shown.json["containers"] == 2, (node.name, shown.body)
        assert shown.json["cpu"] == -1
    for k in range(2):
        c.create(k, token=TENANT, name=f"r{k}", memory=32, cpu=0.1)
    r = c.api(4, "POST", "/containers", token=TENANT,
              json={"image": "zund-test/busybox:latest", "name": "r2", "memory": 32})
    assert r.status == 403, r.body
