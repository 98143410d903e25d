"""``openstack server create --image <Glance image>`` on a node with the Glance
driver: OSC resolves the name in the real Glance and sends its id as imageRef;
the server boots from the image zund downloaded from Glance."""

from __future__ import annotations

import os
import uuid as uuidlib

import pytest

from .catalog_stub import CatalogStub
from .glance import real_glance  # noqa: F401 (fixture)
from tests.support.nodeproc import ZundProcess, free_port, remove_docker_objects
from .test_nova_osc import osc, server_image  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_docker, real_glance, server_image):  # noqa: F811
    wd = str(tmp_path_factory.mktemp("nova-glance"))
    extra = real_glance.node_config()
    extra["nova_api"] = {"port": str(free_port())}
    n = ZundProcess(wd, name=f"novag-{os.getpid()}", extra=extra)
    n.nova_port = int(extra["nova_api"]["port"])
    stub = CatalogStub(images=())
    n.catalog = stub.start()
    n.start()
    yield n
    try:
        assert n.terminate() == 0, n.log_tail()
    finally:
        stub.stop()
        remove_docker_objects(n.name)


def test_server_create_with_a_glance_image_boots_it_by_id(node, real_glance, server_image,
                                                          tmp_path):  # noqa: F811
    """imageRef is the Glance id; the server is ACTIVE and shows that id."""
    gid, name, _ = real_glance.push_docker_image(
        server_image, str(tmp_path), name=f"nova-{uuidlib.uuid4().hex[:8]}")
    try:
        made = osc(node, "server", "create", "--flavor", "c1.small", "--image", name,
                   "--wait", "gl1", fmt_json=True, image_url=real_glance.url)
        assert made["status"] == "ACTIVE"
        shown = osc(node, "server", "show", "gl1", fmt_json=True, image_url=real_glance.url)
        assert gid in shown["image"]
        container = node.api("GET", f"/containers/{made['id']}").json()
        assert container["image_driver"] == "glance", container
        osc(node, "server", "delete", "--wait", "gl1", image_url=real_glance.url)
    finally:
        real_glance.delete(gid)
