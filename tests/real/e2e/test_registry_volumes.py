"""Private registries, volumes, file injection and rebuild through the unmodified
OpenStack client against a real ``zund serve`` (noauth), a real dockerd and a real
private registry (docker-registry with htpasswd, tools/registry.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid as uuidlib

import pytest

from tests.support.nodeproc import ZundProcess, remove_docker_objects
from .registry import real_registry  # noqa: F401 (fixture)

RUNNER = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done']


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_docker):
    wd = str(tmp_path_factory.mktemp("regvol"))
    n = ZundProcess(wd, name=f"rv-{os.getpid()}").start()
    yield n
    try:
        assert n.terminate() == 0, n.log_tail()
    finally:
        remove_docker_objects(n.name)
        remove_volumes(n.name)


def remove_volumes(node_name: str) -> None:
    import docker

    client = docker.from_env()
    try:
        for v in client.volumes.list(filters={"label": f"zund.node={node_name}"}):
            v.remove(force=True)
    finally:
        client.close()


def osc(node, *args, check=True, fmt_json=False):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_TYPE="none", OS_ENDPOINT=node.endpoint)
    argv = ["openstack", "appcontainer", *args] + (["-f", "json"] if fmt_json else [])
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}\n"
                             f"{node.log_tail()}")
    return json.loads(p.stdout) if fmt_json else p


def settled(node, name, timeout_s=90.0) -> dict:
    """The container once no task runs on it and it is not Creating."""
    deadline = time.monotonic() + timeout_s
    while True:
        c = osc(node, "show", name, fmt_json=True)
        if c["task_state"] is None and c["status"] not in ("Creating", "Rebuilding"):
            return c
        assert time.monotonic() < deadline, f"{name} did not settle: {c}"
        time.sleep(0.3)


def exec_out(node, name, script) -> str:
    return osc(node, "exec", name, "sh", "-c", script).stdout


def test_registries_with_the_openstack_client(node, real_registry):  # noqa: F811
    """registry create/list/show/update/delete with the password masked; `run
    --registry` pulls with the stored login and runs; a wrong password ends in Error
    naming the refusal."""
    tag = uuidlib.uuid4().hex[:8]
    good = real_registry.push("zund-test/busybox:latest", f"app-{tag}", "1")
    bad_image = real_registry.push("zund-test/busybox:latest", f"app-{tag}", "2")
    reg = osc(node, "registry", "create", "--domain", real_registry.addr,
              "--username", real_registry.username, "--password", real_registry.password,
              "--name", "myreg", fmt_json=True)
    assert reg["password"] == "***" and reg["domain"] == real_registry.addr
    listed = osc(node, "registry", "list", fmt_json=True)
    assert [r["Name"] if "Name" in r else r["name"] for r in listed] == ["myreg"]
    assert real_registry.password not in json.dumps(listed)
    shown = osc(node, "registry", "show", "myreg", fmt_json=True)
    assert shown["password"] == "***" and shown["username"] == real_registry.username
    osc(node, "registry", "create", "--domain", real_registry.addr, "--username",
        real_registry.username, "--password", "wrong", "--name", "badreg")
    osc(node, "run", "--registry", "badreg", "--name", "bad", bad_image, *RUNNER)
    failed = settled(node, "bad")
    assert failed["status"] == "Error" and "unauthorized" in failed["status_reason"], failed
    osc(node, "run", "--registry", "myreg", "--name", "fromreg", good, *RUNNER)
    ran = settled(node, "fromreg")
    assert ran["status"] == "Running", ran["status_reason"]
    updated = osc(node, "registry", "update", "--username", "someone", "badreg",
                  fmt_json=True)
    assert updated["username"] == "someone" and updated["password"] == "***"
    for name in ("bad", "fromreg"):
        osc(node, "delete", "--force", name)
    osc(node, "registry", "delete", "myreg")
    osc(node, "registry", "delete", "badreg")
    assert osc(node, "registry", "list", fmt_json=True) == []
    subprocess.run(["docker", "rmi", good], capture_output=True)  # what the node pulled


def test_volumes_file_injection_and_rebuild_with_the_openstack_client(node, tmp_path):
    """`run --mount source=data1,destination=/data,size=1` keeps data across
    stop/start and rebuild; `--mount type=bind,source=<file>` injects the file;
    `rebuild --image NEW` keeps uuid, name and the volume."""
    conf = tmp_path / "app.conf"
    conf.write_text("answer=42\n")
    osc(node, "run", "--name", "web", "--mount", "source=data1,destination=/data,size=1",
        "--mount", f"type=bind,source={conf},destination=/etc/app.conf",
        "zund-test/busybox:latest", *RUNNER)
    made = settled(node, "web")
    assert made["status"] == "Running", made["status_reason"]
    assert exec_out(node, "web", "cat /etc/app.conf").strip() == "answer=42"
    exec_out(node, "web", "echo kept > /data/f")
    osc(node, "stop", "web")
    assert settled(node, "web")["status"] == "Stopped"
    osc(node, "start", "web")
    assert settled(node, "web")["status"] == "Running"
    assert exec_out(node, "web", "cat /data/f").strip() == "kept"
    subprocess.run(["docker", "tag", "zund-test/busybox:latest", "zund-test/rebuilt:1"],
                   check=True)
    try:
        osc(node, "rebuild", "--image", "zund-test/rebuilt:1", "web")
        after = settled(node, "web")
        assert after["status"] == "Running" and after["uuid"] == made["uuid"]
        assert after["image"] == "zund-test/rebuilt:1"
        assert exec_out(node, "web", "cat /data/f").strip() == "kept"
        assert exec_out(node, "web", "cat /etc/app.conf").strip() == "answer=42"
        osc(node, "rebuild", "web")
        assert settled(node, "web")["status"] == "Running"
        assert exec_out(node, "web", "cat /data/f").strip() == "kept"
    finally:
        osc(node, "delete", "--force", "web")
        subprocess.run(["docker", "rmi", "zund-test/rebuilt:1"], capture_output=True)
