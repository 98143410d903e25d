"""Input validation and normalisation for the Zun v1 API. Pure: no I/O.

The create body is checked with a JSON schema (``additionalProperties: false``)
and then normalised field by field (zun-api.md §6.1): numbers that arrive as
strings become numbers, memory is MiB, booleans may be strings. Every failure is
``errors.InvalidInput`` naming the field, which the API answers with a 400.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import datetime
import math
import re
import shlex
from typing import Any, Iterable, Mapping

import attrs

from zund.api.microversions import APIVersion, v
from zund.common import errors

_TRUE = frozenset({"true", "1", "yes", "on", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "off", "n", "f"})

NAME_RE = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$"
_DIGITS_RE = r"^[0-9]+$"
_NUMERIC_RE = r"^[0-9]*(\.[0-9]+)?$"

#: the widest integer every consumer of API input holds (SQLite INTEGER, msgpack,
#: Docker's int64 fields): wider ones are refused here, never passed on
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1
#: deeper JSON nesting is refused (no field of the Zun API nests past a few levels)
MAX_JSON_DEPTH = 32
#: retry counts and healthcheck seconds: Docker keeps durations as int64 nanoseconds
MAX_COUNT = 2 ** 31 - 1


@attrs.frozen
class Limits:
    """Resource bounds and defaults (``[DEFAULT]`` minimum_*/maximum_*/default_*)."""

    min_cpu: float = 0.1
    max_cpu: float = 16.0
    min_memory_mb: int = 4
    max_memory_mb: int = 8192
    min_disk_gb: int = 1
    max_disk_gb: int = 160
    default_cpu: float = 1.0
    default_memory_mb: int = 512


def invalid(field: str, reason: str) -> errors.InvalidInput:
    return errors.InvalidInput(field=field, reason=reason)


# -- any decoded JSON value ------------------------------------------------------

def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _check_text(text: str, field: str, what: str) -> None:
    if "\x00" in text:
        raise invalid(field, f"{what} contains a NUL character.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        # a lone UTF-16 surrogate ("\ud800" in JSON): not text, and neither
        # SQLite, msgpack nor Docker can carry it
        raise invalid(field, f"{what} is not valid Unicode (lone surrogate at "
                             f"position {e.start}).") from e


def check_storable(value: Any, field: str = "") -> None:
    """Refuse, naming the field, what no store or peer of zund can carry: integers
    outside int64, non-finite numbers, strings and keys that are not valid Unicode
    (lone surrogates) or hold NUL, nesting deeper than :data:`MAX_JSON_DEPTH`.

    Runs on every decoded request body before any schema (STYLE: hostile input is
    refused, never raised into the reactor); iterative, so depth cannot exhaust
    the stack. ``field`` is the dotted path of ``value`` ("" for the whole body).
    """
    stack = [(value, field, 0)]
    while stack:
        item, path, depth = stack.pop()
        name = path or "body"
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise invalid(name, "the integer does not fit in 64 bits.")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise invalid(name, f"{item!r} is not a finite number.")
        elif isinstance(item, str):
            _check_text(item, name, "the value")
        elif isinstance(item, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise invalid(name, f"nested deeper than {MAX_JSON_DEPTH} levels.")
            if isinstance(item, dict):
                for key, sub in item.items():
                    if not isinstance(key, str):
                        raise invalid(name, f"the key {key!r} is not a string.")
                    _check_text(key, name, "a key")
                    stack.append((sub, _join(path, key), depth + 1))
            else:
                stack.extend((sub, f"{name}[{i}]", depth + 1) for i, sub in enumerate(item))
        else:
            raise invalid(name, f"a {type(item).__name__} is not a JSON value.")


# -- scalars -------------------------------------------------------------------

def parse_bool(value: Any, field: str) -> bool:
    """A JSON bool or one of true/false/1/0/yes/no/on/off (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    raise invalid(field, f"{value!r} is not a valid boolean value.")


def optional_bool(params: Mapping, field: str, default: bool) -> bool:
    value = params.get(field)
    if value is None or value == "None":
        return default
    return parse_bool(value, field)


def not_none(value: Any) -> Any:
    """The client sends the literal string ``None`` for "not given"."""
    return None if value is None or value == "None" or value == "" else value


def parse_int(value: Any, field: str, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """An int or digits string within [minimum, maximum], and always within int64."""
    if isinstance(value, bool):
        raise invalid(field, f"{value!r} is not an integer.")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,40}", value.strip()):
        n = int(value.strip())
    else:
        raise invalid(field, f"{value!r} is not an integer.")
    minimum = INT64_MIN if minimum is None else max(minimum, INT64_MIN)
    maximum = INT64_MAX if maximum is None else min(maximum, INT64_MAX)
    if n < minimum:
        raise invalid(field, f"{n} is less than the minimum of {minimum}.")
    if n > maximum:
        raise invalid(field, f"{n} is greater than the maximum of {maximum}.")
    return n


def parse_cpu(value: Any, limits: Limits, field: str = "cpu") -> float:
    """A number or numeric string within [min_cpu, max_cpu] -> float."""
    if isinstance(value, bool):
        raise invalid(field, f"{value!r} is not a number.")
    if isinstance(value, (int, float)):
        cpu = float(value)
    elif isinstance(value, str) and value.strip() and re.fullmatch(_NUMERIC_RE, value.strip()):
        cpu = float(value.strip())
    else:
        raise invalid(field, f"{value!r} is not a number.")
    if not limits.min_cpu <= cpu <= limits.max_cpu:
        raise invalid(field, f"{value} must be between {limits.min_cpu} and {limits.max_cpu}.")
    return cpu


def parse_memory(value: Any, limits: Limits, field: str = "memory") -> int:
    """An int or digits-only string of MiB (units such as "512M" are refused)."""
    if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and re.fullmatch(_DIGITS_RE, value)
                                       and len(value) <= 40)):
        raise invalid(field, f"{value!r} must be an integer number of MiB, without units.")
    mem = int(value)
    if not limits.min_memory_mb <= mem <= limits.max_memory_mb:
        raise invalid(field, f"{mem} MiB must be between {limits.min_memory_mb} and "
                             f"{limits.max_memory_mb} MiB.")
    return mem


def parse_disk(value: Any, limits: Limits, field: str = "disk") -> int:
    if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and re.fullmatch(_DIGITS_RE, value)
                                       and len(value) <= 40)):
        raise invalid(field, f"{value!r} must be an integer number of GiB.")
    disk = int(value)
    if not limits.min_disk_gb <= disk <= limits.max_disk_gb:
        raise invalid(field, f"{disk} GiB must be between {limits.min_disk_gb} and "
                             f"{limits.max_disk_gb} GiB.")
    return disk


def parse_tail(value: Any) -> int | None:
    """``all`` (or not given) -> None; otherwise a non-negative int."""
    value = not_none(value)
    if value is None or (isinstance(value, str) and value.lower() == "all"):
        return None
    return parse_int(value, "tail", minimum=0)


def parse_since(value: Any) -> float | None:
    """Epoch seconds, or ``YYYY-MM-DD HH:MM:SS[,mmm]`` (UTC) -> epoch float."""
    value = not_none(value)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return float(text)
    for fmt in ("%Y-%m-%d %H:%M:%S,%f", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            t = datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
        return calendar.timegm(t.timetuple()) + t.microsecond / 1e6
    raise invalid("since", f"{value!r} is neither an epoch time nor YYYY-MM-DD HH:MM:SS,mmm.")


def split_command(value: Any, field: str = "command") -> list[str]:
    """A shell-style string (``"sh" "-c" "echo hi"``) -> argv."""
    if not isinstance(value, str):
        raise invalid(field, f"{value!r} is not a string.")
    try:
        argv = shlex.split(value)
    except ValueError as e:
        raise invalid(field, f"cannot split {value!r}: {e}.") from e
    if not argv:
        raise invalid(field, "the command is empty.")
    return argv


def check_unknown(params: Iterable[str], allowed: Iterable[str]) -> None:
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise errors.UnknownParameters(names=", ".join(unknown))


# -- lists -----------------------------------------------------------------------

#: exact-match filters of GET /v1/containers (zun-api.md §4)
CONTAINER_FILTERS = ("name", "image", "project_id", "user_id", "memory", "host",
                     "task_state", "status", "auto_remove")
CONTAINER_SORT_KEYS = frozenset({
    "id", "uuid", "name", "image", "status", "status_reason", "task_state", "cpu",
    "memory", "disk", "host", "project_id", "user_id", "hostname", "workdir",
    "image_driver", "auto_remove", "auto_heal", "interactive", "tty", "runtime",
    "created_at", "updated_at", "cpu_policy", "privileged", "availability_zone",
})
HOST_SORT_KEYS = frozenset({
    "uuid", "hostname", "mem_total", "mem_used", "cpus", "cpu_used", "disk_total",
    "disk_used", "total_containers", "architecture", "os_type", "os", "kernel_version",
})
_PAGING = ("limit", "marker", "sort_key", "sort_dir")


@attrs.frozen
class ListQuery:
    limit: int
    marker: str | None = None
    sort_key: str = "id"
    sort_dir: str = "asc"
    filters: dict = attrs.field(factory=dict)
    all_projects: bool = False


def parse_list_query(params: Mapping[str, Any], *, max_limit: int, sort_keys: Iterable[str],
                     default_sort_key: str, filters: Iterable[str] = (),
                     extra: Iterable[str] = ()) -> ListQuery:
    """Validate list parameters. Unknown keys -> 400 ``Unknown parameters: …``."""
    filters = tuple(filters)
    allowed = set(_PAGING) | set(filters) | set(extra)
    check_unknown(params, allowed)
    limit = max_limit
    if not_none(params.get("limit")) is not None:
        limit = min(parse_int(params["limit"], "limit", minimum=1), max_limit)
    sort_dir = params.get("sort_dir") or "asc"
    if sort_dir not in ("asc", "desc"):
        raise invalid("sort_dir", f"{sort_dir!r} is not one of asc, desc.")
    sort_key = params.get("sort_key") or default_sort_key
    if sort_key not in set(sort_keys):
        raise invalid("sort_key", f"{sort_key!r} is not a sortable key. "
                                  f"Allowed: {', '.join(sorted(sort_keys))}.")
    found = {k: params[k] for k in filters if k in params and params[k] is not None}
    if "auto_remove" in found:
        found["auto_remove"] = parse_bool(found["auto_remove"], "auto_remove")
    all_projects = optional_bool(params, "all_projects", False) if "all_projects" in allowed \
        else False
    return ListQuery(limit=limit, marker=not_none(params.get("marker")), sort_key=sort_key,
                     sort_dir=sort_dir, filters=found, all_projects=all_projects)


# -- create ------------------------------------------------------------------------

_BOOL = {"type": ["boolean", "string", "integer"]}
_STR_MAP = {"type": ["object", "null"], "additionalProperties": {"type": "string"}}
_NUM_OR_STR = {"type": ["number", "string"]}
_INT_OR_STR = {"type": ["integer", "string"]}
_STR_LIST = {"type": ["array", "null"], "items": {"type": "string"}}

_CREATE_PROPERTIES: dict[str, dict] = {
    "image": {"type": "string", "minLength": 2, "maxLength": 255},
    "name": {"type": ["string", "null"], "minLength": 2, "maxLength": 255, "pattern": NAME_RE},
    "command": {},  # shape depends on the version, checked below
    "entrypoint": _STR_LIST,
    "cpu": {"type": ["number", "string", "null"]},
    "memory": {"type": ["integer", "string", "null"]},
    "disk": {"type": ["integer", "string", "null"]},
    "cpu_policy": {"type": ["string", "null"], "enum": ["shared", "dedicated", None]},
    "workdir": {"type": ["string", "null"], "maxLength": 255},
    "environment": _STR_MAP,
    "labels": _STR_MAP,
    "restart_policy": {
        "type": ["object", "null"],
        "properties": {
            "Name": {"type": "string",
                     "enum": ["no", "always", "on-failure", "unless-stopped"]},
            "MaximumRetryCount": _INT_OR_STR,
        },
        "additionalProperties": False,
    },
    "interactive": _BOOL,
    "tty": _BOOL,
    "image_driver": {"type": ["string", "null"], "enum": ["docker", "glance", None]},
    "image_pull_policy": {"type": ["string", "null"]},
    "auto_remove": _BOOL,
    "auto_heal": _BOOL,
    "privileged": _BOOL,
    "hostname": {"type": ["string", "null"], "minLength": 2, "maxLength": 63,
                 "pattern": r"^[a-zA-Z0-9][a-zA-Z0-9.-]*$"},
    "runtime": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
    "security_groups": _STR_LIST,
    "exposed_ports": {"type": ["object", "null"],
                      "propertyNames": {"pattern": r"^[0-9]+(/(tcp|udp|TCP|UDP))?$"},
                      "additionalProperties": {"type": "object", "maxProperties": 0}},
    "nets": {"type": ["array", "null"], "items": {"type": "object"}},
    "mounts": {"type": ["array", "null"], "items": {"type": "object"}},
    "healthcheck": {
        "type": ["object", "null"],
        "properties": {"cmd": {"type": "string"}, "test": {"type": "string"},
                       "interval": _INT_OR_STR, "retries": _INT_OR_STR,
                       "timeout": _INT_OR_STR},
        "additionalProperties": False,
    },
    "hints": {"type": ["object", "null"]},
    "availability_zone": {"type": ["string", "null"], "maxLength": 255},
    "registry": {"type": ["string", "null"]},
    "host": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
}

CREATE_SCHEMA = {
    "type": "object",
    "properties": _CREATE_PROPERTIES,
    "required": ["image"],
    "additionalProperties": False,
}

#: create-body field -> first microversion that accepts it (zun-api.md §2)
FIELD_MIN_VERSION: dict[str, APIVersion] = {
    "nets": v("1.2"), "auto_remove": v("1.3"), "runtime": v("1.5"), "hostname": v("1.9"),
    "mounts": v("1.11"), "privileged": v("1.21"), "healthcheck": v("1.22"),
    "exposed_ports": v("1.24"), "cpu_policy": v("1.28"), "registry": v("1.31"),
    "tty": v("1.36"), "host": v("1.39"), "entrypoint": v("1.40"),
}
COMMAND_LIST_VERSION = v("1.20")

_create_validator = None  # built on the first create: a node that only hosts
#                            containers never loads jsonschema (~1.8 MB RSS, issue 13 §5)


def _create_schema_validator():
    global _create_validator
    if _create_validator is None:
        import jsonschema

        _create_validator = jsonschema.Draft7Validator(CREATE_SCHEMA)
    return _create_validator


def _schema_error(validator, body: Any) -> None:
    """Raise InvalidInput for the most relevant JSON-schema violation, if any."""
    from jsonschema.exceptions import best_match

    err = best_match(validator.iter_errors(body))
    if err is None:
        return
    if err.validator == "additionalProperties" and not err.path:
        extra = sorted(set(body) - set(err.schema.get("properties", {})))
        raise invalid(extra[0] if extra else "body",
                      f"Additional properties are not allowed ({', '.join(map(repr, extra))} "
                      f"{'was' if len(extra) == 1 else 'were'} unexpected).")
    if err.validator == "required" and not err.path:
        missing = next((f for f in err.validator_value if f not in body), "body")
        raise invalid(missing, f"'{missing}' is a required property.")
    field = ".".join(str(p) for p in err.path) or "body"
    raise invalid(field, err.message)


def _check_versions(body: Mapping, version: APIVersion) -> None:
    for field, min_version in FIELD_MIN_VERSION.items():
        if field in body and version < min_version:
            raise errors.InvalidParamInVersion(
                field=field, param=field, req_version=str(version),
                min_version=str(min_version))


def validate_create(body: Any, version: APIVersion, limits: Limits,
                    networks: bool = False, storable_checked: bool = False) -> dict:
    """Validate and normalise a create body. Returns only given fields plus the
    cpu/memory defaults; the caller picks a name when none was given.
    ``networks``: the node has a network backend (``nets`` and
    ``security_groups`` are accepted, resolved by the caller).
    ``storable_checked``: ``body`` is the request body the pipeline already passed
    through :func:`check_storable` (it is not walked twice)."""
    if not isinstance(body, dict):
        raise invalid("body", "the request body must be a JSON object.")
    if not storable_checked:
        check_storable(body)
    _check_versions(body, version)
    _schema_error(_create_schema_validator(), body)

    out: dict[str, Any] = {"image": body["image"]}
    if body.get("name") is not None:
        out["name"] = body["name"]

    if "command" in body and body["command"] is not None:
        command = body["command"]
        if version >= COMMAND_LIST_VERSION:
            if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
                raise invalid("command", f"{command!r} is not a list of strings "
                                         f"(a list from version {COMMAND_LIST_VERSION}).")
            out["command"] = list(command)
        else:
            if not isinstance(command, str):
                raise invalid("command", f"{command!r} is not a string (before version "
                                         f"{COMMAND_LIST_VERSION} the command is one string).")
            out["command"] = split_command(command)
    if body.get("entrypoint") is not None:
        out["entrypoint"] = list(body["entrypoint"])

    out["cpu"] = limits.default_cpu if body.get("cpu") is None else parse_cpu(body["cpu"], limits)
    out["memory"] = (limits.default_memory_mb if body.get("memory") is None
                     else parse_memory(body["memory"], limits))
    if body.get("disk") is not None:
        out["disk"] = parse_disk(body["disk"], limits)

    for field in ("cpu_policy", "workdir", "availability_zone", "runtime", "host",
                  "hostname"):
        if body.get(field) is not None:
            out[field] = body[field]
    for field in ("environment", "labels"):
        if body.get(field) is not None:
            out[field] = dict(body[field])
    if body.get("hints") is not None:
        out["hints"] = dict(body["hints"])

    for field in ("interactive", "tty", "auto_remove", "auto_heal", "privileged"):
        if body.get(field) is not None:
            out[field] = parse_bool(body[field], field)
    if version < FIELD_MIN_VERSION["tty"] and "interactive" in out:
        # before 1.36 there is no tty field: an interactive container gets a TTY
        out["tty"] = out["interactive"]

    if body.get("restart_policy") is not None:
        out["restart_policy"] = _restart_policy(body["restart_policy"])

    if body.get("image_driver") is not None:
        # glance: the owner node downloads the image from Glance (zund.images.glance)
        out["image_driver"] = body["image_driver"]
    if body.get("image_pull_policy") is not None:
        policy = body["image_pull_policy"].lower()
        if policy not in ("never", "always", "ifnotpresent"):
            raise invalid("image_pull_policy",
                          f"{body['image_pull_policy']!r} is not one of never, always, "
                          f"ifnotpresent.")
        out["image_pull_policy"] = policy

    if body.get("exposed_ports"):
        if body.get("security_groups"):
            raise invalid("exposed_ports", "exposed_ports and security_groups cannot be "
                                           "given together.")
        out["exposed_ports"] = _exposed_ports(body["exposed_ports"])

    # zund has no Neutron, Cinder or registry API: refuse instead of ignoring silently
    if body.get("nets") and networks:
        out["nets"] = validate_nets(body["nets"])
    elif body.get("nets"):
        raise invalid("nets", "custom networks are not supported by this cloud "
                              "([network] driver = none); omit nets or pass [].")
    if body.get("mounts"):
        # local volumes and file injection (zund.compute.volumes); no Cinder yet
        out["mounts"] = validate_mounts(body["mounts"], version, limits)
    if body.get("security_groups") and networks:
        groups = body["security_groups"]
        if not all(isinstance(g, str) and 1 <= len(g) <= 255 for g in groups):
            raise invalid("security_groups", "must be a list of security group names.")
        out["security_groups"] = list(dict.fromkeys(groups))
    elif body.get("security_groups"):
        raise invalid("security_groups", "security groups are not supported by this "
                                         "cloud ([network] driver = none); omit "
                                         "security_groups or pass [].")
    if body.get("registry") is not None:
        registry = body["registry"]
        if not isinstance(registry, str) or not 1 <= len(registry) <= 255:
            raise invalid("registry", "must be a registry name or uuid.")
        out["registry"] = registry  # resolved to registry_id by the resource

    if body.get("healthcheck"):
        out["healthcheck"] = _healthcheck(body["healthcheck"])
    return out


#: Zun 1.23: ``type=bind`` mounts carry a file's content (base64) to inject
MOUNT_BIND_VERSION = v("1.23")
#: at most this many mounts per container, and this much injected content in all
MAX_MOUNTS = 16
MAX_INJECTED_BYTES = 64 * 1024
#: a volume's name in its project (and on its node)
VOLUME_NAME_RE = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$"


def validate_mounts(mounts: Any, version: APIVersion, limits: Limits) -> list[dict]:
    """Zun's ``mounts`` (1.11; ``type=bind`` 1.23) normalised to dicts:

    - ``{"type": "volume", "source": name|None, "destination", "size": GiB|None}``:
      a local volume of the caller's project on the container's node; a name is
      reused when the volume exists there, a size alone makes one that goes away
      with the container (Zun's auto_remove rule);
    - ``{"type": "bind", "destination", "content": base64}``: file injection;
    - ``{"type": "bind", "source": "/host/path", "destination"}`` from a volume
      ``source`` that is an absolute path: a host bind, which the resource lets
      only an admin make (``host_path`` marks it).
    """
    if not isinstance(mounts, list):
        raise invalid("mounts", "must be a list of mounts.")
    if len(mounts) > MAX_MOUNTS:
        raise invalid("mounts", f"at most {MAX_MOUNTS} mounts per container.")
    out: list[dict] = []
    seen: set[str] = set()
    injected = 0
    for i, mount in enumerate(mounts):
        where = f"mounts[{i}]"
        if not isinstance(mount, Mapping):
            raise invalid(where, "each mount must be an object.")
        unknown = sorted(set(mount) - {"type", "source", "destination", "size"})
        if unknown:
            raise invalid(f"{where}.{unknown[0]}", "unknown mount key; use type, source, "
                                                   "destination, size.")
        kind = mount.get("type") or "volume"
        if kind not in ("volume", "bind"):
            raise invalid(f"{where}.type", f"{kind!r} is not one of volume, bind.")
        dest = mount.get("destination")
        if not isinstance(dest, str) or not dest.startswith("/") or len(dest) > 4096 \
                or "\x00" in dest or ".." in dest.split("/"):
            raise invalid(f"{where}.destination", f"{dest!r} must be an absolute path "
                                                  "in the container.")
        dest = "/" + "/".join(p for p in dest.split("/") if p)
        if dest == "/":
            raise invalid(f"{where}.destination", "cannot mount over /.")
        if dest in seen:
            raise invalid(f"{where}.destination", f"{dest} is mounted twice.")
        seen.add(dest)
        source = mount.get("source")
        if source is not None and not isinstance(source, str):
            raise invalid(f"{where}.source", "must be a string.")
        if kind == "bind":
            if version < MOUNT_BIND_VERSION:
                raise errors.InvalidParamInVersion(
                    field=f"{where}.type", param=f"{where}.type=bind", req_version=str(version),
                    min_version=str(MOUNT_BIND_VERSION))
            if mount.get("size") not in (None, ""):
                raise invalid(f"{where}.size", "a bind mount (file injection) has no size.")
            try:
                content = base64.b64decode(source or "", validate=True)
            except (binascii.Error, ValueError) as e:
                raise invalid(f"{where}.source", "a bind mount's source is the file's "
                                                 "content in base64.") from e
            injected += len(content)
            if injected > MAX_INJECTED_BYTES:
                raise invalid(f"{where}.source", f"injected files exceed "
                                                 f"{MAX_INJECTED_BYTES} bytes in all.")
            out.append({"type": "bind", "destination": dest, "content": source})
            continue
        size = mount.get("size")
        size = None if size in (None, "") else parse_disk(size, limits, f"{where}.size")
        if size is not None and size < 1:
            raise invalid(f"{where}.size", "a volume is at least 1 GiB.")
        if source in (None, ""):
            if size is None:
                raise invalid(f"{where}.size", "give a volume source (name), a size, "
                                               "or both.")
            out.append({"type": "volume", "source": None, "destination": dest, "size": size})
        elif source.startswith("/"):
            if size is not None:
                raise invalid(f"{where}.size", "a host path has no size.")
            out.append({"type": "bind", "source": source, "destination": dest,
                        "host_path": True})
        else:
            if not re.match(VOLUME_NAME_RE, source):
                raise invalid(f"{where}.source", f"{source!r} is not a volume name "
                                                 f"(matching {VOLUME_NAME_RE}).")
            out.append({"type": "volume", "source": source, "destination": dest,
                        "size": size})
    return out


def _restart_policy(policy: Mapping) -> dict:
    name = policy.get("Name")
    if name is None:
        raise invalid("restart_policy", "'Name' is a required property.")
    count_raw = policy.get("MaximumRetryCount", 0)
    count = parse_int(count_raw, "restart_policy", minimum=0, maximum=MAX_COUNT)
    if name in ("always", "unless-stopped") and count != 0:
        raise invalid("restart_policy", f"maximum retry count {count} is not valid with "
                                        f"restart policy {name}; it must be 0.")
    return {"Name": name, "MaximumRetryCount": count}


def _exposed_ports(ports: Mapping) -> dict:
    out = {}
    for key in ports:
        port, _, proto = key.partition("/")
        n = int(port) if len(port) <= 5 else 0
        if not 1 <= n <= 65535:
            raise invalid("exposed_ports", f"port {port} is not between 1 and 65535.")
        out[f"{n}/{(proto or 'tcp').lower()}"] = {}
    return out


def _healthcheck(hc: Mapping) -> dict:
    out: dict[str, Any] = {}
    test = hc.get("cmd", hc.get("test"))
    if test is not None:
        out["test"] = test
    for key in ("interval", "retries", "timeout"):
        if hc.get(key) is not None:
            out[key] = parse_int(hc[key], f"healthcheck.{key}", minimum=0, maximum=MAX_COUNT)
    return out


# -- update --------------------------------------------------------------------------

UPDATE_FIELDS = ("cpu", "memory", "name", "auto_heal")


def validate_update(body: Any, limits: Limits) -> dict:
    """PATCH body: any of cpu, memory, name, auto_heal (at least one)."""
    if not isinstance(body, dict):
        raise invalid("body", "the request body must be a JSON object.")
    check_storable(body)
    for key in body:
        if key not in UPDATE_FIELDS:
            raise invalid(key, f"Additional properties are not allowed ({key!r} was "
                               f"unexpected). Allowed: {', '.join(UPDATE_FIELDS)}.")
    if not body:
        raise invalid("body", f"give at least one of {', '.join(UPDATE_FIELDS)}.")
    out: dict[str, Any] = {}
    if "cpu" in body:
        out["cpu"] = parse_cpu(body["cpu"], limits)
    if "memory" in body:
        out["memory"] = parse_memory(body["memory"], limits)
    if "name" in body:
        out["name"] = validate_name(body["name"])
    if "auto_heal" in body:
        out["auto_heal"] = parse_bool(body["auto_heal"], "auto_heal")
    return out


def validate_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not 2 <= len(name) <= 255 or not re.match(NAME_RE, name):
        raise invalid(field, f"{name!r} must be 2-255 characters matching {NAME_RE}.")
    return name


# -- quotas (Zun 1.26: zun/api/controllers/v1/schemas/quotas.py) -------------------

QUOTA_RESOURCES = ("containers", "cpu", "memory", "disk")


def validate_quota_update(body: Any) -> dict:
    """``{resource: int or digits string >= -1}`` (-1: unlimited); no other keys."""
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        raise invalid("body", "expected a JSON object")
    check_unknown(body, QUOTA_RESOURCES)
    return {k: parse_int(body[k], k, minimum=-1, maximum=MAX_COUNT)
            for k in QUOTA_RESOURCES if k in body}


#: keys of one Zun ``nets`` entry
NET_KEYS = ("network", "port", "v4-fixed-ip", "v6-fixed-ip")


def validate_nets(nets) -> list[dict]:
    """Zun ``nets`` (1.2): each entry names a ``network`` or a ``port``, optionally
    a ``v4-fixed-ip``; 400 naming ``nets`` otherwise."""
    import ipaddress

    if not isinstance(nets, list) or len(nets) > 16:
        raise invalid("nets", "must be a list of at most 16 objects.")
    out = []
    for i, entry in enumerate(nets):
        if not isinstance(entry, dict):
            raise invalid("nets", f"entry {i} must be an object.")
        unknown = sorted(set(entry) - set(NET_KEYS))
        if unknown:
            raise invalid("nets", f"entry {i}: unknown keys {', '.join(unknown)}.")
        for k, value in entry.items():
            if value is not None and (not isinstance(value, str) or len(value) > 255):
                raise invalid("nets", f"entry {i}: {k} must be a string.")
        if not entry.get("network") and not entry.get("port"):
            raise invalid("nets", f"entry {i} must name a network or a port.")
        if entry.get("v6-fixed-ip"):
            raise invalid("nets", f"entry {i}: IPv6 addresses are not supported.")
        if entry.get("v4-fixed-ip"):
            try:
                ipaddress.IPv4Address(entry["v4-fixed-ip"])
            except ValueError:
                raise invalid("nets", f"entry {i}: v4-fixed-ip {entry['v4-fixed-ip']!r} "
                                      "is not an IPv4 address.") from None
        out.append({k: v for k, v in entry.items() if v and k != "v6-fixed-ip"})
    return out
