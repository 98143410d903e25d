"""Real tier, issue 11 item 6: a 2|3 network partition of real ``zund serve``
processes, made with network namespaces and veth pairs the test creates.

Five nodes (fake runtime: each process has its own engine, as separate hosts
would), each in its own namespace on a bridge in an underlay namespace,
addresses 10.211.0.1-5 assigned by the test (``tests.support.netns``). Nodes 4
and 5 are cut off the bridge together: two sides that each still reach each
other. Both sides keep serving: lists and shows through a node of each side
answer (the other side's containers ``Unknown`` on their host), creates through
each side run on that side's nodes. The majority (nodes 1-3) heals the
minority's ``auto_heal`` containers exactly once; the minority, seeing 2 of 5
alive, heals nothing. The cut is healed: every node sees all five up, each
acknowledged container is held by exactly one node (the minority's stale copies
of healed containers removed, no twin, none lost) and every node's list agrees.
The convergence time (cut healed → all views agree and exactly-once holds) is
printed as a JSON line."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest

from tests.support.netns import NetnsCluster

IMAGE = "zund-test/busybox:latest"  # the fake runtime's local image
RUNNER = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done']
HEALED = {"auto_heal": True, "restart_policy": {"Name": "always"}}
REPLICAS = 2  # [cluster] replicas, the default


def _poll(predicate, timeout_s: float, what: str, step_s: float = 0.2) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start >= timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(step_s)
    return time.monotonic() - start


def _rows(node, sql: str) -> list:
    """Rows of ``sql`` on ``node``'s own store (read-only, beside the daemon)."""
    path = os.path.join(node.state_path, "zund.sqlite")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _stored(node) -> set[str]:
    return {r[0] for r in _rows(node, "SELECT uuid FROM containers")}


def _copies(node) -> set[str]:
    return {r[0] for r in _rows(node, "SELECT uuid FROM replicas WHERE deleted = 0")}


def _holders(nodes, uuid: str) -> list[str]:
    return [n.name for n in nodes if uuid in _stored(n)]


def _create(entry, name: str, host: str | None = None, **extra) -> str:
    body = {"name": name, "image": IMAGE, "command": RUNNER, "cpu": 0.1, "memory": 32,
            "image_pull_policy": "ifnotpresent", **extra}
    if host:
        body["host"] = host
    r = entry.api("POST", "/containers?run=true", json=body)
    assert r.status_code == 202, r.text
    return r.json()["uuid"]


def _listing(node) -> tuple[dict, set[str]] | None:
    """``({uuid: row}, Zund-Partial-Nodes)`` of a cluster-wide list through ``node``."""
    try:
        r = node.api("GET", "/containers?all_projects=1")
    except Exception:  # noqa: BLE001 - a timeout while a peer is unreachable
        return None
    if r.status_code != 200:
        return None
    partial = {h for h in r.headers.get("Zund-Partial-Nodes", "").split(",") if h}
    return {x["uuid"]: x for x in r.json()["containers"]}, partial


@pytest.fixture
def netns_cluster(tmp_path):
    cluster = NetnsCluster(str(tmp_path), 5, "part")
    try:
        cluster.setup().start(converge_s=90)
        yield cluster
    finally:
        cluster.close()


def test_a_2_3_partition_keeps_both_sides_serving_and_converges_to_one_copy_each(
        netns_cluster):
    """Nodes 4 and 5 cut off together: both sides list, show and create on their own
    nodes; the majority runs the minority's auto_heal containers exactly once, the
    minority heals nothing; after the cut heals every node sees all five up, every
    acknowledged container is held exactly once and all lists agree."""
    c = netns_cluster
    n1, n2, n3, n4, n5 = c.nodes
    majority, minority = [n1, n2, n3], [n4, n5]
    major_names = {n.name for n in majority}
    minor_names = {n.name for n in minority}
    accepted: dict[str, str] = {}  # uuid -> name, every create answered 202

    def create(entry, name, host=None, **extra) -> str:
        u = _create(entry, name, host, **extra)
        accepted[u] = name
        return u

    healing = [create(n1, "heal4", host=n4.name, **HEALED),
               create(n2, "heal5", host=n5.name, **HEALED)]
    plain4 = create(n3, "plain4", host=n4.name)
    heal_major = create(n4, "heal-n1", host=n1.name, **HEALED)
    plain_major = [create(n5, f"plain-m{i}", host=n.name) for i, n in enumerate(majority)]
    for u in accepted:
        n1.wait_status(u, "Running", timeout_s=120)
    # copies reach their R holders asynchronously
    _poll(lambda: all(sum(u in _copies(n) for n in c.nodes) >= REPLICAS for u in accepted),
          60, "R copies of every record")
    # with R = 2 each minority record has a copy on the majority side
    for u in healing + [plain4]:
        assert any(u in _copies(n) for n in majority), u
    minority_copies = set().union(*(_copies(n) for n in minority))

    cut_at = time.monotonic()
    c.split(3, 4)
    detect_s = c.wait_hosts(
        lambda node, hosts: all(hosts.get(n.name) == "down" for n in minority), 90,
        "nodes 4, 5 declared dead by the majority", nodes=majority)

    # its auto_heal containers run on the majority side, exactly once
    heal_s: dict[str, float] = {}

    def healed() -> bool:
        for u in healing:
            if u in heal_s:
                continue
            r = n1.api("GET", f"/containers/{u}")
            if r.status_code == 200 and r.json()["status"] == "Running" \
                    and r.json()["host"] in major_names:
                heal_s[u] = round(time.monotonic() - cut_at - detect_s, 2)
        return len(heal_s) == len(healing)

    _poll(healed, 60, "auto_heal containers Running on the majority")
    for u in healing:
        assert len(_holders(majority, u)) == 1, (u, _holders(majority, u))
        actions = n2.api("GET", f"/containers/{u}/container_actions").json()
        assert "heal" in [a["action"] for a in actions["containerActions"]], actions

    # -- the majority side serves: node 4's plain container Unknown on its host
    def majority_lists_unknown() -> bool:
        got = _listing(n2)
        if got is None:
            return False
        rows, partial = got
        assert not partial & major_names, partial  # only the other side may be missing
        return rows.get(plain4, {}).get("status") == "Unknown" \
            and rows[plain4]["host"] == n4.name

    _poll(majority_lists_unknown, 30, "plain container Unknown through the majority")
    shown = n3.api("GET", f"/containers/{plain4}")
    assert shown.status_code == 200 and shown.json()["status"] == "Unknown", shown.text
    assert shown.json()["host"] == n4.name

    c.wait_hosts(lambda node, hosts: all(hosts.get(n.name) == "down" for n in majority)
                 and all(hosts.get(n.name) == "up" for n in minority), 90,
                 "the minority sees the majority dead and itself up", nodes=minority)
    minority_detect_s = time.monotonic() - cut_at

    # -- the minority side serves too: its own containers, the majority's copies
    # it holds as Unknown, and only the other side ever named as missing
    got = _listing(n5)
    assert got is not None
    rows, partial = got
    assert not partial & minor_names, partial
    assert rows[plain4]["status"] == "Running" and rows[plain4]["host"] == n4.name
    for u in [heal_major] + plain_major:
        if u in minority_copies:
            assert u in rows, f"{accepted[u]}: not listed through the minority"
            assert rows[u]["status"] == "Unknown", rows[u]
            assert rows[u]["host"] in major_names, rows[u]
            shown = n4.api("GET", f"/containers/{u}")
            assert shown.status_code == 200 and shown.json()["status"] == "Unknown", shown.text
        elif u in rows:
            assert rows[u]["status"] == "Unknown", rows[u]
    # ...and heals nothing: it sees 2 of 5 alive
    for n in minority:
        _poll(lambda n=n: "healer.no_majority" in n.log_tail(400), 30,
              f"{n.name} refuses to heal")
    assert _holders(c.nodes, heal_major) == [n1.name]

    # -- creates through each side run on that side's nodes
    made = {}
    for side, names in ((majority, major_names), (minority, minor_names)):
        for i, entry in enumerate(side[:2]):
            u = create(entry, f"during-{entry.name}-{i}")
            made[u] = (entry, names)
    for u, (entry, names) in made.items():
        row = entry.wait_status(u, "Running", timeout_s=60)
        assert row["host"] in names, row
        assert set(_holders(c.nodes, u)) <= names

    # -- the cut heals
    healed_at = time.monotonic()
    c.heal()
    c.wait_hosts(lambda node, hosts: len(hosts) == 5 and set(hosts.values()) == {"up"}, 120,
                 "every node sees every node up again")
    rejoin_s = time.monotonic() - healed_at
    last: dict = {}

    def converged() -> bool:
        if not all(len(_holders(c.nodes, u)) == 1 for u in accepted):
            last["holders"] = {accepted[u]: _holders(c.nodes, u) for u in accepted}
            return False
        views = []
        for node in c.nodes:
            got = _listing(node)
            if got is None or got[1]:
                last["view"] = (node.name, got and got[1])
                return False
            views.append({u: (x["host"], x["status"]) for u, x in got[0].items()})
        last["views"] = views
        return all(v == views[0] for v in views) and set(views[0]) == set(accepted) \
            and all(st == "Running" for _, st in views[0].values())

    try:
        _poll(converged, 120, "all views agree, one copy each")
    except AssertionError as e:
        raise AssertionError(f"{e}; last {last}") from None
    converge_s = time.monotonic() - healed_at

    for u in healing:  # the minority's stale copies went; the healed one stays
        assert _holders(c.nodes, u)[0] in major_names, _holders(c.nodes, u)
    assert _holders(c.nodes, plain4) == [n4.name]
    listed = _listing(n4)[0]
    names = [x["name"] for u, x in listed.items() if u in accepted]
    assert sorted(names) == sorted(accepted.values())  # no twin by name either
    print(json.dumps({
        "test": "partition_netns_2_3", "nodes": 5, "containers": len(accepted),
        "death_declared_s": round(detect_s, 2),
        "minority_sees_majority_dead_by_s": round(minority_detect_s, 2),
        "heal_after_declared_s": sorted(
            heal_s.values()), "rejoin_s": round(rejoin_s, 2),
        "convergence_s": round(converge_s, 2)}))
