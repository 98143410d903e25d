"""The fake engine: :class:`FakeRuntime`, an in-memory IRuntime that behaves like Docker.

``FakeRuntime`` is *verified*: it passes the same contract suite
(``tests/runtime/contract.py``) as :class:`zund.runtimes.docker.DockerRuntime`,
so higher tiers (manager, API, cluster simulations) can use it without drifting
from the real engine.

What it models:
- images: a set of local images (``zund-test/busybox:latest`` by default) and a
  "registry" that only holds what tests register with :meth:`add_registry_image`;
  any other pull fails with ``ImagePullFailed``;
- containers with docker's state machine and error cases (start of a paused
  container, exec in a stopped one, removing a running one, ...);
- processes running the tiny shell of ``shell.py``;
- signals: PID 1 ignores signals it has no trap for (as in Linux), except
  SIGKILL; ``stop`` sends SIGTERM, waits ``timeout_s`` on the clock, then kills;
- a small filesystem per container (``filesystem.py``) for ``get_archive``/
  ``put_archive``/``commit``, and cgroup-v1 limit files reflecting cpu/memory.

Time: with ``clock`` (an ``IReactorTime``), ``sleep N`` takes N clock seconds
and ``stop`` honours its timeout; without a clock a main process's ``sleep``
blocks until it is signalled, and exec'd sleeps return at once.

Not modelled: restart policies (stored, never acted on), networking, TTY
semantics, resource enforcement.
"""

from __future__ import annotations

import datetime
import posixpath
import time
from signal import Signals
from typing import Any

import attrs
from twisted.internet import defer, task
from zope.interface import implementer

from zund.common import errors
from zund.runtimes.base import (
    CAPABILITIES,
    LABEL_NODE,
    LABEL_PROJECT,
    LABEL_UUID,
    ContainerSpec,
    ExecResult,
    IRuntime,
    RuntimeState,
    RuntimeStatus,
    VolumeInfo,
    image_missing,
    image_pull_failed,
    parse_signal,
    pull_policy as canonical_pull_policy,
    runtime_object_name,
)
from zund.runtimes.fake import filesystem
from zund.runtimes.fake.container import FakeContainer, Process
from zund.runtimes.fake.images import TEST_IMAGE, FakeImage, content_id, normalize_image
from zund.runtimes.fake.volumes import MountedTree
from zund.runtimes.fake.shell import BUILTINS, Shell, ShellExit, is_executable

HOST_MEMORY_MB = 2048.0
#: Shell builtins that also exist as /bin/<applet> in the fake busybox image.
APPLETS = tuple(b for b in BUILTINS if b not in (":", "["))


def _utc(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).replace(tzinfo=None)


def _rfc3339nano(ts: float) -> str:
    dt = _utc(ts)
    nanos = int(round((ts - int(ts)) * 1e9)) % 1000000000
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


@implementer(IRuntime)
class FakeRuntime:
    """In-memory engine; see the module docstring. One instance is one engine."""

    def __init__(self, node_name: str, clock=None, *,
                 capabilities: frozenset = CAPABILITIES,
                 name: str = "runc",
                 execute_timeout_s: float = 60.0,
                 local_images: tuple = (TEST_IMAGE,)):
        self.node_name = node_name
        self.clock = clock
        self.name = name
        self.capabilities = frozenset(capabilities)
        self.execute_timeout_s = execute_timeout_s
        self.images: dict[str, FakeImage] = {}
        self.registry: set[str] = set()
        self.containers: dict[str, FakeContainer] = {}
        self.is_open = False
        self._counter = 0
        self._failures: dict[str, list] = {}
        #: registry domain -> (username, password) it requires (require_registry_login)
        self.registry_logins: dict[str, tuple] = {}
        #: volume name -> (labels, {path inside the volume: FakeFile}), mounted live
        #: into containers (``zund.runtimes.fake.volumes.MountedTree``)
        self.volumes: dict[str, tuple[dict, dict]] = {}
        #: runtime object name -> [(destination, volume name)]
        self._mounted: dict[str, list] = {}
        for image in local_images:
            self.add_local_image(image)

    # -- test hooks ------------------------------------------------------------

    def add_registry_image(self, image: str) -> None:
        """Make ``image`` pullable."""
        self.registry.add(normalize_image(image))

    def add_local_image(self, image: str) -> None:
        image = normalize_image(image)
        self.images[image] = FakeImage(image, "sha256:" + content_id("image", image), ["sh"], None,
                                       {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                                       filesystem.base_tree(self._now(), APPLETS))

    def fail_next(self, operation: str, error: Exception) -> None:
        """Make the next call of ``operation`` (a method name) raise ``error``."""
        self._failures.setdefault(operation, []).append(error)

    def vanish(self, uuid: str) -> None:
        """The engine loses the container behind zund's back."""
        box = self.containers.pop(runtime_object_name(uuid), None)
        if box is not None and box.proc is not None:
            self._abandon(box.proc)
        self._mounted.pop(runtime_object_name(uuid), None)

    def exit_process(self, uuid: str, exit_code: int) -> None:
        """The container's main process exits on its own with ``exit_code``."""
        box = self._get(uuid)
        if box.status in (RuntimeStatus.RUNNING, RuntimeStatus.PAUSED) and box.proc is not None:
            self._abandon(box.proc)
            self._finish(box, box.proc, exit_code)

    # -- plumbing ----------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.seconds() if self.clock is not None else time.time()

    def _check(self, operation: str) -> None:
        queue = self._failures.get(operation)
        if queue:
            raise queue.pop(0)

    def _require(self, capability: str, action: str) -> None:
        if capability not in self.capabilities:
            raise errors.NotSupportedByRuntime(action=action, runtime=self.name)

    def _get(self, uuid: str) -> FakeContainer:
        name = runtime_object_name(uuid)
        box = self.containers.get(name)
        if box is None:
            raise errors.RuntimeObjectNotFound(name=name)
        return box

    def _not_running(self, box: FakeContainer) -> errors.RuntimeFailure:
        return errors.RuntimeFailure(reason=f"Container {box.id} is not running")

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        self._check("open")
        self.is_open = True

    async def close(self) -> None:
        self.is_open = False

    def require_registry_login(self, domain: str, username: str, password: str) -> None:
        """Make the registry ``domain`` refuse pulls without these credentials."""
        self.registry_logins[domain] = (username, password)

    async def ensure_image(self, image: str, pull_policy: str, auth=None) -> None:
        self._check("ensure_image")
        policy = canonical_pull_policy(pull_policy)
        ref = normalize_image(image)
        if policy != "always" and ref in self.images:
            return
        if policy == "never":
            raise image_missing(image, policy)
        domain = ref.split("/", 1)[0]
        login = self.registry_logins.get(domain)
        if login is not None and (auth is None or (auth.username, auth.password) != login):
            raise image_pull_failed(image, policy, f"Head https://{domain}/v2/: "
                                    "unauthorized: authentication required")
        if ref not in self.registry:
            raise image_pull_failed(image, policy, f"manifest for {ref} not found: "
                                    "registry unreachable or no such image")
        self.add_local_image(ref)

    # -- containers ---------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> RuntimeState:
        self._check("create")
        image = self.images.get(normalize_image(spec.image))
        if image is None:
            raise errors.ImageNotFound(image=spec.image)
        name = runtime_object_name(spec.uuid)
        if name in self.containers:
            raise errors.RuntimeFailure(
                reason=f'Conflict. The container name "/{name}" is already in use')
        if spec.restart_policy and spec.auto_remove and \
                str(spec.restart_policy.get("Name") or "no") != "no":
            raise errors.RuntimeFailure(
                reason="Conflicting options: AutoRemove and restart policy")
        self._counter += 1
        cid = content_id("container", name, str(self._counter), str(self._now()))
        if spec.entrypoint is not None:
            argv = list(spec.entrypoint) + list(spec.command or [])
        else:
            argv = list(image.entrypoint or []) + list(
                spec.command if spec.command is not None else image.cmd)
        hostname = spec.hostname or cid[:12]
        env = dict(image.env)
        env.update({"HOSTNAME": hostname, "HOME": "/root"})
        env.update({str(k): str(v) for k, v in (spec.environment or {}).items()})
        labels = {str(k): str(v) for k, v in (spec.labels or {}).items()}
        labels.update({LABEL_UUID: spec.uuid, LABEL_NODE: spec.node,
                       LABEL_PROJECT: spec.project_id})
        box = FakeContainer(
            spec=spec, id=cid, name=name, image=image, argv=argv, env=env,
            hostname=hostname, workdir=posixpath.normpath(spec.workdir or "/"),
            fs=filesystem.copy_tree(image.fs), labels=labels,
            created_at=self._now(), cpu=spec.cpu, memory_mb=spec.memory_mb, now=self._now)
        box.mkdir(box.workdir, True)
        if spec.mounts:
            self._require("volumes", "mounts")
            self._mount(box, spec.mounts)
        self.containers[name] = box
        return self._state(box)

    def _mount(self, box: FakeContainer, mounts) -> None:
        """Volumes are laid over the container's tree live (``MountedTree``); injected
        files are written into the tree once, before the first start."""
        now, trees, mounted = self._now(), {}, []
        for m in mounts:
            if m.kind == "file":
                continue
            filesystem.mkdir(box.fs, m.destination, True, now)
            if m.kind == "volume":
                # docker makes a missing named volume on create: so does the fake
                _labels, tree = self.volumes.setdefault(m.source, ({}, {}))
                tree.setdefault("", filesystem.FakeFile("dir", mode=0o755, mtime=now))
                trees[m.destination] = tree
                mounted.append((m.destination, m.source))
        if trees:
            box.fs = MountedTree(box.fs, trees)
        for m in mounts:
            if m.kind == "file":
                filesystem.mkdir(box.fs, posixpath.dirname(m.destination), True, now)
                filesystem.write_file(box.fs, m.destination, m.content or b"", False, now)
        self._mounted[box.name] = mounted

    def _unmount(self, box: FakeContainer) -> None:
        self._mounted.pop(box.name, None)

    # -- volumes -----------------------------------------------------------------------

    async def create_volume(self, name: str, labels: dict) -> VolumeInfo:
        self._require("volumes", "create_volume")
        self._check("create_volume")
        if name not in self.volumes:
            self.volumes[name] = ({str(k): str(v) for k, v in labels.items()}, {})
        return VolumeInfo(name, dict(self.volumes[name][0]))

    async def inspect_volume(self, name: str) -> VolumeInfo:
        self._require("volumes", "inspect_volume")
        if name not in self.volumes:
            raise errors.RuntimeObjectNotFound(name=name)
        return VolumeInfo(name, dict(self.volumes[name][0]))

    async def remove_volume(self, name: str) -> None:
        self._require("volumes", "remove_volume")
        if any(volume == name for mounted in self._mounted.values() for _d, volume in mounted):
            raise errors.RuntimeFailure(reason=f"remove {name}: volume is in use")
        self.volumes.pop(name, None)

    def _state(self, box: FakeContainer) -> RuntimeState:
        done = box.status in (RuntimeStatus.EXITED, RuntimeStatus.DEAD)
        return RuntimeState(
            uuid=box.spec.uuid, runtime_id=box.id, status=box.status,
            exit_code=box.exit_code if done else None,
            started_at=_utc(box.started_at) if box.started_at is not None else None,
            finished_at=_utc(box.finished_at) if box.finished_at is not None else None,
            hostname=box.hostname,
            ports=tuple(sorted({int(str(k).split("/")[0]) for k in box.spec.exposed_ports or {}})),
            error=box.error or None,
            node=box.labels.get(LABEL_NODE), project_id=box.labels.get(LABEL_PROJECT))

    async def start(self, uuid: str) -> None:
        self._check("start")
        box = self._get(uuid)
        if box.status == RuntimeStatus.RUNNING:
            return
        if box.status == RuntimeStatus.PAUSED:
            raise errors.RuntimeFailure(reason="cannot start a paused container, try unpause instead")
        if not is_executable(box.argv):
            what = box.argv[0] if box.argv else ""
            box.exit_code = 127
            box.error = (f'OCI runtime create failed: exec: "{what}": '
                         "executable file not found in $PATH: unknown")
            raise errors.RuntimeFailure(reason=box.error)
        box.status = RuntimeStatus.RUNNING
        box.started_at = self._now()  # finished_at keeps the previous run's, as docker does
        box.error = ""
        box.exit_code = 0
        proc = Process(gen=None, traps={}, main=True)

        def emit(stream: str, text: str) -> None:
            self._log(box, stream, text)

        proc.gen = Shell(box, emit, proc.traps).run_argv(box.argv)
        box.proc = proc
        self._advance(box, proc, None)

    def _log(self, box: FakeContainer, stream: str, text: str) -> None:
        now = self._now()
        for line in text.splitlines(keepends=True):
            box.log.append((now, stream, line))

    def _advance(self, box: FakeContainer | None, proc: Process, value: Any) -> None:
        """Run ``proc`` until it blocks or exits."""
        proc.pending = None
        proc.blocked = None
        if box is not None and box.status == RuntimeStatus.PAUSED and proc.main:
            proc.blocked = "paused"
            return
        try:
            while True:
                request = proc.gen.send(value)
                value = None
                kind = request[0]
                if kind == "sleep":
                    if self.clock is not None:
                        proc.blocked = "sleep"
                        proc.pending = self.clock.callLater(
                            max(0.0, request[1]), self._advance, box, proc, None)
                        return
                    if proc.main:
                        proc.blocked = "forever"
                        return
                    continue  # exec without a clock: time does not pass
                if kind == "stdin":
                    if proc.main and box is not None and box.spec.interactive:
                        proc.blocked = "stdin"
                        return
                    continue  # stdin is empty: EOF
                proc.blocked = "forever"
                return
        except StopIteration as stop:
            self._finish(box, proc, int(stop.value or 0))
        except ShellExit as e:
            self._finish(box, proc, e.code)

    def _abandon(self, proc: Process) -> None:
        if proc.pending is not None and proc.pending.active():
            proc.pending.cancel()
        proc.pending = None
        proc.gen.close()

    def _finish(self, box: FakeContainer | None, proc: Process, code: int) -> None:
        proc.exit_code = code
        if proc.main and box is not None and box.proc is proc:
            box.proc = None
            box.status = RuntimeStatus.EXITED
            box.exit_code = code
            box.finished_at = self._now()
            if box.spec.auto_remove:
                self.containers.pop(box.name, None)
        if not proc.done.called:
            proc.done.callback(code)

    def _signal(self, box: FakeContainer, sig: Signals) -> None:
        proc = box.proc
        if proc is None:
            return
        if sig == Signals.SIGKILL:
            self._abandon(proc)
            self._finish(box, proc, 128 + Signals.SIGKILL)
            return
        handler = proc.traps.get(sig)
        if handler is None:
            return  # PID 1 ignores signals it installed no handler for
        if handler == "":
            return  # trap "" SIG: explicitly ignored
        # Run the handler to completion; a handler's own sleeps are not modelled.
        gen = Shell(box, lambda s, t: self._log(box, s, t), proc.traps).run_script(handler)
        try:
            gen.send(None)
            while True:
                gen.send(None)
        except StopIteration:
            return  # handler returned: the interrupted program carries on
        except ShellExit as e:
            self._abandon(proc)
            self._finish(box, proc, e.code)

    async def stop(self, uuid: str, timeout_s: float) -> None:
        self._check("stop")
        box = self._get(uuid)
        if box.status not in (RuntimeStatus.RUNNING, RuntimeStatus.PAUSED):
            return
        proc = box.proc
        if box.status == RuntimeStatus.PAUSED:
            await self._resume(box)
        self._signal(box, Signals.SIGTERM)
        if box.proc is proc and proc is not None and self.clock is not None and timeout_s:
            # Like docker: wait up to timeout_s for the process to exit, then kill.
            waiter: defer.Deferred = defer.Deferred()

            def _wake(result=None):
                if not waiter.called:
                    waiter.callback(None)
                return result

            timer = self.clock.callLater(max(0.0, float(timeout_s)), _wake)
            proc.done.addBoth(_wake)
            await waiter
            if timer.active():
                timer.cancel()
        if box.proc is proc and proc is not None:
            self._signal(box, Signals.SIGKILL)

    async def restart(self, uuid: str, timeout_s: float) -> None:
        self._check("restart")
        await self.stop(uuid, timeout_s)
        await self.start(uuid)

    async def kill(self, uuid: str, signal: str | None) -> None:
        self._check("kill")
        box = self._get(uuid)
        if box.status not in (RuntimeStatus.RUNNING, RuntimeStatus.PAUSED):
            raise errors.RuntimeFailure(
                reason=f"Cannot kill container: {box.id}: Container {box.id} is not running")
        sig = parse_signal(signal)
        if box.status == RuntimeStatus.PAUSED and sig != Signals.SIGKILL:
            return  # delivered to a frozen process: nothing happens until unpause
        self._signal(box, sig)

    async def pause(self, uuid: str) -> None:
        self._require("pause", "pause")
        self._check("pause")
        box = self._get(uuid)
        if box.status == RuntimeStatus.PAUSED:
            raise errors.RuntimeFailure(reason=f"Container {box.id} is already paused")
        if box.status != RuntimeStatus.RUNNING:
            raise self._not_running(box)
        box.status = RuntimeStatus.PAUSED

    async def unpause(self, uuid: str) -> None:
        self._require("pause", "unpause")
        self._check("unpause")
        box = self._get(uuid)
        if box.status != RuntimeStatus.PAUSED:
            raise errors.RuntimeFailure(reason=f"Container {box.id} is not paused")
        await self._resume(box)

    async def _resume(self, box: FakeContainer) -> None:
        box.status = RuntimeStatus.RUNNING
        proc = box.proc
        if proc is not None and proc.blocked == "paused":
            self._advance(box, proc, None)

    async def remove(self, uuid: str, force: bool) -> None:
        self._check("remove")
        name = runtime_object_name(uuid)
        box = self.containers.get(name)
        if box is None:
            return
        if box.status in (RuntimeStatus.RUNNING, RuntimeStatus.PAUSED):
            if not force:
                what = "paused" if box.status == RuntimeStatus.PAUSED else "running"
                raise errors.RuntimeFailure(
                    reason=f"You cannot remove a {what} container {box.id}. "
                           "Stop the container before attempting removal or force remove")
            if box.proc is not None:
                self._abandon(box.proc)
                self._finish(box, box.proc, 137)
        self.containers.pop(name, None)
        self._unmount(box)

    async def inspect(self, uuid: str) -> RuntimeState:
        self._check("inspect")
        return self._state(self._get(uuid))

    async def list(self, node: str) -> list:
        self._check("list")
        return [self._state(b) for b in self.containers.values()
                if b.labels.get(LABEL_NODE) == node]

    async def logs(self, uuid: str, stdout: bool = True, stderr: bool = True,
                   timestamps: bool = False, tail: int | None = None,
                   since: float | None = None) -> str:
        self._check("logs")
        if since is not None:
            self._require("logs_since", "logs since")
        box = self._get(uuid)
        wanted = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}
        entries = box.log
        if tail is not None:
            # Like docker's json-file driver: tail the whole log, then filter.
            entries = entries[-int(tail):] if int(tail) > 0 else []
        lines = [(ts, line) for ts, stream, line in entries
                 if stream in wanted and (not since or ts >= float(since))]
        if timestamps:
            return "".join(f"{_rfc3339nano(ts)} {line}" for ts, line in lines)
        return "".join(line for _, line in lines)

    async def execute(self, uuid: str, argv: list) -> ExecResult:
        self._require("exec", "execute")
        self._check("execute")
        box = self._get(uuid)
        if box.status == RuntimeStatus.PAUSED:
            raise errors.RuntimeFailure(
                reason=f"Container {box.id} is paused, unpause the container before exec")
        if box.status != RuntimeStatus.RUNNING:
            raise self._not_running(box)
        argv = [str(a) for a in argv]
        if not is_executable(argv):
            return ExecResult(126, "OCI runtime exec failed: exec failed: unable to start "
                                   f'container process: exec: "{argv[0] if argv else ""}": '
                                   "executable file not found in $PATH: unknown\r\n")
        proc = Process(gen=None, traps={}, main=False)
        proc.gen = Shell(box, lambda s, t: proc.output.append(t), proc.traps).run_argv(argv)
        self._advance(box, proc, None)
        if not proc.done.called:
            if proc.blocked == "forever" or self.clock is None:
                if self.clock is not None:
                    await task.deferLater(self.clock, self.execute_timeout_s, lambda: None)
                self._abandon(proc)
                raise errors.RuntimeFailure(
                    reason=f"command did not finish within {self.execute_timeout_s:g}s")
            timer = self.clock.callLater(self.execute_timeout_s, proc.done.cancel)
            try:
                await proc.done
            except defer.CancelledError:
                self._abandon(proc)
                raise errors.RuntimeFailure(
                    reason=f"command did not finish within {self.execute_timeout_s:g}s") from None
            finally:
                if timer.active():
                    timer.cancel()
        return ExecResult(int(proc.exit_code or 0), "".join(proc.output))

    async def top(self, uuid: str, ps_args: str | None = None) -> dict:
        self._require("top", "top")
        self._check("top")
        box = self._get(uuid)
        if box.status not in (RuntimeStatus.RUNNING, RuntimeStatus.PAUSED):
            raise self._not_running(box)
        stime = _utc(box.started_at or self._now()).strftime("%H:%M")
        return {"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
                "Processes": [["root", "1000", "999", "0", stime, "?", "00:00:00",
                               " ".join(box.argv)]]}

    async def stats(self, uuid: str) -> dict:
        self._require("stats", "stats")
        self._check("stats")
        box = self._get(uuid)
        running = box.status in (RuntimeStatus.RUNNING, RuntimeStatus.PAUSED)
        limit = float(box.memory_mb) if box.memory_mb else HOST_MEMORY_MB
        usage = 0.5 if running else 0.0
        return {"CONTAINER": box.name, "CPU %": 0.0, "MEM USAGE(MiB)": usage,
                "MEM LIMIT(MiB)": limit if running else 0.0,
                "MEM %": (usage / limit * 100.0) if running else 0.0,
                "BLOCK I/O(B)": "0/0", "NET I/O(B)": "0/0"}

    async def update(self, uuid: str, cpu: float | None, memory_mb: int | None) -> None:
        self._require("update", "update")
        self._check("update")
        box = self._get(uuid)
        if cpu is not None:
            box.cpu = cpu
        if memory_mb is not None:
            box.memory_mb = memory_mb

    # -- archives -----------------------------------------------------------------------

    def _missing_path(self, box: FakeContainer, path: str) -> errors.ResourceNotFound:
        return errors.ResourceNotFound(f"Could not find the file {path} in container {box.name}")

    async def get_archive(self, uuid: str, path: str) -> tuple:
        self._require("archive", "get_archive")
        self._check("get_archive")
        box = self._get(uuid)
        full = box.abspath(path)
        if full not in box.fs:
            raise self._missing_path(box, path)
        return filesystem.archive(box.fs, full)

    async def put_archive(self, uuid: str, path: str, data: bytes) -> None:
        self._require("archive", "put_archive")
        self._check("put_archive")
        box = self._get(uuid)
        dest = box.abspath(path)
        target = box.fs.get(dest)
        if target is None:
            raise self._missing_path(box, path)
        if target.kind != "dir":
            raise errors.RuntimeFailure(reason=f"extraction point is not a directory: {path}")
        filesystem.extract(box.fs, dest, data, self._now())

    async def commit(self, uuid: str, repository: str, tag: str | None = None) -> str:
        self._require("commit", "commit")
        self._check("commit")
        box = self._get(uuid)
        ref = normalize_image(f"{repository}:{tag}" if tag else repository)
        self._counter += 1
        image_id = "sha256:" + content_id("commit", box.id, ref, str(self._counter))
        # as docker's commit: the volumes' data is not part of the image
        self.images[ref] = FakeImage(ref, image_id, list(box.argv), None, dict(box.env),
                                     filesystem.copy_tree(getattr(box.fs, "base", box.fs)))
        return image_id
