"""The fake engine's containers and processes (values plus filesystem access).

A :class:`FakeContainer` is one docker container: its spec, identity, process
state, log and filesystem tree. Its filesystem methods take paths relative to
the working directory (as a shell does) and add the cgroup-v1 limit files under
``/sys/fs/cgroup`` that reflect ``cpu``/``memory_mb``. A :class:`Process` is the
main process or one exec: a shell generator plus what it is blocked on. The
state machine that moves them lives in ``engine.py``.
"""

from __future__ import annotations

import posixpath
from typing import Any

import attrs
from twisted.internet import defer

from zund.runtimes.base import ContainerSpec, RuntimeStatus
from zund.runtimes.fake import filesystem
from zund.runtimes.fake.filesystem import FakeFile
from zund.runtimes.fake.images import FakeImage

#: What the memory cgroup reports for "no limit" (cgroup v1, 64-bit page-aligned max).
UNLIMITED_MEMORY = 9223372036854771712


@attrs.define(eq=False)
class Process:
    """One running program: the container's main process or an exec."""

    gen: Any
    traps: dict
    main: bool
    pending: Any = None          # IDelayedCall of a sleep in progress
    blocked: str | None = None   # "forever" | "stdin" | "sleep" | "paused"
    done: defer.Deferred = attrs.field(factory=defer.Deferred)
    exit_code: int | None = None
    output: list = attrs.field(factory=list)


@attrs.define(eq=False)
class FakeContainer:
    spec: ContainerSpec
    id: str
    name: str
    image: FakeImage
    argv: list
    env: dict
    hostname: str
    workdir: str
    fs: dict
    labels: dict
    created_at: float
    cpu: float | None
    memory_mb: int | None
    status: RuntimeStatus = RuntimeStatus.CREATED
    exit_code: int = 0
    error: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    proc: Process | None = None
    log: list = attrs.field(factory=list)  # [(ts, stream, line)]
    now: Any = None

    # filesystem (paths are relative to workdir when not absolute)
    def abspath(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.workdir, path))

    def read(self, path: str) -> FakeFile | None:
        path = self.abspath(path)
        dynamic = self._cgroup_file(path)
        if dynamic is not None:
            return FakeFile("file", (dynamic + "\n").encode(), 0o644, self.created_at)
        return filesystem.resolve(self.fs, path)

    def _cgroup_file(self, path: str) -> str | None:
        if path == "/sys/fs/cgroup/memory/memory.limit_in_bytes":
            return str(self.memory_mb * 1024 * 1024 if self.memory_mb else UNLIMITED_MEMORY)
        if path == "/sys/fs/cgroup/cpu/cpu.cfs_quota_us":
            return str(max(1000, int(100000 * self.cpu)) if self.cpu else -1)
        if path == "/sys/fs/cgroup/cpu/cpu.cfs_period_us":
            return "100000"
        if path == "/sys/fs/cgroup/cpu/cpu.shares":
            return str(max(2, int(1024 * self.cpu)) if self.cpu else 1024)
        return None

    def listdir(self, path: str) -> list | None:
        return filesystem.listdir(self.fs, self.abspath(path))

    def mkdir(self, path: str, parents: bool) -> bool:
        return filesystem.mkdir(self.fs, self.abspath(path), parents, self.now())

    def write_file(self, path: str, data: bytes, append: bool) -> None:
        filesystem.write_file(self.fs, path, data, append, self.now())

    def remove(self, path: str) -> None:
        self.fs.pop(self.abspath(path), None)
