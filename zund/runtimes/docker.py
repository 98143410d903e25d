"""The Docker runtime (API name ``runc``): IRuntime over the docker SDK.

Every SDK call is blocking, so it runs through the injected ``run_blocking``
(a bounded thread pool); nothing here blocks the reactor. The SDK client is
built in :meth:`DockerRuntime.open`, never in the constructor (house rule 9).

Errors from the SDK are translated by *type* at this boundary (house rule 7):
``docker.errors.ImageNotFound`` -> ``ImageNotFound``, ``docker.errors.NotFound``
-> ``RuntimeObjectNotFound`` (or ``ResourceNotFound`` for a missing path inside
an existing container), other ``APIError`` -> ``RuntimeFailure`` carrying the
engine's explanation, a refused/absent engine -> ``RuntimeUnavailable``.

Resource mapping (zun-api.md §6.1):
- cpu: ``cpu_shares = 1024*cpu``, exactly as Zun does: a relative weight under
  contention. A CFS hard cap (``cpu_quota``) was tried and dropped: a 0.1-vCPU
  container then throttles its own start-up (~50 ms slower create->Running), and
  capacity accounting is allocation-based anyway;
- memory: ``mem_limit "<n>M"`` with ``memswap_limit`` equal to it (no extra swap,
  and it keeps later ``update`` calls from tripping over docker's implicit
  ``memswap = 2*mem``).

Networking: ``network_mode`` comes from config; empty means the engine default.
An engine started with ``--bridge=none`` has no ``bridge`` network; docker 20.10
still creates and starts containers with the default mode there (they get no
interface), but to be explicit and robust across engine versions ``open()``
resolves an empty ``network_mode`` to ``"none"`` when the engine lists no
``bridge`` network.
"""

from __future__ import annotations

import datetime
import io
import math
import os
import re
import select
import signal
import struct
import tarfile
import time
from typing import Any, Callable

import attrs
import docker
import docker.errors
import docker.types
import requests.exceptions
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from zund.common import errors
from zund.runtimes.executor import TrackedCalls
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
    exposed_port_numbers,
    parse_signal,
    runtime_object_name,
)
from zund.runtimes.images import DockerImageSource, explain

log = Logger()

RUNTIME_NAME = "runc"


@attrs.frozen
class DockerConfig:
    """Plain config for :class:`DockerRuntime`, built from ``[docker]`` options."""

    api_url: str = "unix:///var/run/docker.sock"
    api_version: str = "auto"
    default_timeout_s: float = 60.0
    execute_timeout_s: float = 60.0
    network_mode: str = ""

    @classmethod
    def from_conf(cls, conf) -> "DockerConfig":
        d = conf.docker
        return cls(api_url=d.api_url, api_version=d.docker_remote_api_version,
                   default_timeout_s=float(d.default_timeout),
                   execute_timeout_s=float(d.execute_timeout),
                   network_mode=d.network_mode)


# -- pure helpers (no I/O) ---------------------------------------------------

_TIME_RE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


def parse_docker_time(value: str | None) -> datetime.datetime | None:
    """Docker's RFC 3339 (nanosecond) timestamp -> naive UTC datetime, or None
    for empty / the zero time ``0001-01-01T00:00:00Z`` (never started)."""
    if not value or value.startswith("0001-01-01"):
        return None
    m = _TIME_RE.match(value)
    if not m:
        return None
    base, frac, tz = m.groups()
    micros = int((frac or "0")[:6].ljust(6, "0"))
    dt = datetime.datetime.fromisoformat(base).replace(microsecond=micros)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        hours, minutes = int(tz[1:3]), int(tz[4:6])
        dt -= sign * datetime.timedelta(hours=hours, minutes=minutes)
    return dt


def state_from_inspect(attrs_: dict) -> RuntimeState:
    """Build a RuntimeState from ``docker inspect`` output."""
    st = attrs_.get("State") or {}
    cfg = attrs_.get("Config") or {}
    labels = cfg.get("Labels") or {}
    raw = st.get("Status") or ""
    error = st.get("Error") or None
    try:
        status = RuntimeStatus(raw)
    except ValueError:
        # The engine vocabulary is closed today; treat anything new as dead so
        # the manager surfaces it rather than pretending it runs.
        status = RuntimeStatus.DEAD
        error = error or f"unexpected engine state {raw!r}"
    started_at = parse_docker_time(st.get("StartedAt"))
    finished_at = parse_docker_time(st.get("FinishedAt"))
    if status in (RuntimeStatus.EXITED, RuntimeStatus.DEAD) and started_at and finished_at \
            and finished_at < started_at:
        # The engine records StartedAt after the start call returns; a process
        # that exits at once can "finish" before it "started". Keep them ordered.
        finished_at = started_at
    exit_code = None
    if status in (RuntimeStatus.EXITED, RuntimeStatus.DEAD):
        exit_code = st.get("ExitCode")
    name = (attrs_.get("Name") or "").lstrip("/")
    uuid = labels.get(LABEL_UUID) or (name[4:] if name.startswith("zun-") else name)
    return RuntimeState(
        uuid=uuid,
        runtime_id=attrs_.get("Id", ""),
        status=status,
        exit_code=exit_code,
        started_at=started_at,
        finished_at=finished_at,
        hostname=cfg.get("Hostname") or None,
        ports=exposed_port_numbers(cfg.get("ExposedPorts")),
        error=error,
        node=labels.get(LABEL_NODE),
        project_id=labels.get(LABEL_PROJECT),
    )


def zun_stats(name: str, raw: dict) -> dict:
    """One ``docker stats`` sample -> Zun's stats dict (zun-api.md §5.2).

    CPU % uses the docker CLI formula over the sample's pre-CPU delta; memory
    usage excludes the page cache like ``docker stats`` does.
    """
    cpu = raw.get("cpu_stats") or {}
    pre = raw.get("precpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage") or 0
    pre_total = (pre.get("cpu_usage") or {}).get("total_usage") or 0
    system = cpu.get("system_cpu_usage") or 0
    pre_system = pre.get("system_cpu_usage") or 0
    ncpu = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    cpu_delta, sys_delta = total - pre_total, system - pre_system
    cpu_percent = (cpu_delta / sys_delta) * ncpu * 100.0 if cpu_delta > 0 and sys_delta > 0 else 0.0

    mem = raw.get("memory_stats") or {}
    mstats = mem.get("stats") or {}
    usage = mem.get("usage") or 0
    cache = mstats.get("total_inactive_file", mstats.get("inactive_file", 0)) or 0
    if cache < usage:
        usage -= cache
    limit = mem.get("limit") or 0
    mem_usage = usage / 1024.0 / 1024.0
    mem_limit = limit / 1024.0 / 1024.0
    mem_percent = (usage / limit * 100.0) if limit else 0.0

    io_read = io_write = 0
    for item in (raw.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = str(item.get("op", "")).lower()
        if op == "read":
            io_read += item.get("value", 0)
        elif op == "write":
            io_write += item.get("value", 0)
    rx = tx = 0
    for net in (raw.get("networks") or {}).values():
        rx += net.get("rx_bytes", 0)
        tx += net.get("tx_bytes", 0)
    return {
        "CONTAINER": name,
        "CPU %": float(cpu_percent),
        "MEM USAGE(MiB)": float(mem_usage),
        "MEM LIMIT(MiB)": float(mem_limit),
        "MEM %": float(mem_percent),
        "BLOCK I/O(B)": f"{io_read}/{io_write}",
        "NET I/O(B)": f"{rx}/{tx}",
    }


def file_archive(files) -> bytes | None:
    """A tar of the injected files (``Mount`` of kind ``file``), paths relative to
    ``/``; None when there is none."""
    if not files:
        return None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in files:
            data = m.content or b""
            info = tarfile.TarInfo(m.destination.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def cpu_limits(cpu: float) -> dict:
    return {"cpu_shares": max(2, int(1024 * cpu))}


def memory_limits(memory_mb: int) -> dict:
    return {"mem_limit": f"{int(memory_mb)}M", "memswap_limit": f"{int(memory_mb)}M"}


# -- the runtime ---------------------------------------------------------------

@implementer(IRuntime)
class DockerRuntime:
    """IRuntime over a local Docker engine.

    ``run_blocking(fn, *args) -> Deferred`` runs ``fn`` on a bounded thread pool.
    Construction does no I/O; call :meth:`open` before use and :meth:`close` at
    shutdown (it waits for in-flight calls).
    """

    name = RUNTIME_NAME
    capabilities = CAPABILITIES
    #: what ``zund.console`` may open (issue 14): "console" = TTY exec/attach streams
    console_capabilities = frozenset({"console"})

    def __init__(self, config: DockerConfig, node_name: str,
                 run_blocking: Callable[..., defer.Deferred]):
        self.config = config
        self.node_name = node_name
        self._run_blocking = run_blocking
        self._client: docker.DockerClient | None = None
        self._network_mode = config.network_mode
        self._blocking = TrackedCalls(run_blocking, self.name)
        self._images = DockerImageSource(lambda: self._api, self._blocking, self.name)

    # -- plumbing -----------------------------------------------------------

    @property
    def network_mode(self) -> str:
        """The network mode containers are created with ('' = engine default)."""
        return self._network_mode

    @property
    def _api(self) -> docker.APIClient:
        if self._client is None:
            raise errors.RuntimeUnavailable(runtime=self.name, reason="runtime is not open")
        return self._client.api

    def _translate(self, e: BaseException, uuid: str | None = None,
                   image: str | None = None) -> errors.ZundError:
        """Map an SDK/transport exception to a domain error, by type."""
        if isinstance(e, docker.errors.ImageNotFound):
            return errors.ImageNotFound(image=image or "?")
        if isinstance(e, docker.errors.NotFound):
            if uuid is not None:
                return errors.RuntimeObjectNotFound(name=runtime_object_name(uuid))
            if image is not None:
                return errors.ImageNotFound(image=image)
            return errors.RuntimeFailure(reason=explain(e))
        if isinstance(e, docker.errors.APIError):
            return errors.RuntimeFailure(reason=explain(e))
        if isinstance(e, requests.exceptions.Timeout):
            return errors.RuntimeFailure(reason=f"engine call timed out: {e}")
        if isinstance(e, (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError)):
            return errors.RuntimeUnavailable(runtime=self.name, reason=str(e))
        if isinstance(e, docker.errors.DockerException):
            return errors.RuntimeFailure(reason=str(e))
        return errors.RuntimeFailure(reason=f"{type(e).__name__}: {e}")

    async def _call(self, fn: Callable[[], Any], uuid: str | None = None,
                    image: str | None = None) -> Any:
        try:
            return await self._blocking(fn)
        except errors.ZundError:
            raise
        except Exception as e:
            raise self._translate(e, uuid=uuid, image=image) from e

    def _require(self, capability: str, action: str) -> None:
        if capability not in self.capabilities:
            raise errors.NotSupportedByRuntime(action=action, runtime=self.name)

    # -- lifecycle ------------------------------------------------------------

    async def open(self) -> None:
        cfg = self.config

        def _connect():
            client = docker.DockerClient(base_url=cfg.api_url, version=cfg.api_version or "auto",
                                         timeout=cfg.default_timeout_s)
            try:
                client.ping()
                network_mode = cfg.network_mode
                if not network_mode and not client.api.networks(names=["bridge"]):
                    network_mode = "none"
            except BaseException:
                client.close()
                raise
            return client, network_mode

        self._blocking.closing = False
        try:
            client, network_mode = await self._blocking(_connect)
        except Exception as e:
            raise errors.RuntimeUnavailable(runtime=self.name, reason=explain(e)) from e
        self._client, self._network_mode = client, network_mode
        log.info("runtime.docker.open url={url} api={api} network_mode={nm!r}",
                 url=cfg.api_url, api=client.api.api_version, nm=network_mode)

    async def close(self) -> None:
        await self._blocking.drain()
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing sockets; nothing useful to report
                pass

    # -- images ------------------------------------------------------------------

    async def ensure_image(self, image: str, pull_policy: str, auth=None) -> None:
        await self._images.ensure(image, pull_policy, auth)

    # -- containers ---------------------------------------------------------------

    def _create_job(self, spec: ContainerSpec):
        """The blocking halves of a create (no I/O here): ``(create, make)``, where
        ``make()`` creates the container (and writes its injected files) -> its id,
        and ``create()`` does that, then inspects it -> the inspect dict."""
        api = self._api
        name = runtime_object_name(spec.uuid)
        labels = {str(k): str(v) for k, v in (spec.labels or {}).items()}
        # Ours last: a user label can never spoof the ownership labels.
        labels.update({LABEL_UUID: spec.uuid, LABEL_NODE: spec.node,
                       LABEL_PROJECT: spec.project_id})
        host_kwargs: dict[str, Any] = {
            "auto_remove": bool(spec.auto_remove),
            "privileged": bool(spec.privileged),
        }
        if spec.network_mode:
            # joined to a network sandbox (zund.network.plugger): the sandbox holds
            # the hostname and the namespace; Docker refuses both on the joiner
            host_kwargs["network_mode"] = spec.network_mode
        elif self._network_mode:
            host_kwargs["network_mode"] = self._network_mode
        joined = bool(spec.network_mode and spec.network_mode.startswith("container:"))
        if spec.cpu is not None:
            host_kwargs.update(cpu_limits(spec.cpu))
        if spec.memory_mb is not None:
            host_kwargs.update(memory_limits(spec.memory_mb))
        if spec.restart_policy:
            rp = dict(spec.restart_policy)
            policy = {"Name": str(rp.get("Name") or "no")}
            if policy["Name"] == "on-failure":
                policy["MaximumRetryCount"] = int(rp.get("MaximumRetryCount") or 0)
            host_kwargs["restart_policy"] = policy
        ports = []
        for key in spec.exposed_ports or {}:
            num, _, proto = str(key).partition("/")
            ports.append((int(num), proto or "tcp"))
        engine_mounts = [docker.types.Mount(m.destination, m.source, type=m.kind,
                                            read_only=m.read_only)
                         for m in spec.mounts if m.kind in ("volume", "bind")]
        if engine_mounts:
            host_kwargs["mounts"] = engine_mounts
        injected = file_archive([m for m in spec.mounts if m.kind == "file"])

        def _create():
            _make()
            return api.inspect_container(name)

        def _make() -> str:
            host_config = api.create_host_config(**host_kwargs)
            made = api.create_container(
                image=spec.image,
                command=list(spec.command) if spec.command is not None else None,
                entrypoint=list(spec.entrypoint) if spec.entrypoint is not None else None,
                name=name,
                hostname=(spec.hostname or None) if not joined else None,
                environment={str(k): str(v) for k, v in (spec.environment or {}).items()} or None,
                labels=labels,
                working_dir=spec.workdir or None,
                stdin_open=bool(spec.interactive),
                tty=bool(spec.tty),
                ports=(ports or None) if not joined else None,
                host_config=host_config,
            )
            if injected is not None:
                # Zun 1.23 file injection: written before the first start
                api.put_archive(name, "/", injected)
            return made.get("Id", "")

        return _create, _make

    async def create(self, spec: ContainerSpec) -> RuntimeState:
        create, _make = self._create_job(spec)
        # A 404 here is the image (the container does not exist yet).
        inspected = await self._call(create, image=spec.image)
        log.debug("runtime.docker.created uuid={uuid} id={id}", uuid=spec.uuid,
                  id=inspected.get("Id", "")[:12])
        return state_from_inspect(inspected)

    async def create_and_start(self, spec: ContainerSpec,
                               steps: dict | None = None) -> RuntimeState:
        """``create`` then ``start`` in ONE engine job (one worker-thread hop, no
        inspect between them) -> the state inspected right after the start, so a
        process that exits at once is reported as the engine sees it (and ports and
        hostname as ``create`` reports them). The create path of a container made
        with ``run`` (zund.compute.lifecycle; issue 13 §2: two thread hops and the
        create's inspect fewer on the way to Running).

        Errors: the create's as ``create`` raises them (ImageNotFound: nothing was
        made); a failed start as ``start`` raises it, the container that was made
        staying there, created (as after ``create`` then a failed ``start``: the
        caller inspects it for its id). ``steps``: filled with the engine calls'
        wall milliseconds (``create_ms``, ``start_ms``, ``inspect_ms``), for the
        create's timing log. Not part of IRuntime: callers use it when present."""
        api, name = self._api, runtime_object_name(spec.uuid)
        _create, make = self._create_job(spec)

        def _run():
            t0 = time.perf_counter()
            try:
                make()
            except Exception as e:
                # a 404 here is the image (the container does not exist yet)
                raise self._translate(e, image=spec.image) from e
            t1 = time.perf_counter()
            api.start(name)
            t2 = time.perf_counter()
            inspected = api.inspect_container(name)
            if steps is not None:
                steps.update(create_ms=round((t1 - t0) * 1000, 1),
                             start_ms=round((t2 - t1) * 1000, 1),
                             inspect_ms=round((time.perf_counter() - t2) * 1000, 1))
            return inspected

        inspected = await self._call(_run, uuid=spec.uuid)
        log.debug("runtime.docker.created uuid={uuid} id={id} started=True",
                  uuid=spec.uuid, id=inspected.get("Id", "")[:12])
        return state_from_inspect(inspected)

    async def start(self, uuid: str) -> None:
        api, name = self._api, runtime_object_name(uuid)
        await self._call(lambda: api.start(name), uuid=uuid)

    async def stop(self, uuid: str, timeout_s: float) -> None:
        api, name = self._api, runtime_object_name(uuid)
        await self._call(lambda: api.stop(name, timeout=_whole_seconds(timeout_s)), uuid=uuid)

    async def restart(self, uuid: str, timeout_s: float) -> None:
        api, name = self._api, runtime_object_name(uuid)
        await self._call(lambda: api.restart(name, timeout=_whole_seconds(timeout_s)), uuid=uuid)

    async def kill(self, uuid: str, signal: str | None) -> None:
        api, name = self._api, runtime_object_name(uuid)
        sig = parse_signal(signal).name
        await self._call(lambda: api.kill(name, signal=sig), uuid=uuid)

    async def pause(self, uuid: str) -> None:
        self._require("pause", "pause")
        api, name = self._api, runtime_object_name(uuid)
        await self._call(lambda: api.pause(name), uuid=uuid)

    async def unpause(self, uuid: str) -> None:
        self._require("pause", "unpause")
        api, name = self._api, runtime_object_name(uuid)
        await self._call(lambda: api.unpause(name), uuid=uuid)

    async def remove(self, uuid: str, force: bool) -> None:
        api, name = self._api, runtime_object_name(uuid)
        try:
            await self._call(lambda: api.remove_container(name, force=bool(force), v=True),
                             uuid=uuid)
        except errors.RuntimeObjectNotFound:
            return

    # -- volumes ----------------------------------------------------------------------

    async def create_volume(self, name: str, labels: dict) -> VolumeInfo:
        api = self._api
        labels = {str(k): str(v) for k, v in labels.items()}
        found = await self._call(lambda: api.create_volume(name, driver="local",
                                                           labels=labels))
        return VolumeInfo(found["Name"], dict(found.get("Labels") or {}))

    async def inspect_volume(self, name: str) -> VolumeInfo:
        api = self._api

        def _inspect():
            try:
                return api.inspect_volume(name)
            except docker.errors.NotFound:
                return None

        found = await self._call(_inspect)
        if found is None:
            raise errors.RuntimeObjectNotFound(name=name)
        return VolumeInfo(found["Name"], dict(found.get("Labels") or {}))

    async def remove_volume(self, name: str) -> None:
        api = self._api

        def _remove():
            try:
                api.remove_volume(name)
            except docker.errors.NotFound:
                return

        await self._call(_remove)

    async def inspect(self, uuid: str) -> RuntimeState:
        api, name = self._api, runtime_object_name(uuid)
        return state_from_inspect(await self._call(lambda: api.inspect_container(name), uuid=uuid))

    async def list(self, node: str) -> list:
        client = self._client
        if client is None:
            raise errors.RuntimeUnavailable(runtime=self.name, reason="runtime is not open")

        def _list():
            found = client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={node}"},
                                           ignore_removed=True)
            return [c.attrs for c in found]

        return [state_from_inspect(a) for a in await self._call(_list)]

    async def logs(self, uuid: str, stdout: bool = True, stderr: bool = True,
                   timestamps: bool = False, tail: int | None = None,
                   since: float | None = None) -> str:
        api, name = self._api, runtime_object_name(uuid)
        kwargs: dict[str, Any] = {"stdout": bool(stdout), "stderr": bool(stderr),
                                  "timestamps": bool(timestamps),
                                  "tail": "all" if tail is None else max(0, int(tail))}
        if since is not None:
            self._require("logs_since", "logs since")
            if float(since) > 0:
                kwargs["since"] = float(since)
        if not stdout and not stderr:
            # The engine refuses a request for no stream; the answer is empty.
            await self.inspect(uuid)
            return ""
        data = await self._call(lambda: api.logs(name, stream=False, **kwargs), uuid=uuid)
        return _text(data)

    async def execute(self, uuid: str, argv: list) -> ExecResult:
        self._require("exec", "execute")
        api, name = self._api, runtime_object_name(uuid)
        argv = [str(a) for a in argv]
        timeout = self.config.execute_timeout_s

        def _exec():
            exec_id = api.exec_create(name, argv, stdout=True, stderr=True, tty=False)["Id"]
            # The SDK's own read waits in select() without a timeout, so read the
            # multiplexed stream ourselves against a deadline.
            sock = api.exec_start(exec_id, detach=False, tty=False, socket=True)
            try:
                output = read_multiplexed(sock, time.monotonic() + timeout)
            finally:
                _close_exec_socket(sock)
            code = api.exec_inspect(exec_id).get("ExitCode")
            return code, output

        try:
            code, output = await self._call(_exec, uuid=uuid)
        except errors.RuntimeFailure as e:
            if isinstance(e.__cause__, ExecTimeout):
                # The engine cannot cancel an exec; the process may linger in
                # the container, but the caller and the worker thread are freed.
                raise errors.RuntimeFailure(
                    reason=f"command did not finish within {timeout:g}s") from e.__cause__
            raise
        return ExecResult(exit_code=-1 if code is None else int(code), output=_text(output))

    # -- interactive consoles (zund.console; console_capabilities "console") ---------

    async def console_exec(self, uuid: str, argv: list) -> str:
        """Create (not start) a TTY exec of ``argv`` with stdin open -> its exec id."""
        api, name = self._api, runtime_object_name(uuid)
        argv = [str(a) for a in argv]
        return await self._call(
            lambda: api.exec_create(name, argv, stdin=True, stdout=True, stderr=True,
                                    tty=True)["Id"], uuid=uuid)

    async def console_socket(self, uuid: str, exec_id: str | None = None):
        """The engine's hijacked stream of a console: start ``exec_id`` (a TTY exec),
        or attach to the container's own console -> a socket-like object (raw TTY
        bytes both ways; the caller adopts its descriptor into the reactor and
        closes this object)."""
        api, name = self._api, runtime_object_name(uuid)

        def _open():
            if exec_id is not None:
                return api.exec_start(exec_id, tty=True, socket=True)
            return api.attach_socket(name, params={"stdin": 1, "stdout": 1, "stderr": 1,
                                                   "stream": 1})

        return await self._call(_open, uuid=uuid)

    async def console_resize(self, uuid: str, exec_id: str | None, height: int,
                             width: int) -> None:
        api, name = self._api, runtime_object_name(uuid)
        if exec_id is not None:
            await self._call(lambda: api.exec_resize(exec_id, height=height, width=width),
                             uuid=uuid)
        else:
            await self._call(lambda: api.resize(name, height=height, width=width), uuid=uuid)

    async def console_end(self, exec_id: str, grace_s: float = 2.0) -> bool:
        """End a console exec whose client went away. The engine has no "kill exec"
        and keeps a TTY exec running when its stream closes, so do what a terminal
        hang-up does: SIGHUP its process (the engine reports its host pid; zund runs
        on the engine's host), SIGKILL after ``grace_s``. -> True if it ended."""
        api = self._api

        def _end():
            deadline = time.monotonic() + grace_s
            sig = signal.SIGHUP
            while True:
                info = api.exec_inspect(exec_id)
                pid = int(info.get("Pid") or 0)
                if not info.get("Running") or pid <= 0:
                    return True
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    return True
                except PermissionError:
                    return False
                if time.monotonic() >= deadline:
                    if sig == signal.SIGKILL:
                        return False
                    sig = signal.SIGKILL
                    deadline = time.monotonic() + grace_s
                select.select([], [], [], 0.1)  # poll interval inside the worker thread

        try:
            return bool(await self._call(_end))
        except errors.ZundError:
            return False

    async def top(self, uuid: str, ps_args: str | None = None) -> dict:
        self._require("top", "top")
        api, name = self._api, runtime_object_name(uuid)
        res = await self._call(lambda: api.top(name, ps_args=ps_args or None), uuid=uuid)
        return {"Titles": list(res.get("Titles") or []),
                "Processes": [list(p) for p in res.get("Processes") or []]}

    async def stats(self, uuid: str) -> dict:
        self._require("stats", "stats")
        api, name = self._api, runtime_object_name(uuid)
        raw = await self._call(lambda: api.stats(name, decode=False, stream=False), uuid=uuid)
        return zun_stats(name, raw)

    async def update(self, uuid: str, cpu: float | None, memory_mb: int | None) -> None:
        self._require("update", "update")
        api, name = self._api, runtime_object_name(uuid)
        kwargs: dict[str, Any] = {}
        if cpu is not None:
            kwargs.update(cpu_limits(cpu))
        if memory_mb is not None:
            kwargs.update(memory_limits(memory_mb))
        if not kwargs:
            await self.inspect(uuid)
            return
        await self._call(lambda: api.update_container(name, **kwargs), uuid=uuid)

    async def _path_call(self, fn: Callable[[], Any], uuid: str, path: str) -> Any:
        """A call whose 404 may mean the path, not the container, is missing."""
        try:
            return await self._call(fn, uuid=uuid)
        except errors.RuntimeObjectNotFound as e:
            await self.inspect(uuid)  # raises RuntimeObjectNotFound if the container is gone
            raise errors.ResourceNotFound(
                f"Could not find the file {path} in container {runtime_object_name(uuid)}"
            ) from e.__cause__

    async def get_archive(self, uuid: str, path: str) -> tuple:
        self._require("archive", "get_archive")
        api, name = self._api, runtime_object_name(uuid)

        def _get():
            stream, stat = api.get_archive(name, path)
            return b"".join(stream), dict(stat or {})

        data, stat = await self._path_call(_get, uuid, path)
        return data, {"name": stat.get("name", ""), "size": stat.get("size", 0),
                      "mode": stat.get("mode", 0), "mtime": stat.get("mtime", ""),
                      "linkTarget": stat.get("linkTarget", "")}

    async def put_archive(self, uuid: str, path: str, data: bytes) -> None:
        self._require("archive", "put_archive")
        api, name = self._api, runtime_object_name(uuid)
        await self._path_call(lambda: api.put_archive(name, path, data), uuid, path)

    async def commit(self, uuid: str, repository: str, tag: str | None = None) -> str:
        self._require("commit", "commit")
        api, name = self._api, runtime_object_name(uuid)
        res = await self._call(lambda: api.commit(name, repository=repository, tag=tag or None),
                               uuid=uuid)
        return res["Id"]


class ExecTimeout(Exception):
    """A non-interactive exec ran past ``execute_timeout_s``."""


#: An exec's collected output is truncated beyond this many bytes.
MAX_EXEC_OUTPUT = 16 * 1024 * 1024


def read_multiplexed(sock, deadline: float) -> bytes:
    """Read docker's multiplexed exec stream (8-byte frame headers: stream
    type, 3 zero bytes, big-endian payload size) until EOF or ``deadline``
    (``time.monotonic()``); returns stdout and stderr payloads in arrival order.
    Raises ExecTimeout at the deadline."""
    buf = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ExecTimeout()
        readable, _, _ = select.select([sock], [], [], remaining)
        if not readable:
            raise ExecTimeout()
        chunk = sock.read(65536) if hasattr(sock, "read") else sock.recv(65536)
        if not chunk:
            break
        if len(buf) < MAX_EXEC_OUTPUT + 8:
            buf += chunk
    out = bytearray()
    i = 0
    while i + 8 <= len(buf):
        size = struct.unpack(">I", bytes(buf[i + 4:i + 8]))[0]
        out += buf[i + 8:i + 8 + size]
        i += 8 + size
    return bytes(out[:MAX_EXEC_OUTPUT])


def _close_exec_socket(sock) -> None:
    for obj in (getattr(sock, "_response", None), sock):
        try:
            if obj is not None:
                obj.close()
        except Exception:  # best effort: the connection is being discarded
            pass


def _whole_seconds(timeout_s: float | None) -> int:
    """The engine takes whole seconds; round a fractional timeout up."""
    if timeout_s is None:
        return 10
    return max(0, int(math.ceil(float(timeout_s))))


def _text(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return "" if data is None else str(data)
