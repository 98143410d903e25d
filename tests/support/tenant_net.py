"""Helpers of the real tenant-network tests (issue 16): a ``zund serve`` cluster in
network namespaces with the vxlan backend (``tests.support.netns``), and the API
calls those tests share. Traffic stays between addresses the tests assign."""

from __future__ import annotations

import contextlib
import time
import urllib.parse

from tests.support.netns import NetnsCluster, ip
from zund.network.dataplane import bridge_name

IMAGE = "zund-test/busybox:latest"
RUNNER = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done']
A = "alice:proj-a"   # project a's member
B = "bob:proj-b"     # project b's member


def poll(predicate, timeout_s: float, what: str):
    """``predicate()``'s first truthy value, asked every 0.2 s; AssertionError
    naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.2)


@contextlib.contextmanager
def vxlan_cluster(workdir: str, *, tag: str, subnet: str, runtimes: str = "docker",
                  n: int = 2, extra: dict | None = None):
    """``n`` started nodes with ``[network] driver = vxlan`` (1 s sync, the test
    image as sandbox) plus ``extra`` config sections; on exit they stop, and any
    engine objects labelled with their node names are removed."""
    sections = {"network": {"driver": "vxlan", "sync_interval": "1", "sandbox_image": IMAGE}}
    for group, opts in (extra or {}).items():
        sections.setdefault(group, {}).update(opts)
    c = NetnsCluster(workdir, n=n, tag=tag, subnet=subnet, runtimes=runtimes, extra=sections)
    try:
        c.setup().start()
        yield c
    finally:
        c.close()
        remove_leftovers({node.name for node in c.nodes})


def make_net(node, token: str, name: str, cidr: str) -> dict:
    r = node.api("POST", "/networks", token=token,
                 json={"network": {"name": name, "cidr": cidr}})
    assert r.status_code == 200, r.text
    return r.json()["network"]


def run(node, token: str, name: str, host: str, nets: list | None = None, **extra) -> dict:
    """Create and start a runner on ``host`` in ``token``'s project; its record once
    Running. Asking for a host needs the admin role, so that project's admin asks."""
    body = {"image": IMAGE, "name": name, "command": RUNNER, "host": host,
            "image_pull_policy": "never", **extra}
    if nets is not None:
        body["nets"] = nets
    project = token.split(":")[1]
    r = node.api("POST", "/containers?run=true", token=f"admin:{project}", json=body)
    assert r.status_code == 202, r.text
    return node.wait_status(r.json()["uuid"], "Running", 90, token=f"admin:{project}")


def addr(rec: dict, net_id: str) -> str:
    return rec["addresses"][net_id][0]["addr"]


def execute(node, token: str, uuid: str, *argv: str) -> dict:
    command = " ".join(f'"{a}"' for a in argv)
    r = node.api("POST", f"/containers/{uuid}/execute?run=true&command="
                 + urllib.parse.quote(command), token=token)
    assert r.status_code == 200, r.text
    return r.json()


def pings(node, token, uuid, address) -> bool:
    return execute(node, token, uuid, "ping", "-c1", "-W1", address)["exit_code"] == 0


def rebuild_bridge(node, net: dict) -> None:
    """Delete ``net``'s bridge in ``node``'s namespace (as an operator's mistake or a
    network restart would), wait until the node's sync has made it again."""
    bridge = bridge_name(net["segmentation_id"])
    ip("-n", node.ns, "link", "del", bridge)
    poll(lambda: ip("-n", node.ns, "link", "show", bridge, check=False).returncode == 0,
         20, f"{bridge} made again")


def delete(node, token, uuid):
    """Delete and wait until it is gone (the sandbox and ports go with it)."""
    admin = "admin:" + token.split(":")[1]  # a forced delete needs the admin role
    r = node.api("DELETE", f"/containers/{uuid}?force=true", token=admin)
    assert r.status_code in (204, 404), r.text
    poll(lambda: node.api("GET", f"/containers/{uuid}", token=admin).status_code == 404,
         60, f"{uuid} deleted")


def remove_leftovers(names) -> None:
    """Safety net after a failed test: the engine objects of these nodes (labelled
    with their node names) are removed, never anyone else's."""
    import docker

    client = docker.APIClient()
    try:
        for c in client.containers(all=True, filters={"label": "zund.node"}):
            if c["Labels"].get("zund.node") in names:
                client.remove_container(c["Id"], force=True)
    finally:
        client.close()
