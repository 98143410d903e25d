"""Real tier, issue 11 items 2 and 5, on real ``zund serve`` processes on
127.0.0.1-3 over the real Docker engine:

- record replicas: ``openstack appcontainer show`` of a killed node's container,
  through every other node after each of them restarted (every cache cold),
  answers Unknown with the dead node's host name;
- rejoin after any restart: the seed (node 1) stopped with SIGTERM and started
  again is back in every node's view within one push-pull interval (``local``
  gossip profile: 15 s); the time is printed."""

from __future__ import annotations

import json
import os
import subprocess
import time

from tests.support.nodeproc import start_cluster, stop_cluster
from tests.support.replicas import replicated
from zund.common.paths import gossip_snapshot_path

RUNNER = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done']
#: the ``local`` gossip profile's push-pull interval
PUSH_PULL_INTERVAL_S = 15.0


def osc_show(node, ident: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_TYPE="none", OS_ENDPOINT=node.endpoint)
    p = subprocess.run(["openstack", "appcontainer", "show", ident, "-f", "json"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, f"show {ident} through {node.name}:\n{p.stdout}\n{p.stderr}\n" \
                              f"{node.log_tail()}"
    return json.loads(p.stdout)


def states_seen_by(node) -> dict:
    r = node.api("GET", "/services")
    assert r.status_code == 200, r.text
    return {s["host"]: s["state"] for s in r.json()["services"]}


def wait_until(predicate, timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(0.2)
    return time.monotonic() - start


def test_show_of_a_dead_nodes_container_through_any_restarted_node_is_unknown(
        tmp_path, real_docker):
    """Node 3 is killed -9 with a container; nodes 1 and 2 then restart (cold
    caches): openstack appcontainer show by uuid and by name through each answers
    Unknown with host node 3."""
    nodes = start_cluster(str(tmp_path), 3, "rep")
    try:
        n1, n2, n3 = nodes
        r = n1.api("POST", "/containers?run=true",
                   json={"name": "lost", "image": real_docker, "command": RUNNER,
                         "memory": 64, "host": n3.name})
        assert r.status_code == 202, r.text
        made = r.json()
        n1.wait_status(made["uuid"], "Running")
        # replication is asynchronous (sub-second): wait until the copy is out
        wait_until(lambda: replicated(n3, [n1, n2], [made["uuid"]]), 60,
                   "record replicated")
        n3.kill9()
        wait_until(lambda: all(states_seen_by(n).get(n3.name) == "down" for n in (n1, n2)),
                   40, "node 3 declared down")
        for entry in (n1, n2):
            assert entry.terminate() == 0, entry.log_tail()
            entry.start()
        for entry in (n1, n2):
            for ident in (made["uuid"], "lost"):
                shown = osc_show(entry, ident)
                assert (shown["status"], shown["host"]) == ("Unknown", n3.name), shown
    finally:
        stop_cluster(nodes)


def snapshot_names(node) -> set:
    """Member names in ``node``'s gossip snapshot file (empty until written)."""
    try:
        with open(gossip_snapshot_path(node.state_path)) as f:
            return {m["name"] for m in json.load(f).get("members", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def test_a_restarted_seed_rejoins_within_one_push_pull_interval(tmp_path, real_docker):
    """SIGTERM and restart of node 1, everyone's seed: every node shows all three
    up again in less than one push-pull interval."""
    nodes = start_cluster(str(tmp_path), 3, "rejoin")
    try:
        n1 = nodes[0]
        names = {n.name for n in nodes}
        # the member snapshots are written (debounced 1 s): each lists the others
        wait_until(lambda: all(snapshot_names(n) >= names - {n.name} for n in nodes),
                   30, "member snapshots written")
        assert n1.terminate() == 0, n1.log_tail()
        started = time.monotonic()
        n1.start()
        took = wait_until(
            lambda: all(states_seen_by(n) == dict.fromkeys(names, "up") for n in nodes),
            PUSH_PULL_INTERVAL_S, "all nodes up in every view")
        total = time.monotonic() - started
        print(f"rejoin: {took:.2f} s after the API answered, {total:.2f} s after start")
    finally:
        stop_cluster(nodes)
