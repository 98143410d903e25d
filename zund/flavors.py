"""The flavor value (a named size for the compute API) and its wire form. Pure.

Two sources: the nodes' configuration (``[nova_api] flavors``/``flavors_file``,
read-only defaults, ``version`` None) and flavors an administrator created
through the compute API, kept replicated by ``zund.cluster.flavors`` with a
``version`` (``(seconds, node)``) that orders copies; a deletion is a tombstone
of a newer version. Private flavors (``is_public`` false) are seen by admins and
the projects in ``projects``.
"""

from __future__ import annotations

import re

import attrs

#: the extra spec that selects the runtime of a server booted with the flavor
RUNTIME_SPEC = "zund:runtime"
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,254}$")
#: bounds on one flavor's extra specs and access list (wire and API)
MAX_EXTRA_SPECS = 64
MAX_SPEC_LEN = 255
MAX_PROJECTS = 256


@attrs.frozen
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int  # MiB
    disk: int  # GiB; 0 = the runtime's default
    extra_specs: dict = attrs.field(factory=dict)
    description: str | None = None
    is_public: bool = True
    #: projects that may use a private flavor
    projects: tuple = ()
    #: (seconds, node) of a flavor made through the API; None: from configuration
    version: tuple | None = None
    deleted: bool = False

    @property
    def runtime(self) -> str | None:
        return self.extra_specs.get(RUNTIME_SPEC)

    @property
    def from_config(self) -> bool:
        return self.version is None

    def visible_to(self, project_id: str | None, admin: bool) -> bool:
        return self.is_public or admin or project_id in self.projects

    def to_wire(self) -> dict:
        return {"id": self.id, "name": self.name, "vcpus": self.vcpus, "ram": self.ram,
                "disk": self.disk, "extra_specs": dict(self.extra_specs),
                "description": self.description, "is_public": self.is_public,
                "projects": list(self.projects),
                "version": None if self.version is None else [float(self.version[0]),
                                                              str(self.version[1])],
                "deleted": self.deleted}

    @classmethod
    def from_wire(cls, d) -> "Flavor":
        """Refuses anything malformed with ValueError (a peer's or a store's bad copy)."""
        if not isinstance(d, dict):
            raise ValueError("flavor: expected a map")
        for name in ("id", "name"):
            if not isinstance(d.get(name), str) or not ID_RE.match(d[name]):
                raise ValueError(f"flavor.{name}: expected 1-255 of [A-Za-z0-9_.:-]")
        for name in ("vcpus", "ram", "disk"):
            value = d.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"flavor.{name}: expected an integer >= 0")
        specs = d.get("extra_specs") or {}
        if not isinstance(specs, dict) or len(specs) > MAX_EXTRA_SPECS or any(
                not isinstance(k, str) or not isinstance(val, str) or not k
                or len(k) > MAX_SPEC_LEN or len(val) > MAX_SPEC_LEN
                for k, val in specs.items()):
            raise ValueError("flavor.extra_specs: expected a bounded map of strings")
        description = d.get("description")
        if description is not None and (not isinstance(description, str)
                                        or len(description) > 65535):
            raise ValueError("flavor.description: expected a string")
        projects = d.get("projects") or []
        if not isinstance(projects, (list, tuple)) or len(projects) > MAX_PROJECTS or any(
                not isinstance(p, str) or not p or len(p) > 255 for p in projects):
            raise ValueError("flavor.projects: expected a bounded list of strings")
        version = d.get("version")
        if version is not None and (
                not isinstance(version, (list, tuple)) or len(version) != 2
                or not isinstance(version[0], (int, float)) or isinstance(version[0], bool)
                or not isinstance(version[1], str)):
            raise ValueError("flavor.version: expected [seconds, node]")
        for name in ("is_public", "deleted"):
            if not isinstance(d.get(name, name == "is_public"), bool):
                raise ValueError(f"flavor.{name}: expected a bool")
        return cls(id=d["id"], name=d["name"], vcpus=d["vcpus"], ram=d["ram"],
                   disk=d["disk"], extra_specs=dict(specs), description=description,
                   is_public=d.get("is_public", True), projects=tuple(projects),
                   version=None if version is None else (float(version[0]), version[1]),
                   deleted=d.get("deleted", False))
