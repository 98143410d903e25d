"""The OpenStack client against a real node offering both runtimes: `--runtime
microvm` boots the same image in a libvirt micro-VM (QEMU TCG here), everything
else stays the same."""

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from tests.support.nodeproc import ZundProcess, remove_docker_objects
from .test_osc_session import osc, show, wait_show


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_docker):
    if os.environ.get("ZUND_SKIP_LIBVIRT") == "1":
        pytest.skip("ZUND_SKIP_LIBVIRT=1 set explicitly")
    if subprocess.run(["virsh", "-c", "qemu:///system", "list"],
                      capture_output=True).returncode != 0:
        pytest.fail("libvirtd does not answer: run tools/setup-libvirt.sh")
    # QEMU runs unprivileged under qemu:///system: the state dir's parents must be
    # searchable (pytest's tmp dirs are 0700)
    wd = tempfile.mkdtemp(prefix="zund-microvm-", dir="/var/tmp")
    os.chmod(wd, 0o755)
    n = ZundProcess(wd, name=f"vm-{os.getpid()}", runtimes="docker,libvirt",
                    extra={"libvirt": {"virt_type": "qemu"}}).start()
    yield n
    try:
        assert n.terminate(60) == 0, n.log_tail()
    finally:
        remove_docker_objects(n.name)
        shutil.rmtree(wd, ignore_errors=True)


def test_host_advertises_microvm(node):
    """/v1/hosts lists microvm next to runc when libvirt works on the node."""
    hosts = json.loads(subprocess.run(
        ["openstack", "appcontainer", "host", "show", node.name, "-f", "json"],
        capture_output=True, text=True, check=True,
        env=dict(os.environ, OS_AUTH_TYPE="none", OS_ENDPOINT=node.endpoint)).stdout)
    assert set(hosts["runtimes"]) == {"runc", "microvm"}


def test_run_to_completion_in_a_microvm(node, real_docker):
    """echo hello-vm in a micro-VM ends Stopped with exit 0 and only its output in logs."""
    osc(node, "create", "--runtime", "microvm", "--memory", "128", "--name", "hello",
        real_docker, "echo", "hello-vm")
    wait_show(node, "hello", "Created", timeout_s=60)
    osc(node, "start", "hello")
    c = wait_show(node, "hello", "Stopped", timeout_s=120)
    assert c["runtime"] == "microvm"
    assert c["status_detail"].startswith("Exited(0)")
    assert osc(node, "logs", "hello").stdout.strip() == "hello-vm"
    osc(node, "delete", "--wait", "hello")


def test_long_runner_lifecycle_in_a_microvm(node, real_docker):
    """run --wait reaches Running; pause/unpause; exec is refused; stop -> Stopped;
    delete leaves no domain."""
    osc(node, "run", "--wait", "--runtime", "microvm", "--memory", "128", "--name", "vm1",
        real_docker, "sh", "-c", 'trap "exit 0" TERM; echo up; while true; do sleep 1; done')
    uuid = show(node, "vm1")["uuid"]
    deadline = time.monotonic() + 30
    while "up" not in osc(node, "logs", "vm1").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    osc(node, "pause", "vm1")
    wait_show(node, "vm1", "Paused")
    osc(node, "unpause", "vm1")
    wait_show(node, "vm1", "Running")
    p = osc(node, "exec", "vm1", "echo", "hi", check=False)
    assert "not supported by runtime microvm" in p.stdout + p.stderr
    osc(node, "stop", "vm1")
    wait_show(node, "vm1", "Stopped", timeout_s=60)
    osc(node, "delete", "--wait", "vm1")
    domains = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
                             capture_output=True, text=True).stdout
    assert f"zun-{uuid}" not in domains


def test_volume_and_file_injection_in_a_microvm_survive_stop_start(node, real_docker, tmp_path):
    """`run --runtime microvm --mount source=v1,destination=/data --mount type=bind,...`:
    the guest sees the injected file, writes into the volume, and after stop/start
    reads back what the first boot wrote; delete keeps the named volume's disk."""
    conf = tmp_path / "app.conf"
    conf.write_text("answer=42\n")
    script = ('cat /etc/app.conf; echo boot >> /data/log; echo boots=$(wc -l < /data/log); '
              'trap "exit 0" TERM; while true; do sleep 1; done')
    osc(node, "run", "--wait", "--runtime", "microvm", "--memory", "128", "--name", "vmvol",
        "--mount", "source=v1,destination=/data",
        "--mount", f"type=bind,source={conf},destination=/etc/app.conf",
        real_docker, "sh", "-c", script)

    def logs_with(text):
        deadline = time.monotonic() + 60
        while True:
            out = osc(node, "logs", "vmvol").stdout
            if text in out:
                return out
            assert time.monotonic() < deadline, out
            time.sleep(0.5)

    assert "answer=42" in logs_with("boots=1")
    osc(node, "stop", "vmvol")
    wait_show(node, "vmvol", "Stopped", timeout_s=60)
    osc(node, "start", "vmvol")
    wait_show(node, "vmvol", "Running", timeout_s=120)
    logs_with("boots=2")
    osc(node, "delete", "--force", "--wait", "vmvol")
    images = [f for f in os.listdir(os.path.join(node.state_path, "microvm", "volumes"))
              if f.endswith(".img")]
    assert len(images) == 1, images
