"""Real tier, issue 11 items 3 and 6: self-healing on real ``zund serve``
processes on 127.0.0.1-4 over the real Docker engine.

A node holding 3 ``auto_heal`` containers (restart policy ``always``) is killed
-9 in a 4-node cluster: each runs on another node, once, with its uuid and name;
the times from the death declaration to Running elsewhere are printed. The node
then restarts: it removes its stale copies (record and Docker object) and keeps
no twin. ``zund drain`` on a node moves its auto_heal containers away.
``heal_round`` is also the scenario of ``bench/heal.py``."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

from tests.support.nodeproc import docker_objects, remove_docker_objects, start_cluster, stop_cluster
from tests.support.replicas import replicated

RUNNER = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done']
HEALED = {"auto_heal": True, "restart_policy": {"Name": "always"}}


def _poll(predicate, timeout_s: float, what: str, step_s: float = 0.2) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start >= timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(step_s)
    return time.monotonic() - start


def _down_everywhere(alive, victim: str) -> bool:
    for n in alive:
        r = n.api("GET", "/services")
        if r.status_code != 200:
            return False
        if {s["host"]: s["state"] for s in r.json()["services"]}.get(victim) != "down":
            return False
    return True


def _stored(node) -> set[str]:
    """uuids of the records in ``node``'s own store (read-only, beside the daemon)."""
    path = os.path.join(node.state_path, "zund.sqlite")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0] for row in conn.execute("SELECT uuid FROM containers")}
    finally:
        conn.close()


def _where(nodes, uuid: str) -> list[str]:
    """Names of the nodes holding container ``uuid``: a record in their own store
    or a Docker object labelled with their name."""
    return [n.name for n in nodes if uuid in _stored(n) or uuid in docker_objects(n.name)]


def heal_round(workdir: str, image: str, tag: str = "heal", containers: int = 3,
               nodes_n: int = 4) -> dict:
    """One kill -9 of a node holding ``containers`` auto_heal containers; returns
    ``{"detect_s", "heal_s": [...], "twins", "stale_removed_s"}`` (heal times from
    the death declaration; ``detect_s`` from the kill to the declaration on every
    other node: the same-run reference)."""
    nodes = start_cluster(workdir, nodes_n, tag)
    victim = nodes[-1]
    alive = nodes[:-1]
    try:
        made = []
        for i in range(containers):
            r = nodes[0].api("POST", "/containers?run=true",
                             json={"name": f"heal{i}", "image": image, "command": RUNNER,
                                   "memory": 64, "host": victim.name, **HEALED})
            assert r.status_code == 202, r.text
            made.append(r.json())
        for m in made:
            nodes[0].wait_status(m["uuid"], "Running", timeout_s=120)
        # replication is asynchronous (sub-second): wait until the copies are out
        _poll(lambda: replicated(victim, alive, [m["uuid"] for m in made]), 60,
              "records replicated")
        killed = time.monotonic()
        victim.kill9()
        # the host goes down with its containers (every test node shares one
        # dockerd, where a container's name is its uuid: a surviving object of the
        # dead node would block the healed one's name)
        remove_docker_objects(victim.name)
        _poll(lambda: _down_everywhere(alive, victim.name), 90, "death declared")
        declared = time.monotonic()
        heal_s: dict = {}

        def all_running() -> bool:
            for m in made:
                if m["uuid"] in heal_s:
                    continue
                r = alive[0].api("GET", f"/containers/{m['uuid']}")
                if r.status_code == 200 and r.json()["status"] == "Running" \
                        and r.json()["host"] != victim.name:
                    heal_s[m["uuid"]] = time.monotonic() - declared
            return len(heal_s) == len(made)

        _poll(all_running, 120, "auto_heal containers Running elsewhere", step_s=0.1)
        for m in made:
            shown = alive[0].api("GET", f"/containers/{m['uuid']}").json()
            assert shown["name"] == m["name"]
            acts = alive[0].api("GET", f"/containers/{m['uuid']}/container_actions").json()
            assert any(a["action"] == "heal" and (a["message"] or "").startswith(
                f"healed from node {victim.name} to node {shown['host']}")
                for a in acts["containerActions"]), acts
        victim.start()
        restarted = time.monotonic()

        def no_stale() -> bool:
            return all(_where(nodes, m["uuid"]) and victim.name not in _where(nodes, m["uuid"])
                       for m in made)

        _poll(no_stale, 120, "stale copies removed on the returning node")
        stale_removed_s = time.monotonic() - restarted
        # not a wait: a window in which every container must stay on exactly one
        # node (a late heal or a missed stale copy would show as a twin here)
        twins, window_end = 0, time.monotonic() + 3.0
        while not twins and time.monotonic() < window_end:
            twins = sum(1 for m in made if len(_where(nodes, m["uuid"])) != 1)
            time.sleep(0.2)
        return {"detect_s": round(declared - killed, 2),
                "heal_s": [round(heal_s[m["uuid"]], 2) for m in made],
                "twins": twins, "stale_removed_s": round(stale_removed_s, 2)}
    finally:
        stop_cluster(nodes)
        for n in nodes:
            remove_docker_objects(n.name)


def test_a_killed_nodes_auto_heal_containers_run_elsewhere_once_and_no_twin_after_restart(
        tmp_path, real_docker):
    """Node 4 of 4, holding 3 auto_heal containers, is killed -9: each runs on
    another node with its uuid and name and a heal action; node 4 restarts and
    removes its stale copies: exactly one copy of each afterwards."""
    out = heal_round(str(tmp_path), real_docker)
    print(f"self-heal: death declared {out['detect_s']} s after kill -9; Running "
          f"elsewhere {out['heal_s']} s after the declaration; stale copies removed "
          f"{out['stale_removed_s']} s after restart; twins {out['twins']}")
    assert out["twins"] == 0
    assert max(out["heal_s"]) <= 30.0


def test_zund_drain_moves_the_nodes_auto_heal_containers_away(tmp_path, real_docker):
    """``zund drain`` on node 2 (over its control socket): its auto_heal container
    moves to another node and keeps its uuid; its plain one stays; the services
    list shows node 2 disabled; ``zund drain --undo`` enables it again."""
    nodes = start_cluster(str(tmp_path), 3, "drain")
    n1, n2, _ = nodes
    try:
        made = {}
        for name, extra in (("mover", HEALED), ("stayer", {})):
            r = n1.api("POST", "/containers?run=true",
                       json={"name": name, "image": real_docker, "command": RUNNER,
                             "memory": 64, "host": n2.name, **extra})
            assert r.status_code == 202, r.text
            made[name] = r.json()
            n1.wait_status(made[name]["uuid"], "Running", timeout_s=120)
        _poll(lambda: replicated(n2, [n for n in nodes if n is not n2],
                                  [m["uuid"] for m in made.values()]), 60,
              "records replicated")
        env = dict(os.environ)
        p = subprocess.run([sys.executable, "-m", "zund.cmd.main", "drain", "--reason",
                            "maintenance", "--config-file", n2.conf_path],
                           capture_output=True, text=True, env=env, timeout=60)
        assert p.returncode == 0, p.stderr
        _poll(lambda: n1.api("GET", f"/containers/{made['mover']['uuid']}").json().get(
            "host") not in (None, n2.name), 90, "mover moved")
        _poll(lambda: made["mover"]["uuid"] not in docker_objects(n2.name), 60,
              "old copy removed")
        assert n1.api("GET", f"/containers/{made['stayer']['uuid']}").json()["host"] == n2.name
        rows = {s["host"]: s for s in n1.api("GET", "/services").json()["services"]}
        assert rows[n2.name]["disabled"] is True
        assert "maintenance" in rows[n2.name]["disabled_reason"]
        p = subprocess.run([sys.executable, "-m", "zund.cmd.main", "drain", "--undo",
                            "--config-file", n2.conf_path],
                           capture_output=True, text=True, env=env, timeout=60)
        assert p.returncode == 0, p.stderr
        _poll(lambda: not {s["host"]: s for s in n1.api("GET", "/services").json()[
            "services"]}[n2.name]["disabled"], 30, "enabled again")
    finally:
        stop_cluster(nodes)
        for n in nodes:
            remove_docker_objects(n.name)


def osc(node, *args) -> dict:
    """``openstack appcontainer ARGS -f json`` through ``node`` (noauth admin)."""
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_TYPE="none", OS_ENDPOINT=node.endpoint)
    p = subprocess.run(["openstack", "appcontainer", *args, "-f", "json"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, f"{args}:\n{p.stdout}\n{p.stderr}\n{node.log_tail()}"
    return json.loads(p.stdout) if p.stdout.strip() else {}


def osc_services(node) -> dict:
    """``openstack appcontainer service list`` through ``node``: host -> row, with
    the column names as keys in snake case (``Disabled Reason`` -> disabled_reason)."""
    return {r["host"]: r for r in (
        {k.lower().replace(" ", "_"): v for k, v in row.items()}
        for row in osc(node, "service", "list"))}


def test_openstack_service_disable_enable_and_forcedown(tmp_path, real_docker):
    """Through node 1 with the real client: ``service disable node2 zun-compute
    --reason`` drains node 2 (its auto_heal container moves; service list shows it
    disabled with the reason), ``service enable`` reverses it, and ``service
    forcedown node3 zun-compute`` heals node 3's auto_heal container at once,
    while node 3 is still up in gossip."""
    nodes = start_cluster(str(tmp_path), 3, "svc")
    n1, n2, n3 = nodes
    try:
        made = {}
        for node in (n2, n3):
            r = n1.api("POST", "/containers?run=true",
                       json={"name": f"on-{node.name}", "image": real_docker,
                             "command": RUNNER, "memory": 64, "host": node.name, **HEALED})
            assert r.status_code == 202, r.text
            made[node.name] = r.json()["uuid"]
            n1.wait_status(made[node.name], "Running", timeout_s=120)
        for node in (n2, n3):
            _poll(lambda node=node: replicated(node, [n for n in nodes if n is not node],
                                                [made[node.name]]), 60,
                  "records replicated")
        osc(n1, "service", "disable", n2.name, "zun-compute", "--reason", "maint")

        def host_of(uuid):
            return n1.api("GET", f"/containers/{uuid}").json().get("host")

        _poll(lambda: host_of(made[n2.name]) not in (None, n2.name), 90, "drained")
        rows = osc_services(n1)
        assert rows[n2.name]["disabled"] is True
        assert "maint" in rows[n2.name]["disabled_reason"]
        osc(n1, "service", "enable", n2.name, "zun-compute")
        _poll(lambda: not osc_services(n1)[n2.name]["disabled"], 30, "enabled")
        # node 3's own containers go down with the forced-down host here (one
        # shared dockerd: the healed copy needs the name)
        remove_docker_objects(n3.name)
        forced = time.monotonic()
        osc(n1, "service", "forcedown", n3.name, "zun-compute")
        _poll(lambda: host_of(made[n3.name]) not in (None, n3.name)
              and n1.api("GET", f"/containers/{made[n3.name]}").json()["status"] == "Running",
              60, "healed after forcedown")
        print(f"forcedown heal: {time.monotonic() - forced:.2f} s")
        # the client's list has no forced_down column: the API's answer has it
        rows = {r["host"]: r for r in n1.api("GET", "/services").json()["services"]}
        assert rows[n3.name]["forced_down"] is True
    finally:
        stop_cluster(nodes)
        for n in nodes:
            remove_docker_objects(n.name)


def test_a_forced_down_mark_survives_a_restart_of_every_node(tmp_path):
    """``service forcedown node3`` through node 1, then all three nodes stop and
    start again (no node keeps the mark in memory): every node's service list
    still shows node 3 forced down, read from ``<state_path>/service-marks.json``
    (node 3 never reads itself as down, so its own list is not checked);
    ``forcedown --unset`` through node 2 afterwards clears it on nodes 1 and 2."""
    nodes = start_cluster(str(tmp_path), 3, "marks")
    n1, n2, n3 = nodes

    def forced_everywhere(value: bool) -> bool:
        for n in (n1, n2):
            r = n.api("GET", "/services")
            if r.status_code != 200:
                return False
            rows = {row["host"]: row for row in r.json()["services"]}
            if n3.name not in rows or rows[n3.name]["forced_down"] is not value:
                return False
        return True

    try:
        osc(n1, "service", "forcedown", n3.name, "zun-compute")
        _poll(lambda: forced_everywhere(True), 30, "mark spread")
        for n in nodes:
            assert n.terminate() == 0, n.log_tail()
        for n in (n1, n2):
            with open(os.path.join(n.state_path, "service-marks.json")) as f:
                assert n3.name in f.read(), n.name
        for n in nodes:
            n.start()
        _poll(lambda: forced_everywhere(True), 60, "mark kept across the restart")
        osc(n2, "service", "forcedown", n3.name, "zun-compute", "--unset")
        _poll(lambda: forced_everywhere(False), 30, "unset spread")
    finally:
        stop_cluster(nodes)
