"""The unmodified OpenStack client (python-openstackclient + python-zunclient)
against a real ``zund serve`` on a real dockerd — exactly a tenant's session."""

import json
import os
import subprocess
import time

import pytest

from tests.support.nodeproc import ZundProcess, docker_objects, remove_docker_objects

LONG_RUNNER = ["sh", "-c", 'trap "exit 0" TERM; echo started; while true; do sleep 1; done']


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_docker):
    wd = str(tmp_path_factory.mktemp("osc"))
    n = ZundProcess(wd, name=f"osc-{os.getpid()}").start()
    yield n
    try:
        assert n.terminate() == 0, n.log_tail()
    finally:
        remove_docker_objects(n.name)


def osc(node, *args, check=True, fmt_json=False):
    env = dict(os.environ, OS_AUTH_TYPE="none", OS_ENDPOINT=node.endpoint)
    for k in list(env):
        if k.startswith("OS_") and k not in ("OS_AUTH_TYPE", "OS_ENDPOINT"):
            env.pop(k)
    argv = ["openstack", "appcontainer", *args]
    if fmt_json:
        argv += ["-f", "json"]
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}\n"
                             f"{node.log_tail()}")
    return p


def show(node, name):
    return json.loads(osc(node, "show", name, fmt_json=True).stdout)


def wait_show(node, name, status, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while True:
        c = show(node, name)
        if c["status"] == status and c["task_state"] is None:
            return c
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} stuck in {c['status']}/{c['task_state']}")
        time.sleep(0.3)


def test_run_wait_list_show_logs(node, real_docker):
    """run --wait reaches Running; list/show/logs report it as Zun would."""
    osc(node, "run", "--wait", "--name", "web", "--cpu", "0.5", "--memory", "64",
        "--environment", "GREETING=hello", "--label", "tier=web", real_docker, *LONG_RUNNER)
    listed = json.loads(osc(node, "list", fmt_json=True).stdout)
    assert [c["name"] for c in listed] == ["web"]
    assert listed[0]["status"] == "Running"
    c = show(node, "web")
    assert c["status"] == "Running" and c["task_state"] is None
    assert c["memory"] == "64" and c["cpu"] == 0.5
    assert c["environment"] == {"GREETING": "hello"}
    assert c["labels"] == {"tier": "web"}
    assert c["host"] == node.name
    assert c["status_detail"].startswith("Up")
    assert docker_objects(node.name)[c["uuid"]] == "running"
    deadline = time.monotonic() + 10
    while "started" not in osc(node, "logs", "web").stdout:
        assert time.monotonic() < deadline, "no log output"
        time.sleep(0.3)


def test_exec(node):
    """exec prints the command's output and exits with its status."""
    p = osc(node, "exec", "web", "sh", "-c", "echo hi")
    assert p.stdout.strip() == "hi"
    p = osc(node, "exec", "web", "sh", "-c", "exit 3", check=False)
    assert p.returncode == 3


def test_top_and_stats(node):
    """top lists the container's processes (through zunclient's Python API: OSC's
    `appcontainer top` crashes inside zunclient 5.5.0 itself); stats has Zun's keys."""
    from zunclient import client

    zun = client.Client("1", endpoint_override=node.endpoint, auth_token="x")
    uuid = show(node, "web")["uuid"]
    top = zun.containers.top(uuid)
    titles = top._info["Titles"] if hasattr(top, "_info") else top["Titles"]
    procs = top._info["Processes"] if hasattr(top, "_info") else top["Processes"]
    assert "PID" in titles and "CMD" in titles or "COMMAND" in titles
    assert any("sleep" in " ".join(p) or "sh" in " ".join(p) for p in procs)
    out = osc(node, "stats", "web").stdout
    assert "MEM USAGE(MiB)" in out and "CPU %" in out


def test_stop_start_restart(node):
    """stop -> Stopped with exit code, start -> Running, restart -> Running."""
    osc(node, "stop", "web")
    c = wait_show(node, "web", "Stopped")
    assert c["status_detail"].startswith("Exited(")
    # OSC prints per-container action failures and still exits 0
    p = osc(node, "stop", "web", check=False)
    out = p.stdout + p.stderr
    assert "Cannot stop container" in out and "Stopped state" in out and "(HTTP 409)" in out
    osc(node, "start", "web")
    wait_show(node, "web", "Running")
    p = osc(node, "start", "web", check=False)
    assert "Cannot start container" in p.stdout + p.stderr and "(HTTP 409)" in p.stdout + p.stderr
    osc(node, "restart", "web")
    wait_show(node, "web", "Running")


def test_pause_unpause(node):
    """pause -> Paused, unpause -> Running."""
    osc(node, "pause", "web")
    assert wait_show(node, "web", "Paused")["status_detail"].endswith("(paused)")
    osc(node, "unpause", "web")
    wait_show(node, "web", "Running")


def test_set_name(node):
    """set --name renames; the new name resolves, the old one 404s."""
    osc(node, "set", "--name", "web2", "web")
    assert show(node, "web2")["name"] == "web2"
    p = osc(node, "show", "web", check=False)
    assert p.returncode != 0 and "could not be found" in p.stderr


def test_kill(node):
    """kill ends the process; the container becomes Stopped."""
    osc(node, "kill", "--signal", "SIGKILL", "web2")
    c = wait_show(node, "web2", "Stopped")
    assert c["status_detail"].startswith("Exited(137)")


def test_action_list(node):
    """The container's actions are recorded with Zun's names."""
    out = osc(node, "action", "list", "web2").stdout
    for action in ("create", "stop", "start", "reboot", "pause", "unpause", "kill"):
        assert action in out


def test_delete_wait_then_404(node):
    """delete --wait returns once the container is gone; show then 404s; docker agrees."""
    uuid = show(node, "web2")["uuid"]
    osc(node, "delete", "--wait", "web2")
    p = osc(node, "show", uuid, check=False)
    assert p.returncode != 0 and "could not be found" in p.stderr
    assert uuid not in docker_objects(node.name)


def test_unknown_container_is_404(node):
    """Commands on a missing container fail with the client's NotFound."""
    p = osc(node, "show", "no-such-container", check=False)
    assert p.returncode != 0 and "(HTTP 404)" in p.stderr
