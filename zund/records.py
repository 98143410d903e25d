"""The values that describe containers and their actions (no I/O).

Every layer uses these: the store persists them, the manager changes them, the
peer wire carries them, the API renders them. Field names follow Zun's objects.
"""

from __future__ import annotations

import datetime
from typing import Any

import attrs


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def fmt_time(t: datetime.datetime | None) -> str | None:
    return None if t is None else t.isoformat(sep=" ", timespec="microseconds")


def parse_time(s: str | None) -> datetime.datetime | None:
    return None if s is None else datetime.datetime.fromisoformat(s)


@attrs.define
class ContainerRecord:
    """One container as this node knows it. Field names follow Zun's object."""

    uuid: str
    project_id: str
    user_id: str
    image: str
    name: str | None = None
    id: int | None = None  # insertion order, Zun's default sort key
    status: str = "Creating"
    status_reason: str | None = None
    status_detail: str | None = None
    task_state: str | None = None
    command: list | None = None
    entrypoint: list | None = None
    cpu: float | None = None
    memory: int | None = None  # MiB
    disk: int | None = None  # GiB
    cpu_policy: str = "shared"
    workdir: str | None = None
    hostname: str | None = None
    environment: dict = attrs.field(factory=dict)
    labels: dict = attrs.field(factory=dict)
    restart_policy: dict | None = None
    image_driver: str = "docker"
    image_pull_policy: str | None = None
    interactive: bool = False
    tty: bool = False
    auto_remove: bool = False
    auto_heal: bool = False
    privileged: bool = False
    runtime: str | None = None
    host: str | None = None
    availability_zone: str | None = None
    exposed_ports: dict = attrs.field(factory=dict)
    ports: list = attrs.field(factory=list)
    addresses: dict = attrs.field(factory=dict)
    security_groups: list = attrs.field(factory=list)
    healthcheck: dict = attrs.field(factory=dict)
    hints: dict = attrs.field(factory=dict)
    registry_id: str | None = None
    container_id: str | None = None  # runtime id, never returned
    exit_code: int | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    created_at: datetime.datetime = attrs.field(factory=utcnow)
    updated_at: datetime.datetime | None = None
    #: increases with every change of the record in its owner's store (the store
    #: sets it); replica copies and tombstones are ordered by it
    generation: int = 0
    #: the create asked to start it (``run=true``): start-up recovery resumes an
    #: interrupted create up to there (added by issue 11 item 1)
    run_on_create: bool = False
    #: the create's ``mounts`` as validated (``zund.compute.volumes`` reads them;
    #: never shown by the API): kept so that a rebuild and a resumed create mount the
    #: same volumes and inject the same files (added by issue 12 item 5)
    mounts: list = attrs.field(factory=list)

    def copy(self, **changes) -> "ContainerRecord":
        return attrs.evolve(self, **changes)

    @property
    def placed(self) -> bool:
        """Whether a node hosts this container. False for a create nobody could
        place (Zun's NoValidHost): its entry node keeps the Error record for the
        user to see, but it allocates nothing and has no runtime object anywhere."""
        return self.host is not None


@attrs.define
class ActionRecord:
    container_uuid: str
    action: str
    request_id: str
    user_id: str | None
    project_id: str | None
    start_time: datetime.datetime
    finish_time: datetime.datetime | None = None
    message: str | None = None
    id: int | None = None
    events: list = attrs.field(factory=list)


@attrs.define
class ActionEvent:
    event: str
    start_time: datetime.datetime
    finish_time: datetime.datetime | None = None
    result: str | None = None
    traceback: str | None = None
    details: Any = None


@attrs.frozen
class CreateRequest:
    """What one create asks for: validated, every default applied, the name chosen.

    Built exactly once, by the API (``zund.api.schemas.validate_create`` output plus
    the generated name); every later step (placement, the peer commit, the manager,
    an unplaceable record) reads it and never re-applies a default. It holds only the
    user's fields: protocol values (the container uuid, the placement decision) travel
    beside it in typed messages, never inside it.
    """

    image: str
    name: str
    cpu: float
    memory: int  # MiB
    disk: int | None = None  # GiB
    command: tuple | None = None
    entrypoint: tuple | None = None
    cpu_policy: str = "shared"
    workdir: str | None = None
    hostname: str | None = None
    environment: dict = attrs.field(factory=dict)
    labels: dict = attrs.field(factory=dict)
    restart_policy: dict | None = None
    image_driver: str = "docker"
    image_pull_policy: str | None = None
    interactive: bool = False
    tty: bool = False
    auto_remove: bool = False
    auto_heal: bool = False
    privileged: bool = False
    runtime: str | None = None  # None: the node's default runtime
    availability_zone: str | None = None
    host: str | None = None  # a requested destination (admin only)
    exposed_ports: dict = attrs.field(factory=dict)
    healthcheck: dict = attrs.field(factory=dict)
    hints: dict = attrs.field(factory=dict)
    run: bool = False
    #: the private registry (uuid, resolved in the caller's project by the API) the
    #: image is pulled from; its credentials are fetched by the owner at pull time
    registry_id: str | None = None
    #: validated mounts (``zund.api.schemas``): ``{"type": "volume", "source": name or
    #: None, "destination", "size": GiB or None}``, ``{"type": "bind", "destination",
    #: "content": base64}`` (file injection) or ``{"type": "bind", "source": host
    #: path, "destination"}`` (admin only)
    mounts: tuple = ()
    #: Zun ``nets`` (1.2) resolved by the API: ``{"network": net id, "v4-fixed-ip",
    #: "port"}``; allocated by the owner node (zund.network); () = no network
    nets: tuple = ()
    #: security group names (zund.network), applied to every port
    security_groups: tuple = ()

    @classmethod
    def from_dict(cls, values: dict) -> "CreateRequest":
        """From a validated request dict (and the wire); unknown keys are refused."""
        known = {a.name for a in attrs.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"unknown create fields: {', '.join(unknown)}")
        values = dict(values)
        for key in ("command", "entrypoint"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        if values.get("mounts") is not None:
            values["mounts"] = tuple(dict(m) for m in values["mounts"])
        if values.get("nets") is not None:
            values["nets"] = tuple(dict(n) for n in values["nets"])
        if values.get("security_groups") is not None:
            values["security_groups"] = tuple(str(g) for g in values["security_groups"])
        return cls(**values)

    def to_dict(self) -> dict:
        out = attrs.asdict(self, recurse=False)
        for key in ("command", "entrypoint"):
            if out[key] is not None:
                out[key] = list(out[key])
        out["mounts"] = [dict(m) for m in out["mounts"]]
        out["nets"] = [dict(n) for n in out["nets"]]
        out["security_groups"] = list(out["security_groups"])
        return out


def new_record(uuid: str, project_id: str, user_id: str, request: CreateRequest, *,
               host: str | None, runtime: str, availability_zone: str,
               status: str, task_state: str | None = None,
               status_reason: str | None = None) -> ContainerRecord:
    """The one way a create request becomes a record (placed or unplaceable)."""
    return ContainerRecord(
        uuid=uuid, project_id=project_id, user_id=user_id, image=request.image,
        name=request.name, status=status, status_reason=status_reason,
        task_state=task_state,
        command=list(request.command) if request.command is not None else None,
        entrypoint=list(request.entrypoint) if request.entrypoint is not None else None,
        cpu=request.cpu, memory=request.memory, disk=request.disk,
        cpu_policy=request.cpu_policy, workdir=request.workdir, hostname=request.hostname,
        environment=dict(request.environment), labels=dict(request.labels),
        restart_policy=request.restart_policy, image_driver=request.image_driver,
        image_pull_policy=request.image_pull_policy, interactive=request.interactive,
        tty=request.tty, auto_remove=request.auto_remove, auto_heal=request.auto_heal,
        privileged=request.privileged, runtime=runtime, host=host,
        availability_zone=availability_zone, exposed_ports=dict(request.exposed_ports),
        healthcheck=dict(request.healthcheck), hints=dict(request.hints),
        run_on_create=request.run, registry_id=request.registry_id,
        mounts=[dict(m) for m in request.mounts])
