"""Container volumes and injected files (Zun's ``mounts``, microversions 1.11 and 1.23).

A record's ``mounts`` (validated by ``zund.api.schemas.validate_mounts``) become the
runtime's ``Mount`` values here, and the volumes they name are made and removed
through an ``IVolumeDriver``. The one driver today, ``LocalVolumes``, keeps volumes
in the node's container engine (Docker volumes; the fake engine's in tests):

- a volume belongs to one project on one node: its engine name is derived from the
  project and the user's name for it, so another project's request can never name
  it (a foreign volume is unreachable by construction, and a label check refuses
  one that is found anyway);
- a named volume (``source=data1``) is made on first use and kept after its
  container is deleted, so the project's next container on that node mounts the
  same data; a volume given by size only is made for its container and removed
  with it (Zun's ``auto_remove`` rule for volumes it created);
- ``size`` is recorded on the volume (label ``zund.volume.size_gb``); the engine's
  ``local`` driver does not enforce it;
- an injected file (``type=bind``) is written into the container before its first
  start; the record keeps the content, so a rebuild injects it again.

Volumes outlive the runtime object, so stop/start/reboot and rebuild (which
removes the runtime object and makes a new one with the same uuid) keep the data.

A Cinder driver would implement the same interface: ``prepare`` would find or
create the Cinder volume (keystoneauth session, project-scoped), attach it to this
host through os-brick (``connector.connect_volume`` with the connection info from
``os-initialize_connection``), format it on first use and return a ``bind`` mount
of the attached device's mount point; ``release`` would unmount, disconnect,
``os-terminate_connection``/detach and delete the volumes it created. It needs the
node's Cinder credentials in config, a root helper for os-brick, and placement
that follows the volume's availability zone instead of the node.
"""

from __future__ import annotations

import base64
import hashlib

from twisted.logger import Logger
from zope.interface import Interface, implementer

from zund.common import errors
from zund.records import ContainerRecord
from zund.runtimes.base import LABEL_NODE, LABEL_PROJECT, LABEL_VOLUME, LABEL_VOLUME_SIZE, Mount

log = Logger()

#: label of a volume that goes away with the container that made it
LABEL_VOLUME_OWNER = "zund.volume.container"


def project_tag(project_id: str) -> str:
    """A short engine-safe tag of a project id (project ids may hold any characters)."""
    return hashlib.sha256(project_id.encode()).hexdigest()[:16]


def volume_name(project_id: str, name: str) -> str:
    """The engine name of the project's named volume ``name``."""
    return f"zund-{project_tag(project_id)}-{name}"


def anonymous_volume_name(uuid: str, index: int) -> str:
    """The engine name of the ``index``-th size-only volume of container ``uuid``."""
    return f"zund-{uuid}-{index}"


def engine_volume(rec: ContainerRecord, index: int, mount: dict) -> str:
    if mount.get("source"):
        return volume_name(rec.project_id, mount["source"])
    return anonymous_volume_name(rec.uuid, index)


def mounts_of(rec: ContainerRecord) -> tuple:
    """The runtime ``Mount`` values of ``rec`` (pure)."""
    out = []
    for i, m in enumerate(rec.mounts or ()):
        if m["type"] == "volume":
            out.append(Mount("volume", m["destination"], engine_volume(rec, i, m)))
        elif m.get("content") is not None:
            out.append(Mount("file", m["destination"],
                             content=base64.b64decode(m["content"])))
        else:
            out.append(Mount("bind", m["destination"], m["source"]))
    return tuple(out)


def volumes_of(rec: ContainerRecord) -> list[tuple[str, dict, bool]]:
    """``(engine name, labels, removed with the container)`` of every volume of ``rec``."""
    out = []
    for i, m in enumerate(rec.mounts or ()):
        if m["type"] != "volume":
            continue
        labels = {LABEL_PROJECT: rec.project_id, LABEL_VOLUME: m.get("source") or "",
                  LABEL_NODE: rec.host or ""}
        if m.get("size") is not None:
            labels[LABEL_VOLUME_SIZE] = str(m["size"])
        auto = not m.get("source")
        if auto:
            labels[LABEL_VOLUME_OWNER] = rec.uuid
        out.append((engine_volume(rec, i, m), labels, auto))
    return out


def named_volumes(mounts) -> list[str]:
    """The volume names a create request reuses or makes (placement hints)."""
    return sorted({m["source"] for m in mounts or ()
                   if m.get("type") == "volume" and m.get("source")})


class IVolumeDriver(Interface):
    """Where a container's volumes live. Called by the lifecycle only, under the
    container's lock; ``rt`` is the record's runtime."""

    async def prepare(rt, rec: ContainerRecord) -> tuple:
        """Make (or find) every volume of ``rec`` and answer the runtime ``Mount``
        values to create the container with. A volume of another project is
        ``PolicyNotAuthorized``; a runtime without volumes ``NotSupportedByRuntime``."""

    async def release(rt, rec: ContainerRecord) -> None:
        """The container is gone: remove the volumes that go away with it."""

    async def holds(rt, project_id: str, names: list) -> list:
        """Which of the project's named volumes exist here (placement preference)."""


@implementer(IVolumeDriver)
class LocalVolumes:
    """Volumes in the node's container engine (capability ``volumes``)."""

    async def prepare(self, rt, rec: ContainerRecord) -> tuple:
        mounts = mounts_of(rec)
        if not mounts:
            return mounts
        needs_engine = any(m.kind in ("volume", "bind") for m in mounts)
        if needs_engine and "volumes" not in rt.capabilities:
            raise errors.NotSupportedByRuntime(action="mounts", runtime=rt.name)
        for name, labels, _auto in volumes_of(rec):
            try:
                found = await rt.inspect_volume(name)
            except errors.RuntimeObjectNotFound:
                found = await rt.create_volume(name, labels)
                log.info("compute.volume.created name={name} uuid={uuid}", name=name,
                         uuid=rec.uuid)
            owner = found.labels.get(LABEL_PROJECT)
            if owner != rec.project_id:
                raise errors.PolicyNotAuthorized(
                    f"mounts: volume {labels[LABEL_VOLUME] or name} belongs to another "
                    "project.", action="mount a foreign volume")
        return mounts

    async def release(self, rt, rec: ContainerRecord) -> None:
        if "volumes" not in rt.capabilities:
            return
        for name, _labels, auto in volumes_of(rec):
            if auto:
                await rt.remove_volume(name)
                log.info("compute.volume.removed name={name} uuid={uuid}", name=name,
                         uuid=rec.uuid)

    async def holds(self, rt, project_id: str, names: list) -> list:
        if "volumes" not in rt.capabilities:
            return []
        held = []
        for name in names:
            try:
                found = await rt.inspect_volume(volume_name(project_id, name))
            except errors.RuntimeObjectNotFound:
                continue
            if found.labels.get(LABEL_PROJECT) == project_id:
                held.append(name)
        return held
