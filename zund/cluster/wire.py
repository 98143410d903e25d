"""The peer RPC codec: msgpack bodies, records, contexts and errors.

Principles (STYLE §3): msgpack with ``use_bin_type=True`` / ``raw=False,
strict_map_key=True``; the size is checked before decoding; anything malformed
becomes :class:`WireError`, never an arbitrary exception.

Typed values travel as msgpack extension types, so they survive inside any body
(a list of records, a tuple in a ``get_archive`` result, ...) and can never be
confused with a user's dict::

    EXT_RECORD  ContainerRecord  (a map; datetimes as ISO strings)
    EXT_ACTION  ActionRecord     (a map with its events; datetimes as ISO strings)
    EXT_EXEC    ExecResult       (a map)
    EXT_TUPLE   tuple            (an array)
    EXT_TIME    datetime         (an ISO string)

The ext codes are append-only. Contexts and errors are plain maps, built by the
helpers below.
"""

from __future__ import annotations

import datetime
from typing import Any

import attrs
import msgpack

from zund.cluster.types import Bid, Decline, PlacementRequest  # noqa: F401 (re-export)
from zund.common import errors
from zund.common.context import RequestContext
from zund.runtimes.base import ExecResult
from zund.records import ActionEvent, ActionRecord, ContainerRecord

CONTENT_TYPE = "application/msgpack"
DEFAULT_MAX_BYTES = 1024 * 1024

# append-only
EXT_RECORD = 1
EXT_ACTION = 2
EXT_EXEC = 3
EXT_TUPLE = 4
EXT_TIME = 5


class WireError(ValueError):
    """A body that is too large or not a valid peer message."""


# -- datetimes ----------------------------------------------------------------------

def _time_fields(cls) -> tuple[str, ...]:
    # annotations are strings (``from __future__ import annotations``)
    return tuple(a.name for a in attrs.fields(cls) if "datetime" in str(a.type))


_RECORD_TIMES = _time_fields(ContainerRecord)
_ACTION_TIMES = _time_fields(ActionRecord)
_EVENT_TIMES = _time_fields(ActionEvent)


def _fmt(t: datetime.datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _parse(s: Any) -> datetime.datetime | None:
    if s is None:
        return None
    if not isinstance(s, str):
        raise WireError(f"expected an ISO time string, got {type(s).__name__}")
    try:
        return datetime.datetime.fromisoformat(s)
    except ValueError as e:
        raise WireError(f"bad time {s!r}") from e


def _build(cls, data: Any, times: tuple[str, ...]):
    if not isinstance(data, dict):
        raise WireError(f"{cls.__name__}: expected a map")
    known = {a.name for a in attrs.fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in known}  # newer peers may add fields
    for k in times:
        if k in kwargs:
            kwargs[k] = _parse(kwargs[k])
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise WireError(f"{cls.__name__}: {e}") from e


# -- records ------------------------------------------------------------------------

def record_to_dict(rec: ContainerRecord) -> dict:
    """A ContainerRecord as a msgpack/JSON-friendly dict (datetimes as ISO strings)."""
    d = attrs.asdict(rec, recurse=False)
    for k in _RECORD_TIMES:
        d[k] = _fmt(d[k])
    return d


def record_from_dict(d: dict) -> ContainerRecord:
    return _build(ContainerRecord, d, _RECORD_TIMES)


def action_to_dict(act: ActionRecord) -> dict:
    d = attrs.asdict(act, recurse=False)
    for k in _ACTION_TIMES:
        d[k] = _fmt(d[k])
    events = []
    for ev in act.events:
        e = attrs.asdict(ev, recurse=False) if isinstance(ev, ActionEvent) else dict(ev)
        for k in _EVENT_TIMES:
            if isinstance(e.get(k), datetime.datetime):
                e[k] = _fmt(e[k])
        events.append(e)
    d["events"] = events
    return d


def action_from_dict(d: dict) -> ActionRecord:
    act = _build(ActionRecord, d, _ACTION_TIMES)
    if not isinstance(act.events, list):
        raise WireError("ActionRecord.events: expected an array")
    act.events = [_build(ActionEvent, e, _EVENT_TIMES) for e in act.events]
    return act


# -- contexts -----------------------------------------------------------------------

#: optional string fields of a context (None or str on the wire)
_CTX_OPTIONAL_STR = ("request_id", "user_name", "project_name", "user_domain_id",
                     "project_domain_id", "global_request_id")


def context_to_dict(ctx: RequestContext | dict) -> dict:
    """The caller's whole context for a peer: user, project, both domains, roles,
    ``is_admin``, request id and global request id, so the owner decides policy
    with the caller's identity. The Keystone token is dropped: the peer trusts the
    authenticated entry node and never needs it (least exposure, even sealed)."""
    d = ctx.to_dict() if isinstance(ctx, RequestContext) else dict(ctx)
    d["auth_token"] = None
    return d


def context_from_dict(d: Any) -> RequestContext:
    if not isinstance(d, dict):
        raise WireError("ctx: expected a map")
    known = {a.name for a in attrs.fields(RequestContext)}
    try:
        ctx = RequestContext.from_dict({k: v for k, v in d.items() if k in known})
    except TypeError as e:
        raise WireError(f"ctx: {e}") from e
    if not isinstance(ctx.user_id, str) or not isinstance(ctx.project_id, str):
        raise WireError("ctx: user_id and project_id must be strings")
    if not all(isinstance(r, str) for r in ctx.roles) or not isinstance(ctx.is_admin, bool):
        raise WireError("ctx: bad roles or is_admin")
    for name in _CTX_OPTIONAL_STR:
        if not isinstance(getattr(ctx, name), (str, type(None))):
            raise WireError(f"ctx: {name} must be a string")
    return attrs.evolve(ctx, auth_token=None)


# -- errors -------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """A msgpack-safe copy of an error kwarg (anything exotic becomes its str)."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def error_to_dict(exc: BaseException) -> dict:
    """A ZundError as ``{type, message, kwargs}``. Callers must not pass other
    exceptions with internals in their message (see peer_server)."""
    if isinstance(exc, errors.ZundError):
        return {"type": type(exc).__name__, "message": exc.msg, "kwargs": _plain(exc.kwargs)}
    return {"type": "RuntimeFailure", "message": str(exc), "kwargs": {}}


def error_from_dict(d: Any) -> errors.ZundError:
    """The same zund error class, looked up by name in ``zund.common.errors``;
    anything unknown or malformed becomes RuntimeFailure."""
    if not isinstance(d, dict):
        return errors.RuntimeFailure(reason="malformed error from peer")
    name = d.get("type")
    message = d.get("message")
    kwargs = d.get("kwargs") or {}
    if not isinstance(message, str):
        message = None
    if not isinstance(kwargs, dict):
        kwargs = {}
    cls = getattr(errors, name, None) if isinstance(name, str) else None
    if isinstance(cls, type) and issubclass(cls, errors.ZundError):
        try:
            return cls(message, **kwargs)
        except TypeError:
            pass
    text = message or f"peer error {name!r}"
    return errors.RuntimeFailure(message=text, reason=text)


# -- msgpack ------------------------------------------------------------------------

def _default(obj: Any):
    if isinstance(obj, ContainerRecord):
        return msgpack.ExtType(EXT_RECORD, _packb(record_to_dict(obj)))
    if isinstance(obj, ActionRecord):
        return msgpack.ExtType(EXT_ACTION, _packb(action_to_dict(obj)))
    if isinstance(obj, ExecResult):
        return msgpack.ExtType(EXT_EXEC, _packb(attrs.asdict(obj)))
    if isinstance(obj, tuple):
        return msgpack.ExtType(EXT_TUPLE, _packb(list(obj)))
    if isinstance(obj, datetime.datetime):
        return msgpack.ExtType(EXT_TIME, _packb(obj.isoformat()))
    # subclasses of plain types (strict_types=True sends them here): str/int enums, ...
    for plain in (bool, int, float, str, bytes, list, dict):
        if isinstance(obj, plain):
            return plain(obj)
    raise TypeError(f"cannot send {type(obj).__name__} to a peer")


def _packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, strict_types=True, default=_default)


def _ext_hook(code: int, data: bytes):
    inner = _unpackb(data)
    if code == EXT_RECORD:
        return record_from_dict(inner)
    if code == EXT_ACTION:
        return action_from_dict(inner)
    if code == EXT_EXEC:
        return _build(ExecResult, inner, ())
    if code == EXT_TUPLE:
        if not isinstance(inner, list):
            raise WireError("tuple: expected an array")
        return tuple(inner)
    if code == EXT_TIME:
        return _parse(inner)
    raise WireError(f"unknown ext type {code}")


def _unpackb(data: bytes) -> Any:
    # unpackb bounds every str/bin/array/map length by len(data), which the
    # caller has checked against its limit before decoding.
    return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True,
                           ext_hook=_ext_hook)


def pack(obj: Any) -> bytes:
    """Encode one peer message (records, actions, exec results, tuples, datetimes,
    bytes and plain JSON-like values). Raises TypeError for anything else."""
    return _packb(obj)


def unpack(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Decode one peer message; WireError if too large or malformed."""
    if len(data) > max_bytes:
        raise WireError(f"message of {len(data)} bytes exceeds {max_bytes}")
    try:
        return _unpackb(data)
    except WireError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, RecursionError) as e:
        raise WireError(f"malformed message: {type(e).__name__}: {e}") from e


def unpack_map(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """Like :func:`unpack`, but the message must be a map (every peer body is)."""
    msg = unpack(data, max_bytes)
    if not isinstance(msg, dict):
        raise WireError("expected a map")
    return msg


def bid_to_dict(answer: Bid | Decline) -> dict:
    if isinstance(answer, Bid):
        return {"bid": attrs.asdict(answer)}
    body = {"node": answer.node, "reason": answer.reason}
    if answer.transient:  # optional: older nodes send and expect none
        body["transient"] = True
    return {"decline": body}


def bid_from_dict(d: dict) -> Bid | Decline:
    if isinstance(d.get("bid"), dict):
        return _build(Bid, d["bid"], ())
    if isinstance(d.get("decline"), dict):
        decline = _build(Decline, d["decline"], ())
        if decline.transient is not False and decline.transient is not True:
            raise WireError("Decline: transient must be a boolean")
        return decline
    raise WireError("bid answer: expected 'bid' or 'decline'")
