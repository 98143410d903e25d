"""Real tier, issue 16 ("a micro-VM joins the same network"): a micro-VM (libvirt,
TCG) and a Docker container on one tenant network, on two real ``zund serve``
nodes in network namespaces the test creates (underlay 10.213.0.1-2), reach each
other across the VXLAN.

The guest's NIC is a TAP libvirt makes in its own (the host's) namespace; the
node moves it into its namespace and onto the network's bridge after the boot
(``zund.network.plugger.TapPlugger``); the guest's init configures the address it
finds on its kernel command line. All addresses are the test's own (10.92.1.0/24).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from tests.support.tenant_net import (A, addr, delete, execute, make_net, pings, poll,
                                      rebuild_bridge, run, vxlan_cluster)


@pytest.fixture(scope="module")
def cluster():
    import libvirt

    try:
        libvirt.open("qemu:///system").close()
    except libvirt.libvirtError:
        pytest.fail("libvirtd does not answer: run tools/setup-libvirt.sh")
    wd = tempfile.mkdtemp(prefix="zund-netvm-", dir="/var/tmp")
    os.chmod(wd, 0o755)  # QEMU (unprivileged) must reach the guests' files
    try:
        with vxlan_cluster(wd, tag="nm", subnet="10.213.0", runtimes="docker,libvirt",
                           extra={"libvirt": {"virt_type": "qemu"}}) as c:
            yield c
    finally:
        shutil.rmtree(wd, ignore_errors=True)


def _logs(node, token: str, uuid: str) -> str:
    r = node.api("GET", f"/containers/{uuid}/logs?stdout=true&stderr=true", token=token)
    assert r.status_code == 200, r.text
    return r.text


def test_microvm_and_docker_container_on_one_network_reach_each_other(cluster):
    """A Docker container on node 1 pings a micro-VM on node 2 (same project's
    network), and the guest's own pings to the container get replies."""
    n1, n2 = cluster.nodes
    net = make_net(n1, A, "net-vm", "10.92.1.0/24")
    c1 = run(n1, A, "c1", n1.name, [{"network": "net-vm"}])
    vm = None
    try:
        ip_c1 = addr(c1, net["uuid"])
        probe = (f"while true; do ping -c1 -W1 {ip_c1} >/dev/null 2>&1 && echo PONG; "
                 "sleep 1; done")
        vm = run(n2, A, "v1", n2.name, [{"network": "net-vm"}], runtime="microvm",
                  memory=128, command=["sh", "-c", probe])
        ip_vm = addr(vm, net["uuid"])
        assert ip_vm != ip_c1
        poll(lambda: pings(n1, A, c1["uuid"], ip_vm), 60, "container -> micro-VM")
        poll(lambda: "PONG" in _logs(n2, A, vm["uuid"]), 60, "micro-VM -> container")
        # the guest's NIC is a TAP on the network's bridge in node 2's namespace
        assert execute(n1, A, c1["uuid"], "ping", "-c3", "-W2", ip_vm)["exit_code"] == 0
        # the bridge is deleted under the running guest: the sync makes it again
        # with the guest's TAP on it
        rebuild_bridge(n2, net)
        poll(lambda: pings(n1, A, c1["uuid"], ip_vm), 30, "container -> micro-VM after "
                                                         "the bridge came back")
    finally:
        if vm is not None:
            delete(n2, A, vm["uuid"])
        delete(n1, A, c1["uuid"])

