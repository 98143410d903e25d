"""The IRuntime contract: one suite, run against every runtime implementation.

Subclass :class:`RuntimeContract` and provide two fixtures:

- ``runtime``: an opened IRuntime;
- ``node``: the node name used in ``ContainerSpec.node`` (unique per session for
  real engines, so cleanup by label cannot touch anything else).

Optionally override :meth:`RuntimeContract.forget_image` to delete images the
suite commits. Tests needing an optional capability skip when the runtime does
not declare it; ``test_undeclared_capabilities_raise_not_supported`` checks the
opposite side of that promise.

Every test uses ``network_mode``-free specs (the runtime's config decides; tests
configure ``none``) and commands that handle SIGTERM (busybox ``sleep`` as PID 1
would ignore it), so stops are quick.
"""

from __future__ import annotations

import datetime
import io
import re
import tarfile
import time
import uuid as uuidlib

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from zund.common import errors
from zund.runtimes.base import CAPABILITIES, ContainerSpec, IRuntime, Mount, RuntimeStatus

TEST_IMAGE = "zund-test/busybox:latest"
#: A registry on a closed loopback port: any pull fails at once, and nothing
#: outside the machine is ever contacted.
MISSING_IMAGE = "127.0.0.1:1/zund-test/missing:latest"
#: Runs until SIGTERM, then exits 0.
LONG_RUNNER = ("sh", "-c", 'trap "exit 0" TERM; while true; do sleep 0.1; done')
STOP_TIMEOUT_S = 2.0
WAIT_S = 15.0
PROJECT = "contract-project"
_TS_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z (.*)$")


#: How often a wait re-probes the runtime; it paces the poll, the condition ends it.
POLL_S = 0.05


def _pause(seconds: float) -> defer.Deferred:
    return task.deferLater(reactor, seconds, lambda: None)


def _parse_log_ts(stamp: str, frac: str | None) -> float:
    dt = datetime.datetime.fromisoformat(stamp).replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp() + float("0." + (frac or "0"))


async def eventually(probe, done, what: str, timeout_s: float = WAIT_S):
    """Await ``probe()`` until ``done(result)`` holds and return that result; fail
    naming ``what`` and the last result once ``timeout_s`` has passed. Every wait
    in this suite goes through here: tests wait on conditions, never on time."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:g}s waiting for {what}; last saw {result!r}")
        await _pause(POLL_S)


async def wait_for(runtime, uuid: str, predicate, timeout_s: float = WAIT_S, what: str = ""):
    """Poll ``inspect`` until ``predicate(state)``; returns that state."""
    return await eventually(lambda: runtime.inspect(uuid), predicate,
                            f"container {uuid} to be {what or 'as expected'}", timeout_s)


async def wait_gone(runtime, uuid: str, timeout_s: float = WAIT_S) -> None:
    """Poll ``inspect`` until the runtime no longer knows the container."""
    async def present() -> bool:
        try:
            await runtime.inspect(uuid)
        except errors.RuntimeObjectNotFound:
            return False
        return True

    await eventually(present, lambda p: not p, f"container {uuid} to vanish", timeout_s)


async def wait_for_logs(runtime, uuid: str, predicate, timeout_s: float = WAIT_S) -> str:
    """Poll the whole log (both streams) until ``predicate(text)``; returns the text."""
    return await eventually(lambda: runtime.logs(uuid, True, True, False, None, None),
                            predicate, f"the logs of container {uuid}", timeout_s)


async def wait_clock_past(moment: datetime.datetime) -> None:
    """Until the wall clock (naive UTC, as RuntimeState times) is later than ``moment``."""
    async def utcnow() -> datetime.datetime:
        return datetime.datetime.utcnow()

    await eventually(utcnow, lambda now: now > moment, f"the clock to pass {moment}")


async def wait_exited(runtime, uuid: str, timeout_s: float = WAIT_S):
    return await wait_for(runtime, uuid, lambda s: s.status == RuntimeStatus.EXITED,
                          timeout_s, "exited")


def make_tar(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def read_tar(data: bytes) -> dict:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar.getmembers():
            if member.isfile():
                out[member.name] = tar.extractfile(member).read()
    return out


class RuntimeContract:
    """Behaviour every IRuntime must show. See the module docstring."""

    # -- plumbing ------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _track_containers(self, runtime):
        """Remove every container a test created, whatever happened."""
        self._made: list[str] = []
        yield
        for uuid in self._made:
            try:
                pytest_twisted.blockon(defer.ensureDeferred(runtime.remove(uuid, True)))
            except Exception:
                pass

    async def forget_image(self, runtime, ref: str) -> None:
        """Delete an image the suite committed (real engines override this)."""

    def spec(self, node: str, **kwargs) -> ContainerSpec:
        kwargs.setdefault("image", TEST_IMAGE)
        kwargs.setdefault("project_id", PROJECT)
        return ContainerSpec(uuid=str(uuidlib.uuid4()), node=node, **kwargs)

    async def make(self, runtime, node: str, **kwargs):
        spec = self.spec(node, **kwargs)
        self._made.append(spec.uuid)
        state = await runtime.create(spec)
        return spec.uuid, state

    async def run(self, runtime, node: str, **kwargs) -> str:
        uuid, _ = await self.make(runtime, node, **kwargs)
        await runtime.start(uuid)
        return uuid

    async def run_to_exit(self, runtime, node: str, **kwargs):
        uuid = await self.run(runtime, node, **kwargs)
        return uuid, await wait_exited(runtime, uuid)

    async def long_runner(self, runtime, node: str, **kwargs) -> str:
        kwargs.setdefault("command", LONG_RUNNER)
        uuid = await self.run(runtime, node, **kwargs)
        await wait_for(runtime, uuid, lambda s: s.status == RuntimeStatus.RUNNING, what="running")
        return uuid

    def needs(self, runtime, capability: str) -> None:
        if capability not in runtime.capabilities:
            pytest.skip(f"runtime {runtime.name} does not declare capability {capability}")

    async def read_limits(self, runtime, uuid: str) -> tuple[int | None, float | None]:
        """(memory limit bytes, cpu limit in vCPUs) as the container's cgroup sees them."""

        async def cat(path: str):
            res = await runtime.execute(uuid, ["cat", path])
            return res.output.strip() if res.exit_code == 0 else None

        mem = await cat("/sys/fs/cgroup/memory.max")  # cgroup v2
        if mem is None:
            mem = await cat("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        # cpu is a relative weight, as in Zun (cpu_shares = 1024 * cpu)
        weight = await cat("/sys/fs/cgroup/cpu.weight")  # cgroup v2: docker maps shares
        if weight is not None and weight.isdigit():
            shares = 2 + (int(weight) - 1) * 262142 / 9999
        else:
            raw = await cat("/sys/fs/cgroup/cpu/cpu.shares")
            shares = int(raw) if raw and raw.isdigit() else None
        memory = int(mem) if mem and mem.isdigit() else None
        cpu = None if shares is None else round(shares / 1024, 2)
        return memory, cpu

    # -- identity -------------------------------------------------------------------------

    def test_provides_the_interface(self, runtime):
        """The runtime provides IRuntime, has a name and declares known capabilities only."""
        assert IRuntime.providedBy(runtime)
        assert isinstance(runtime.name, str) and runtime.name
        assert frozenset(runtime.capabilities) <= CAPABILITIES

    # -- images ------------------------------------------------------------------------------

    @pytest_twisted.ensureDeferred
    async def test_ensure_image_present_locally(self, runtime):
        """A local image satisfies ifnotpresent and never without a pull."""
        await runtime.ensure_image(TEST_IMAGE, "ifnotpresent")
        await runtime.ensure_image(TEST_IMAGE, "never")
        await runtime.ensure_image(TEST_IMAGE, "IfNotPresent")

    @pytest_twisted.ensureDeferred
    async def test_ensure_missing_image_fails_fast(self, runtime):
        """A missing image: pull fails (ifnotpresent/always) or is not found (never), quickly."""
        started = time.monotonic()
        with pytest.raises(errors.ImagePullFailed):
            await runtime.ensure_image(MISSING_IMAGE, "ifnotpresent")
        with pytest.raises(errors.ImagePullFailed):
            await runtime.ensure_image(MISSING_IMAGE, "always")
        with pytest.raises(errors.ImageNotFound):
            await runtime.ensure_image(MISSING_IMAGE, "never")
        assert time.monotonic() - started < 20

    @pytest_twisted.ensureDeferred
    async def test_create_with_missing_image_raises_image_not_found(self, runtime, node):
        """create never pulls: a missing image is ImageNotFound."""
        with pytest.raises(errors.ImageNotFound):
            await self.make(runtime, node, image=MISSING_IMAGE, command=("true",))

    # -- create / inspect / list ---------------------------------------------------------------

    @pytest_twisted.ensureDeferred
    async def test_create_returns_created_state(self, runtime, node):
        """create answers the created state, labelled with uuid, node and project."""
        uuid, state = await self.make(runtime, node, command=("true",))
        assert state.uuid == uuid
        assert state.status == RuntimeStatus.CREATED
        assert state.runtime_id
        assert state.node == node and state.project_id == PROJECT
        assert state.exit_code is None and state.started_at is None
        again = await runtime.inspect(uuid)
        assert again.status == RuntimeStatus.CREATED and again.runtime_id == state.runtime_id

    @pytest_twisted.ensureDeferred
    async def test_create_same_uuid_twice_is_a_runtime_failure(self, runtime, node):
        """A second container with the same uuid is refused (not 'not found')."""
        uuid, _ = await self.make(runtime, node, command=("true",))
        dup = ContainerSpec(uuid=uuid, image=TEST_IMAGE, node=node, project_id=PROJECT)
        with pytest.raises(errors.RuntimeFailure) as info:
            await runtime.create(dup)
        assert not isinstance(info.value, errors.RuntimeObjectNotFound)

    @pytest_twisted.ensureDeferred
    async def test_list_returns_only_this_nodes_containers(self, runtime, node):
        """list(node) filters by the zund.node label."""
        mine, _ = await self.make(runtime, node, command=("true",), labels={"app": "x"})
        other_node = node + "-other"
        theirs, _ = await self.make(runtime, other_node, command=("true",))
        listed = {s.uuid: s for s in await runtime.list(node)}
        assert mine in listed and theirs not in listed
        assert listed[mine].node == node and listed[mine].project_id == PROJECT
        assert listed[mine].status == RuntimeStatus.CREATED
        assert {s.uuid for s in await runtime.list(other_node)} == {theirs}

    @pytest_twisted.ensureDeferred
    async def test_user_labels_cannot_spoof_ownership(self, runtime, node):
        """zund.* labels given by the user are overridden by the real ones."""
        uuid, state = await self.make(runtime, node, command=("true",),
                                      labels={"zund.node": "elsewhere", "zund.uuid": "x"})
        assert state.node == node and state.uuid == uuid
        assert uuid in {s.uuid for s in await runtime.list(node)}

    @pytest_twisted.ensureDeferred
    async def test_exposed_ports_are_reported(self, runtime, node):
        """Exposed ports come back as sorted ints."""
        _, state = await self.make(runtime, node, command=("true",),
                                   exposed_ports={"80/tcp": {}, "53/udp": {}})
        assert state.ports == (53, 80)

    @pytest_twisted.ensureDeferred
    async def test_missing_container_raises_not_found(self, runtime):
        """Operations on an unknown uuid raise RuntimeObjectNotFound."""
        ghost = str(uuidlib.uuid4())
        with pytest.raises(errors.RuntimeObjectNotFound):
            await runtime.inspect(ghost)
        with pytest.raises(errors.RuntimeObjectNotFound):
            await runtime.start(ghost)
        with pytest.raises(errors.RuntimeObjectNotFound):
            await runtime.stop(ghost, 1)
        with pytest.raises(errors.RuntimeObjectNotFound):
            await runtime.logs(ghost, True, True, False, None, None)

    # -- running ----------------------------------------------------------------------------------

    @pytest_twisted.ensureDeferred
    async def test_echo_exits_zero_and_logs_output(self, runtime, node):
        """A finished `echo hello` is exited, code 0, and its output is in the logs."""
        uuid, state = await self.run_to_exit(runtime, node, command=("echo", "hello"))
        assert state.exit_code == 0
        assert state.started_at is not None and state.finished_at is not None
        assert state.finished_at >= state.started_at
        assert state.started_at.tzinfo is None
        assert abs(state.started_at - datetime.datetime.utcnow()) < datetime.timedelta(minutes=5)
        logs = await runtime.logs(uuid, True, True, False, None, None)
        assert "hello" in logs

    @pytest_twisted.ensureDeferred
    async def test_exit_code_is_reported(self, runtime, node):
        """`sh -c 'exit 3'` ends with exit code 3."""
        _, state = await self.run_to_exit(runtime, node, command=("sh", "-c", "exit 3"))
        assert state.exit_code == 3

    @pytest_twisted.ensureDeferred
    async def test_image_default_command_runs(self, runtime, node):
        """With no command the image's CMD (sh, stdin closed) runs and exits 0."""
        _, state = await self.run_to_exit(runtime, node)
        assert state.exit_code == 0

    @pytest_twisted.ensureDeferred
    async def test_interactive_keeps_stdin_open(self, runtime, node):
        """interactive=True keeps the image's shell waiting on stdin: started first, it
        still runs after its twin without stdin has read EOF and exited."""
        uuid = await self.run(runtime, node, interactive=True)
        twin = await self.run(runtime, node)
        assert (await wait_exited(runtime, twin)).exit_code == 0
        assert (await runtime.inspect(uuid)).status == RuntimeStatus.RUNNING

    @pytest_twisted.ensureDeferred
    async def test_start_of_missing_executable_fails(self, runtime, node):
        """A command that does not exist makes start fail with RuntimeFailure."""
        uuid, _ = await self.make(runtime, node, command=("no-such-binary-zund",))
        with pytest.raises(errors.RuntimeFailure) as info:
            await runtime.start(uuid)
        assert not isinstance(info.value, errors.RuntimeObjectNotFound)

    @pytest_twisted.ensureDeferred
    async def test_environment_workdir_hostname_reach_the_process(self, runtime, node):
        """env, workdir and hostname are what the process sees."""
        uuid, state = await self.run_to_exit(
            runtime, node, command=("sh", "-c", 'echo "$ZUND_GREETING"; pwd; hostname'),
            environment={"ZUND_GREETING": "hello world"}, workdir="/tmp",
            hostname="contract-host")
        assert state.exit_code == 0
        assert state.hostname == "contract-host"
        assert await runtime.logs(uuid, True, True, False, None, None) == \
            "hello world\n/tmp\ncontract-host\n"

    @pytest_twisted.ensureDeferred
    async def test_entrypoint_and_command_combine(self, runtime, node):
        """entrypoint + command form the argv."""
        uuid, state = await self.run_to_exit(runtime, node, entrypoint=("echo",),
                                             command=("from", "entrypoint"))
        assert state.exit_code == 0
        assert await runtime.logs(uuid, True, True, False, None, None) == "from entrypoint\n"

    @pytest_twisted.ensureDeferred
    async def test_start_runs_and_start_again_is_harmless(self, runtime, node):
        """start makes a long runner running; starting it again changes nothing."""
        uuid = await self.long_runner(runtime, node)
        state = await runtime.inspect(uuid)
        assert state.started_at is not None and state.exit_code is None
        await runtime.start(uuid)
        assert (await runtime.inspect(uuid)).status == RuntimeStatus.RUNNING

    # -- stop / kill / restart / pause ---------------------------------------------------------

    @pytest_twisted.ensureDeferred
    async def test_stop_exits_a_long_runner(self, runtime, node):
        """stop delivers SIGTERM; a trapping process exits 0; stopping again is a no-op."""
        uuid = await self.long_runner(runtime, node)
        await runtime.stop(uuid, STOP_TIMEOUT_S)
        state = await wait_exited(runtime, uuid)
        assert state.exit_code == 0
        await runtime.stop(uuid, STOP_TIMEOUT_S)
        assert (await runtime.inspect(uuid)).status == RuntimeStatus.EXITED

    @pytest_twisted.ensureDeferred
    async def test_stop_kills_after_timeout_when_term_is_ignored(self, runtime, node):
        """PID 1 without a TERM handler is killed after the timeout (exit 137)."""
        uuid = await self.run(runtime, node, command=("sleep", "1000"))
        await wait_for(runtime, uuid, lambda s: s.status == RuntimeStatus.RUNNING)
        await runtime.stop(uuid, 1)
        state = await wait_exited(runtime, uuid)
        assert state.exit_code == 137

    @pytest_twisted.ensureDeferred
    async def test_kill_defaults_to_sigkill(self, runtime, node):
        """kill(None) ends the process with 137; killing it again is a RuntimeFailure."""
        uuid = await self.long_runner(runtime, node)
        await runtime.kill(uuid, None)
        state = await wait_exited(runtime, uuid)
        assert state.exit_code == 137
        with pytest.raises(errors.RuntimeFailure) as info:
            await runtime.kill(uuid, None)
        assert not isinstance(info.value, errors.RuntimeObjectNotFound)

    @pytest_twisted.ensureDeferred
    async def test_kill_delivers_the_named_signal(self, runtime, node):
        """kill(TERM) reaches the process's trap (Zun spells signals many ways)."""
        uuid = await self.long_runner(runtime, node)
        await runtime.kill(uuid, "term")
        state = await wait_exited(runtime, uuid)
        assert state.exit_code == 0

    @pytest_twisted.ensureDeferred
    async def test_restart_runs_the_container_again(self, runtime, node):
        """restart of a running container leaves it running with a new start time."""
        uuid = await self.long_runner(runtime, node)
        first = (await runtime.inspect(uuid)).started_at
        await wait_clock_past(first)
        await runtime.restart(uuid, STOP_TIMEOUT_S)
        state = await wait_for(runtime, uuid, lambda s: s.status == RuntimeStatus.RUNNING)
        assert state.started_at > first

    @pytest_twisted.ensureDeferred
    async def test_restart_starts_an_exited_container(self, runtime, node):
        """restart of an exited container runs it again (output appended to the logs)."""
        uuid, _ = await self.run_to_exit(runtime, node, command=("echo", "again"))
        await runtime.restart(uuid, STOP_TIMEOUT_S)
        await wait_for(runtime, uuid, lambda s: s.status == RuntimeStatus.EXITED and
                       s.exit_code == 0)
        logs = await wait_for_logs(runtime, uuid, lambda text: text.count("again") == 2)
        assert logs == "again\nagain\n"

    @pytest_twisted.ensureDeferred
    async def test_pause_and_unpause(self, runtime, node):
        """pause freezes (paused, no exec, no second pause), unpause resumes."""
        self.needs(runtime, "pause")
        uuid = await self.long_runner(runtime, node)
        await runtime.pause(uuid)
        assert (await runtime.inspect(uuid)).status == RuntimeStatus.PAUSED
        with pytest.raises(errors.RuntimeFailure):
            await runtime.pause(uuid)
        with pytest.raises(errors.RuntimeFailure):
            await runtime.start(uuid)
        if "exec" in runtime.capabilities:
            with pytest.raises(errors.RuntimeFailure):
                await runtime.execute(uuid, ["true"])
        await runtime.unpause(uuid)
        assert (await runtime.inspect(uuid)).status == RuntimeStatus.RUNNING
        with pytest.raises(errors.RuntimeFailure):
            await runtime.unpause(uuid)

    @pytest_twisted.ensureDeferred
    async def test_stop_of_a_paused_container(self, runtime, node):
        """A paused container can be stopped; it then sees the SIGTERM."""
        self.needs(runtime, "pause")
        uuid = await self.long_runner(runtime, node)
        await runtime.pause(uuid)
        await runtime.stop(uuid, STOP_TIMEOUT_S)
        state = await wait_exited(runtime, uuid)
        assert state.exit_code == 0

    # -- remove ----------------------------------------------------------------------------------------

    @pytest_twisted.ensureDeferred
    async def test_remove(self, runtime, node):
        """remove deletes an exited container; removing a missing one is a no-op."""
        uuid, _ = await self.run_to_exit(runtime, node, command=("true",))
        await runtime.remove(uuid, False)
        with pytest.raises(errors.RuntimeObjectNotFound):
            await runtime.inspect(uuid)
        await runtime.remove(uuid, False)
        await runtime.remove(uuid, True)
        assert uuid not in {s.uuid for s in await runtime.list(node)}

    @pytest_twisted.ensureDeferred
    async def test_remove_running_needs_force(self, runtime, node):
        """A running container is only removed with force."""
        uuid = await self.long_runner(runtime, node)
        with pytest.raises(errors.RuntimeFailure) as info:
            await runtime.remove(uuid, False)
        assert not isinstance(info.value, errors.RuntimeObjectNotFound)
        await runtime.remove(uuid, True)
        with pytest.raises(errors.RuntimeObjectNotFound):
            await runtime.inspect(uuid)

    @pytest_twisted.ensureDeferred
    async def test_auto_remove_container_vanishes_after_exit(self, runtime, node):
        """auto_remove: the engine deletes the container once it exits."""
        uuid = await self.run(runtime, node, command=("true",), auto_remove=True)
        await wait_gone(runtime, uuid)

    # -- logs -------------------------------------------------------------------------------------------

    @pytest_twisted.ensureDeferred
    async def test_logs_streams_tail_and_timestamps(self, runtime, node):
        """logs selects stdout/stderr and prefixes RFC 3339 timestamps."""
        uuid, _ = await self.run_to_exit(
            runtime, node, command=("sh", "-c", "echo out1; echo err1 >&2; echo out2"))
        assert await runtime.logs(uuid, True, False, False, None, None) == "out1\nout2\n"
        assert await runtime.logs(uuid, False, True, False, None, None) == "err1\n"
        both = await runtime.logs(uuid, True, True, False, None, None)
        # The engine copies stdout and stderr concurrently: no order across streams.
        assert sorted(both.splitlines()) == ["err1", "out1", "out2"]
        stamped = (await runtime.logs(uuid, True, False, True, None, None)).splitlines()
        assert [(_TS_RE.match(line) or pytest.fail(line)).group(3) for line in stamped] == \
            ["out1", "out2"]

    @pytest_twisted.ensureDeferred
    async def test_logs_tail(self, runtime, node):
        """tail=N returns the last N lines; tail=None all of them."""
        uuid, _ = await self.run_to_exit(
            runtime, node, command=("sh", "-c", "echo l1; echo l2; echo l3"))
        assert await runtime.logs(uuid, True, True, False, 1, None) == "l3\n"
        assert await runtime.logs(uuid, True, True, False, 2, None) == "l2\nl3\n"
        assert await runtime.logs(uuid, True, True, False, None, None) == "l1\nl2\nl3\n"

    @pytest_twisted.ensureDeferred
    async def test_logs_since(self, runtime, node):
        """logs(since=t) only returns lines logged at or after t."""
        self.needs(runtime, "logs_since")
        uuid, _ = await self.run_to_exit(
            runtime, node, command=("sh", "-c", "echo one; sleep 1.2; echo two"))
        stamped = (await runtime.logs(uuid, True, True, True, None, None)).splitlines()
        times = {}
        for line in stamped:
            m = _TS_RE.match(line)
            times[m.group(3)] = _parse_log_ts(m.group(1), m.group(2))
        assert times["two"] - times["one"] > 1.0
        assert await runtime.logs(uuid, True, True, False, None, times["two"] - 0.5) == "two\n"
        assert "one" in await runtime.logs(uuid, True, True, False, None, times["one"] - 5)

    # -- exec -------------------------------------------------------------------------------------------

    @pytest_twisted.ensureDeferred
    async def test_execute_echo(self, runtime, node):
        """execute runs to completion and returns exit code and output."""
        self.needs(runtime, "exec")
        uuid = await self.long_runner(runtime, node)
        res = await runtime.execute(uuid, ["echo", "hi"])
        assert (res.exit_code, res.output) == (0, "hi\n")
        res = await runtime.execute(uuid, ["sh", "-c", "echo out; echo err >&2; exit 4"])
        assert res.exit_code == 4
        assert sorted(res.output.splitlines()) == ["err", "out"]

    @pytest_twisted.ensureDeferred
    async def test_execute_missing_command_is_nonzero(self, runtime, node):
        """An exec of a missing binary reports a non-zero exit code, not an exception."""
        self.needs(runtime, "exec")
        uuid = await self.long_runner(runtime, node)
        res = await runtime.execute(uuid, ["no-such-binary-zund"])
        assert res.exit_code != 0

    @pytest_twisted.ensureDeferred
    async def test_execute_in_stopped_container_fails(self, runtime, node):
        """exec needs a running container."""
        self.needs(runtime, "exec")
        uuid, _ = await self.run_to_exit(runtime, node, command=("true",))
        with pytest.raises(errors.RuntimeFailure) as info:
            await runtime.execute(uuid, ["echo", "hi"])
        assert not isinstance(info.value, errors.RuntimeObjectNotFound)

    # -- top / stats --------------------------------------------------------------------------------------

    @pytest_twisted.ensureDeferred
    async def test_top_shape(self, runtime, node):
        """top answers {"Titles": [...], "Processes": [[...], ...]} with matching widths."""
        self.needs(runtime, "top")
        uuid = await self.long_runner(runtime, node)
        res = await runtime.top(uuid, None)
        assert set(res) == {"Titles", "Processes"}
        assert "PID" in res["Titles"]
        assert res["Processes"]
        assert all(len(p) == len(res["Titles"]) for p in res["Processes"])

    @pytest_twisted.ensureDeferred
    async def test_stats_shape(self, runtime, node):
        """stats answers Zun's dict with floats and "read/write" strings."""
        self.needs(runtime, "stats")
        uuid = await self.long_runner(runtime, node, memory_mb=64)
        res = await runtime.stats(uuid)
        assert set(res) == {"CONTAINER", "CPU %", "MEM USAGE(MiB)", "MEM LIMIT(MiB)", "MEM %",
                            "BLOCK I/O(B)", "NET I/O(B)"}
        for key in ("CPU %", "MEM USAGE(MiB)", "MEM LIMIT(MiB)", "MEM %"):
            assert isinstance(res[key], float) and res[key] >= 0
        assert res["MEM LIMIT(MiB)"] == pytest.approx(64.0)
        assert re.fullmatch(r"\d+/\d+", res["BLOCK I/O(B)"])
        assert re.fullmatch(r"\d+/\d+", res["NET I/O(B)"])
        assert isinstance(res["CONTAINER"], str) and res["CONTAINER"]

    # -- limits ------------------------------------------------------------------------------------------

    @pytest_twisted.ensureDeferred
    async def test_cpu_and_memory_limits_reach_the_cgroup_and_update(self, runtime, node):
        """cpu/memory become cgroup limits; update changes them on a running container."""
        self.needs(runtime, "exec")
        uuid = await self.long_runner(runtime, node, cpu=0.5, memory_mb=64)
        memory, cpu = await self.read_limits(runtime, uuid)
        assert memory == 64 * 1024 * 1024
        assert cpu == pytest.approx(0.5)
        if "update" not in runtime.capabilities:
            return
        await runtime.update(uuid, 1.5, 96)
        memory, cpu = await self.read_limits(runtime, uuid)
        assert memory == 96 * 1024 * 1024
        assert cpu == pytest.approx(1.5)
        await runtime.update(uuid, None, 128)
        memory, cpu = await self.read_limits(runtime, uuid)
        assert memory == 128 * 1024 * 1024 and cpu == pytest.approx(1.5)

    # -- archives / commit ----------------------------------------------------------------------------

    @pytest_twisted.ensureDeferred
    async def test_put_then_get_archive_round_trips_a_file(self, runtime, node):
        """A file put into /tmp comes back from get_archive, with its stat."""
        self.needs(runtime, "archive")
        uuid = await self.long_runner(runtime, node)
        await runtime.put_archive(uuid, "/tmp", make_tar({"hello.txt": b"hello archive\n"}))
        data, stat = await runtime.get_archive(uuid, "/tmp/hello.txt")
        assert read_tar(data) == {"hello.txt": b"hello archive\n"}
        assert set(stat) == {"name", "size", "mode", "mtime", "linkTarget"}
        assert stat["name"] == "hello.txt" and stat["size"] == len(b"hello archive\n")
        assert stat["linkTarget"] == ""
        if "exec" in runtime.capabilities:
            res = await runtime.execute(uuid, ["cat", "/tmp/hello.txt"])
            assert res.output == "hello archive\n"

    @pytest_twisted.ensureDeferred
    async def test_archive_of_a_missing_path_is_not_found(self, runtime, node):
        """A missing path is a NotFound about the path, not about the container."""
        self.needs(runtime, "archive")
        uuid, _ = await self.make(runtime, node, command=("true",))
        with pytest.raises(errors.NotFound):
            await runtime.get_archive(uuid, "/no/such/path")
        with pytest.raises(errors.NotFound):
            await runtime.put_archive(uuid, "/no/such/dir", make_tar({"a": b"a"}))
        with pytest.raises(errors.RuntimeObjectNotFound):
            await runtime.get_archive(str(uuidlib.uuid4()), "/tmp")

    @pytest_twisted.ensureDeferred
    async def test_commit_creates_a_usable_image(self, runtime, node):
        """commit returns an image id and the image is then present locally."""
        self.needs(runtime, "commit")
        uuid, _ = await self.run_to_exit(runtime, node, command=("true",))
        repository = f"zund-test/commit-{node}"
        try:
            image_id = await runtime.commit(uuid, repository, "v1")
            assert isinstance(image_id, str) and image_id
            await runtime.ensure_image(f"{repository}:v1", "never")
        finally:
            await self.forget_image(runtime, f"{repository}:v1")

    # -- volumes and injected files (capability ``volumes``; issue 12 item 5) ------------------------

    async def _volume(self, runtime, node: str) -> str:
        name = f"zund-contract-{uuidlib.uuid4().hex[:12]}"
        self._volumes = getattr(self, "_volumes", [])
        self._volumes.append(name)
        info = await runtime.create_volume(name, {"zund.project": PROJECT, "zund.node": node})
        assert info.name == name and info.labels.get("zund.project") == PROJECT
        return name

    async def _drop_volumes(self, runtime) -> None:
        for name in getattr(self, "_volumes", []):
            await runtime.remove_volume(name)

    @pytest_twisted.ensureDeferred
    async def test_volume_is_made_inspected_and_removed(self, runtime, node):
        """A volume keeps its labels, is found by name, and is gone after remove_volume
        (removing it again is a no-op)."""
        self.needs(runtime, "volumes")
        name = await self._volume(runtime, node)
        again = await runtime.create_volume(name, {"zund.project": "someone-else"})
        assert again.labels.get("zund.project") == PROJECT
        assert (await runtime.inspect_volume(name)).labels.get("zund.node") == node
        await runtime.remove_volume(name)
        with pytest.raises(errors.RuntimeObjectNotFound):
            await runtime.inspect_volume(name)
        await runtime.remove_volume(name)

    @pytest_twisted.ensureDeferred
    async def test_volume_data_outlives_its_container(self, runtime, node):
        """What a container writes in a volume is there for the next container that
        mounts it, after the first one is removed."""
        self.needs(runtime, "volumes")
        name = await self._volume(runtime, node)
        try:
            mount = (Mount("volume", "/data", name),)
            first, _ = await self.run_to_exit(
                runtime, node, mounts=mount, command=("sh", "-c", "echo kept > /data/f"))
            await runtime.remove(first, True)
            second = await self.run(runtime, node, mounts=mount,
                                    command=("sh", "-c", "cat /data/f; echo done"))
            logs = await wait_for_logs(runtime, second, lambda t: "done" in t)
            assert "kept" in logs
            await runtime.remove(second, True)
        finally:
            await self._drop_volumes(runtime)

    @pytest_twisted.ensureDeferred
    async def test_injected_file_is_there_at_first_start(self, runtime, node):
        """A ``file`` mount's content is at its destination when the container starts."""
        self.needs(runtime, "volumes")
        mounts = (Mount("file", "/etc/app.conf", content=b"answer=42\n"),)
        uuid = await self.run(runtime, node, mounts=mounts,
                              command=("sh", "-c", "cat /etc/app.conf; echo done"))
        logs = await wait_for_logs(runtime, uuid, lambda t: "done" in t)
        assert "answer=42" in logs

    # -- capabilities --------------------------------------------------------------------------------

    @pytest_twisted.ensureDeferred
    async def test_undeclared_capabilities_raise_not_supported(self, runtime, node):
        """Every optional operation the runtime does not declare raises NotSupportedByRuntime."""
        missing = CAPABILITIES - frozenset(runtime.capabilities)
        if not missing:
            return
        uuid = await self.long_runner(runtime, node)
        calls = {
            "exec": [lambda: runtime.execute(uuid, ["true"])],
            "archive": [lambda: runtime.get_archive(uuid, "/tmp"),
                        lambda: runtime.put_archive(uuid, "/tmp", make_tar({"a": b""}))],
            "commit": [lambda: runtime.commit(uuid, "zund-test/never", None)],
            "pause": [lambda: runtime.pause(uuid), lambda: runtime.unpause(uuid)],
            "top": [lambda: runtime.top(uuid, None)],
            "stats": [lambda: runtime.stats(uuid)],
            "update": [lambda: runtime.update(uuid, 1.0, 128)],
            "logs_since": [lambda: runtime.logs(uuid, True, True, False, None, time.time() - 60)],
            "volumes": [lambda: runtime.create_volume("zund-never", {}),
                        lambda: runtime.inspect_volume("zund-never"),
                        lambda: runtime.remove_volume("zund-never")],
        }
        for capability in sorted(missing):
            for call in calls[capability]:
                with pytest.raises(errors.NotSupportedByRuntime):
                    await call()
