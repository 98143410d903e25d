"""tools/install.sh on a clean Debian 12 (issue 10): a debootstrap'd root with no
Python, the installer run inside it (chroot) with Debian's own python3, then the
installed `zund` serves the API (fake runtime: no dockerd runs in a chroot) on
127.0.0.1, `zund --version` works and `systemd-analyze verify` passes on the
installed unit.

Needs root and the machine's apt/PyPI sources. The Debian root is built once by
tools/debian-root.sh and cached (ZUND_DEBIAN_CACHE, default /var/cache/zund); each
run unpacks a fresh copy. Timings on the shared 2-core dev machine: 2 min 20 s to
build the cached root (once), then about 2 min 20 s per run for the six tests
(install.sh about 60-80 s: apt python3-venv + pip; the quickstart adds the OpenStack
client).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
import time
import urllib.error
import urllib.request

import pytest

from tests.support.nodeproc import free_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
#: what the installer needs from the checkout (the rest is tests, benchmarks, VCS)
SOURCE_PARTS = ("setup.py", "README.md", "zund", "tools", "systemd", "etc")
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INSTALL_TIMEOUT_S = 1200


def _host_pip_cert() -> str | None:
    """The CA bundle this machine's pip is told to trust (PIP_CERT or pip.conf), so
    pip in the chroot reaches PyPI the same way (as apt reuses the host's mirror)."""
    cert = os.environ.get("PIP_CERT")
    if not cert:
        for conf in ("/etc/pip.conf", os.path.expanduser("~/.config/pip/pip.conf"),
                     os.path.expanduser("~/.pip/pip.conf")):
            try:
                for line in open(conf):
                    key, _, value = line.partition("=")
                    if key.strip() == "cert" and value.strip():
                        cert = value.strip()
            except OSError:
                continue
    return cert if cert and os.path.isfile(cert) else None


def _mounts_under(root: str) -> list[str]:
    real = os.path.realpath(root)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == real or p.startswith(real + "/")]


class DebianRoot:
    """A fresh unpacked Debian 12 root with /proc mounted; ``run`` chroots into it."""

    def __init__(self, path: str):
        self.path = path
        self.env = {"PATH": CHROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8",
                    "DEBIAN_FRONTEND": "noninteractive"}

    def run(self, *argv: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["chroot", self.path, *argv], env=self.env, capture_output=True,
                              text=True, timeout=timeout, **kw)

    def popen(self, *argv: str, log) -> subprocess.Popen:
        return subprocess.Popen(["chroot", self.path, *argv], env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)

    def file(self, inner: str) -> str:
        return os.path.join(self.path, inner.lstrip("/"))


@pytest.fixture(scope="module")
def installed_root(tmp_path_factory):
    """A clean Debian 12 root after `bash tools/install.sh --no-docker` ran inside it."""
    assert os.geteuid() == 0, "the clean-Debian install test runs as root (chroot, mount)"
    started = time.monotonic()
    built = subprocess.run(["bash", os.path.join(REPO, "tools/debian-root.sh")],
                           capture_output=True, text=True, timeout=1800)
    assert built.returncode == 0, f"tools/debian-root.sh failed:\n{built.stderr}"
    tarball = built.stdout.strip().splitlines()[-1]
    root_built_s = time.monotonic() - started

    path = str(tmp_path_factory.mktemp("debian12") / "root")
    os.makedirs(path)
    subprocess.run(["tar", "-C", path, "--numeric-owner", "-xf", tarball], check=True)
    root = DebianRoot(path)
    assert not os.path.exists(root.file("/usr/bin/python3")), "the root must start without Python"
    src = root.file("/src/zund")
    os.makedirs(src)
    with tarfile.open(os.path.join(path, "src.tar"), "w") as tar:
        for part in SOURCE_PARTS:
            tar.add(os.path.join(REPO, part), arcname=part,
                    filter=lambda ti: None if "__pycache__" in ti.name
                    or ti.name.endswith(".egg-info") else ti)
    subprocess.run(["tar", "-C", src, "-xf", os.path.join(path, "src.tar")], check=True)
    os.unlink(os.path.join(path, "src.tar"))
    shutil.copy("/etc/resolv.conf", root.file("/etc/resolv.conf"))
    cert = _host_pip_cert()
    if cert:
        shutil.copy(cert, root.file("/etc/zund-test-pip-ca.crt"))
        root.env["PIP_CERT"] = "/etc/zund-test-pip-ca.crt"
    subprocess.run(["mount", "-t", "proc", "proc", root.file("/proc")], check=True)
    try:
        t0 = time.monotonic()
        result = root.run("bash", "/src/zund/tools/install.sh", "--no-docker",
                          timeout=INSTALL_TIMEOUT_S)
        install_s = time.monotonic() - t0
        print(f"\ninstall-debian: root {root_built_s:.1f}s, install.sh {install_s:.1f}s")
        assert result.returncode == 0, (
            f"install.sh failed (rc {result.returncode}):\n{result.stdout[-4000:]}\n"
            f"{result.stderr[-4000:]}")
        root.install_output = result.stdout
        yield root
    finally:
        subprocess.run(["umount", root.file("/proc")], check=False)
        left = _mounts_under(path)
        assert not left, f"still mounted, not removing {path}: {left}"
        shutil.rmtree(path, ignore_errors=True)


def test_installer_lays_out_venv_command_config_state_and_unit(installed_root):
    """install.sh makes /opt/zund (venv of Debian's python3), /usr/local/bin/zund,
    /etc/zund/zund.conf, /var/lib/zund and the systemd unit with its documentation."""
    r = installed_root
    assert os.path.realpath(r.file("/opt/zund/bin/python")).endswith("/usr/bin/python3.11")
    assert os.readlink(r.file("/usr/local/bin/zund")) == "/opt/zund/bin/zund"
    for p in ("/etc/zund/zund.conf", "/var/lib/zund", "/etc/systemd/system/zund.service",
              "/usr/share/doc/zund/README.md"):
        assert os.path.exists(r.file(p)), p
    unit = open(r.file("/etc/systemd/system/zund.service")).read()
    assert "ExecStart=/opt/zund/bin/zund serve" in unit
    assert "Wants=network-online.target docker.service" in unit


def test_zund_version_runs_from_path(installed_root):
    """`zund --version` inside the root prints the installed version."""
    out = installed_root.run("zund", "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("zund 0.")


def test_stock_python_gets_a_test_venv(installed_root):
    """Debian's python3 is EXTERNALLY-MANAGED, so the test setup (tools/setup-host.sh
    via tools/test-python.sh) puts the tests in a venv instead of pip-installing into it."""
    out = installed_root.run("bash", "/src/zund/tools/test-python.sh")
    assert (out.returncode, out.stdout.strip()) == (0, "/opt/zund-test/bin"), out.stderr


def test_systemd_analyze_verify_passes_on_the_installed_unit(installed_root):
    """`systemd-analyze verify` accepts the installed unit against the installed paths."""
    out = installed_root.run("systemd-analyze", "verify", "/etc/systemd/system/zund.service")
    assert out.returncode == 0, out.stdout + out.stderr


def test_rerun_keeps_the_config_and_a_failing_step_exits_non_zero(installed_root):
    """A second run keeps /etc/zund/zund.conf; a step that fails (a venv that cannot be
    made) stops the install with FAILED and a non-zero exit, changing nothing after it."""
    conf = installed_root.file("/etc/zund/zund.conf")
    with open(conf, "a") as f:
        f.write("# operator edit\n")
    again = installed_root.run("bash", "/src/zund/tools/install.sh", "--no-docker",
                               timeout=INSTALL_TIMEOUT_S)
    assert again.returncode == 0, again.stdout + again.stderr
    assert open(conf).read().endswith("# operator edit\n")
    bad = installed_root.run("bash", "/src/zund/tools/install.sh", "--no-docker",
                             "--prefix", "/proc/zund")
    assert bad.returncode != 0
    assert "install: FAILED: python3 -m venv /proc/zund failed" in bad.stderr
    assert os.readlink(installed_root.file("/usr/local/bin/zund")) == "/opt/zund/bin/zund"


def _ports_conf(root: DebianRoot, name: str, extra: str = "") -> tuple[str, int]:
    """An extra config with free loopback ports (other nodes may hold 9517 here)."""
    api, peer, gossip = free_port(), free_port(), free_port()
    with open(root.file(f"/etc/zund/{name}"), "w") as f:
        f.write(f"[DEFAULT]\nhost = debian-test\n{extra}"
                f"[api]\nport = {api}\n[peer]\nport = {peer}\n[gossip]\nbind_port = {gossip}\n")
    return f"/etc/zund/{name}", api


def _answers_as_node(proc: subprocess.Popen, port: int, log_path, timeout_s: float):
    """(status, Zund-Node, body) of GET /v1/containers once the node answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/containers",
                                         headers={"X-Auth-Token": "admin:demo"})
            with urllib.request.urlopen(req, timeout=2) as resp:
                return resp.status, resp.headers["Zund-Node"], resp.read()
        except (urllib.error.URLError, ConnectionError):
            assert proc.poll() is None, f"the node exited:\n{log_path.read_text()[-4000:]}"
            assert time.monotonic() < deadline, (
                f"no answer in {timeout_s} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the session this test started (the node and its chroot/bash parents)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except ProcessLookupError:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_installed_zund_serves_the_api_on_loopback(installed_root, tmp_path):
    """The installed `zund serve` with the shipped /etc/zund/zund.conf (plus the fake
    runtime and free ports) answers the Zun API on 127.0.0.1 as the node it is."""
    conf, port = _ports_conf(installed_root, "test-fake.conf", "enabled_runtimes = fake\n")
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = installed_root.popen("zund", "serve", "--config-file", "/etc/zund/zund.conf",
                                    "--config-file", conf, log=log)
    try:
        status, node, body = _answers_as_node(proc, port, log_path, 60)
        assert (status, node) == (200, "debian-test")
        assert b'"containers": []' in body
    finally:
        _stop(proc)


def test_readme_quickstart_serves_with_the_fake_runtime(installed_root, tmp_path):
    """The README's first command, `bash tools/quickstart.sh --fake-runtime` (no dockerd
    in a chroot), installs the OpenStack client and gives a serving node that
    `openstack appcontainer list` reaches."""
    conf, port = _ports_conf(installed_root, "test-ports.conf")
    log_path = tmp_path / "quickstart.log"
    with open(log_path, "wb") as log:
        proc = installed_root.popen("bash", "/src/zund/tools/quickstart.sh", "--fake-runtime",
                                    "--config-file", conf, log=log)
    try:
        status, node, _ = _answers_as_node(proc, port, log_path, INSTALL_TIMEOUT_S)
        assert (status, node) == (200, "debian-test")
        listed = installed_root.run(
            "openstack", "--os-auth-type", "none", "--os-endpoint",
            f"http://127.0.0.1:{port}/v1", "appcontainer", "list", "-f", "value", timeout=120)
        assert listed.returncode == 0, listed.stdout + listed.stderr
    finally:
        _stop(proc)
