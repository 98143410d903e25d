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
import signal

import attrs
from zope.interface import Attribute, Interface

from zund.common import errors

#: Optional operations a runtime may support.
CAPABILITIES = frozenset(
    {"exec", "archive", "commit", "pause", "top", "stats", "update", "logs_since",
     "volumes"}
)

#: ``image_pull_policy`` values, canonical spelling.
PULL_POLICIES = ("ifnotpresent", "always", "never")

LABEL_UUID = "zund.uuid"
LABEL_NODE = "zund.node"
LABEL_PROJECT = "zund.project"
#: labels of a volume zund made (capability ``volumes``)
LABEL_VOLUME = "zund.volume"
LABEL_VOLUME_SIZE = "zund.volume.size_gb"


def runtime_object_name(uuid: str) -> str:
    return "zun-" + uuid


def exposed_port_numbers(exposed: dict | None) -> tuple[int, ...]:
    """``{"80/tcp": {}, "53/udp": {}}`` (docker's ExposedPorts) -> ``(53, 80)``."""
    ports = set()
    for key in exposed or {}:
        num = str(key).split("/", 1)[0]
        if num.isdigit():
            ports.add(int(num))
    return tuple(sorted(ports))


def pull_policy(value: str | None) -> str:
    """The policy in its canonical spelling (``IfNotPresent`` -> ``ifnotpresent``);
    None or ``""`` means ``ifnotpresent``. Anything else is InvalidInput."""
    policy = (value or "ifnotpresent").lower()
    if policy not in PULL_POLICIES:
        raise errors.InvalidInput(field="image_pull_policy",
                                  reason=f"must be one of {', '.join(PULL_POLICIES)}")
    return policy


def image_missing(image: str, policy: str) -> errors.ImageNotFound:
    """The error of an image that is not local and may not be pulled: it names the
    image, the pull policy and what to do (issue 10: reasons a user can act on)."""
    return errors.ImageNotFound(
        f"Image {image} could not be found: it is not present on this node and "
        f"image_pull_policy is '{policy}', so it was not pulled (pull it on the node, "
        f"or create with image_pull_policy 'ifnotpresent').",
        image=image, policy=policy)


def image_pull_failed(image: str, policy: str, cause: str) -> errors.ImagePullFailed:
    """The error of a failed pull: the image, why it was pulled (the pull policy)
    and the engine's or registry's cause."""
    why = "not present on this node" if policy == "ifnotpresent" else "pulled on every create"
    return errors.ImagePullFailed(
        f"Failed to pull image {image} (image_pull_policy '{policy}': {why}): {cause}",
        image=image, policy=policy, reason=cause)


def parse_signal(value: str | int | None) -> signal.Signals:
    """Zun's spellings of a signal (``kill``, ``SIGKILL``, ``KILL``, ``9``) as the
    standard :class:`signal.Signals`; ``None`` or ``""`` is SIGKILL, docker's default
    for kill. Every runtime parses signals here, so they accept the same set.

    Raises ``InvalidInput(field="signal")`` for anything that names no signal
    (real-time signals other than SIGRTMIN/SIGRTMAX have no member, so are refused).
    """
    if value is None or str(value).strip() == "":
        return signal.SIGKILL
    text = str(value).strip()
    try:
        if text.isdigit():
            return signal.Signals(int(text))
        name = text.upper()
        return signal.Signals[name if name.startswith("SIG") else "SIG" + name]
    except (KeyError, ValueError) as e:
        raise errors.InvalidInput(field="signal", reason=f"unknown signal {value!r}") from e


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
class Mount:
    """One mount of a container (capability ``volumes``).

    ``kind``: ``volume`` (the engine volume named ``source``, made beforehand with
    ``create_volume``), ``bind`` (the host path ``source``; only an admin's request
    gets here) or ``file`` (``content`` written at ``destination`` before the first
    start: Zun 1.23 file injection)."""

    kind: str
    destination: str
    source: str | None = None
    content: bytes | None = attrs.field(default=None, repr=False)
    read_only: bool = False


@attrs.frozen
class VolumeInfo:
    """A volume as the engine knows it (``labels`` include zund's own)."""

    name: str
    labels: dict = attrs.field(factory=dict)


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
    #: ``Mount`` values, in the request's order (capability ``volumes``)
    mounts: tuple = ()
    #: the engine network mode to use instead of the runtime's configured one
    #: (zund.network: ``container:<sandbox>`` joins the sandbox's namespace)
    network_mode: str | None = None
    #: micro-VM NICs (zund.network.plugger.guest_vif): ``{"tap", "mac", "mtu",
    #: "address" (a.b.c.d/prefix), "gateway"}`` each
    vifs: tuple = ()


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


@attrs.frozen(repr=False)
class RegistryAuth:
    """Credentials for one pull from a private registry (never logged: no repr)."""

    domain: str
    username: str | None
    password: str | None

    def __repr__(self) -> str:
        return f"RegistryAuth(domain={self.domain!r}, username={self.username!r})"


class IRuntime(Interface):
    """A local container engine. ``uuid`` always names a zund container."""

    name = Attribute("Runtime name as used in the API `runtime` field, e.g. 'runc'.")
    capabilities = Attribute("frozenset of CAPABILITIES this runtime supports.")

    async def open() -> None:
        """Connect to the engine. Raises RuntimeUnavailable if it cannot."""

    async def close() -> None:
        """Release engine connections; wait for in-flight calls."""

    async def ensure_image(image: str, pull_policy: str,
                           auth: RegistryAuth | None = None) -> None:
        """Make the image available locally following ``pull_policy``
        (``ifnotpresent`` | ``always`` | ``never``); a pull presents ``auth`` (a
        private registry's credentials) when given. A refused login is
        ImagePullFailed naming the registry."""

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

    async def create_volume(name: str, labels: dict) -> VolumeInfo:
        """Make the named volume, or return it when it exists (capability ``volumes``).
        Its data outlives every container that mounts it, until ``remove_volume``."""

    async def inspect_volume(name: str) -> VolumeInfo:
        """Raises RuntimeObjectNotFound when the engine has no such volume."""

    async def remove_volume(name: str) -> None:
        """Remove the volume and its data; a missing volume is a no-op."""


class MissingRuntime:
    """Stands in for a runtime whose Python package is not installed, so building
    the node never fails on an import: its ``open`` raises ``RuntimeUnavailable``
    naming the package extra, and the node drops it like an unreachable engine.
    Only ``open`` and ``close`` are ever called (a dropped runtime gets no work)."""

    capabilities = frozenset()

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason

    async def open(self) -> None:
        raise errors.RuntimeUnavailable(runtime=self.name, reason=self.reason)

    async def close(self) -> None:
        return None
