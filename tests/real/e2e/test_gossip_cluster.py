"""Real tier: 5 ``zund serve`` processes on 127.0.0.1-5 gossip (encrypted, lan
timings). kill -9 one: every other shows it dead within the bound; restart it: it
is alive again everywhere, with a higher incarnation. ``zund peers`` reports it."""

import base64
import os
import subprocess
import sys
import time

import pytest

from tests.support.nodeproc import ZundProcess, free_port, peers, remove_docker_objects

N = 5
# lan: probe 1 s; suspicion max = 6 * 4 * max(1, log10(5)) * 1 s = 24 s (memberlist's
# formula, no confirmations); + a probe round + timeouts.
DEAD_BOUND_S = 35.0


def states(node) -> dict:
    return {p["name"]: (p["state"], p["incarnation"]) for p in peers(node)}


def wait_until(fn, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, real_docker):
    wd = str(tmp_path_factory.mktemp("gossip"))
    gport = free_port("127.0.0.1")
    key = base64.b64encode(os.urandom(32)).decode()
    nodes = []
    for i in range(1, N + 1):
        ip = f"127.0.0.{i}"
        nodes.append(ZundProcess(wd, name=f"g{i}-{os.getpid()}", host_ip=ip, extra={
            "gossip": {"bind_host": ip, "bind_port": str(gport), "keys": key,
                       "seeds": f"127.0.0.1:{gport}", "cluster_name": f"t{os.getpid()}"},
        }))
    try:
        for n in nodes:
            n.start()
        yield nodes
    finally:
        for n in nodes:
            try:
                n.terminate()
            except Exception:
                n.kill9()
            remove_docker_objects(n.name)


def test_all_nodes_converge(cluster):
    """Every node sees all 5 alive, with capacity metadata."""
    def converged():
        for n in cluster:
            ps = peers(n)
            if sorted(p["name"] for p in ps if p["state"] == "alive") != sorted(x.name for x in cluster):
                return False
            if any(not p["meta"] or "cap" not in p["meta"] for p in ps):
                return False
        return True

    wait_until(converged, 30, "convergence")


def test_metadata_change_reaches_every_peer(cluster, real_docker):
    """A container created through node 3 shows up in its host's gossiped capacity
    on every node (placement decides the host)."""
    n3 = cluster[2]
    r = n3.api("POST", "/containers", json={"image": real_docker, "command": ["true"],
                                              "cpu": 0.5, "memory": 64})
    assert r.status_code == 202, r.text
    host = r.json()["host"]
    assert host in {n.name for n in cluster}

    def seen():
        for n in cluster:
            meta = {p["name"]: p["meta"] for p in peers(n)}[host]
            if meta["cap"]["containers"] != 1 or meta["cap"]["mem_used_mb"] != 64:
                return False
        return True

    wait_until(seen, 15, "metadata dissemination")


def test_kill9_is_detected_dead_everywhere_then_rejoins(cluster):
    """kill -9 node 5: all others mark it dead within the bound; after a restart it is
    alive everywhere again with a higher incarnation."""
    victim = cluster[4]
    inc_before = states(cluster[0])[victim.name][1]
    victim.kill9()
    t0 = time.monotonic()
    others = cluster[:4]
    wait_until(lambda: all(states(n)[victim.name][0] == "dead" for n in others),
               DEAD_BOUND_S, "dead on all peers")
    detected_s = time.monotonic() - t0
    assert detected_s < DEAD_BOUND_S
    # no false positive meanwhile
    for n in others:
        assert all(s == "alive" for name, (s, _) in states(n).items() if name != victim.name)
    victim.start()
    wait_until(lambda: all(states(n)[victim.name][0] == "alive" for n in cluster),
               30, "alive again everywhere")
    for n in others:
        assert states(n)[victim.name][1] > inc_before


def test_peers_cli_fails_clearly_without_daemon(tmp_path):
    """zund peers exits non-zero with a clear message when no daemon answers."""
    conf = tmp_path / "z.conf"
    conf.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n")
    p = subprocess.run([sys.executable, "-m", "zund.cmd.main", "peers", "--config-file",
                        str(conf)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "cannot reach the zund daemon" in p.stderr
