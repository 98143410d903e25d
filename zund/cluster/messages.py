"""Peer RPC messages: one typed request value per operation, versioned.

Every request travels as ``{"v": PROTOCOL_VERSION, "op": Op, "body": {...}}`` and
every answer as ``{"v": PROTOCOL_VERSION, "ok": {...}}`` or
``{"v": ..., "error": {type, message, kwargs}}`` (msgpack, ``zund.cluster.wire``,
whose ext types carry records, actions, exec results, tuples and datetimes).

Rules (STYLE §3): ``Op`` is append-only; a field added later must be optional
(older senders omit it); a receiver refuses a message whose version it does not
speak with ``UnsupportedPeerVersion`` and an unknown operation with
``UnsupportedPeerOperation`` — both zund errors sent back to the caller, never a
crash. Protocol values (the container uuid, the placement decision) travel as
fields of these messages, never inside the user's ``CreateRequest``.

Which container operations a peer may ask for, and with which arguments, is not
listed here: it is derived from ``zund.compute.interface.IContainers``.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import attrs

from zund.cluster import wire
from zund.cluster.types import Bid, Decline, PlacementRequest
from zund.common import errors
from zund.common.context import RequestContext
from zund.compute import interface
from zund.compute.interface import ContainerRef
from zund.records import ContainerRecord, CreateRequest

#: the version this node speaks (and the newest it accepts)
PROTOCOL_VERSION = 1


class Op(enum.IntEnum):
    """Peer operations. Append-only: never renumber, never reuse."""

    BID = 1
    COMMIT = 2
    RELEASE = 3
    LIST = 4
    LOCATE = 5
    OWNER_CALL = 6
    HOST = 7


WireError = wire.WireError


def _get(body: dict, name: str, types, *, optional: bool = False, default: Any = None):
    value = body.get(name)
    if value is None:
        if optional:
            return default
        raise WireError(f"{name}: required")
    if not isinstance(value, types):
        raise WireError(f"{name}: wrong type {type(value).__name__}")
    return value


def _ctx(body: dict) -> RequestContext:
    return wire.context_from_dict(_get(body, "ctx", dict))


# -- requests ---------------------------------------------------------------------


@attrs.frozen
class BidRequest:
    """Would you host this? -> Bid | Decline."""

    OP: ClassVar[Op] = Op.BID
    request: PlacementRequest

    def to_body(self) -> dict:
        return {"request": self.request.to_wire()}

    @classmethod
    def from_body(cls, body: dict) -> "BidRequest":
        try:
            return cls(PlacementRequest.from_wire(_get(body, "request", dict)))
        except TypeError as e:
            raise WireError(f"request: {e}") from None

    @staticmethod
    def answer_to_body(answer: Bid | Decline) -> dict:
        return wire.bid_to_dict(answer)

    @staticmethod
    def answer_from_body(ok: dict) -> Bid | Decline:
        return wire.bid_from_dict(ok)


@attrs.frozen
class CommitRequest:
    """Turn reservation ``reservation_id`` into the container ``uuid`` created from
    ``request`` for ``ctx``; ``placement`` is the entry node's decision (recorded
    in the create action). -> ContainerRecord."""

    OP: ClassVar[Op] = Op.COMMIT
    reservation_id: str
    ctx: RequestContext
    uuid: str
    request: CreateRequest
    placement: dict | None = None

    def to_body(self) -> dict:
        return {"reservation_id": self.reservation_id, "ctx": wire.context_to_dict(self.ctx),
                "uuid": self.uuid, "request": self.request.to_dict(),
                "placement": self.placement}

    @classmethod
    def from_body(cls, body: dict) -> "CommitRequest":
        try:
            request = CreateRequest.from_dict(_get(body, "request", dict))
        except (TypeError, ValueError) as e:
            raise WireError(f"request: {e}") from None
        return cls(reservation_id=_get(body, "reservation_id", str), ctx=_ctx(body),
                   uuid=_get(body, "uuid", str), request=request,
                   placement=_get(body, "placement", dict, optional=True))

    @staticmethod
    def answer_to_body(record: ContainerRecord) -> dict:
        return {"record": record}

    @staticmethod
    def answer_from_body(ok: dict) -> ContainerRecord:
        return _get(ok, "record", ContainerRecord)


@attrs.frozen
class ReleaseRequest:
    """Drop a reservation (unknown ids are fine). -> None."""

    OP: ClassVar[Op] = Op.RELEASE
    reservation_id: str

    def to_body(self) -> dict:
        return {"reservation_id": self.reservation_id}

    @classmethod
    def from_body(cls, body: dict) -> "ReleaseRequest":
        return cls(_get(body, "reservation_id", str))

    @staticmethod
    def answer_to_body(_result) -> dict:
        return {}

    @staticmethod
    def answer_from_body(ok: dict) -> None:
        return None


@attrs.frozen
class ListRequest:
    """The records visible to ``ctx`` on the receiver. -> list[ContainerRecord]."""

    OP: ClassVar[Op] = Op.LIST
    ctx: RequestContext
    all_projects: bool = False

    def to_body(self) -> dict:
        return {"ctx": wire.context_to_dict(self.ctx), "all_projects": self.all_projects}

    @classmethod
    def from_body(cls, body: dict) -> "ListRequest":
        return cls(_ctx(body), _get(body, "all_projects", bool, optional=True, default=False))

    @staticmethod
    def answer_to_body(records) -> dict:
        return {"records": list(records)}

    @staticmethod
    def answer_from_body(ok: dict) -> list[ContainerRecord]:
        records = _get(ok, "records", list)
        if not all(isinstance(r, ContainerRecord) for r in records):
            raise WireError("records: expected container records")
        return records


@attrs.frozen
class LocateRequest:
    """Do you hold ``ident`` (uuid or name, scoped by ``ctx``)? No runtime round
    trip, no policy: only where it lives. -> ContainerRecord (ContainerNotFound,
    Conflicts)."""

    OP: ClassVar[Op] = Op.LOCATE
    ctx: RequestContext
    ident: str
    all_projects: bool = False

    def to_body(self) -> dict:
        return {"ctx": wire.context_to_dict(self.ctx), "ident": self.ident,
                "all_projects": self.all_projects}

    @classmethod
    def from_body(cls, body: dict) -> "LocateRequest":
        return cls(_ctx(body), _get(body, "ident", str),
                   _get(body, "all_projects", bool, optional=True, default=False))

    @staticmethod
    def answer_to_body(record: ContainerRecord) -> dict:
        return {"record": record}

    @staticmethod
    def answer_from_body(ok: dict) -> ContainerRecord:
        return _get(ok, "record", ContainerRecord)


@attrs.frozen
class OwnerCall:
    """Run ``IContainers.<operation>(ctx, ref, **args)`` on the container's owner:
    lookup, policy on the record and the action in one round trip. ``operation``
    and ``args`` are checked against the interface declaration on both ends.
    -> whatever the operation returns."""

    OP: ClassVar[Op] = Op.OWNER_CALL
    ctx: RequestContext
    operation: str
    ref: ContainerRef
    args: dict = attrs.field(factory=dict)

    def __attrs_post_init__(self):
        check_owner_call(self.operation, self.args)

    def to_body(self) -> dict:
        return {"ctx": wire.context_to_dict(self.ctx), "operation": self.operation,
                "ref": self.ref.to_wire(), "args": dict(self.args)}

    @classmethod
    def from_body(cls, body: dict) -> "OwnerCall":
        try:
            ref = ContainerRef.from_wire(_get(body, "ref", dict))
        except (TypeError, ValueError) as e:
            raise WireError(f"ref: {e}") from None
        return cls(_ctx(body), _get(body, "operation", str), ref,
                   _get(body, "args", dict, optional=True, default={}))

    @property
    def slow(self) -> bool:
        return interface.is_slow(self.operation)

    @staticmethod
    def answer_to_body(result) -> dict:
        return {"result": result}

    @staticmethod
    def answer_from_body(ok: dict):
        return ok.get("result")


@attrs.frozen
class HostRequest:
    """The receiver as a Zun host. -> dict."""

    OP: ClassVar[Op] = Op.HOST

    def to_body(self) -> dict:
        return {}

    @classmethod
    def from_body(cls, body: dict) -> "HostRequest":
        return cls()

    @staticmethod
    def answer_to_body(host: dict) -> dict:
        return {"host": host}

    @staticmethod
    def answer_from_body(ok: dict) -> dict:
        return _get(ok, "host", dict)


REQUESTS: dict[Op, type] = {cls.OP: cls for cls in (
    BidRequest, CommitRequest, ReleaseRequest, ListRequest, LocateRequest, OwnerCall,
    HostRequest)}


def check_owner_call(operation: str, args: dict) -> None:
    """Refuse an operation that IContainers does not mark as an owner call
    (UnsupportedPeerOperation) or arguments it does not declare (InvalidInput)."""
    try:
        names, required = interface.operation_arguments(operation)
    except KeyError:
        raise errors.UnsupportedPeerOperation(operation=operation, node="?") from None
    if not all(isinstance(k, str) for k in args):
        raise errors.InvalidInput(field="args", reason="argument names must be strings")
    unknown = sorted(set(args) - set(names))
    missing = sorted(set(required) - set(args))
    if unknown or missing:
        raise errors.InvalidInput(
            field="args", reason=f"{operation}: unknown {unknown}, missing {missing}")


# -- envelopes ----------------------------------------------------------------------


def encode_request(msg) -> dict:
    return {"v": PROTOCOL_VERSION, "op": int(msg.OP), "body": msg.to_body()}


def _check_version(envelope: dict, node: str) -> None:
    version = envelope.get("v")
    if (not isinstance(version, int) or isinstance(version, bool)
            or not 1 <= version <= PROTOCOL_VERSION):
        raise errors.UnsupportedPeerVersion(version=repr(version), node=node,
                                            supported=PROTOCOL_VERSION)


def decode_request(envelope: dict, node: str):
    """The typed request in ``envelope``. Raises UnsupportedPeerVersion,
    UnsupportedPeerOperation (unknown op, or an owner call the interface does not
    declare), InvalidInput (bad arguments) or WireError (malformed fields)."""
    _check_version(envelope, node)
    op = envelope.get("op")
    try:
        if not isinstance(op, int) or isinstance(op, bool):
            raise TypeError(op)
        cls = REQUESTS[Op(op)]
    except (ValueError, TypeError):
        raise errors.UnsupportedPeerOperation(operation=repr(op), node=node) from None
    body = envelope.get("body")
    if not isinstance(body, dict):
        raise WireError("body: expected a map")
    try:
        return cls.from_body(body)
    except errors.UnsupportedPeerOperation as e:
        raise errors.UnsupportedPeerOperation(operation=e.kwargs.get("operation"),
                                              node=node) from None


def encode_answer(msg, result) -> dict:
    return {"v": PROTOCOL_VERSION, "ok": msg.answer_to_body(result)}


def encode_error(exc: BaseException) -> dict:
    return {"v": PROTOCOL_VERSION, "error": wire.error_to_dict(exc)}


def decode_answer(msg, envelope: dict, node: str):
    """The typed answer to ``msg``; the peer's zund error is raised as such."""
    if "error" in envelope:
        raise wire.error_from_dict(envelope["error"])
    _check_version(envelope, node)
    ok = envelope.get("ok")
    if not isinstance(ok, dict):
        raise WireError("answer: expected 'ok' or 'error'")
    return msg.answer_from_body(ok)
