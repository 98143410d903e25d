"""The compute API with the unmodified clients against a real ``zund serve`` on
a real dockerd (noauth): ``openstack server …``, ``flavor …``, ``availability
zone list --compute``, ``limits show --absolute``, ``console log show`` and
openstacksdk's ``conn.compute``; one set of containers with the Zun API."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from .catalog_stub import CatalogStub
from tests.support.nodeproc import ZundProcess, free_port, remove_docker_objects

#: busybox's default ``sh`` exits at once without a terminal (a server that powers
#: itself off); servers here boot an image whose default command keeps running
SERVER_IMAGE = "zund-test/server:latest"
DOCKERFILE = ('FROM zund-test/busybox:latest\n'
              'CMD ["sh", "-c", "trap \\"exit 0\\" TERM; echo booted; '
              'while true; do sleep 1; done"]\n')


@pytest.fixture(scope="module")
def server_image(real_docker):
    subprocess.run(["docker", "build", "-q", "-t", SERVER_IMAGE, "-"], input=DOCKERFILE,
                   text=True, check=True, capture_output=True)
    return SERVER_IMAGE


@pytest.fixture(scope="module")
def catalog(server_image):
    stub = CatalogStub(images=(server_image, "zund-test/busybox:latest")).start()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_docker, server_image, catalog):
    wd = str(tmp_path_factory.mktemp("nova"))
    n = ZundProcess(wd, name=f"nova-{os.getpid()}",
                    extra={"nova_api": {"port": str(free_port())}})
    n.nova_port = int(n_conf_value(n, "nova_api", "port"))
    n.catalog = catalog
    n.start()
    yield n
    try:
        assert n.terminate() == 0, n.log_tail()
    finally:
        remove_docker_objects(n.name)


def n_conf_value(node, section: str, key: str) -> str:
    import configparser

    cp = configparser.ConfigParser()
    cp.read(node.conf_path)
    return cp[section][key]


def compute_url(node) -> str:
    return f"http://{node.host_ip}:{node.nova_port}/v2.1"


def osc(node, *args, check=True, fmt_json=False, timeout=180, image_url=None):
    """``openstack *args`` with noauth; ``image_url``: a real Glance instead of the
    catalog stub's image service."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_TYPE="none", OS_ENDPOINT=compute_url(node),
               OS_COMPUTE_ENDPOINT_OVERRIDE=compute_url(node),
               OS_IDENTITY_ENDPOINT_OVERRIDE=node.catalog.identity_url,
               OS_IMAGE_ENDPOINT_OVERRIDE=image_url or node.catalog.image_url)
    argv = ["openstack", *args] + (["-f", "json"] if fmt_json else [])
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}\n"
                             f"{node.log_tail()}")
    return json.loads(p.stdout) if fmt_json and p.returncode == 0 else p


def sdk(node):
    import openstack

    return openstack.connection.Connection(
        auth_type="none", auth={"endpoint": compute_url(node)},
        compute_endpoint_override=compute_url(node))


def wait_osc_status(node, name, status, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while True:
        s = osc(node, "server", "show", name, fmt_json=True)
        if s["status"] == status and not s.get("OS-EXT-STS:task_state"):
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}: {s['status']} / {s.get('OS-EXT-STS:task_state')}")
        time.sleep(0.3)


def test_sdk_creates_waits_acts_and_deletes_a_server(node):
    """conn.compute: create_server, wait_for_server, stop/start, delete, flavors."""
    conn = sdk(node)
    assert "c1.small" in {f.name for f in conn.compute.flavors()}
    made = conn.compute.create_server(name="sdk1", flavor_id="c1.small",
                                      image_id=SERVER_IMAGE, networks="none")
    server = conn.compute.wait_for_server(made, status="ACTIVE", wait=60)
    assert server.status == "ACTIVE" and server.flavor.original_name == "c1.small"
    conn.compute.stop_server(server)
    conn.compute.wait_for_server(server, status="SHUTOFF", wait=60)
    conn.compute.start_server(server)
    conn.compute.wait_for_server(server, status="ACTIVE", wait=60)
    assert "booted" in conn.compute.get_server_console_output(server)["output"]
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=60)
    assert conn.compute.find_server("sdk1") is None


def test_osc_server_lifecycle_with_the_unmodified_client(node):
    """openstack server create --wait / list / show / stop / start / reboot / pause /
    unpause / rename / delete --wait and console log show."""
    made = osc(node, "server", "create", "--flavor", "c1.small", "--image", SERVER_IMAGE,
               "--property", "tier=web", "--wait", "web1", fmt_json=True)
    assert made["status"] == "ACTIVE" and made["flavor"]["original_name"] == "c1.small"
    listed = osc(node, "server", "list", fmt_json=True)
    assert [(s["Name"], s["Status"], s["Flavor"]) for s in listed] == [
        ("web1", "ACTIVE", "c1.small")]
    shown = osc(node, "server", "show", "web1", fmt_json=True)
    assert shown["id"] == made["id"] and shown["OS-EXT-STS:vm_state"] == "active"
    assert shown["properties"] == {"tier": "web"}
    for action, status in (("stop", "SHUTOFF"), ("start", "ACTIVE"), ("reboot", "ACTIVE"),
                           ("pause", "PAUSED"), ("unpause", "ACTIVE")):
        osc(node, "server", action, "web1")
        wait_osc_status(node, "web1", status)
    osc(node, "server", "set", "--name", "web2", "web1")
    assert osc(node, "server", "show", "web2", fmt_json=True)["id"] == made["id"]
    log = osc(node, "console", "log", "show", "web2").stdout
    assert "booted" in log
    osc(node, "server", "delete", "--wait", "web2")
    assert osc(node, "server", "list", fmt_json=True) == []


def test_osc_flavors_zones_and_limits(node):
    """flavor list/show, availability zone list --compute, limits show --absolute."""
    flavors = {f["Name"]: f for f in osc(node, "flavor", "list", fmt_json=True)}
    assert {"c1.tiny", "c1.small", "c1.medium", "c1.large"} <= set(flavors)
    small = osc(node, "flavor", "show", "c1.small", fmt_json=True)
    assert (small["vcpus"], small["ram"], small["disk"]) == (1, 512, 1)
    zones = osc(node, "availability", "zone", "list", "--compute", fmt_json=True)
    assert {z["Zone Name"] for z in zones} == {"nova"}
    limits = {x["Name"]: x["Value"]
              for x in osc(node, "limits", "show", "--absolute", fmt_json=True)}
    # zund's [quota] defaults (Zun's): 40 containers, 20 vCPUs, 51200 MiB
    assert (limits["max_total_instances"], limits["max_total_cores"],
            limits["max_total_ram_size"], limits["total_instances_used"]) == (40, 20, 51200, 0)


def test_a_zun_container_is_a_server_and_a_server_a_zun_container(node):
    """The Zun API and the compute API show one set of containers."""
    r = node.api("POST", "/containers?run=true", json={
        "name": "zun-made", "image": SERVER_IMAGE, "cpu": 1, "memory": "512"})
    assert r.status_code == 202, r.text
    node.wait_status(r.json()["uuid"], "Running")
    conn = sdk(node)
    made = conn.compute.create_server(name="nova-made", flavor_id="c1.tiny",
                                      image_id=SERVER_IMAGE)
    conn.compute.wait_for_server(made, status="ACTIVE", wait=60)
    servers = {s["Name"]: s["Status"] for s in osc(node, "server", "list", fmt_json=True)}
    assert servers == {"zun-made": "ACTIVE", "nova-made": "ACTIVE"}
    zun = {c["name"]: c["status"] for c in node.api("GET", "/containers").json()["containers"]}
    assert zun == {"zun-made": "Running", "nova-made": "Running"}
    for name in ("zun-made", "nova-made"):
        osc(node, "server", "delete", "--wait", name)


def test_osc_flavor_create_set_show_list_and_delete(node):
    """An admin's unmodified ``openstack flavor create/set --property/show/list/
    delete``: the flavor boots a server of its size, and is gone after delete."""
    made = osc(node, "flavor", "create", "--ram", "96", "--vcpus", "1", "--disk", "1",
               "--id", "osc-1", "--property", "zund:note=first", "osc.custom", fmt_json=True)
    assert (made["name"], made["ram"], made["vcpus"]) == ("osc.custom", 96, 1)
    osc(node, "flavor", "set", "--property", "zund:runtime=runc", "osc.custom")
    shown = osc(node, "flavor", "show", "osc.custom", fmt_json=True)
    assert shown["id"] == "osc-1"
    assert shown["properties"] == {"zund:note": "first", "zund:runtime": "runc"}
    listed = {f["Name"] for f in osc(node, "flavor", "list", fmt_json=True)}
    assert {"osc.custom", "c1.small"} <= listed
    server = osc(node, "server", "create", "--flavor", "osc.custom", "--image", SERVER_IMAGE,
                 "--wait", "on-custom", fmt_json=True)
    assert server["status"] == "ACTIVE" and server["flavor"]["original_name"] == "osc.custom"
    osc(node, "server", "delete", "--wait", "on-custom")
    osc(node, "flavor", "delete", "osc.custom")
    assert "osc.custom" not in {f["Name"] for f in osc(node, "flavor", "list", fmt_json=True)}
    gone = osc(node, "flavor", "show", "osc-1", check=False)
    assert gone.returncode != 0
