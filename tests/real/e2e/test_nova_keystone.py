"""The compute API behind a real Keystone: zund registered as service type
``compute`` (tools/keystone.sh), the unmodified clients with password auth
finding it through the catalog, real tokens, projects kept apart."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from .keystone import real_keystone  # noqa: F401  (fixture)
from tests.support.nodeproc import ZundProcess, free_port, remove_docker_objects
from .test_nova_osc import SERVER_IMAGE, server_image  # noqa: F401 (fixture)


def point_compute_endpoints_at(keystone, url: str) -> None:
    """Every ``compute`` endpoint of the catalog now says ``url``."""
    s = keystone.session()
    ident = {"service_type": "identity", "interface": "public"}
    services = s.get("/services?type=compute", endpoint_filter=ident).json()["services"]
    assert services, "zund is not registered as compute (tools/keystone.sh)"
    for svc in services:
        for ep in s.get(f"/endpoints?service_id={svc['id']}",
                        endpoint_filter=ident).json()["endpoints"]:
            s.patch(f"/endpoints/{ep['id']}", json={"endpoint": {"url": url}},
                    endpoint_filter=ident)


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_keystone, real_docker, server_image):  # noqa: F811
    wd = str(tmp_path_factory.mktemp("nova-ks"))
    extra = real_keystone.node_config()
    port = free_port()
    extra["nova_api"] = {"port": str(port)}
    n = ZundProcess(wd, name=f"novaks-{os.getpid()}", extra=extra).start()
    n.compute_url = f"http://{n.host_ip}:{port}/v2.1"
    point_compute_endpoints_at(real_keystone, n.compute_url)
    yield n
    try:
        assert n.terminate() == 0, n.log_tail()
    finally:
        remove_docker_objects(n.name)


def osc(keystone, user, project, *args):
    argv = ["openstack", *args, "-f", "json"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                       env=keystone.openstack_env(user, project))
    assert p.returncode == 0, f"{argv}: {p.stdout}\n{p.stderr}"
    return json.loads(p.stdout)


def test_catalog_clients_create_list_stop_and_delete_with_real_tokens(
        node, real_keystone):  # noqa: F811
    """openstacksdk and OSC find zund as `compute` in the catalog; a member's server
    is invisible to another project."""
    import openstack

    conn = openstack.connection.Connection(
        auth=dict(auth_url=real_keystone.auth_url, username="a-member",
                  password=real_keystone.password, project_name="project-a",
                  user_domain_name="Default", project_domain_name="Default"),
        region_name=real_keystone.region)
    made = conn.compute.create_server(name="ks1", flavor_id="c1.small",
                                      image_id=SERVER_IMAGE)
    conn.compute.wait_for_server(made, status="ACTIVE", wait=90)
    listed = osc(real_keystone, "a-member", "project-a", "server", "list", "--no-name-lookup")
    assert [(s["Name"], s["Status"]) for s in listed] == [("ks1", "ACTIVE")]
    assert osc(real_keystone, "b-member", "project-b", "server", "list",
               "--no-name-lookup") == []
    shown = osc(real_keystone, "a-member", "project-a", "server", "show", "ks1")
    assert shown["id"] == made.id
    assert {f["Name"] for f in osc(real_keystone, "a-member", "project-a",
                                   "flavor", "list")} >= {"c1.small"}
    conn.compute.stop_server(made)
    conn.compute.wait_for_server(made, status="SHUTOFF", wait=60)
    conn.compute.delete_server(made)
    conn.compute.wait_for_delete(made, wait=60)
