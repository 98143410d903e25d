"""Simulated tier: whole nodes (real API, cluster, placement, manager, store, fake
runtime) in one process on one clock, driven through the Zun API of any node.

The multi-process behaviours of tests/real/e2e/test_cluster.py, plus faults the real
tier cannot inject deterministically: partitions, lost, duplicated and delayed
peer calls. Every test runs from a printed seed (see conftest.py)."""

from __future__ import annotations

import collections

import pytest
from twisted.internet import defer

from tests.support.harness import SimConfig
from tests.support.memrpc import LinkFaults

ADMIN = "admin:demo"


def one_record_each(cluster, uuids) -> dict:
    """uuid -> owner, asserting every uuid is held by exactly one node's store."""
    held = cluster.records()
    twins = {u: nodes for u, nodes in held.items() if len(nodes) > 1}
    assert not twins, f"records held by several nodes: {twins}"
    missing = set(uuids) - set(held)
    assert not missing, f"accepted creates without a record anywhere: {missing}"
    return {u: nodes[0] for u, nodes in held.items()}


def create_many(cluster, count: int, *, entry=lambda i: i, token=ADMIN, **body) -> list:
    """``count`` creates sent at once through ``entry(i)``; their responses."""
    body.setdefault("image", "zund-test/busybox:latest")
    body.setdefault("command", ["sleep", "1000000"])
    ds = [cluster.request_async(entry(i) % len(cluster.nodes), "POST", "/containers?run=true",
                                json=dict(body, name=f"{body.get('name', 'c')}{i}"),
                                token=token)
          for i in range(count)]
    return cluster.wait(defer.gatherResults(ds), timeout_s=120)


def test_create_through_a_small_node_runs_elsewhere_and_is_reachable_everywhere(make_cluster):
    """Placed through node 0 (too small), it runs on another node; show, logs, exec,
    stop, start, actions and delete all work through a third node."""
    c = make_cluster(SimConfig(nodes=4, per_node={0: {"memory_mb": 100}}))
    made = c.create(0, name="web", memory=128,
                    command=["sh", "-c", "echo hello-cluster; sleep 1000000"])
    assert made["host"] in {"node-1", "node-2", "node-3"}
    got = c.wait_status(2, made["uuid"], "Running")
    assert got["host"] == made["host"]
    assert c.api(2, "GET", "/containers/web").json["uuid"] == made["uuid"]
    logs = c.api(2, "GET", f"/containers/{made['uuid']}/logs")
    assert logs.status == 200 and "hello-cluster" in logs.json
    r = c.api(2, "POST", f"/containers/{made['uuid']}/execute?command=%22echo%22+%22hi%22")
    assert r.status == 200 and r.json["output"] == "hi\n"
    assert c.api(2, "POST", f"/containers/{made['uuid']}/stop").status == 202
    c.wait_status(2, made["uuid"], "Stopped")
    assert c.api(2, "POST", f"/containers/{made['uuid']}/start").status == 202
    c.wait_status(2, made["uuid"], "Running")
    acts = c.api(2, "GET", f"/containers/{made['uuid']}/container_actions").json
    create_act = [a for a in acts["containerActions"] if a["action"] == "create"][0]
    detail = c.api(2, "GET", f"/containers/{made['uuid']}/container_actions/"
                             f"{create_act['request_id']}").json
    decision = [e for e in detail["events"] if e["event"] == "compute__schedule_container"][0]
    assert decision["details"]["winner"] == made["host"] and decision["details"]["why"]
    assert c.api(2, "DELETE", f"/containers/{made['uuid']}?stop=True").status == 204
    c.run_until(lambda: c.api(0, "GET", f"/containers/{made['uuid']}").status == 404,
                timeout_s=30)
    assert made["uuid"] not in c.records()


def test_list_from_any_node_is_the_whole_cloud(make_cluster):
    """Every node lists every container (merged, sorted, paginated), none partial;
    /hosts and /services show every node."""
    c = make_cluster(SimConfig(nodes=4))
    made = {r.json["uuid"] for r in create_many(c, 6, name="l", memory=32)}
    for i in range(4):
        r = c.api(i, "GET", "/containers")
        assert r.status == 200 and "zund-partial-nodes" not in r.headers
        assert made <= {x["uuid"] for x in r.json["containers"]}
    page = c.api(3, "GET", "/containers?limit=2&sort_key=name&sort_dir=asc").json
    assert [x["name"] for x in page["containers"]] == ["l0", "l1"] and page["next"]
    hosts = c.api(1, "GET", "/hosts").json["hosts"]
    assert sorted(h["hostname"] for h in hosts) == [f"node-{i}" for i in range(4)]
    assert sum(h["total_containers"] for h in hosts) <= 6  # gossip may lag, never exceed
    services = c.api(1, "GET", "/services").json["services"]
    assert len(services) == 4 and all(s["state"] == "up" for s in services)


def test_too_big_for_any_node_ends_in_error_with_zuns_reason(make_cluster):
    """A request no node can hold is accepted and ends in Error, kept by its entry node."""
    c = make_cluster(SimConfig(nodes=3, memory_mb=1024))
    made = c.create(1, name="huge", memory=4096)
    got = c.api(2, "GET", f"/containers/{made['uuid']}").json
    assert got["status"] == "Error"
    assert got["status_reason"].startswith("There are not enough hosts available: 3 nodes "
                                           "considered, 3 lacked memory (needed 4096 MiB")
    assert c.records() == {made["uuid"]: ["node-1"]}


def test_label_hint_places_on_the_labelled_node(make_cluster):
    """hints label:k=v only matches nodes carrying that label."""
    c = make_cluster(SimConfig(nodes=4, per_node={2: {"labels": {"disk": "ssd"}}}))
    made = c.create(0, name="ssd", memory=32, hints={"label:disk": "ssd"})
    assert made["host"] == "node-2"
    miss = c.create(0, name="nvme", memory=32, hints={"label:disk": "nvme"})
    assert c.api(3, "GET", f"/containers/{miss['uuid']}").json["status"] == "Error"


def test_strict_isolation_holds_across_concurrent_projects(make_cluster):
    """tenant_isolation=strict: concurrent creates of three projects through every
    node never put two projects on one node."""
    c = make_cluster(SimConfig(nodes=6, tenant_isolation="strict"))
    projects = ["pa", "pb", "pc"]
    ds = [c.request_async(i % 6, "POST", "/containers?run=true", token=f"u{p}:{p}",
                          json={"image": "zund-test/busybox:latest", "name": f"iso{i}",
                                "memory": 32, "command": ["sleep", "1000000"]})
          for i, p in enumerate(projects * 4)]
    answers = c.wait(defer.gatherResults(ds))
    assert all(r.status == 202 for r in answers)
    listed = c.api(0, "GET", "/containers?all_projects=1").json["containers"]
    by_host = collections.defaultdict(set)
    for x in listed:
        if x["host"]:
            by_host[x["host"]].add(x["project_id"])
    assert by_host and all(len(p) == 1 for p in by_host.values()), dict(by_host)


# -- faults ---------------------------------------------------------------------------


def test_show_through_a_node_cut_from_the_owner_names_the_owner(make_cluster):
    """The owner's peer port is cut off (gossip still says alive): show through a
    node that never saw the container answers its replicated record, status
    Unknown on host node-3, and the list through any node says which node is
    missing in Zund-Partial-Nodes."""
    c = make_cluster(SimConfig(nodes=4))
    made = c.create(0, name="far", memory=32, host="node-3")
    assert made["host"] == "node-3"
    c.advance(2)  # replication is asynchronous
    c.partition(["node-3"], ["node-0", "node-1", "node-2"], gossip=False)
    shown = c.api(1, "GET", f"/containers/{made['uuid']}")
    assert shown.status == 200, shown.body
    assert (shown.json["status"], shown.json["host"]) == ("Unknown", "node-3")
    listed = c.api(2, "GET", "/containers")
    assert listed.status == 200
    assert listed.headers.get("zund-partial-nodes") == "node-3"
    c.heal()
    assert c.api(1, "GET", f"/containers/{made['uuid']}").json["host"] == "node-3"


def test_lost_bids_and_lost_commit_requests_never_make_two_records(make_cluster):
    """A third of the BIDs (either way) and of the COMMIT requests are lost, and the
    fast path's BID_COMMITs both ways: every accepted create is held by exactly one
    node."""
    c = make_cluster(SimConfig(nodes=5))
    c.peers.kind_faults["BID"] = LinkFaults(drop_request=0.15, drop_reply=0.15)
    c.peers.kind_faults["COMMIT"] = LinkFaults(drop_request=0.3)
    c.peers.kind_faults["BID_COMMIT"] = LinkFaults(drop_request=0.3, drop_reply=0.15)
    answers = create_many(c, 20, memory=32)
    assert all(r.status == 202 for r in answers)
    c.advance(30)
    stats = c.peers.stats
    assert stats["dropped_request"] > 0 and stats["dropped_reply"] > 0
    one_record_each(c, [r.json["uuid"] for r in answers])


def test_lost_commit_answers_never_make_two_records(make_cluster):
    """Half the COMMIT answers are lost (the winner did the work, the entry node
    times out): the entry node asks the winner before any fallback, so every create
    is accepted and held by exactly one node, cluster-wide."""
    c = make_cluster(SimConfig(nodes=5))
    c.peers.kind_faults["COMMIT"] = LinkFaults(drop_reply=0.5)
    c.peers.kind_faults["BID_COMMIT"] = LinkFaults(drop_reply=0.5)  # the fast path
    answers = create_many(c, 20, memory=32)
    accepted = [r.json["uuid"] for r in answers if r.status == 202]
    assert len(accepted) == 20, [r.status for r in answers]
    c.advance(30)  # every reservation expires, every fallback has run
    assert c.peers.stats["dropped_reply"] > 0
    one_record_each(c, accepted)


def test_duplicated_bids_and_commits_never_make_two_records(make_cluster):
    """Every peer request arrives twice (a replay): one record per create, and
    every create succeeds."""
    c = make_cluster(SimConfig(nodes=5), faults=LinkFaults(duplicate=1.0, delay=(0.001, 0.05)))
    answers = create_many(c, 20, memory=32)
    assert all(r.status == 202 for r in answers)
    owners = one_record_each(c, [r.json["uuid"] for r in answers])
    assert len(owners) == 20 and c.peers.stats["duplicated"] > 0


def test_delayed_peer_calls_still_place_everything_in_simulated_time(make_cluster):
    """With 50-400 ms per hop, creates still place (time passes on the clock only)."""
    c = make_cluster(SimConfig(nodes=5, bid_timeout_s=2.0, peer_timeout_s=5.0),
                     faults=LinkFaults(delay=(0.05, 0.4)))
    before = c.clock.seconds()
    answers = create_many(c, 10, memory=32)
    assert all(r.status == 202 and r.json["host"] for r in answers)
    assert c.clock.seconds() - before >= 0.2  # at least a bid and a commit round trip
    for r in answers:
        c.wait_status(4, r.json["uuid"], "Running")


def test_after_a_node_dies_new_creates_avoid_it_and_its_container_reads_unknown(make_cluster):
    """kill -9 of a node hosting a container: once gossip says it is down, new
    creates land elsewhere and the lost container reads as Unknown."""
    c = make_cluster(SimConfig(nodes=4))
    victim = c.create(0, name="victim", memory=32, host="node-3")
    assert victim["host"] == "node-3"
    c.wait_status(0, victim["uuid"], "Running")
    c.crash(3)

    def down() -> bool:
        services = c.api(0, "GET", "/services").json["services"]
        return {s["host"]: s["state"] for s in services}.get("node-3") == "down"

    c.run_until(down, timeout_s=60, step_s=0.5)
    for r in create_many(c, 6, entry=lambda i: i % 3, name="after", memory=32):
        assert r.status == 202 and r.json["host"] not in (None, "node-3")
    got = c.api(0, "GET", f"/containers/{victim['uuid']}")
    assert got.status == 200 and got.json["status"] == "Unknown"


def test_the_same_seed_places_the_same_way(seed):
    """Two runs from one seed put every container (by name) on the same node:
    a failing run replays from its seed."""
    from tests.support.harness import SimCluster

    def placements() -> dict:
        c = SimCluster(seed, SimConfig(nodes=5), LinkFaults(delay=(0.001, 0.02))).start()
        try:
            return {r.json["name"]: r.json["host"]
                    for r in create_many(c, 15, entry=lambda i: i * 7, memory=64)}
        finally:
            c.stop()

    first = placements()
    assert first == placements()
    assert len(set(first.values())) > 1
