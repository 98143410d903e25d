"""Real tier, issue 11 item 6: a 2|1 network partition of real ``zund serve``
processes, made with network namespaces and veth pairs the test creates.

Three nodes (fake runtime: each process has its own engine, as separate hosts
would), each in its own namespace on a bridge in an underlay namespace,
addresses 10.211.0.1-3 assigned by the test (``tests.support.netns``). Node 3 is
cut off the bridge. The majority (nodes 1, 2) declares it dead, lists its plain
container as ``Unknown`` on its host, runs its ``auto_heal`` containers exactly
once on its own side and keeps creating; node 3 keeps serving its own API and,
being a minority, heals nothing of the majority's. The cut is healed: node 3
rejoins, removes its stale copies, and every acknowledged container is held by
exactly one node (no twin, none lost). The convergence time is printed."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from tests.support.netns import NetnsCluster

IMAGE = "zund-test/busybox:latest"  # the fake runtime's local image
RUNNER = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done']
HEALED = {"auto_heal": True, "restart_policy": {"Name": "always"}}


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


@pytest.fixture
def netns_cluster(tmp_path):
    cluster = NetnsCluster(str(tmp_path), 3, "part")
    try:
        cluster.setup().start()
        yield cluster
    finally:
        cluster.close()


def test_a_2_1_partition_heals_on_the_majority_only_and_leaves_one_copy_after_it_heals(
        netns_cluster):
    """Node 3 cut off: the majority declares it dead, shows its plain container
    Unknown, runs its auto_heal ones once and keeps creating; node 3 heals none of
    the majority's. After the cut heals: node 3 rejoins, its stale copies are
    gone, and every acknowledged container is held by exactly one node."""
    c = netns_cluster
    n1, n2, n3 = c.nodes
    majority = [n1, n2]
    accepted: dict[str, str] = {}  # uuid -> name
    healing = [_create(n1, f"heal{i}", host=n3.name, **HEALED) for i in range(2)]
    plain3 = _create(n1, "plain3", host=n3.name)
    heal1 = _create(n2, "heal-n1", host=n1.name, **HEALED)
    for u, name in zip(healing + [plain3, heal1], ["heal0", "heal1", "plain3", "heal-n1"]):
        accepted[u] = name
    for u in accepted:
        n1.wait_status(u, "Running", timeout_s=120)
    # copies reach the holders asynchronously: wait until node 3's records have
    # copies on both majority nodes (and node 1's on node 3)
    _poll(lambda: all(set(healing + [plain3]) <= _copies(n) for n in majority)
          and heal1 in _copies(n3), 60, "replicas in place")

    cut_at = time.monotonic()
    c.cut(2)
    detect_s = c.wait_hosts(lambda node, hosts: hosts.get(n3.name) == "down", 90,
                            "node 3 declared dead by the majority", nodes=majority)

    # the majority lists node 3's plain container as Unknown on its host
    def listed_unknown() -> bool:
        r = n2.api("GET", "/containers?all_projects=1")
        rows = {x["uuid"]: x for x in r.json()["containers"]} if r.status_code == 200 else {}
        return rows.get(plain3, {}).get("status") == "Unknown" \
            and rows[plain3]["host"] == n3.name

    _poll(listed_unknown, 30, "plain container Unknown through the majority")
    shown = n1.api("GET", f"/containers/{plain3}")
    assert shown.status_code == 200 and shown.json()["status"] == "Unknown", shown.text

    # its auto_heal containers run on the majority side, exactly once
    heal_s = {}

    def healed() -> bool:
        for u in healing:
            if u in heal_s:
                continue
            r = n1.api("GET", f"/containers/{u}")
            if r.status_code == 200 and r.json()["status"] == "Running" \
                    and r.json()["host"] in (n1.name, n2.name):
                heal_s[u] = round(time.monotonic() - cut_at - detect_s, 2)
        return len(heal_s) == len(healing)

    _poll(healed, 60, "auto_heal containers Running on the majority")
    for u in healing:
        assert len(_holders(majority, u)) == 1, (u, _holders(majority, u))

    # creates on the majority keep working
    for i in range(3):
        u = _create(n1 if i % 2 else n2, f"during{i}")
        accepted[u] = f"during{i}"
        n1.wait_status(u, "Running", timeout_s=60)
        assert n3.name not in _holders(c.nodes, u)

    # the minority keeps serving its API and heals nothing of the majority's: it
    # sees both others dead, and its healer says it has no majority
    c.wait_hosts(lambda node, hosts: hosts.get(n1.name) == hosts.get(n2.name) == "down",
                 60, "node 3 sees the others dead", nodes=[n3])
    _poll(lambda: "healer.no_majority" in n3.log_tail(400), 30, "node 3 refuses to heal")
    r = n3.api("GET", "/containers")
    assert r.status_code == 200, r.text
    assert heal1 not in _stored(n3)
    assert _holders(c.nodes, heal1) == [n1.name]

    healed_at = time.monotonic()
    c.heal()
    c.wait_hosts(lambda node, hosts: len(hosts) == 3 and set(hosts.values()) == {"up"}, 90,
                 "every node sees every node up again")
    rejoin_s = time.monotonic() - healed_at

    def one_copy_each() -> bool:
        return all(len(_holders(c.nodes, u)) == 1 for u in accepted)

    _poll(one_copy_each, 90, "exactly one copy of each container")
    converge_s = time.monotonic() - healed_at
    for u in healing:
        assert n3.name not in _holders(c.nodes, u)  # the stale copies went
    assert _holders(c.nodes, plain3) == [n3.name]
    n1.wait_status(plain3, "Running", timeout_s=30)  # its real status again
    listed = {x["uuid"]: x for x in n3.api("GET", "/containers?all_projects=1").json()[
        "containers"]}
    assert set(accepted) <= set(listed), set(accepted) - set(listed)
    names = [x["name"] for x in listed.values() if x["uuid"] in accepted]
    assert sorted(names) == sorted(accepted.values())  # no twin by name either
    print(f"partition 2|1: death declared {detect_s:.1f} s after the cut; auto_heal "
          f"Running on the majority {sorted(heal_s.values())} s after that; after the "
          f"heal all up in {rejoin_s:.1f} s, one copy each in {converge_s:.1f} s")
