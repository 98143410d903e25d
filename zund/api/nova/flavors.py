"""Flavors: named sizes from configuration (parsing, no I/O but the optional
flavors file read by ``flavors_from_conf``); the value is ``zund.flavors.Flavor``.
Flavors created through the API live in ``zund.cluster.flavors``.

A flavor's id is its name unless the file gives one, so every node configured
alike serves the same flavors without any shared state. A server's flavor is
recovered from its container's cpu/memory/disk/runtime (the first configured
flavor that matches, else a synthetic ``zund-<cpu>-<ram>-<disk>`` one), so
containers made through the Zun API have a flavor too.
"""

from __future__ import annotations

import json

from zund.flavors import ID_RE, RUNTIME_SPEC, Flavor  # noqa: F401  (re-exported)

_ID_RE = ID_RE


class FlavorConfigError(ValueError):
    """A flavor in the configuration is malformed (the node refuses to start)."""


def parse_flavor(text: str) -> Flavor:
    """``NAME:VCPUS:RAM_MB:DISK_GB[:KEY=VALUE[;KEY=VALUE]]``. Extra spec keys may
    contain ``:`` (``zund:runtime``), so the specs are everything after the 4th."""
    parts = text.strip().split(":", 4)
    if len(parts) < 4:
        raise FlavorConfigError(f"flavor {text!r}: want NAME:VCPUS:RAM_MB:DISK_GB[:SPECS]")
    name = parts[0]
    specs = {}
    if len(parts) == 5 and parts[4]:
        for item in parts[4].split(";"):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise FlavorConfigError(f"flavor {name!r}: extra spec {item!r} is not KEY=VALUE")
            specs[key] = value
    return _make({"name": name, "vcpus": parts[1], "ram": parts[2], "disk": parts[3],
                  "extra_specs": specs})


def _make(d: dict) -> Flavor:
    if not isinstance(d, dict):
        raise FlavorConfigError(f"flavor {d!r} is not an object")
    name = d.get("name")
    if not isinstance(name, str) or not _ID_RE.match(name):
        raise FlavorConfigError(f"flavor name {name!r} is not 1-255 of [A-Za-z0-9_.:-]")
    fid = str(d.get("id", name))
    if not _ID_RE.match(fid):
        raise FlavorConfigError(f"flavor {name}: id {fid!r} is not 1-255 of [A-Za-z0-9_.:-]")
    try:
        vcpus, ram, disk = int(d["vcpus"]), int(d["ram"]), int(d.get("disk", 0))
    except (KeyError, TypeError, ValueError) as e:
        raise FlavorConfigError(f"flavor {name}: vcpus, ram and disk must be integers") from e
    if vcpus < 1 or ram < 1 or disk < 0:
        raise FlavorConfigError(f"flavor {name}: vcpus >= 1, ram >= 1, disk >= 0")
    specs = d.get("extra_specs") or {}
    if not isinstance(specs, dict):
        raise FlavorConfigError(f"flavor {name}: extra_specs must be an object")
    return Flavor(id=fid, name=name, vcpus=vcpus, ram=ram, disk=disk,
                  extra_specs={str(k): str(v) for k, v in specs.items()},
                  description=d.get("description"))


def load_flavors(entries: list[str], file_text: str | None = None) -> tuple[Flavor, ...]:
    """The configured flavors in order; a file entry replaces a list entry of the
    same name. Duplicate ids raise FlavorConfigError."""
    by_name: dict[str, Flavor] = {}
    for text in entries:
        if text.strip():
            f = parse_flavor(text)
            by_name[f.name] = f
    if file_text:
        try:
            items = json.loads(file_text)
        except ValueError as e:
            raise FlavorConfigError(f"flavors_file is not JSON: {e}") from e
        if not isinstance(items, list):
            raise FlavorConfigError("flavors_file must hold a JSON list")
        for item in items:
            f = _make(item)
            by_name[f.name] = f
    ids = [f.id for f in by_name.values()]
    if len(set(ids)) != len(ids):
        raise FlavorConfigError(f"duplicate flavor ids in {ids}")
    return tuple(by_name.values())


def flavors_from_conf(conf) -> tuple[Flavor, ...]:
    path = conf.nova_api.flavors_file
    text = None
    if path:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    return load_flavors(list(conf.nova_api.flavors), text)


def find_flavor(flavors, ref: str) -> Flavor | None:
    """By id, then by name (a ``flavorRef`` may also be a URL ending in the id)."""
    ref = ref.rstrip("/").rsplit("/", 1)[-1]
    for f in flavors:
        if f.id == ref:
            return f
    for f in flavors:
        if f.name == ref:
            return f
    return None


def flavor_of(flavors, cpu, memory, disk, runtime) -> Flavor:
    """The flavor a container of this size matches, or a synthetic one."""
    vcpus = max(1, round(float(cpu or 1)))
    ram = int(memory or 0)
    for f in flavors:
        if float(f.vcpus) == float(cpu or 0) and f.ram == ram and (f.disk or None) == disk \
                and (f.runtime is None or f.runtime == runtime):
            return f
    fid = f"zund-{cpu}-{ram}-{disk or 0}"
    return Flavor(id=fid, name=fid, vcpus=vcpus, ram=ram, disk=int(disk or 0),
                  extra_specs={RUNTIME_SPEC: runtime} if runtime else {})
