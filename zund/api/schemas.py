"""Input validation and normalisation for the Zun v1 API. Pure: no I/O.

The create body is checked with a JSON schema (``additionalProperties: false``)
and then normalised field by field (zun-api.md §6.1): numbers that arrive as
strings become numbers, memory is MiB, booleans may be strings. Every failure is
``errors.InvalidInput`` naming the field, which the API answers with a 400.
"""

from __future__ import annotations

import calendar
import datetime
import re
import shlex
from typing import Any, Iterable, Mapping

import attrs
import jsonschema
from jsonschema.exceptions import best_match

from zund.api.microversions import APIVersion, v
from zund.common import errors

_TRUE = frozenset({"true", "1", "yes", "on", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "off", "n", "f"})

NAME_RE = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$"
_DIGITS_RE = r"^[0-9]+$"
_NUMERIC_RE = r"^[0-9]*(\.[0-9]+)?$"


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
    if isinstance(value, bool):
        raise invalid(field, f"{value!r} is not an integer.")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        n = int(value.strip())
    else:
        raise invalid(field, f"{value!r} is not an integer.")
    if minimum is not None and n < minimum:
        raise invalid(field, f"{n} is less than the minimum of {minimum}.")
    if maximum is not None and n > maximum:
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
            isinstance(value, int) or (isinstance(value, str) and re.fullmatch(_DIGITS_RE, value))):
        raise invalid(field, f"{value!r} must be an integer number of MiB, without units.")
    mem = int(value)
    if not limits.min_memory_mb <= mem <= limits.max_memory_mb:
        raise invalid(field, f"{mem} MiB must be between {limits.min_memory_mb} and "
                             f"{limits.max_memory_mb} MiB.")
    return mem


def parse_disk(value: Any, limits: Limits, field: str = "disk") -> int:
    if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and re.fullmatch(_DIGITS_RE, value))):
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

_create_validator = jsonschema.Draft7Validator(CREATE_SCHEMA)


def _schema_error(validator: jsonschema.Draft7Validator, body: Any) -> None:
    """Raise InvalidInput for the most relevant JSON-schema violation, if any."""
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


def validate_create(body: Any, version: APIVersion, limits: Limits) -> dict:
    """Validate and normalise a create body. Returns only given fields plus the
    cpu/memory defaults; the caller picks a name when none was given."""
    if not isinstance(body, dict):
        raise invalid("body", "the request body must be a JSON object.")
    _check_versions(body, version)
    _schema_error(_create_validator, body)

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
        if body["image_driver"] == "glance":
            raise invalid("image_driver", "the glance image driver is not supported by zund; "
                                          "use docker.")
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
    if body.get("nets"):
        raise invalid("nets", "custom networks are not supported by zund (no Neutron); "
                              "omit nets or pass [].")
    if body.get("mounts"):
        raise invalid("mounts", "volume and bind mounts are not supported by zund yet; "
                                "omit mounts or pass [].")
    if body.get("security_groups"):
        raise invalid("security_groups", "security groups are not supported by zund "
                                         "(no Neutron); omit security_groups or pass [].")
    if body.get("registry") is not None:
        raise invalid("registry", "private registries are not supported by zund yet.")

    if body.get("healthcheck"):
        out["healthcheck"] = _healthcheck(body["healthcheck"])
    return out


def _restart_policy(policy: Mapping) -> dict:
    name = policy.get("Name")
    if name is None:
        raise invalid("restart_policy", "'Name' is a required property.")
    count_raw = policy.get("MaximumRetryCount", 0)
    count = parse_int(count_raw, "restart_policy", minimum=0)
    if name in ("always", "unless-stopped") and count != 0:
        raise invalid("restart_policy", f"maximum retry count {count} is not valid with "
                                        f"restart policy {name}; it must be 0.")
    return {"Name": name, "MaximumRetryCount": count}


def _exposed_ports(ports: Mapping) -> dict:
    out = {}
    for key in ports:
        port, _, proto = key.partition("/")
        n = int(port)
        if not 1 <= n <= 65535:
            raise invalid("exposed_ports", f"port {n} is not between 1 and 65535.")
        out[f"{n}/{(proto or 'tcp').lower()}"] = {}
    return out


def _healthcheck(hc: Mapping) -> dict:
    out: dict[str, Any] = {}
    test = hc.get("cmd", hc.get("test"))
    if test is not None:
        out["test"] = test
    for key in ("interval", "retries", "timeout"):
        if hc.get(key) is not None:
            out[key] = parse_int(hc[key], f"healthcheck.{key}", minimum=0)
    return out


# -- update --------------------------------------------------------------------------

UPDATE_FIELDS = ("cpu", "memory", "name", "auto_heal")


def validate_update(body: Any, limits: Limits) -> dict:
    """PATCH body: any of cpu, memory, name, auto_heal (at least one)."""
    if not isinstance(body, dict):
        raise invalid("body", "the request body must be a JSON object.")
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
