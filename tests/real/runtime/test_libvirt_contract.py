"""The IRuntime contract, and micro-VM specifics, against REAL libvirt + QEMU.

Needs libvirtd answering on qemu:///system, the guest kernel, a static busybox,
dockerd with the test image (the image store the guests are made from):
``tools/setup-libvirt.sh``, ``tools/start-dockerd.sh``. Without them these tests
FAIL with the reason, unless ``ZUND_SKIP_LIBVIRT=1`` is set.

Guests run under TCG (``virt_type=qemu``: nested KVM is not dependable in CI)
with 128 MiB and no network device (``tests/support/libvirt_guests.py``; the
fixtures ``libvirt_available`` and ``state_dir`` are in this directory's conftest). Every domain is labelled with a per-session
node name; whatever is left with that node is removed at the end of the session.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid as uuidlib

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from tests.support.libvirt_guests import URI, make_config, sweep as _sweep
from tests.support.runtime_contract import LONG_RUNNER, TEST_IMAGE, RuntimeContract, wait_exited, wait_for
from zund.common import errors
from zund.runtimes.base import ContainerSpec, Mount, RuntimeStatus, runtime_object_name

SESSION_NODE = "test-mv-" + uuidlib.uuid4().hex[:10]
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
    """The shared contract. Capabilities: ``pause`` and ``volumes``; the contract
    skips the exec/archive/commit/top/stats/update/logs_since tests and checks they
    raise NotSupportedByRuntime."""

    @pytest.fixture
    def node(self):
        return SESSION_NODE

    @pytest.fixture
    def runtime(self, libvirt_session):
        return libvirt_session

    def test_declares_exactly_pause_and_volumes(self, runtime):
        """The micro-VM runtime is `microvm` and declares pause and volumes (the guest
        kernel's modules are installed by tools/setup-libvirt.sh)."""
        assert runtime.name == "microvm"
        assert runtime.capabilities == frozenset({"pause", "volumes"})


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


# -- volumes and machine types (issue 12 item 5, issue 13 item 4) -----------------------

def _dumpxml(uuid: str) -> str:
    return subprocess.run(["virsh", "-c", URI, "dumpxml", runtime_object_name(uuid)],
                          capture_output=True, text=True, check=True).stdout


class TestMicroVMVolumesAndMachines:
    @pytest.fixture(autouse=True)
    def _cleanup(self, libvirt_session):
        self._made: list = []  # (runtime, uuid)
        self._volumes: list = []  # (runtime, name)
        yield
        self._drop(None)

    def _drop(self, runtime) -> None:
        """Remove what the test made through ``runtime`` (None: through any)."""
        for rt, uuid in [m for m in self._made if runtime in (None, m[0])]:
            try:
                pytest_twisted.blockon(defer.ensureDeferred(rt.remove(uuid, True)))
            except Exception:
                pass
        for rt, name in [v for v in self._volumes if runtime in (None, v[0])]:
            pytest_twisted.blockon(defer.ensureDeferred(rt.remove_volume(name)))
        self._made = [m for m in self._made if runtime not in (None, m[0])]
        self._volumes = [v for v in self._volumes if runtime not in (None, v[0])]

    def spec(self, rt, **kwargs) -> ContainerSpec:
        kwargs.setdefault("image", TEST_IMAGE)
        kwargs.setdefault("project_id", "microvm-project")
        spec = ContainerSpec(uuid=str(uuidlib.uuid4()), node=SESSION_NODE, **kwargs)
        self._made.append((rt, spec.uuid))
        return spec

    async def volume(self, rt, **labels) -> str:
        name = f"zund-mvtest-{uuidlib.uuid4().hex[:10]}"
        self._volumes.append((rt, name))
        await rt.create_volume(name, {"zund.project": "microvm-project", **labels})
        return name

    @pytest.fixture
    def pc_runtime(self, state_dir):
        from zund.runtimes.executor import make_run_blocking
        from zund.runtimes.libvirt import LibvirtRuntime

        run_blocking, pool = make_run_blocking(reactor, 4)
        pool.start()
        rt = LibvirtRuntime(make_config(state_dir, machine_type="pc"), SESSION_NODE,
                            run_blocking, reactor)
        pytest_twisted.blockon(defer.ensureDeferred(rt.open()))
        yield rt
        self._drop(rt)
        pytest_twisted.blockon(defer.ensureDeferred(rt.close()))
        pool.stop()

    @pytest_twisted.ensureDeferred
    async def test_auto_machine_type_is_microvm_here_and_cached(self, libvirt_session,
                                                                 state_dir):
        """machine_type=auto probed microvm on this host once; a second open reuses the
        cached decision without booting a probe guest."""
        import glob

        from zund.runtimes.executor import make_run_blocking
        from zund.runtimes.libvirt import LibvirtRuntime, _read_record

        assert libvirt_session.machine_type == "microvm"
        cached = [_read_record(p) for p in
                  glob.glob(os.path.join(state_dir, "images", "machine-probe-*.json"))]
        assert any(c["machine"] == "microvm" for c in cached), cached
        run_blocking, pool = make_run_blocking(reactor, 2)
        pool.start()
        rt = LibvirtRuntime(make_config(state_dir), SESSION_NODE, run_blocking, reactor)
        try:
            started = time.monotonic()
            await rt.open()
            assert rt.machine_type == "microvm"
            assert time.monotonic() - started < 5, "the second open booted a probe again"
        finally:
            await rt.close()
            pool.stop()

    @pytest_twisted.ensureDeferred
    async def test_volume_is_a_disk_of_its_size_kept_across_stop_and_start(self,
                                                                           libvirt_session):
        """A 32 MiB volume is a 32 MiB virtio-mmio disk in the guest, mounted at its
        destination; what one boot writes there the next boot reads."""
        rt = libvirt_session
        name = await self.volume(rt, **{"zund.volume.size_gb": "0.03125"})
        spec = self.spec(rt, mounts=(Mount("volume", "/data", name),), command=(
            "sh", "-c", 'echo sectors=$(cat /sys/block/vda/size); echo b >> /data/log; '
                        'echo boots=$(wc -l < /data/log)'))
        await rt.create(spec)
        xml = _dumpxml(spec.uuid)
        assert "type='virtio-mmio'" in xml and "<serial>zund-vol-0</serial>" in xml, xml
        await rt.start(spec.uuid)
        assert (await wait_exited(rt, spec.uuid, 60)).exit_code == 0
        await rt.start(spec.uuid)
        await wait_for(rt, spec.uuid, lambda s: s.status == RuntimeStatus.EXITED, 60)
        logs = await rt.logs(spec.uuid, True, True, False, None, None)
        assert logs == "sectors=65536\nboots=1\nsectors=65536\nboots=2\n", logs

    @pytest_twisted.ensureDeferred
    async def test_pc_machine_mounts_volumes_and_injects_files(self, pc_runtime):
        """machine_type=pc: the volume is a virtio-pci disk the guest mounts, and an
        injected file is at its destination."""
        rt = pc_runtime
        assert rt.machine_type == "pc"
        name = await self.volume(rt)
        spec = self.spec(rt, mounts=(Mount("volume", "/srv/v", name),
                                     Mount("file", "/etc/app/app.conf", content=b"answer=42\n")),
                         command=("sh", "-c", "cat /etc/app/app.conf; echo x > /srv/v/f; "
                                              "cat /srv/v/f"))
        await rt.create(spec)
        xml = _dumpxml(spec.uuid)
        assert "machine='pc-" in xml and "virtio-mmio" not in xml, xml
        await rt.start(spec.uuid)
        assert (await wait_exited(rt, spec.uuid, 60)).exit_code == 0
        assert await rt.logs(spec.uuid, True, True, False, None, None) == "answer=42\nx\n"

    @pytest_twisted.ensureDeferred
    async def test_bind_of_a_host_path_is_not_supported(self, libvirt_session):
        """A host-path bind mount is NotSupportedByRuntime and defines no domain."""
        rt = libvirt_session
        spec = self.spec(rt, mounts=(Mount("bind", "/data", "/var/tmp"),), command=("true",))
        with pytest.raises(errors.NotSupportedByRuntime):
            await rt.create(spec)
        assert runtime_object_name(spec.uuid) not in _domain_names()
