"""The compute API on real processes: a 3-node cluster where a server made
through node 1 is shown, stopped and deleted through node 3 (openstacksdk), and
a flavor whose extra spec selects the micro-VM runtime booting a server inside a
libvirt micro-VM (QEMU TCG here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import pytest

from tests.support.nodeproc import ZundProcess, free_port, remove_docker_objects, start_cluster, stop_cluster
from .test_nova_osc import SERVER_IMAGE, server_image  # noqa: F401 (fixture)

def conn_for(node, port: int):
    import openstack

    url = f"http://{node.host_ip}:{port}/v2.1"
    return openstack.connection.Connection(auth_type="none", auth={"endpoint": url},
                                           compute_endpoint_override=url)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, real_docker, server_image):  # noqa: F811
    wd = str(tmp_path_factory.mktemp("nova-cluster"))
    port = free_port("127.0.0.1")  # the same port on 127.0.0.1, .2, .3
    nodes = start_cluster(wd, 3, "nova", extra={"nova_api": {"port": str(port)}})
    yield nodes, port
    stop_cluster(nodes)
    for n in nodes:
        remove_docker_objects(n.name)


def test_a_server_made_through_node_1_is_shown_stopped_and_deleted_through_node_3(cluster):
    """Any node serves any server: show, stop, start and delete through node 3."""
    nodes, port = cluster
    one, three = conn_for(nodes[0], port), conn_for(nodes[2], port)
    made = one.compute.create_server(name="far", flavor_id="c1.tiny", image_id=SERVER_IMAGE)
    server = three.compute.wait_for_server(three.compute.get_server(made.id),
                                           status="ACTIVE", wait=90)
    assert server.name == "far" and server.flavor.original_name == "c1.tiny"
    three.compute.stop_server(server)
    three.compute.wait_for_server(server, status="SHUTOFF", wait=60)
    assert one.compute.get_server(made.id).status == "SHUTOFF"
    three.compute.delete_server(server)
    three.compute.wait_for_delete(server, wait=60)
    assert one.compute.find_server(made.id) is None
    assert list(conn_for(nodes[1], port).compute.servers()) == []


@pytest.fixture(scope="module")
def vm_node(real_docker, server_image):  # noqa: F811
    if os.environ.get("ZUND_SKIP_LIBVIRT") == "1":
        pytest.skip("ZUND_SKIP_LIBVIRT=1 set explicitly")
    if subprocess.run(["virsh", "-c", "qemu:///system", "list"],
                      capture_output=True).returncode != 0:
        pytest.fail("libvirtd does not answer: run tools/setup-libvirt.sh")
    wd = tempfile.mkdtemp(prefix="zund-nova-vm-", dir="/var/tmp")
    os.chmod(wd, 0o755)  # QEMU runs unprivileged: the state dir must be searchable
    port = free_port()
    n = ZundProcess(wd, name=f"novavm-{os.getpid()}", runtimes="docker,libvirt",
                    extra={"libvirt": {"virt_type": "qemu"},
                           "nova_api": {"port": str(port),
                                        "flavors": "c1.small:1:512:1,"
                                                   "vm.small:1:256:1:zund:runtime=microvm"}})
    n.start()
    yield n, port
    try:
        assert n.terminate(60) == 0, n.log_tail()
    finally:
        remove_docker_objects(n.name)
        shutil.rmtree(wd, ignore_errors=True)


def test_a_flavor_selecting_the_microvm_runtime_boots_the_server_in_a_microvm(vm_node):
    """vm.small (zund:runtime=microvm): the server becomes ACTIVE on the micro-VM
    runtime and its console output is the guest's."""
    node, port = vm_node
    conn = conn_for(node, port)
    flavor = conn.compute.get_flavor("vm.small")
    assert flavor.extra_specs == {"zund:runtime": "microvm"}
    made = conn.compute.create_server(name="vm1", flavor_id="vm.small", image_id=SERVER_IMAGE)
    server = conn.compute.wait_for_server(made, status="ACTIVE", wait=180)
    assert server.flavor.extra_specs == {"zund:runtime": "microvm"}
    container = node.api("GET", f"/containers/{made.id}").json()
    assert container["runtime"] == "microvm", container
    deadline = time.monotonic() + 60
    output = ""
    while "booted" not in output and time.monotonic() < deadline:
        output = conn.compute.get_server_console_output(server)["output"]
        if "booted" not in output:
            time.sleep(0.5)
    assert "booted" in output, output
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=120)
