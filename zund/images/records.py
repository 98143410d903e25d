"""One image known to one node (Zun's ``Image`` object, plus the pull's outcome)."""

from __future__ import annotations

import datetime

import attrs

from zund.records import fmt_time, parse_time

#: ``status`` of an image record: the pull is running, it worked, it failed
PULLING = "Pulling"
READY = "Ready"
ERROR = "Error"

#: image drivers a record or a create may name
DRIVERS = ("docker", "glance")


@attrs.define
class ImageRecord:
    """An image pulled (docker) or downloaded and loaded (glance) on ``host``.

    ``uuid`` is the API id; ``image_id`` the engine's id once present; ``size`` in
    bytes; ``status`` Pulling | Ready | Error with ``status_reason`` on Error
    (zund's addition: Zun's record shows only ``image_id`` appearing)."""

    uuid: str
    repo: str
    tag: str
    host: str
    project_id: str
    driver: str = "docker"
    image_id: str | None = None
    size: int | None = None
    status: str = PULLING
    status_reason: str | None = None
    created_at: datetime.datetime | None = None
    updated_at: datetime.datetime | None = None

    @property
    def reference(self) -> str:
        """``repo:tag`` (``repo@digest`` for a digest)."""
        sep = "@" if self.tag.startswith("sha256:") else ":"
        return f"{self.repo}{sep}{self.tag}"

    def to_dict(self) -> dict:
        d = attrs.asdict(self)
        d["created_at"] = fmt_time(self.created_at) if self.created_at else None
        d["updated_at"] = fmt_time(self.updated_at) if self.updated_at else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ImageRecord":
        """TypeError/ValueError on anything malformed."""
        if not isinstance(d, dict):
            raise TypeError("image: expected a map")
        names = {a.name for a in attrs.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"image: unknown fields {sorted(unknown)}")
        values = dict(d)
        for key in ("created_at", "updated_at"):
            if values.get(key) is not None:
                values[key] = parse_time(values[key])
        for key in ("uuid", "repo", "tag", "host", "project_id"):
            if not isinstance(values.get(key), str):
                raise TypeError(f"image.{key}: expected a string")
        return cls(**values)


def split_reference(image: str) -> tuple[str, str]:
    """``repo[:tag|@digest]`` -> ``(repo, tag)``, tag ``latest`` by default (a
    registry port is not a tag: ``127.0.0.1:5000/app`` has tag ``latest``)."""
    if "@" in image:
        repo, _, digest = image.partition("@")
        return repo, digest
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repo, _, tag = image.rpartition(":")
        return repo, tag
    return image, "latest"
