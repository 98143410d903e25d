"""Simulated tier: record replicas (issue 11 item 2).

Every node's container records are copied to R other nodes, so a dead node's
containers are listed and shown from ANY alive node with status Unknown and their
host — with every cache cold, and after the entry node itself restarted (copies
persist in the holder's SQLite store). Copies follow membership changes, and
generations order them (a tombstone outranks every older copy)."""

from __future__ import annotations

import random

from tests.support.harness import SimCluster, SimConfig, SimNode, node_conf, node_host, node_name
from tests.support.harness import sync_blocking

ADMIN = "admin:demo"
#: longer than the directory's cache TTL (300 s): every cached owner/record expires
COLD_S = 301.0


def file_backed(seed: int, tmp_path, config: SimConfig) -> SimCluster:
    """A SimCluster whose nodes keep their SQLite store in files, so a node can be
    stopped and built again over the same store (a restart)."""
    c = SimCluster(seed, config)
    c.nodes = [build_file_node(c, i, tmp_path) for i in range(config.nodes)]
    return c


def build_file_node(sim: SimCluster, index: int, tmp_path) -> SimNode:
    from zund.compute import capacity
    from zund.runtimes.fake import FakeRuntime
    from zund.service import build_node as build_service_tree
    from zund.store import Store

    cfg, clock = sim.config, sim.clock
    name, host = node_name(index), node_host(index)
    runtime = FakeRuntime(name, clock=clock)
    facts = capacity.HostFacts(cpus=cfg.cpus, mem_total_mb=cfg.memory_mb,
                               disk_total_gb=cfg.disk_gb, architecture="x86_64",
                               os="SimOS", kernel_version="6.0-sim")
    root = build_service_tree(
        node_conf(cfg, index), clock, random.Random(sim.rng.getrandbits(64)),
        runtimes={runtime.name: runtime}, host_facts=facts,
        store=Store(str(tmp_path / f"{name}.sqlite"), run_blocking=sync_blocking),
        gossip_transport_factory=sim.gossip_net.transport,
        peer_http_client=sim.peers.peer_client(name, host), listen=False,
        enforcer=sim.enforcer, id_rng=random.Random(sim.rng.getrandbits(64)),
        resolve_own_host=lambda: host,
        gossip_snapshot_path=str(tmp_path / f"{name}.members.json"))
    return SimNode(index=index, name=name, host=host, service=root, runtime=runtime)


def restart(c: SimCluster, index: int, tmp_path) -> None:
    """Stop node ``index`` gracefully and start a new process of it on the same store."""
    c.run(c._stop_node(c.nodes[index]))
    c.nodes[index] = build_file_node(c, index, tmp_path)
    c.run(c._start_node(c.nodes[index]))


def spread(c: SimCluster, count: int, **body) -> list[dict]:
    """``count`` Running containers placed on every node in turn (pinned by host)."""
    made = []
    for i in range(count):
        target = c.nodes[i % len(c.nodes)].name
        made.append(c.create(i % len(c.nodes), name=f"c{i}", memory=32, host=target, **body))
    for m in made:
        c.wait_status(0, m["uuid"], "Running")
    return made


def declared_dead(c: SimCluster, victim: str):
    def check() -> bool:
        for n in c.nodes:
            if n.up:
                states = {m.name: m.state for m in n.parts.gossip.members()}
                if states.get(victim) not in ("dead", None):
                    return False
        return True
    return check


def assert_unknown_everywhere(c: SimCluster, victim: str, theirs: list[dict]) -> None:
    """From every alive node: list shows each of ``theirs`` once, Unknown on
    ``victim``; show by uuid and by name answer Unknown with the host."""
    for node in c.nodes:
        if not node.up:
            continue
        listed = c.api(node.index, "GET", "/containers?all_projects=1")
        assert listed.status == 200, listed.body
        rows = listed.json["containers"]
        uuids = [r["uuid"] for r in rows]
        assert len(uuids) == len(set(uuids)), f"duplicates through {node.name}"
        by_uuid = {r["uuid"]: r for r in rows}
        for m in theirs:
            row = by_uuid.get(m["uuid"])
            assert row is not None, f"{m['name']} missing from the list of {node.name}"
            assert (row["status"], row["host"]) == ("Unknown", victim)
            for ident in (m["uuid"], m["name"]):
                shown = c.api(node.index, "GET", f"/containers/{ident}")
                assert shown.status == 200, (node.name, ident, shown.body)
                assert (shown.json["status"], shown.json["host"]) == ("Unknown", victim)


def test_a_dead_nodes_containers_are_unknown_with_host_from_every_alive_node(make_cluster):
    """Node 2 dies with its containers: once caches are cold, list and show (by
    uuid and by name) through every alive node report them Unknown on node-2,
    each once, and the alive nodes' containers keep their real status."""
    c = make_cluster(SimConfig(nodes=4))
    made = spread(c, 8)
    c.advance(5)  # replication is asynchronous
    c.crash(2)
    c.run_until(declared_dead(c, "node-2"), timeout_s=60)
    c.advance(COLD_S)
    theirs = [m for m in made if m["host"] == "node-2"]
    assert theirs
    assert_unknown_everywhere(c, "node-2", theirs)
    listed = c.api(0, "GET", "/containers?all_projects=1").json["containers"]
    others = [r for r in listed if r["host"] != "node-2"]
    assert len(others) == len(made) - len(theirs)
    assert {r["status"] for r in others} == {"Running"}


def test_an_entry_node_restarted_after_the_death_still_shows_unknown(seed, tmp_path):
    """Node 3 dies; node 0 then restarts (empty caches, a new gossip view): list
    and show through node 0 still report node 3's containers Unknown on node-3
    (copies persist in the holders' stores)."""
    c = file_backed(seed, tmp_path, SimConfig(nodes=4)).start()
    try:
        made = spread(c, 8)
        c.advance(5)
        c.crash(3)
        c.run_until(declared_dead(c, "node-3"), timeout_s=60)
        c.advance(COLD_S)
        restart(c, 0, tmp_path)
        c.run_until(lambda: {m.name for m in c.nodes[0].parts.gossip.members()
                             if m.state == "alive"} >= {"node-0", "node-1", "node-2"},
                    timeout_s=60)
        theirs = [m for m in made if m["host"] == "node-3"]
        assert theirs
        assert_unknown_everywhere(c, "node-3", theirs)
    finally:
        c.heal()
        c.stop()


def test_a_list_that_cannot_reach_the_owner_shows_its_containers_and_names_it(make_cluster):
    """Node 1's peer port is cut (gossip still says alive): the list through node 0
    shows node 1's containers as Unknown on node-1 and names node-1 in
    Zund-Partial-Nodes."""
    c = make_cluster(SimConfig(nodes=3))
    made = spread(c, 6)
    c.advance(5)
    c.partition(["node-1"], ["node-0", "node-2"], gossip=False)
    listed = c.api(0, "GET", "/containers?all_projects=1")
    assert listed.headers.get("zund-partial-nodes") == "node-1"
    rows = {r["uuid"]: r for r in listed.json["containers"]}
    assert len(rows) == len(made)
    for m in made:
        if m["host"] == "node-1":
            assert (rows[m["uuid"]]["status"], rows[m["uuid"]]["host"]) == ("Unknown", "node-1")


def replica_holders(c: SimCluster, uuid: str) -> set[str]:
    held = set()
    for node in c.nodes:
        if node.up:
            copies = c.run(node.store.list_replicas(uuid=uuid))
            if copies:
                held.add(node.name)
    return held


def test_copies_move_to_new_holders_when_a_holder_dies(make_cluster):
    """With R = 2 on 5 nodes, after a holder of node 0's records dies, every record
    of node 0 is again kept by two live nodes other than node 0."""
    c = make_cluster(SimConfig(nodes=5))
    mine = [c.create(0, name=f"m{i}", memory=32, host="node-0") for i in range(6)]
    c.advance(5)
    for m in mine:
        assert len(replica_holders(c, m["uuid"]) - {"node-0"}) == 2
    victim = next(iter(replica_holders(c, mine[0]["uuid"])))
    c.crash(victim)
    c.run_until(declared_dead(c, victim), timeout_s=60)

    def repaired() -> bool:
        return all(len(replica_holders(c, m["uuid"]) - {"node-0", victim}) == 2
                   for m in mine)

    c.run_until(repaired, timeout_s=60, step_s=0.5)


def test_a_deleted_container_leaves_no_copy_and_a_late_copy_does_not_return(make_cluster):
    """Deleting a container removes its copies; a copy with an older generation that
    arrives afterwards is not kept, so the container never reappears."""
    from zund.cluster.messages import ReplicaItem

    c = make_cluster(SimConfig(nodes=3))
    made = c.create(0, name="gone", memory=32, host="node-0")
    c.wait_status(0, made["uuid"], "Running")
    c.advance(5)
    holders = replica_holders(c, made["uuid"])
    assert holders
    old_copy = c.run(c.node(next(iter(holders))).store.list_replicas(uuid=made["uuid"]))[0]
    assert c.api(0, "DELETE", f"/containers/{made['uuid']}?force=true").status == 204
    c.run_until(lambda: not replica_holders(c, made["uuid"]), timeout_s=30)
    holder = c.node(next(iter(holders)))
    late = ReplicaItem(old_copy.uuid, "node-0", old_copy.generation, old_copy.record)
    assert c.run(holder.parts.replica_holder.receive([late])) == 0
    assert not replica_holders(c, made["uuid"])
    c.crash(0)
    c.run_until(declared_dead(c, "node-0"), timeout_s=60)
    assert c.api(1, "GET", f"/containers/{made['uuid']}").status == 404


def test_newer_generations_replace_older_copies_and_never_the_reverse(make_cluster):
    """Each change of a record raises its generation; a holder keeps the highest
    generation it has seen, whatever order copies arrive in."""
    from zund.cluster.messages import ReplicaItem

    c = make_cluster(SimConfig(nodes=3))
    made = c.create(0, name="gen", memory=32, host="node-0")
    c.wait_status(0, made["uuid"], "Running")
    assert c.api(0, "POST", f"/containers/{made['uuid']}/stop").status == 202
    c.wait_status(0, made["uuid"], "Stopped")
    c.advance(5)
    own = c.run(c.node(0).store.get_container(made["uuid"]))
    assert own.generation > 2
    holder = c.node(next(iter(replica_holders(c, made["uuid"]))))
    kept = c.run(holder.store.list_replicas(uuid=made["uuid"]))[0]
    assert (kept.generation, kept.record.status) == (own.generation, "Stopped")
    stale = ReplicaItem(made["uuid"], "node-0", 1, own.copy(status="Creating", generation=1))
    newer = ReplicaItem(made["uuid"], "node-0", own.generation + 1,
                        own.copy(status="Running", generation=own.generation + 1))
    assert c.run(holder.parts.replica_holder.receive([stale])) == 0
    assert c.run(holder.parts.replica_holder.receive([newer])) == 1
    kept = c.run(holder.store.list_replicas(uuid=made["uuid"]))[0]
    assert (kept.generation, kept.record.status) == (own.generation + 1, "Running")


def test_a_restarted_seed_rejoins_within_one_push_pull_interval(seed, tmp_path):
    """Node 0 is everyone's seed and has none itself; after a graceful stop and a
    restart it is alive again in every node's view (and sees them all) within one
    push-pull interval, from the members it saved before stopping."""
    c = file_backed(seed, tmp_path, SimConfig(nodes=3)).start()
    try:
        c.advance(5)  # the member snapshots are written
        restart(c, 0, tmp_path)
        interval = c.nodes[0].parts.gossip.config.push_pull_interval_s
        took = c.run_until(c.converged, timeout_s=interval)
        assert took < interval
    finally:
        c.heal()
        c.stop()


def test_copies_that_could_not_be_sent_are_repaired_by_anti_entropy(make_cluster):
    """While node 0's peer port is cut from the others (gossip still alive), the
    changes of its containers cannot be sent and the holders' copies go stale;
    after the cut heals, the anti-entropy pass brings every copy to the owner's
    generation."""
    c = make_cluster(SimConfig(nodes=4))
    mine = [c.create(0, name=f"p{i}", memory=32, host="node-0") for i in range(4)]
    for m in mine:
        c.wait_status(0, m["uuid"], "Running")
    c.advance(3)
    c.partition(["node-0"], ["node-1", "node-2", "node-3"], gossip=False)
    for m in mine:
        assert c.api(0, "POST", f"/containers/{m['uuid']}/stop").status == 202
        c.wait_status(0, m["uuid"], "Stopped")
    c.advance(3)
    replicator = c.node(0).parts.replicator
    assert replicator.stats["send_failed"] > 0

    def copies_current() -> bool:
        for m in mine:
            own = c.run(c.node(0).store.get_container(m["uuid"]))
            copies = [cp for n in c.nodes[1:]
                      for cp in c.run(n.store.list_replicas(uuid=m["uuid"]))]
            if len(copies) != 2 or any(cp.generation != own.generation for cp in copies):
                return False
        return True

    assert not copies_current()
    c.heal()
    c.run_until(copies_current, timeout_s=replicator.anti_entropy_interval_s + 5, step_s=0.5)
