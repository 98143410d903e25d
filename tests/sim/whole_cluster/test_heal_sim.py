"""Simulated tier: self-healing, drain and forced-down (issue 11 items 3, 4, 6).

A dead node's ``auto_heal`` containers (restart policy ``always``) are re-placed
by exactly one replica holder and run elsewhere with their uuid and name; others
stay Unknown. A returning node removes its moved copies without starting them.
``service disable`` drains a node, ``service force_down`` heals at once."""

from __future__ import annotations

from tests.support.harness import SimCluster, SimConfig
from tests.support.memrpc import LinkFaults
from tests.sim.whole_cluster.test_replicas_sim import build_file_node, declared_dead, file_backed

HEALED = {"auto_heal": True, "restart_policy": {"Name": "always"}}


def kill(c: SimCluster, index: int) -> None:
    """kill -9 of node ``index``: nothing of it runs any more (its store stays)."""
    node = c.nodes[index]
    c.crash(index)
    for part in (node.parts.healer, node.parts.replicator):
        if part.running:
            part.stopService()


def place_on(c: SimCluster, index: int, count: int, prefix: str, **body) -> list[dict]:
    target = c.nodes[index].name
    made = [c.create(0 if index else 1, name=f"{prefix}{i}", memory=32, host=target, **body)
            for i in range(count)]
    for m in made:
        c.wait_status(0 if index else 1, m["uuid"], "Running")
    c.advance(5)  # replication is asynchronous
    return made


def holders_of(c: SimCluster, uuid: str) -> list[str]:
    return c.records().get(uuid, [])


def running_once_elsewhere(c: SimCluster, made: list[dict], dead: str):
    """Each of ``made`` is held by exactly one alive node, not ``dead``, and Running."""
    def check() -> bool:
        alive = {n.name for n in c.nodes if n.up}
        for m in made:
            held = [h for h in holders_of(c, m["uuid"]) if h in alive]
            if len(held) != 1 or held[0] == dead:
                return False
            r = c.api(held[0], "GET", f"/containers/{m['uuid']}")
            if r.status != 200 or r.json["status"] != "Running":
                return False
        return True
    return check


def assert_healed(c: SimCluster, made: list[dict], dead: str) -> None:
    entry = next(n.index for n in c.nodes if n.up)
    for m in made:
        shown = c.api(entry, "GET", f"/containers/{m['uuid']}")
        assert shown.status == 200, shown.body
        assert (shown.json["name"], shown.json["status"]) == (m["name"], "Running")
        assert shown.json["host"] != dead
        actions = c.api(entry, "GET", f"/containers/{m['uuid']}/container_actions")
        messages = [a["message"] for a in actions.json["containerActions"]
                    if a["action"] == "heal"]
        assert messages and messages[0].startswith(f"healed from node {dead} to node "
                                                   f"{shown.json['host']}, because"), messages


def test_a_dead_nodes_auto_heal_containers_run_elsewhere_once_and_others_stay_unknown(
        make_cluster):
    """Node 2 dies holding 3 auto_heal and 2 plain containers: the auto_heal ones
    run on other nodes with the same uuid and name, once each, with a "healed from
    node node-2 ..." action; the plain ones stay Unknown on node-2."""
    c = make_cluster(SimConfig(nodes=4))
    healed = place_on(c, 2, 3, "h", **HEALED)
    plain = place_on(c, 2, 2, "p")
    kill(c, 2)
    declared_at = c.clock.seconds() + c.run_until(declared_dead(c, "node-2"), timeout_s=60)
    took = c.run_until(running_once_elsewhere(c, healed, "node-2"), timeout_s=60, step_s=0.5)
    print(f"heal: {took:.1f} s from the death declaration (clock {declared_at:.1f})")
    assert took <= 30.0
    assert_healed(c, healed, "node-2")
    for m in plain:
        shown = c.api(0, "GET", f"/containers/{m['uuid']}")
        assert (shown.json["status"], shown.json["host"]) == ("Unknown", "node-2")


def test_healing_is_exactly_once_under_message_loss_and_duplication(make_cluster):
    """With 20% of peer requests and replies lost and 10% duplicated, node 1's
    auto_heal containers still end up running exactly once each."""
    c = make_cluster(SimConfig(nodes=4))
    healed = place_on(c, 1, 3, "h", **HEALED)
    c.peers.faults = LinkFaults(drop_request=0.2, drop_reply=0.2, duplicate=0.1,
                                delay=(0.0, 0.05))
    kill(c, 1)
    c.run_until(declared_dead(c, "node-1"), timeout_s=120)
    c.run_until(running_once_elsewhere(c, healed, "node-1"), timeout_s=180, step_s=0.5)
    c.peers.faults = LinkFaults()
    c.advance(30)
    assert running_once_elsewhere(c, healed, "node-1")()


def test_a_healer_that_dies_mid_heal_is_taken_over(make_cluster):
    """The holder chosen to heal node 3's container is killed while its heal is in
    flight (peer calls delayed 0.2 s each way): the next holder in the rendezvous
    order finishes it, and the container runs exactly once."""
    from zund.cluster.replicas import holders

    c = make_cluster(SimConfig(nodes=5))
    healed = place_on(c, 3, 1, "h", **HEALED)
    uuid = healed[0]["uuid"]
    members = {n.name for n in c.nodes} - {"node-3"}
    first = holders(uuid, "node-3", members, 2)[0]
    first_index = int(first.split("-")[1])
    c.peers.faults = LinkFaults(delay=(0.2, 0.2))
    kill(c, 3)
    c.run_until(lambda: uuid in c.nodes[first_index].parts.healer._inflight,
                timeout_s=60, step_s=0.05)
    kill(c, first_index)
    c.run_until(running_once_elsewhere(c, healed, "node-3"), timeout_s=120, step_s=0.5)
    c.peers.faults = LinkFaults()
    c.advance(30)
    assert running_once_elsewhere(c, healed, "node-3")()


def test_an_owner_gossip_calls_dead_but_that_answers_peer_calls_is_not_healed(make_cluster):
    """Gossip alone is cut around node 2 (its UDP lost, its peer port open: what a
    healing partition looks like while gossip lags): the others declare it dead and
    hold a majority, but node 2 still answers for its auto_heal containers, so
    nobody heals them. They stay held once, by node 2, Running, and stay so once
    gossip is back (the CI twin: a minority node that had just regained a majority
    healed a container its owner was running)."""
    from tests.support.harness import GOSSIP_PORT

    c = make_cluster(SimConfig(nodes=4))
    healed = place_on(c, 2, 2, "h", **HEALED)
    others = [n for n in c.nodes if n.index != 2]
    c.gossip_net.partition([(c.nodes[2].host, GOSSIP_PORT)],
                           [(n.host, GOSSIP_PORT) for n in others])
    c.run_until(lambda: all({m.name: m.state for m in n.parts.gossip.members()}
                            .get("node-2") == "dead" for n in others), timeout_s=60)
    c.advance(30)  # thirty heal ticks on every node
    for m in healed:
        assert holders_of(c, m["uuid"]) == ["node-2"], m["name"]
    assert sum(n.parts.healer.stats["owner_answered"] for n in others) >= 1
    c.gossip_net.heal()
    c.run_until(lambda: all({m.name: m.state for m in n.parts.gossip.members()}
                            .get("node-2") == "alive" for n in others), timeout_s=60)
    c.advance(30)
    for m in healed:
        assert holders_of(c, m["uuid"]) == ["node-2"], m["name"]
        shown = c.api(0, "GET", f"/containers/{m['uuid']}")
        assert (shown.json["status"], shown.json["host"]) == ("Running", "node-2")


def test_a_heal_that_commits_after_the_owners_first_look_leaves_no_twin(make_cluster):
    """Node 2 comes back from a cut and at once looks for its moved containers; a
    heal a peer still had in flight commits just after that look (played here by
    node 0 healing it then, node 2's peer port out of its reach; the others'
    healers paused during the cut so nothing heals earlier). Node 2 looks again
    hold_max_s after its membership changed, finds the higher generation and
    removes its copy: one holder, not node 2, long before check_interval_s."""
    c = make_cluster(SimConfig(nodes=4))
    [made] = place_on(c, 2, 1, "h", **HEALED)
    uuid = made["uuid"]
    others = [n for n in c.nodes if n.index != 2]
    owner = c.nodes[2].parts.healer
    for n in others:
        n.parts.healer.stopService()
    c.partition(["node-2"], [n.name for n in others])
    c.run_until(lambda: all({m.name: m.state for m in n.parts.gossip.members()}
                            .get("node-2") == "dead" for n in others), timeout_s=60)
    c.run_until(lambda: owner._members == {"node-2"}, timeout_s=60)
    c.heal()
    everyone = {n.name for n in c.nodes}
    c.run_until(lambda: owner._members == everyone and owner._checking is not None
                and owner._checking.called, timeout_s=60)
    for n in others:
        n.parts.healer.startService()
    looked_at = c.clock.seconds()
    rec = c.run(c.nodes[2].store.get_container(uuid))
    c.peers.partition(["node-2"], ["node-0"])
    assert c.run(c.nodes[0].parts.healer.heal(rec, "node-2", rec.generation,
                                              "a late heal"))
    c.peers.heal()
    assert sorted(holders_of(c, uuid))[-1] == "node-2" and len(holders_of(c, uuid)) == 2
    c.run_until(lambda: holders_of(c, uuid) and "node-2" not in holders_of(c, uuid),
                timeout_s=owner.hold_max_s + 15, step_s=0.5)
    took = c.clock.seconds() - looked_at
    assert took < owner.check_interval_s / 2, took
    assert len(holders_of(c, uuid)) == 1
    shown = c.api(2, "GET", f"/containers/{uuid}")
    assert shown.json["status"] == "Running" and shown.json["host"] != "node-2"


def test_a_returning_node_removes_its_moved_copies_and_keeps_no_twin(seed, tmp_path):
    """Node 2 dies; its auto_heal containers heal elsewhere; node 2 comes back on
    its store: it removes its stale copies (never starting them), and its plain
    container shows its real status again."""
    c = file_backed(seed, tmp_path, SimConfig(nodes=4)).start()
    try:
        healed = place_on(c, 2, 2, "h", **HEALED)
        plain = place_on(c, 2, 1, "p")
        kill(c, 2)
        c.run_until(declared_dead(c, "node-2"), timeout_s=60)
        c.run_until(running_once_elsewhere(c, healed, "node-2"), timeout_s=60, step_s=0.5)
        c.nodes[2] = build_file_node(c, 2, tmp_path)
        c.run(c._start_node(c.nodes[2]))

        def listed_once() -> None:
            for node in c.nodes:
                rows = c.api(node.index, "GET", "/containers?all_projects=1").json[
                    "containers"]
                uuids = [r["uuid"] for r in rows]
                assert len(uuids) == len(set(uuids)), f"a twin listed through {node.name}"

        listed_once()  # also before the returning node removed its stale copies

        def no_twin() -> bool:
            return all(holders_of(c, m["uuid"]) and "node-2" not in holders_of(c, m["uuid"])
                       for m in healed)

        c.run_until(no_twin, timeout_s=90, step_s=0.5)
        listed_once()
        assert running_once_elsewhere(c, healed, "node-2")()
        shown = c.api(0, "GET", f"/containers/{plain[0]['uuid']}")
        assert shown.json["host"] == "node-2"
        assert shown.json["status"] != "Unknown"
    finally:
        c.heal()
        c.stop()


def test_service_disable_drains_a_node_and_enable_reverses_it(make_cluster):
    """``PUT /services/disable`` for node 1 sent through node 0: node 1 shows as
    disabled with its reason, its auto_heal containers move away one at a time,
    plain ones stay, and it wins no new bid; ``enable`` clears it."""
    c = make_cluster(SimConfig(nodes=3))
    healed = place_on(c, 1, 2, "h", **HEALED)
    plain = place_on(c, 1, 1, "p")
    r = c.api(0, "PUT", "/services/disable",
              json={"host": "node-1", "binary": "zun-compute", "disabled_reason": "kernel"})
    assert r.status == 200, r.body
    assert r.json["service"]["disabled"] is True
    c.run_until(running_once_elsewhere(c, healed, "node-1"), timeout_s=60, step_s=0.5)
    assert holders_of(c, plain[0]["uuid"]) == ["node-1"]

    def shown_disabled() -> bool:
        rows = {s["host"]: s for s in c.api(0, "GET", "/services").json["services"]}
        return rows["node-1"]["disabled"] and "kernel" in (rows["node-1"]["disabled_reason"] or "")

    c.run_until(shown_disabled, timeout_s=30, step_s=0.5)
    fresh = [c.create(0, name=f"n{i}", memory=32) for i in range(4)]
    assert all(f["host"] != "node-1" for f in fresh)
    r = c.api(2, "PUT", "/services/enable", json={"host": "node-1", "binary": "zun-compute"})
    assert r.status == 200 and r.json["service"]["disabled"] is False
    c.run_until(lambda: not {s["host"]: s for s in c.api(0, "GET", "/services").json[
        "services"]}["node-1"]["disabled"], timeout_s=30, step_s=0.5)


def test_force_down_heals_without_waiting_for_gossip(make_cluster):
    """Node 2 is cut from peer RPC but gossip still says alive; ``force_down``
    through node 0 makes its auto_heal containers run elsewhere at once, and the
    services list shows it forced down."""
    c = make_cluster(SimConfig(nodes=4))
    healed = place_on(c, 2, 2, "h", **HEALED)
    c.partition(["node-2"], ["node-0", "node-1", "node-3"], gossip=False)
    r = c.api(0, "PUT", "/services/force_down",
              json={"host": "node-2", "binary": "zun-compute", "forced_down": True})
    assert r.status == 200 and r.json["service"]["forced_down"] is True
    def running_on_others() -> bool:
        for m in healed:
            held = [h for h in holders_of(c, m["uuid"]) if h != "node-2"]
            if len(held) != 1:
                return False
            r = c.api(held[0], "GET", f"/containers/{m['uuid']}")
            if r.status != 200 or r.json["status"] != "Running":
                return False
        return True

    took = c.run_until(running_on_others, timeout_s=30, step_s=0.5)
    print(f"force_down heal: {took:.1f} s")
    rows = {s["host"]: s for s in c.api(1, "GET", "/services").json["services"]}
    assert rows["node-2"]["forced_down"] is True
    c.heal()  # node-2 reachable again: its periodic check finds its copies moved
    c.run_until(lambda: all("node-2" not in holders_of(c, m["uuid"]) for m in healed),
                timeout_s=400, step_s=1.0)
    assert running_on_others()


def test_only_an_admin_may_change_a_service(make_cluster):
    """A member of a project gets 403 for disable, enable and force_down."""
    c = make_cluster(SimConfig(nodes=2))
    for action in ("disable", "enable", "force_down"):
        r = c.api(0, "PUT", f"/services/{action}", token="user:demo",
                  json={"host": "node-1", "binary": "zun-compute"})
        assert r.status == 403, (action, r.status)
