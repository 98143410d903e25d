"""kill -9 of a real ``zund serve`` at different moments loses nothing: after a
restart the store and Docker agree — no orphan ``zun-*`` objects, no ghosts."""

import time

import pytest

from tests.support.nodeproc import ZundProcess, docker_objects, remove_docker_objects

RUNNER = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done']


def _create(node, image, name):
    r = node.api("POST", "/containers?run=true",
                 json={"name": name, "image": image, "command": RUNNER})
    assert r.status_code == 202, r.text
    return r.json()["uuid"]


def _records(node):
    r = node.api("GET", "/containers?all_projects=1")
    assert r.status_code == 200, r.text
    return {c["uuid"]: c for c in r.json()["containers"]}


def _assert_agree(node, settle_s=20.0):
    """Every docker object has a record; every Running record has a running object;
    no record is left in a transient state."""
    deadline = time.monotonic() + settle_s
    while True:
        recs = _records(node)
        objs = docker_objects(node.name)
        problems = []
        for u in objs:
            if u not in recs:
                problems.append(f"orphan docker object {u}")
        for u, c in recs.items():
            if c["task_state"] is not None or c["status"] in ("Creating", "Deleting"):
                problems.append(f"{u} still {c['status']}/{c['task_state']}")
            elif c["status"] == "Running" and objs.get(u) != "running":
                problems.append(f"ghost: {u} Running but docker says {objs.get(u)}")
            elif c["status"] == "Error" and c["status_reason"] not in (
                    "Container failed to create correctly.",) and u in objs:
                problems.append(f"{u} Error with object present: {c['status_reason']}")
        if not problems:
            return recs, objs
        if time.monotonic() > deadline:
            raise AssertionError("\n".join(problems) + "\n" + node.log_tail())
        time.sleep(0.5)


@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.2, 0.6])
def test_kill9_during_creates(workdir, real_docker, delay_s):
    """kill -9 shortly after accepting creates: after restart nothing is orphaned,
    every accepted container still has a record."""
    node = ZundProcess(workdir, name=f"crash-c-{int(delay_s * 1000)}").start()
    try:
        uuids = [_create(node, real_docker, f"c{i}") for i in range(4)]
        time.sleep(delay_s)
        node.kill9()
        node.start()
        recs, objs = _assert_agree(node)
        assert set(uuids) <= set(recs), "an acknowledged create was lost"
        for u in uuids:
            assert recs[u]["status"] in ("Running", "Error")
    finally:
        node.kill9()
        remove_docker_objects(node.name)


def test_kill9_during_deletes_finishes_them(workdir, real_docker):
    """kill -9 right after accepting deletes: restart finishes every delete."""
    node = ZundProcess(workdir, name="crash-d").start()
    try:
        uuids = [_create(node, real_docker, f"d{i}") for i in range(3)]
        for u in uuids:
            node.wait_status(u, "Running")
        for u in uuids:
            r = node.api("DELETE", f"/containers/{u}?stop=True")
            assert r.status_code == 204, r.text
        node.kill9()
        node.start()
        deadline = time.monotonic() + 30
        while _records(node) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _records(node) == {}
        assert docker_objects(node.name) == {}
    finally:
        node.kill9()
        remove_docker_objects(node.name)


def test_kill9_while_idle_keeps_running_containers(workdir, real_docker):
    """Running containers survive a daemon crash and are still Running after restart."""
    node = ZundProcess(workdir, name="crash-i").start()
    try:
        u = _create(node, real_docker, "idle")
        node.wait_status(u, "Running")
        node.kill9()
        node.start()
        recs, objs = _assert_agree(node)
        assert recs[u]["status"] == "Running" and objs[u] == "running"
    finally:
        node.kill9()
        remove_docker_objects(node.name)


def test_sigterm_stops_cleanly(workdir, real_docker):
    """SIGTERM: the daemon finishes in-flight work and exits 0; records are intact."""
    node = ZundProcess(workdir, name="term").start()
    try:
        u = _create(node, real_docker, "t1")
        assert node.terminate() == 0, node.log_tail()
        node.start()
        recs, _ = _assert_agree(node)
        assert recs[u]["status"] == "Running"
        assert node.terminate() == 0
    finally:
        node.kill9()
        remove_docker_objects(node.name)
