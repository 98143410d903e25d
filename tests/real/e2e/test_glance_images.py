"""The Glance image driver against a real Glance and a real dockerd, and the images
API through the unmodified OpenStack client against a real ``zund serve``."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import pytest_twisted
from twisted.internet import threads

from zund.common import errors
from zund.images.engine import DockerImageEngine
from zund.images.glance import GlanceClient, GlanceImages

from .glance import real_glance  # noqa: F401 (fixture)
from .keystone import real_keystone  # noqa: F401 (fixture)
from tests.support.nodeproc import ZundProcess, remove_docker_objects

RUNNER = ["sh", "-c", 'trap "exit 0" TERM; echo from-glance; while true; do sleep 1; done']


def blocking(fn):
    return threads.deferToThread(fn)


@pytest_twisted.ensureDeferred
async def test_glance_image_is_downloaded_verified_loaded_and_then_cached(
        real_glance, real_docker, tmp_path):  # noqa: F811
    """A docker-save archive in Glance becomes a local image under its Glance name;
    the second fetch downloads nothing (served from the engine's cache)."""
    gid, name, _ = real_glance.push_docker_image(real_docker, str(tmp_path))
    engine = DockerImageEngine("unix:///var/run/docker.sock", "auto", 60.0, blocking)
    glance = GlanceImages(GlanceClient(real_glance.adapter()), engine,
                          str(tmp_path / "cache"), blocking)
    try:
        await engine.open()
        image, downloaded = await glance.fetch(name)
        assert image.id == gid and downloaded is True
        local = await engine.inspect(name)
        assert local.id == (await engine.inspect(real_docker)).id
        _, downloaded = await glance.fetch(gid, local_ref=f"{name}-by-id")
        assert downloaded is False
        assert os.listdir(tmp_path / "cache") == []
        with pytest.raises(errors.ImageNotFound):
            await glance.fetch("no-such-glance-image")
    finally:
        for ref in (name, f"{name}-by-id", f"zund-glance/{gid}"):
            subprocess.run(["docker", "rmi", ref], capture_output=True)
        await engine.close()
        real_glance.delete(gid)


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_docker, real_glance):  # noqa: F811
    wd = str(tmp_path_factory.mktemp("glance"))
    extra = real_glance.node_config()
    extra["glance"]["default_image_driver"] = "glance"
    n = ZundProcess(wd, name=f"g1-{os.getpid()}", extra=extra).start()
    yield n
    try:
        assert n.terminate() == 0, n.log_tail()
    finally:
        remove_docker_objects(n.name)


def osc(node, *args, check=True, fmt_json=False):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_TYPE="none", OS_ENDPOINT=node.endpoint)
    argv = ["openstack", "appcontainer", *args] + (["-f", "json"] if fmt_json else [])
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}\n"
                             f"{node.log_tail()}")
    return json.loads(p.stdout) if fmt_json else p


def wait_for(predicate, timeout_s=60.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_images_with_the_openstack_client(node, real_docker, real_glance, tmp_path):  # noqa: F811
    """image pull onto a host (the node's default driver is glance) / list / show /
    search (local and glance) / delete (refused while a container uses the image),
    and run --image-driver glance reaching Running, with the unmodified client."""
    gid, name, _ = real_glance.push_docker_image(real_docker, str(tmp_path))
    try:
        # python-zunclient 5.5.0: `image pull <image> <host>`
        pulled = osc(node, "image", "pull", name, node.name, fmt_json=True)
        assert pulled["host"] == node.name and pulled["repo"] == name

        def ready():
            got = osc(node, "image", "show", pulled["uuid"], fmt_json=True)
            return got if got["status"] in ("Ready", "Error") else None

        got = wait_for(ready, what="the pull")
        assert got["status"] == "Ready", got["status_reason"]
        assert got["image_id"].startswith("sha256:") and got["image_driver"] == "glance"
        listed = osc(node, "image", "list", fmt_json=True)
        assert pulled["uuid"] in [i["uuid"] for i in listed]
        local = osc(node, "image", "search", "--image-driver", "docker", name, fmt_json=True)
        assert [i["Name"] for i in local] == [f"{name}:latest"]
        found = osc(node, "image", "search", "--image-driver", "glance", name, fmt_json=True)
        assert [i["ID"] for i in found] == [gid]

        osc(node, "run", "--image-driver", "glance", "--name", "g1", name, *RUNNER)

        def running():
            c = osc(node, "show", "g1", fmt_json=True)
            assert c["status"] != "Error", c["status_reason"]
            return c if c["status"] == "Running" and c["task_state"] is None else None

        c = wait_for(running, what="g1 Running")
        assert c["image_driver"] == "glance"
        refused = osc(node, "image", "delete", pulled["uuid"])
        assert "failed" in refused.stdout and "in use" in refused.stdout
        osc(node, "delete", "--force", "g1")
        wait_for(lambda: osc(node, "show", "g1", check=False).returncode != 0,
                 what="g1 gone")
        assert "accepted" in osc(node, "image", "delete", pulled["uuid"]).stdout
        assert osc(node, "image", "show", pulled["uuid"], check=False).returncode != 0
    finally:
        osc(node, "delete", "--force", "g1", check=False)
        subprocess.run(["docker", "rmi", f"{name}:latest", f"zund-glance/{gid}"],
                       capture_output=True)
        real_glance.delete(gid)


def test_a_microvm_runs_a_glance_sourced_image(real_docker, real_glance, tmp_path):  # noqa: F811
    """--runtime microvm --image-driver glance: the micro-VM boots the image the
    node downloaded from Glance and runs it to completion (Exited(0), its output)."""
    import shutil
    import tempfile

    if subprocess.run(["virsh", "-c", "qemu:///system", "list"],
                      capture_output=True).returncode != 0:
        pytest.fail("libvirtd does not answer: run tools/setup-libvirt.sh")
    gid, name, _ = real_glance.push_docker_image(real_docker, str(tmp_path))
    # QEMU runs unprivileged under qemu:///system: the state dir must be searchable
    wd = tempfile.mkdtemp(prefix="zund-glance-vm-", dir="/var/tmp")
    os.chmod(wd, 0o755)
    extra = dict(real_glance.node_config(), libvirt={"virt_type": "qemu"})
    n = ZundProcess(wd, name=f"gvm-{os.getpid()}", runtimes="docker,libvirt",
                    extra=extra).start()
    try:
        osc(n, "run", "--runtime", "microvm", "--image-driver", "glance", "--memory", "128",
            "--name", "gvm", name, "echo", "hello-glance-vm")

        def stopped():
            c = osc(n, "show", "gvm", fmt_json=True)
            assert c["status"] != "Error", c["status_reason"]
            return c if c["status"] == "Stopped" and c["task_state"] is None else None

        c = wait_for(stopped, timeout_s=180, what="gvm Stopped")
        assert c["runtime"] == "microvm" and c["image_driver"] == "glance"
        assert c["status_detail"].startswith("Exited(0)")
        assert osc(n, "logs", "gvm").stdout.strip() == "hello-glance-vm"
        osc(n, "delete", "gvm", check=False)
    finally:
        try:
            assert n.terminate(60) == 0, n.log_tail()
        finally:
            remove_docker_objects(n.name)
            shutil.rmtree(wd, ignore_errors=True)
            subprocess.run(["docker", "rmi", f"{name}:latest", f"zund-glance/{gid}"],
                           capture_output=True)
            real_glance.delete(gid)


def test_glance_is_found_through_the_keystone_catalog(real_glance, real_keystone,  # noqa: F811
                                                       tmp_path):
    """With no endpoint_override, [glance]'s service-user auth finds the ``image``
    endpoint in Keystone's catalog, and the images are Glance's."""
    from zund.conf import make_conf
    from zund.images.glance import make_adapter

    s = real_keystone.session()
    ident = {"service_type": "identity", "interface": "public"}
    services = s.get("/services?type=image", endpoint_filter=ident).json()["services"]
    if services:
        service_id = services[0]["id"]
    else:
        service_id = s.post("/services", json={"service": {"type": "image", "name": "glance"}},
                            endpoint_filter=ident).json()["service"]["id"]
    for ep in s.get(f"/endpoints?service_id={service_id}",
                    endpoint_filter=ident).json()["endpoints"]:
        s.delete(f"/endpoints/{ep['id']}", endpoint_filter=ident)
    for interface in ("public", "internal"):
        s.post("/endpoints", json={"endpoint": {
            "service_id": service_id, "interface": interface, "url": real_glance.url,
            "region_id": real_keystone.region}}, endpoint_filter=ident)
    # as an operator writes it: auth plugin options exist once auth_type is read
    path = os.path.join(tmp_path, "zund.conf")
    with open(path, "w") as f:
        f.write(f"""[glance]
auth_type = password
auth_url = {real_keystone.auth_url}
username = {real_keystone.service_user}
password = {real_keystone.password}
project_name = {real_keystone.service_project}
user_domain_name = Default
project_domain_name = Default
region_name = {real_keystone.region}
""")
    conf = make_conf()
    conf(["--config-file", path])
    archive = _tiny_archive()
    gid = real_glance.push_archive(archive, f"g1-catalog-{os.getpid()}")
    try:
        found = GlanceClient(make_adapter(conf)).list(name=f"g1-catalog-{os.getpid()}")
        assert [i.id for i in found] == [gid]
        assert make_adapter(conf).get_endpoint().rstrip("/") == real_glance.url
    finally:
        real_glance.delete(gid)
        os.unlink(archive)


def _tiny_archive() -> str:
    """A minimal docker-save-shaped archive (a manifest only) in a temp file."""
    import io
    import tarfile
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".tar")
    os.close(fd)
    with tarfile.open(path, "w") as tar:
        data = json.dumps([{"Config": "c.json", "RepoTags": ["g1/catalog:1"],
                            "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path
