"""Real tier: a cluster where only some nodes offer `microvm`. A microvm request
through a docker-only node lands on a node with libvirt; nodes without it never
bid for it. The libvirt node keeps a warm pool of one guest
(``[libvirt] warm_pool_size = 1``): its first container boots cold, a later one
of the same shape runs in the warm guest, through the API like any other, the
guest's memory counts against its node while it waits until a container needs
the room (one of its own shape then runs in it), and draining the node retires it."""

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.nodeproc import free_port, peers, start_cluster, stop_cluster


@pytest.fixture(scope="module")
def cluster(real_docker):
    if os.environ.get("ZUND_SKIP_LIBVIRT") == "1":
        pytest.skip("ZUND_SKIP_LIBVIRT=1 set explicitly")
    if subprocess.run(["virsh", "-c", "qemu:///system", "list"],
                      capture_output=True).returncode != 0:
        pytest.fail("libvirtd does not answer: run tools/setup-libvirt.sh")
    wd = tempfile.mkdtemp(prefix="zund-mvc-", dir="/var/tmp")
    os.chmod(wd, 0o755)  # QEMU (unprivileged) must reach the state dir
    metrics_port = free_port("127.0.0.3")
    nodes = start_cluster(wd, 3, "m", memory_mb=2048,
                          per_node={3: {"DEFAULT": {"enabled_runtimes": "docker,libvirt"},
                                        "libvirt": {"virt_type": "qemu",
                                                    "warm_pool_size": 1},
                                        "metrics": {"host_ip": "127.0.0.3",
                                                    "port": str(metrics_port)}}})
    nodes[2].metrics_port = metrics_port
    yield nodes
    stop_cluster(nodes)
    shutil.rmtree(wd, ignore_errors=True)


def test_only_libvirt_nodes_advertise_microvm(cluster):
    """/v1/hosts (from any node) shows microvm only on the node that has libvirt."""
    hosts = {h["hostname"]: set(h["runtimes"])
             for h in cluster[0].api("GET", "/hosts").json()["hosts"]}
    assert hosts[cluster[2].name] == {"runc", "microvm"}
    assert hosts[cluster[0].name] == hosts[cluster[1].name] == {"runc"}


def test_microvm_request_through_docker_only_node_lands_on_libvirt_node(cluster, real_docker):
    """runtime=microvm via node 1 runs on node 3, in a micro-VM, and reads back
    through node 2."""
    r = cluster[0].api("POST", "/containers?run=true", json={
        "image": real_docker, "runtime": "microvm", "memory": 128, "name": "vm",
        "command": ["sh", "-c", 'trap "exit 0" TERM; echo in-vm; while true; do sleep 1; done']})
    assert r.status_code == 202, r.text
    c = r.json()
    assert c["host"] == cluster[2].name and c["runtime"] == "microvm"
    got = cluster[1].wait_status(c["uuid"], "Running", timeout_s=120)
    assert got["host"] == cluster[2].name
    domains = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--name"],
                             capture_output=True, text=True).stdout
    assert f"zun-{c['uuid']}" in domains
    acts = cluster[1].api("GET", f"/containers/{c['uuid']}/container_actions").json()
    req_id = [a for a in acts["containerActions"] if a["action"] == "create"][0]["request_id"]
    events = cluster[1].api("GET", f"/containers/{c['uuid']}/container_actions/{req_id}") \
        .json()["events"]
    decision = [e for e in events if e["event"] == "compute__schedule_container"][0]["details"]
    # docker-only nodes were filtered out before any bid
    assert decision["rounds"][0]["filtered"].get("runtime") == 2
    assert cluster[1].api("DELETE", f"/containers/{c['uuid']}?stop=True").status_code == 204


def _warm_guest_ready(node) -> bool:
    """A warm guest of ``node`` booted and waits for a container (its console
    says so): the pool holds it."""
    for path in glob.glob(os.path.join(node.state_path, "microvm", "console", "zunpool-*.log")):
        with open(path, errors="replace") as f:
            if "ZUND-CONFIG-READY" in f.read():
                return True
    return False


def _warm_body(real_docker) -> dict:
    return {"image": real_docker, "runtime": "microvm", "memory": 128,
            "command": ["sh", "-c", 'trap "exit 0" TERM; echo warm-$HOSTNAME; '
                        'while true; do sleep 1; done']}


@contextlib.contextmanager
def _warm_guest_waiting(cluster, body):
    """Until node 3 has a warm guest of ``body``'s shape; yields ``(first, made)``:
    the response of the first container this made to start the pool (None when a
    guest was there) and the list of container uuids deleted on the way out, latest
    first (``first``'s is in it; the test appends the ones it makes)."""
    first = None
    made: list = []
    try:
        if not glob.glob(os.path.join(cluster[2].state_path, "microvm", "console",
                                      "zunpool-*")):
            # this test alone: a first container of the shape starts the pool
            first = cluster[0].api("POST", "/containers?run=true",
                                   json=dict(body, name="first"))
            assert first.status_code == 202, first.text
            made.append(first.json()["uuid"])
        deadline = time.monotonic() + 120
        while not _warm_guest_ready(cluster[2]):
            assert time.monotonic() < deadline, "no warm guest within 120 s"
            time.sleep(0.2)
        yield first, made
    finally:
        for uuid in reversed(made):
            delete(cluster[0], uuid)


def test_same_shape_again_runs_in_the_warm_guest(cluster, real_docker):
    """After a microvm container, the node boots a warm guest of its shape; the
    next run of that shape (through another node) is that guest: Running, its
    logs through the API, and delete leaves neither the domain nor a warm guest
    short (the pool refills)."""
    body = _warm_body(real_docker)
    with _warm_guest_waiting(cluster, body):
        warm_before = metric(cluster[2], "zund_microvm_creates_total", path="warm")
        r = cluster[1].api("POST", "/containers?run=true", json=dict(body, name="warm",
                                                                     hostname="warmvm"))
        assert r.status_code == 202, r.text
        c = r.json()
        assert c["host"] == cluster[2].name
        cluster[0].wait_status(c["uuid"], "Running", timeout_s=60)
        domains = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--name"],
                                 capture_output=True, text=True).stdout.split()
        assert f"zun-{c['uuid']}" not in domains  # it is the warm guest, renamed by alias
        with open(os.path.join(cluster[2].state_path, "microvm", "console",
                               f"zun-{c['uuid']}.domain")) as f:
            guest = f.read().strip()
        assert guest.startswith("zunpool-") and guest in domains
        assert metric(cluster[2], "zund_microvm_creates_total", path="warm") == warm_before + 1
        deadline = time.monotonic() + 30
        while "warm-warmvm" not in cluster[0].api("GET", f"/containers/{c['uuid']}/logs").text:
            assert time.monotonic() < deadline, "the warm guest's output never reached the logs"
            time.sleep(0.2)
        assert cluster[0].api("DELETE", f"/containers/{c['uuid']}?stop=True").status_code == 204
        deadline = time.monotonic() + 60
        while guest in subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
                                      capture_output=True, text=True).stdout.split():
            assert time.monotonic() < deadline, "the deleted container's guest is still defined"
            time.sleep(0.2)


def test_a_warm_guest_holds_its_memory_until_a_container_needs_the_room(cluster, real_docker):
    """While node 3's 128 MiB warm guest waits, /v1/hosts through every node
    counts it as used and node 2's gossip view advertises node 3 with that much
    less free, and that much it would give up. A microvm request too big even
    without the guest is not placed (node 3, the only microvm node, is filtered
    out for memory); one that fits
    only without it is placed on node 3, whose guest is destroyed to make room."""
    body = _warm_body(real_docker)
    with _warm_guest_waiting(cluster, body) as (first, made):
        containers_mb = 128 if first is not None else 0
        node3 = cluster[2].name
        used = containers_mb + 128
        deadline = time.monotonic() + 30
        while True:
            shown = [{h["hostname"]: h["mem_used"] for h in n.api("GET", "/hosts").json()["hosts"]}
                     [node3] for n in cluster]
            seen = {p["name"]: p for p in peers(cluster[1])}[node3]
            free = seen["summary"].get("mem_free_mb")
            # the booted guest's memory is what node 3 would give up
            give = seen["meta"]["cap"].get("yield_mem_mb")
            if shown == [used] * 3 and (free, give) == (2048 - used, 128):
                break
            assert time.monotonic() < deadline, (shown, free, give)
            time.sleep(0.2)
        assert metric(cluster[2], "zund_microvm_warm_guests") == 1
        assert metric(cluster[2], "zund_microvm_warm_memory_mb") == 128
        r = cluster[0].api("POST", "/containers", json=dict(body, name="too-big",
                                                            memory=2048 - used + 128 + 64))
        assert r.status_code == 202, r.text
        c = r.json()
        made.append(c["uuid"])
        assert c["status"] == "Error" and c["host"] is None, c
        acts = cluster[0].api("GET", f"/containers/{c['uuid']}/container_actions").json()
        req_id = [a for a in acts["containerActions"] if a["action"] == "create"][0]["request_id"]
        events = cluster[0].api("GET", f"/containers/{c['uuid']}/container_actions/{req_id}") \
            .json()["events"]
        decision = [e for e in events if e["event"] == "compute__schedule_container"][0]
        assert decision["details"]["rounds"][0]["filtered"] == {"runtime": 2, "memory": 1}
        assert _pool_guests(cluster[2]) and metric(cluster[2], "zund_microvm_warm_guests") == 1

        r = cluster[1].api("POST", "/containers", json=dict(body, name="fits-without-guest",
                                                            memory=2048 - used + 64))
        assert r.status_code == 202, r.text
        c = r.json()
        made.append(c["uuid"])
        assert c["host"] == node3, c
        assert cluster[0].wait_status(c["uuid"], "Created", timeout_s=120)["host"] == node3
        assert metric(cluster[2], "zund_microvm_warm_yielded_total") == 1
        assert metric(cluster[2], "zund_microvm_warm_guests") == 0
        deadline = time.monotonic() + 60
        while _pool_guests(cluster[2]):
            assert time.monotonic() < deadline, _pool_guests(cluster[2])
            time.sleep(0.2)


def test_a_container_of_the_guests_shape_on_a_node_full_but_for_it_runs_in_it(
        cluster, real_docker):
    """Node 3 full but for its 128 MiB warm guest (a docker container, made but not
    run, takes the rest of its memory): a microvm container of the guest's shape,
    created through node 2, fits only without the guest. The bid sets the guest
    aside, the commit keeps it for that container, and the container runs in it:
    a warm create, no guest destroyed."""
    body = _warm_body(real_docker)
    with _warm_guest_waiting(cluster, body) as (_, made):
        node3 = cluster[2]
        # node 3's own truth: its containers and the guest
        used = {h["hostname"]: h["mem_used"]
                for h in node3.api("GET", "/hosts").json()["hosts"]}[node3.name]
        r = cluster[0].api("POST", "/containers", json={
            "image": real_docker, "runtime": "runc", "name": "filler", "host": node3.name,
            "memory": 2048 - used, "command": ["sleep", "600"]})
        assert r.status_code == 202, r.text
        filler = r.json()["uuid"]
        made.append(filler)
        assert cluster[0].wait_status(filler, "Created", timeout_s=60)["host"] == node3.name
        warm = metric(node3, "zund_microvm_creates_total", path="warm")
        yielded = metric(node3, "zund_microvm_warm_yielded_total")
        r = cluster[1].api("POST", "/containers?run=true", json=dict(body, name="own-shape",
                                                                     hostname="ownvm"))
        assert r.status_code == 202, r.text
        c = r.json()
        made.append(c["uuid"])
        assert c["host"] == node3.name, c
        cluster[0].wait_status(c["uuid"], "Running", timeout_s=120)
        assert metric(node3, "zund_microvm_warm_pledges_total", outcome="kept") >= 1
        assert metric(node3, "zund_microvm_creates_total", path="warm") == warm + 1
        assert metric(node3, "zund_microvm_warm_yielded_total") == yielded
        with open(os.path.join(node3.state_path, "microvm", "console",
                               f"zun-{c['uuid']}.domain")) as f:
            assert f.read().strip().startswith("zunpool-")
        deadline = time.monotonic() + 30
        while "warm-ownvm" not in cluster[0].api("GET", f"/containers/{c['uuid']}/logs").text:
            assert time.monotonic() < deadline, "the container's output never reached the logs"
            time.sleep(0.2)


def test_a_draining_node_retires_its_warm_guest(cluster, real_docker):
    """`zund drain` on node 3 (it wins no bid while draining) destroys its warm
    guest: no pool domain of its own is left and it holds nothing; after
    `--undo` the next microvm create there warms the pool again."""
    body = _warm_body(real_docker)
    with _warm_guest_waiting(cluster, body) as (_, made):
        node3 = cluster[2]
        drain(node3, "--reason", "maintenance")
        try:
            deadline = time.monotonic() + 60
            while _pool_guests(node3) or metric(node3, "zund_microvm_warm_guests"):
                assert time.monotonic() < deadline, _pool_guests(node3)
                time.sleep(0.2)
            assert metric(node3, "zund_microvm_warm_memory_mb") == 0
        finally:
            drain(node3, "--undo")
        r = cluster[0].api("POST", "/containers?run=true", json=dict(body, name="after-drain"))
        assert r.status_code == 202, r.text
        made.append(r.json()["uuid"])
        deadline = time.monotonic() + 120
        while not _warm_guest_ready(node3):
            assert time.monotonic() < deadline, "no warm guest after the drain ended"
            time.sleep(0.2)


def delete(node, uuid: str) -> None:
    """Delete ``uuid`` once no task runs on it (a delete while it is still being
    created is refused) and wait until it is gone: a module's last delete must not
    race the cluster's stop."""
    node.wait_status(uuid, {"Running", "Created", "Stopped", "Error"}, timeout_s=120)
    r = node.api("DELETE", f"/containers/{uuid}?stop=True")
    assert r.status_code == 204, r.text
    deadline = time.monotonic() + 60
    while node.api("GET", f"/containers/{uuid}").status_code != 404:
        assert time.monotonic() < deadline, f"{uuid} is still there after its delete"
        time.sleep(0.2)


def drain(node, *args) -> None:
    p = subprocess.run([sys.executable, "-m", "zund.cmd.main", "drain", *args,
                        "--config-file", node.conf_path], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr


def _pool_guests(node) -> list[str]:
    """Names of the warm-pool domains running for ``node`` (its console logs name them)."""
    running = set(subprocess.run(["virsh", "-c", "qemu:///system", "list", "--name"],
                                 capture_output=True, text=True).stdout.split())
    mine = {os.path.basename(p)[:-len(".log")] for p in glob.glob(
        os.path.join(node.state_path, "microvm", "console", "zunpool-*.log"))}
    return sorted(running & mine)


def metric(node, name: str, **labels) -> float:
    """One sample of ``node``'s /metrics (0 when absent)."""
    body = requests.get(f"http://{node.host_ip}:{node.metrics_port}/metrics", timeout=10).text
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0
