"""The IRuntime contract, and micro-VM specifics, against REAL libvirt + QEMU.

Needs libvirtd answering on qemu:///system, the guest kernel, a static busybox,
dockerd with the test image (the image store the guests are made from):
``tools/setup-libvirt.sh``, ``tools/start-dockerd.sh``. Without them these tests
FAIL with the reason, unless ``ZUND_SKIP_LIBVIRT=1`` is set.

Guests run under TCG (``virt_type=qemu``: nested KVM is not dependable in CI)
with 128 MiB and no network device. Every domain is labelled with a per-session
node name; whatever is left with that node is removed at the end of the session.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid as uuidlib

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from tests.support.runtime_contract import LONG_RUNNER, TEST_IMAGE, RuntimeContract, wait_exited, wait_for
from zund.common import errors
from zund.runtimes.base import ContainerSpec, RuntimeStatus, runtime_object_name

SESSION_NODE = "test-mv-" + uuidlib.uuid4().hex[:10]
URI = "qemu:///system"
KERNEL = os.environ.get("ZUND_MICROVM_KERNEL", "/var/lib/zund/microvm/vmlinuz")
BUSYBOX = "/bin/busybox"
GUEST_MEMORY_MB = 128


def _prerequisites() -> str | None:
    """None when everything is there, else what is missing and how to get it."""
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return "python module libvirt missing (tools/setup-libvirt.sh installs libvirt-python)"
    if subprocess.run(["virsh", "-c", URI, "list"], capture_output=True).returncode != 0:
        return f"libvirtd does not answer on {URI} (run tools/setup-libvirt.sh)"
    if not os.path.isfile(KERNEL):
        return f"guest kernel missing at {KERNEL} (run tools/setup-libvirt.sh)"
    if not os.path.isfile(BUSYBOX):
        return f"{BUSYBOX} missing (apt-get install busybox-static)"
    return None


@pytest.fixture(scope="session")
def libvirt_available(docker_available) -> bool:
    if os.environ.get("ZUND_SKIP_LIBVIRT") == "1":
        pytest.skip("ZUND_SKIP_LIBVIRT=1: real libvirt tests disabled explicitly")
    missing = _prerequisites()
    if missing:
        pytest.fail(f"libvirt micro-VM runtime unavailable: {missing}; or set "
                    "ZUND_SKIP_LIBVIRT=1 to skip these tests", pytrace=False)
    return True


@pytest.fixture(scope="session")
def state_dir(libvirt_available):
    # QEMU runs as an unprivileged user: the initrds must sit under world-traversable
    # directories, which pytest's tmp_path (under a 0700 directory) is not.
    d = tempfile.mkdtemp(prefix="zund-microvm-", dir="/var/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def make_config(state_dir: str, **overrides):
    from zund.runtimes.libvirt import LibvirtConfig

    values = dict(uri=URI, virt_type="qemu", kernel_path=KERNEL, busybox_path=BUSYBOX,
                  default_memory_mb=GUEST_MEMORY_MB, min_memory_mb=96, boot_timeout_s=60.0,
                  stop_timeout_s=5.0, images_path=os.path.join(state_dir, "images"),
                  console_path=os.path.join(state_dir, "console"))
    values.update(overrides)
    return LibvirtConfig(**values)


def _sweep(node_prefix: str) -> None:
    import libvirt

    from zund.runtimes.libvirt import _meta

    conn = libvirt.open(URI)
    try:
        for dom in conn.listAllDomains(0):
            if not dom.name().startswith("zun-"):
                continue
            meta = _meta(dom)
            if meta is None or not meta.node.startswith(node_prefix):
                continue
            try:
                if dom.isActive():
                    dom.destroy()
                if dom.isPersistent():
                    dom.undefine()
            except libvirt.libvirtError:
                pass
    finally:
        conn.close()


@pytest.fixture(scope="session")
def libvirt_session(state_dir):
    from zund.runtimes.executor import make_run_blocking
    from zund.runtimes.libvirt import LibvirtRuntime

    run_blocking, pool = make_run_blocking(reactor, 8)
    pool.start()
    runtime = LibvirtRuntime(make_config(state_dir), SESSION_NODE, run_blocking, reactor)
    try:
        pytest_twisted.blockon(defer.ensureDeferred(runtime.open()))
        yield runtime
    finally:
        try:
            _sweep(SESSION_NODE)
        finally:
            pytest_twisted.blockon(defer.ensureDeferred(runtime.close()))
            pool.stop()


class TestLibvirtRuntimeContract(RuntimeContract):
    """The shared contract. Capabilities: ``pause`` only; the contract skips the
    exec/archive/commit/top/stats/update/logs_since tests and checks they raise
    NotSupportedByRuntime."""

    @pytest.fixture
    def node(self):
        return SESSION_NODE

    @pytest.fixture
    def runtime(self, libvirt_session):
        return libvirt_session

    def test_declares_exactly_pause(self, runtime):
        """The micro-VM runtime is `microvm` and declares only the pause capability."""
        assert runtime.name == "microvm"
        assert runtime.capabilities == frozenset({"pause"})


# -- micro-VM specifics --------------------------------------------------------------

def _domain_names() -> set:
    out = subprocess.run(["virsh", "-c", URI, "list", "--all", "--name"], capture_output=True,
                         text=True, check=True).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


class TestMicroVM:
    @pytest.fixture(autouse=True)
    def _cleanup(self, libvirt_session):
        self._made: list[str] = []
        yield
        for uuid in self._made:
            try:
                pytest_twisted.blockon(defer.ensureDeferred(libvirt_session.remove(uuid, True)))
            except Exception:
                pass

    def spec(self, **kwargs) -> ContainerSpec:
        kwargs.setdefault("image", TEST_IMAGE)
        kwargs.setdefault("project_id", "microvm-project")
        spec = ContainerSpec(uuid=str(uuidlib.uuid4()), node=SESSION_NODE, **kwargs)
        self._made.append(spec.uuid)
        return spec

    @pytest_twisted.ensureDeferred
    async def test_echo_runs_in_a_guest_and_logs_without_kernel_noise(self, libvirt_session):
        """`echo hello-vm` exits 0 and the logs hold exactly its output, no kernel lines."""
        rt = libvirt_session
        spec = self.spec(command=("echo", "hello-vm"))
        await rt.create(spec)
        await rt.start(spec.uuid)
        state = await wait_exited(rt, spec.uuid, 30)
        assert state.exit_code == 0
        assert await rt.logs(spec.uuid, True, True, False, None, None) == "hello-vm\n"
        # ... although the raw console the logs are read from holds more: the init's
        # markers, the output in its framed form, and the kernel's own lines.
        with open(rt._log_path(spec.uuid)) as f:
            raw = f.read().splitlines()
        assert "ZUND-OUTPUT-BEGIN" in raw and "ZUND-EXIT-CODE: 0" in raw, raw
        assert any(re.fullmatch(r"O \d+ hello-vm", line) for line in raw), raw
        kernel = [line for line in raw if re.match(r"\[\s*\d+\.\d+\] ", line)]
        assert any(line.endswith("reboot: Power down") for line in kernel), raw

    @pytest_twisted.ensureDeferred
    async def test_domain_xml_has_no_network_and_carries_zund_metadata(self, libvirt_session):
        """The domain has no <interface>, is named zun-<uuid> and carries zund metadata."""
        rt = libvirt_session
        spec = self.spec(command=("true",), cpu=1.5, memory_mb=160)
        await rt.create(spec)
        xml = subprocess.run(["virsh", "-c", URI, "dumpxml", runtime_object_name(spec.uuid)],
                             capture_output=True, text=True, check=True).stdout
        assert "<interface" not in xml
        assert "http://zund.openstack.org/xmlns/microvm/1" in xml
        assert f"<zund:node>{SESSION_NODE}</zund:node>" in xml
        assert "<vcpu placement='static'>2</vcpu>" in xml
        assert "<memory unit='KiB'>163840</memory>" in xml

    @pytest_twisted.ensureDeferred
    async def test_long_runner_runs_then_stops(self, libvirt_session):
        """A long-running command is running; stop ends it (SIGTERM via the control line)."""
        rt = libvirt_session
        spec = self.spec(command=LONG_RUNNER)
        await rt.create(spec)
        await rt.start(spec.uuid)
        assert (await rt.inspect(spec.uuid)).status == RuntimeStatus.RUNNING
        started = time.monotonic()
        await rt.stop(spec.uuid, 10)
        state = await wait_exited(rt, spec.uuid)
        assert state.exit_code == 0, "the command's TERM trap should have run"
        assert time.monotonic() - started < 9, "stop fell back to destroy"

    @pytest_twisted.ensureDeferred
    async def test_pause_and_unpause_freeze_the_guest(self, libvirt_session):
        """pause suspends the guest (paused), unpause resumes it (running)."""
        rt = libvirt_session
        spec = self.spec(command=LONG_RUNNER)
        await rt.create(spec)
        await rt.start(spec.uuid)
        await rt.pause(spec.uuid)
        assert (await rt.inspect(spec.uuid)).status == RuntimeStatus.PAUSED
        state = subprocess.run(["virsh", "-c", URI, "domstate", runtime_object_name(spec.uuid)],
                               capture_output=True, text=True, check=True).stdout
        assert state.strip() == "paused"
        await rt.unpause(spec.uuid)
        assert (await rt.inspect(spec.uuid)).status == RuntimeStatus.RUNNING
        await rt.kill(spec.uuid, None)
        assert (await wait_exited(rt, spec.uuid)).exit_code == 137

    @pytest_twisted.ensureDeferred
    async def test_remove_leaves_no_domain_and_no_files(self, libvirt_session):
        """remove(force) of a running guest: no domain, no initrd, no console log."""
        rt = libvirt_session
        spec = self.spec(command=LONG_RUNNER)
        await rt.create(spec)
        await rt.start(spec.uuid)
        files = rt._files(spec.uuid)
        assert os.path.exists(files[0]) and os.path.exists(files[2])
        await rt.remove(spec.uuid, True)
        assert runtime_object_name(spec.uuid) not in _domain_names()
        assert not any(os.path.exists(p) for p in files)
        await rt.remove(spec.uuid, False)  # missing: no-op

    @pytest_twisted.ensureDeferred
    async def test_missing_kernel_fails_quickly(self, libvirt_session, state_dir):
        """A missing kernel is a RuntimeFailure naming it, within seconds, no domain left."""
        from zund.runtimes.executor import make_run_blocking
        from zund.runtimes.libvirt import LibvirtRuntime

        run_blocking, pool = make_run_blocking(reactor, 2)
        pool.start()
        missing = os.path.join(state_dir, "no-such-vmlinuz")
        rt = LibvirtRuntime(make_config(state_dir, kernel_path=missing), SESSION_NODE,
                            run_blocking, reactor)
        try:
            await rt.open()
            spec = self.spec(command=("true",))
            started = time.monotonic()
            with pytest.raises(errors.RuntimeFailure) as info:
                await rt.create(spec)
            assert missing in str(info.value)
            assert time.monotonic() - started < 5
            assert runtime_object_name(spec.uuid) not in _domain_names()
        finally:
            await rt.close()
            pool.stop()

    @pytest_twisted.ensureDeferred
    async def test_unbootable_guest_is_a_runtime_failure_not_a_hang(self, libvirt_session,
                                                                    state_dir):
        """A kernel file that is no kernel: start raises RuntimeFailure well within the boot timeout."""
        from zund.runtimes.executor import make_run_blocking
        from zund.runtimes.libvirt import LibvirtRuntime

        bogus = os.path.join(state_dir, "bogus-vmlinuz")
        with open(bogus, "wb") as f:
            f.write(b"\0" * 4096)
        os.chmod(bogus, 0o644)
        run_blocking, pool = make_run_blocking(reactor, 2)
        pool.start()
        rt = LibvirtRuntime(make_config(state_dir, kernel_path=bogus, boot_timeout_s=20.0),
                            SESSION_NODE, run_blocking, reactor)
        try:
            await rt.open()
            spec = self.spec(command=("true",))
            await rt.create(spec)
            started = time.monotonic()
            with pytest.raises(errors.RuntimeFailure):
                await rt.start(spec.uuid)
            assert time.monotonic() - started < 25
            await rt.remove(spec.uuid, True)
        finally:
            await rt.close()
            pool.stop()

    @pytest_twisted.ensureDeferred
    async def test_restart_after_exit_keeps_previous_logs(self, libvirt_session):
        """A second boot appends to the console log; inspect reports the latest run."""
        rt = libvirt_session
        spec = self.spec(command=("sh", "-c", "echo run; exit 5"))
        await rt.create(spec)
        await rt.start(spec.uuid)
        assert (await wait_exited(rt, spec.uuid)).exit_code == 5
        await rt.start(spec.uuid)
        state = await wait_for(rt, spec.uuid, lambda s: s.status == RuntimeStatus.EXITED)
        assert state.exit_code == 5
        assert await rt.logs(spec.uuid, True, True, False, None, None) == "run\nrun\n"
