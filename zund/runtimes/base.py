"""IRuntime: the seam between the compute manager and a container engine.

Every runtime object that zund creates is named ``zun-<uuid>`` and labelled with
``zund.uuid``, ``zund.node`` and ``zund.project`` so reconciliation can find it.

Rules for implementations:
- every method is ``async`` and never blocks the reactor: blocking SDK calls go
  through the injected ``run_blocking`` (a bounded thread pool in production);
- engine errors are translated by type into ``zund.common.errors`` (never by
  matching message text): a missing object is ``RuntimeObjectNotFound``, a
  missing image ``ImageNotFound``, a failed pull ``ImagePullFailed``, anything
  else ``RuntimeFailure``;
- optional operations are declared in ``capabilities``; calling one that is not
  declared raises ``NotSupportedByRuntime``.

The same contract suite (``tests/runtime/contract.py``) runs against every
implementation, so the fake cannot drift from the real engines.
"""

from __future__ import annotations

import datetime
import enum

import attrs
from zope.interface import Attribute, Interface

#: Optional operations a runtime may support.
CAPABILITIES = frozenset(
    {"exec", "archive", "commit", "pause", "top", "stats", "update", "logs_since"}
)

LABEL_UUID = "zund.uuid"
LABEL_NODE = "zund.node"
LABEL_PROJECT = "zund.project"


def runtime_object_name(uuid: str) -> str:
    return "zun-" + uuid


class RuntimeStatus(str, enum.Enum):
    """Engine-level state, docker vocabulary. The manager maps it to Zun statuses."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


@attrs.frozen
class ContainerSpec:
    """Everything a runtime needs to create one container. Units: cpu in vCPUs,
    memory in MiB (None = unlimited)."""

    uuid: str
    image: str
    node: str
    project_id: str
    name: str = ""
    user_id: str = ""
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    cpu: float | None = None
    memory_mb: int | None = None
    environment: dict = attrs.field(factory=dict)
    labels: dict = attrs.field(factory=dict)
    workdir: str | None = None
    hostname: str | None = None
    #: ``{"Name": "no|always|on-failure|unless-stopped", "MaximumRetryCount": int}``
    restart_policy: dict | None = None
    auto_remove: bool = False
    interactive: bool = False
    tty: bool = False
    privileged: bool = False
    image_pull_policy: str = "ifnotpresent"
    exposed_ports: dict = attrs.field(factory=dict)


@attrs.frozen
class RuntimeState:
    """What the engine says about one of our containers."""

    uuid: str
    runtime_id: str
    status: RuntimeStatus
    exit_code: int | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    hostname: str | None = None
    ports: tuple[int, ...] = ()
    error: str | None = None
    node: str | None = None
    project_id: str | None = None


@attrs.frozen
class ExecResult:
    exit_code: int
    output: str


class IRuntime(Interface):
    """A local container engine. ``uuid`` always names a zund container."""

    name = Attribute("Runtime name as used in the API `runtime` field, e.g. 'runc'.")
    capabilities = Attribute("frozenset of CAPABILITIES this runtime supports.")

    async def open() -> None:
        """Connect to the engine. Raises RuntimeUnavailable if it cannot."""

    async def close() -> None:
        """Release engine connections; wait for in-flight calls."""

    async def ensure_image(image: str, pull_policy: str) -> None:
        """Make the image available locally following ``pull_policy``
        (``ifnotpresent`` | ``always`` | ``never``)."""

    async def create(spec: ContainerSpec) -> RuntimeState:
        """Create (not start) the container. The image must be present."""

    async def start(uuid: str) -> None: ...

    async def stop(uuid: str, timeout_s: float) -> None:
        """Graceful stop; kill after ``timeout_s``. Stopping a stopped container is a no-op."""

    async def restart(uuid: str, timeout_s: float) -> None: ...

    async def kill(uuid: str, signal: str | None) -> None: ...

    async def pause(uuid: str) -> None: ...

    async def unpause(uuid: str) -> None: ...

    async def remove(uuid: str, force: bool) -> None:
        """Remove the container. Removing a missing container is a no-op."""

    async def inspect(uuid: str) -> RuntimeState:
        """Raises RuntimeObjectNotFound when the engine has no such container."""

    async def list(node: str) -> list:
        """RuntimeState of every container labelled ``zund.node == node``."""

    async def logs(uuid: str, stdout: bool, stderr: bool, timestamps: bool,
                   tail: int | None, since: float | None) -> str: ...

    async def execute(uuid: str, argv: list) -> ExecResult:
        """Run a command to completion inside a running container (capability ``exec``)."""

    async def top(uuid: str, ps_args: str | None) -> dict:
        """``{"Titles": [...], "Processes": [[...], ...]}`` (capability ``top``)."""

    async def stats(uuid: str) -> dict:
        """Zun's stats dict (capability ``stats``)."""

    async def update(uuid: str, cpu: float | None, memory_mb: int | None) -> None:
        """Change limits of an existing container (capability ``update``)."""

    async def get_archive(uuid: str, path: str) -> tuple:
        """``(tar_bytes, stat_dict)`` (capability ``archive``)."""

    async def put_archive(uuid: str, path: str, data: bytes) -> None: ...

    async def commit(uuid: str, repository: str, tag: str | None) -> str:
        """Snapshot to an image; returns the image id (capability ``commit``)."""
