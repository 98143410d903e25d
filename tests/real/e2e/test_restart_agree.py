"""Real tier (a real ``zund serve`` over the real Docker engine), issue 10 items 7
and 8: after a restart of zund, ``list`` and ``show`` agree from the first request
on, whatever happened to the containers while zund was down; and a stop-then-delete
right after a create never refuses itself with "in Running state"."""

from __future__ import annotations

import time

import docker

from tests.support.nodeproc import ZundProcess, docker_objects, remove_docker_objects

RUNNER = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done']
#: no periodic sync during the test: only start-up recovery may reconcile
NO_PERIODIC_SYNC = {"DEFAULT": {"sync_container_state_interval": "3600"}}


def _create(node, image, name):
    r = node.api("POST", "/containers?run=true",
                 json={"name": name, "image": image, "command": RUNNER})
    assert r.status_code == 202, r.text
    return r.json()["uuid"]


def _listed(node) -> dict:
    r = node.api("GET", "/containers?all_projects=1")
    assert r.status_code == 200, r.text
    return {c["uuid"]: (c["status"], c["status_reason"]) for c in r.json()["containers"]}


def _shown(node, uuid) -> tuple:
    r = node.api("GET", f"/containers/{uuid}")
    assert r.status_code == 200, r.text
    c = r.json()
    return c["status"], c["status_reason"]


def test_list_and_show_agree_at_once_after_a_restart(workdir, real_docker):
    """Containers stopped and killed with the docker SDK while zund is down: on
    restart the first list already says what show says, and what docker says."""
    node = ZundProcess(workdir, name="agree", extra=NO_PERIODIC_SYNC).start()
    try:
        names = ("stopped", "killed", "running")
        uuids = {n: _create(node, real_docker, n) for n in names}
        for u in uuids.values():
            node.wait_status(u, "Running")
        assert node.terminate() == 0, node.log_tail()

        client = docker.from_env()
        try:
            client.containers.get(f"zun-{uuids['stopped']}").stop(timeout=5)
            client.containers.get(f"zun-{uuids['killed']}").kill()
        finally:
            client.close()

        node.start()
        listed = _listed(node)  # the very first request after the restart
        shown = {u: _shown(node, u) for u in uuids.values()}
        assert {u: listed[u] for u in uuids.values()} == shown
        assert {n: shown[u][0] for n, u in uuids.items()} == {
            "stopped": "Stopped", "killed": "Stopped", "running": "Running"}
        objs = docker_objects(node.name)
        assert objs[uuids["running"]] == "running" and objs[uuids["stopped"]] == "exited"
        assert _listed(node) == listed  # and show changed nothing list had not seen
        assert node.terminate() == 0, node.log_tail()
    finally:
        node.kill9()
        remove_docker_objects(node.name)


def test_stop_then_delete_right_after_create_never_refuses_itself(workdir, real_docker):
    """DELETE ?stop=true issued while the create is still in flight is either busy
    (retried) or accepted; never "Cannot delete ... in Running state"."""
    node = ZundProcess(workdir, name="stopdel").start()
    try:
        uuids = [_create(node, real_docker, f"sd{i}") for i in range(8)]
        pending = list(uuids)
        deadline = time.monotonic() + 120
        while pending:
            assert time.monotonic() < deadline, f"deletes not accepted: {pending}"
            for u in list(pending):
                r = node.api("DELETE", f"/containers/{u}?stop=true")
                if r.status_code == 204:
                    pending.remove(u)
                    continue
                assert r.status_code == 409, r.text
                code = r.json()["errors"][0]["code"]
                assert code == "container.container-busy", r.text
            time.sleep(0.05)
        deadline = time.monotonic() + 60
        while _listed(node) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _listed(node) == {}
        assert docker_objects(node.name) == {}
    finally:
        node.kill9()
        remove_docker_objects(node.name)
