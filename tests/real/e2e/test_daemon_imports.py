"""Real tier: a ``zund serve`` node (default docker runtime) runs a container with
the optional imports it refuses (issue 13 §5, memory) really absent from its
process, and answers the API as usual."""

from __future__ import annotations

import os
import time

from tests.support.nodeproc import ZundProcess, free_port, remove_docker_objects
from zund.cmd.main import DAEMON_REFUSED_IMPORTS

PROBE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "support", "modules_probe")
#: modules that only load with pyOpenSSL / a charset detector; and those a node
#: without [gossip] keys, registry credentials, peers or seeds never uses (imported
#: where first used: cryptography, treq, psutil via oslo.utils' netutils), nor
#: without [glance]/[neutron] config (keystoneauth1)
ABSENT = set(DAEMON_REFUSED_IMPORTS) | {"twisted.internet.ssl", "cryptography", "treq",
                                        "psutil", "keystoneauth1"}


def test_serve_runs_a_docker_container_without_the_refused_imports(
        real_docker, workdir, monkeypatch):
    """Run → Stopped → deleted on docker works; at exit no refused module is loaded."""
    modules_out = os.path.join(workdir, "modules.txt")
    monkeypatch.setenv("PYTHONPATH", PROBE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("ZUND_TEST_MODULES_OUT", modules_out)
    name = f"imp-{os.getpid()}"
    node = ZundProcess(workdir, name=name, extra={
        "console": {"port": str(free_port())}, "metrics": {"port": str(free_port())},
        "nova_api": {"port": str(free_port())}})
    try:
        node.start()
        r = node.api("POST", "/containers?run=true", json={
            "name": "imp", "image": real_docker, "command": ["true"],
            "image_pull_policy": "never"})
        assert r.status_code == 202, r.text
        uuid = r.json()["uuid"]
        shown = node.wait_status(uuid, ("Stopped",), timeout_s=60)  # ran, exited 0
        assert shown["status"] == "Stopped" and shown["status_reason"] in (None, "", "0")
        r = node.api("DELETE", f"/containers/{uuid}")
        assert r.status_code == 204, r.text
        deadline = time.monotonic() + 30
        while node.api("GET", f"/containers/{uuid}").status_code != 404:
            assert time.monotonic() < deadline, "the container was never deleted"
            time.sleep(0.1)
    finally:
        assert node.terminate() == 0
        remove_docker_objects(name)
    with open(modules_out) as f:
        loaded = set(f.read().split())
    assert {"twisted.internet.reactor", "docker", "requests"} <= loaded
    assert sorted(m for m in loaded if m in ABSENT or m.partition(".")[0] in ABSENT) == []
