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
from zund.flavors import Flavor
from zund.registries import RegistryEntry

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
    # 30-39: record replicas (zund.cluster.replicas)
    REPLICATE = 30
    REPLICA_SYNC = 31
    REPLICA_QUERY = 32
    # 40-49: exactly-once placement (zund.cluster.placement, zund.cluster.bidding)
    COMMIT_STATUS = 40
    # self-healing, drain and forced down (issue 11 items 3-4): 80-89
    SERVICE_STATE = 80
    SERVICE_MARKS = 81
    # 20-29: per-project quotas (zund.cluster.quota)
    QUOTA_CLAIM = 20
    QUOTA_SETTLE = 21
    QUOTA_LIMITS_PUT = 22
    QUOTA_LIMITS_GET = 23
    QUOTA_USAGE = 24
    QUOTA_CLAIMS = 25
    # 50-59: images (zund.images)
    IMAGE_PULL = 50
    IMAGE_LIST = 51
    IMAGE_SHOW = 52
    IMAGE_DELETE = 53
    # 60-61: private registries (zund.cluster.registries)
    REGISTRY_PUT = 60
    REGISTRY_GET = 61
    # 90-99: tenant networks, vxlan backend (zund.network.vxlan)
    NETWORK_PUT = 90
    NETWORK_GET = 91
    NETWORK_CHANGED = 92
    # 62-69: flavors created through the compute API (zund.cluster.flavors)
    FLAVOR_PUT = 62
    FLAVOR_GET = 63
    # 100-109: the peer transport itself (zund.cluster.peer_client)
    PING = 100
    # 110-119: batched housekeeping between peers (zund.cluster.peer_client outbox)
    PEER_NOTES = 110
    # 115-119: quota leases (zund.cluster.quota)
    QUOTA_LEASE_CLAIM = 115
    QUOTA_LEASE_RETURN = 116
    QUOTA_LEASE_PEEK = 117
    # 111-114: the one-shot placement fast path (zund.cluster.placement, bidding)
    BID_COMMIT = 111


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


class _NoAnswer:
    """Base of the requests whose answer carries nothing: ``ok`` is ``{}``."""

    @staticmethod
    def answer_to_body(_result) -> dict:
        return {}

    @staticmethod
    def answer_from_body(ok: dict) -> None:
        return None


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


def _bar(body: dict) -> float | None:
    value = _get(body, "bar", (int, float), optional=True)
    if isinstance(value, bool) or (value is not None and value != value):
        raise WireError("bar: expected a number")
    return None if value is None else float(value)


@attrs.frozen
class BidCommitRequest:
    """The coordinator's fast path: bid for ``request`` and, when the receiver
    would bid, commit it at once under the coordinator's ``reservation_id`` (the
    container ``uuid`` created from ``create`` for ``ctx``, ``placement`` recorded
    in its create action). -> ContainerRecord, or Decline (the reason it would not
    bid). An unheard answer is resolved with COMMIT_STATUS of ``reservation_id``."""

    OP: ClassVar[Op] = Op.BID_COMMIT
    request: PlacementRequest
    reservation_id: str
    ctx: RequestContext
    uuid: str
    create: CreateRequest
    placement: dict | None = None
    #: the score the receiver's own must reach (else it declines, ``outbid``)
    bar: float | None = None

    def to_body(self) -> dict:
        return {"request": self.request.to_wire(), "reservation_id": self.reservation_id,
                "ctx": wire.context_to_dict(self.ctx), "uuid": self.uuid,
                "create": self.create.to_dict(), "placement": self.placement,
                "bar": self.bar}

    @classmethod
    def from_body(cls, body: dict) -> "BidCommitRequest":
        try:
            request = PlacementRequest.from_wire(_get(body, "request", dict))
        except TypeError as e:
            raise WireError(f"request: {e}") from None
        try:
            create = CreateRequest.from_dict(_get(body, "create", dict))
        except (TypeError, ValueError) as e:
            raise WireError(f"create: {e}") from None
        uuid = _get(body, "uuid", str)
        if request.uuid != uuid:
            raise WireError("uuid: does not match the request's")
        return cls(request=request, reservation_id=_get(body, "reservation_id", str),
                   ctx=_ctx(body), uuid=uuid, create=create,
                   placement=_get(body, "placement", dict, optional=True),
                   bar=_bar(body))

    @staticmethod
    def answer_to_body(answer) -> dict:
        load = None
        if isinstance(answer, LoadedAnswer):
            answer, load = answer.outcome, answer.load
        if isinstance(answer, Decline):
            body = {"accepted": False, "reason": answer.reason}
            if answer.transient:
                body["transient"] = True
        else:
            body = {"accepted": True, "record": answer}
        if load is not None:
            body["load"] = load
        return body

    @staticmethod
    def answer_from_body(ok: dict):
        if not _get(ok, "accepted", bool):
            outcome = Decline(node="", reason=_get(ok, "reason", str),
                              transient=ok.get("transient") is True)
        else:
            outcome = _get(ok, "record", ContainerRecord)
        load = _load(ok.get("load"))
        return outcome if load is None else LoadedAnswer(outcome, load)


@attrs.frozen
class LoadedAnswer:
    """A BID_COMMIT answer (the record, or the Decline) with the answering node's
    load: its truth after the bid (``zund.cluster.bidding.load_of``), which the
    coordinator ranks by until that node's next gossip metadata arrives. Optional
    (``load`` in the answer body; older nodes send none)."""

    outcome: object
    load: dict | None = None


_LOAD_FIELDS = (("cpu_used", (int, float)), ("mem_used_mb", int), ("disk_used_gb", int))


def _load(value) -> dict | None:
    """A well-formed ``load`` (see ``LoadedAnswer``), else None: it is a hint, and a
    malformed one must not make the placement's outcome unknown."""
    if not isinstance(value, dict):
        return None
    out = {}
    for name, types in _LOAD_FIELDS:
        v = value.get(name)
        if not isinstance(v, types) or isinstance(v, bool) or v != v or v < 0:
            return None
        out[name] = v
    project, n = value.get("project"), value.get("project_n")
    if isinstance(project, str) and isinstance(n, int) and not isinstance(n, bool) and n >= 0:
        out.update(project=project, project_n=n)
    return out


@attrs.frozen
class CommitStatusRequest:
    """Did the COMMIT of reservation ``reservation_id`` for container ``uuid`` take?
    Asked by a coordinator that did not hear the commit's answer. The receiver
    answers under its bidder lock: the record when it holds ``uuid``; else None,
    and from then on that reservation can never be committed (it is fenced), so a
    late or duplicated COMMIT cannot make a second copy. -> ContainerRecord | None."""

    OP: ClassVar[Op] = Op.COMMIT_STATUS
    ctx: RequestContext
    uuid: str
    reservation_id: str

    def to_body(self) -> dict:
        return {"ctx": wire.context_to_dict(self.ctx), "uuid": self.uuid,
                "reservation_id": self.reservation_id}

    @classmethod
    def from_body(cls, body: dict) -> "CommitStatusRequest":
        return cls(_ctx(body), _get(body, "uuid", str), _get(body, "reservation_id", str))

    @staticmethod
    def answer_to_body(record: ContainerRecord | None) -> dict:
        return {"held": record is not None, "record": record}

    @staticmethod
    def answer_from_body(ok: dict) -> ContainerRecord | None:
        if not _get(ok, "held", bool):
            return None
        return _get(ok, "record", ContainerRecord)


@attrs.frozen
class ReleaseRequest(_NoAnswer):
    """Drop a reservation (unknown ids are fine). -> None."""

    OP: ClassVar[Op] = Op.RELEASE
    reservation_id: str

    def to_body(self) -> dict:
        return {"reservation_id": self.reservation_id}

    @classmethod
    def from_body(cls, body: dict) -> "ReleaseRequest":
        return cls(_get(body, "reservation_id", str))


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


@attrs.frozen
class ReplicaItem:
    """One replicated record of ``owner`` at ``generation``; ``record`` None is a
    tombstone (the owner deleted it)."""

    uuid: str
    owner: str
    generation: int
    record: ContainerRecord | None = None

    def to_wire(self) -> list:
        return [self.uuid, self.owner, self.generation, self.record]

    @classmethod
    def from_wire(cls, value) -> "ReplicaItem":
        if not isinstance(value, list) or len(value) != 4:
            raise WireError("replica: expected [uuid, owner, generation, record]")
        uuid, owner, generation, record = value
        if (not isinstance(uuid, str) or not isinstance(owner, str)
                or not isinstance(generation, int) or isinstance(generation, bool)
                or not (record is None or isinstance(record, ContainerRecord))):
            raise WireError("replica: wrong field types")
        if record is not None and record.uuid != uuid:
            raise WireError("replica: record uuid does not match")
        return cls(uuid, owner, generation, record)


def _items(value) -> list[ReplicaItem]:
    if not isinstance(value, list):
        raise WireError("items: expected a list")
    return [ReplicaItem.from_wire(v) for v in value]


@attrs.frozen
class ReplicateRequest:
    """Keep these copies of the sender's records (newer generations win; a
    tombstone blocks older copies). -> number kept."""

    OP: ClassVar[Op] = Op.REPLICATE
    items: tuple = ()

    def to_body(self) -> dict:
        return {"items": [i.to_wire() for i in self.items]}

    @classmethod
    def from_body(cls, body: dict) -> "ReplicateRequest":
        return cls(tuple(_items(_get(body, "items", list))))

    @staticmethod
    def answer_to_body(kept: int) -> dict:
        return {"kept": int(kept)}

    @staticmethod
    def answer_from_body(ok: dict) -> int:
        return _get(ok, "kept", int, optional=True, default=0)


@attrs.frozen
class ReplicaSyncRequest:
    """Anti-entropy: ``owner`` says which of its records the receiver should hold
    (uuid -> generation); the receiver drops the others it holds of ``owner`` and
    answers the uuids it lacks or holds older. -> list[str]."""

    OP: ClassVar[Op] = Op.REPLICA_SYNC
    owner: str
    digest: dict = attrs.field(factory=dict)

    def to_body(self) -> dict:
        return {"owner": self.owner, "digest": dict(self.digest)}

    @classmethod
    def from_body(cls, body: dict) -> "ReplicaSyncRequest":
        digest = _get(body, "digest", dict, optional=True, default={})
        if not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                   for k, v in digest.items()):
            raise WireError("digest: expected uuid -> generation")
        return cls(_get(body, "owner", str), digest)

    @staticmethod
    def answer_to_body(wanted) -> dict:
        return {"wanted": list(wanted)}

    @staticmethod
    def answer_from_body(ok: dict) -> list[str]:
        wanted = _get(ok, "wanted", list)
        if not all(isinstance(u, str) for u in wanted):
            raise WireError("wanted: expected uuids")
        return wanted


@attrs.frozen
class ReplicaQuery:
    """The copies the receiver keeps of records that ``ctx`` may see, of every
    owner except ``except_owners`` (the nodes whose own answer the caller has),
    all of them or those named ``ident`` (a uuid or a name).
    -> list[ReplicaItem] (no tombstones)."""

    OP: ClassVar[Op] = Op.REPLICA_QUERY
    ctx: RequestContext
    except_owners: tuple = ()
    ident: str | None = None
    all_projects: bool = False

    def to_body(self) -> dict:
        return {"ctx": wire.context_to_dict(self.ctx),
                "except_owners": list(self.except_owners),
                "ident": self.ident, "all_projects": self.all_projects}

    @classmethod
    def from_body(cls, body: dict) -> "ReplicaQuery":
        owners = _get(body, "except_owners", list, optional=True, default=[])
        if not all(isinstance(o, str) for o in owners):
            raise WireError("except_owners: expected node names")
        return cls(_ctx(body), tuple(owners), _get(body, "ident", str, optional=True),
                   _get(body, "all_projects", bool, optional=True, default=False))

    @staticmethod
    def answer_to_body(items) -> dict:
        return {"items": [i.to_wire() for i in items]}

    @staticmethod
    def answer_from_body(ok: dict) -> list[ReplicaItem]:
        return _items(_get(ok, "items", list))


# -- quotas (zund.cluster.quota) ------------------------------------------------------


def _numbers(body: dict, name: str) -> dict:
    value = _get(body, name, dict)
    if not all(isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
               for k, v in value.items()):
        raise WireError(f"{name}: expected a map of numbers")
    return dict(value)


def _version(body: dict) -> tuple:
    version = _get(body, "version", (list, tuple))
    if (len(version) != 2 or not isinstance(version[0], (int, float))
            or isinstance(version[0], bool) or not isinstance(version[1], str)):
        raise WireError("version: expected [seconds, node]")
    return (float(version[0]), version[1])


@attrs.frozen
class QuotaClaimRequest(_NoAnswer):
    """To the project's ledger holder: count ``resources`` for the container
    ``uuid`` (idempotent per uuid). -> None; QuotaExceeded when it does not fit,
    ServiceUnavailable when the receiver is not (yet) the holder."""

    OP: ClassVar[Op] = Op.QUOTA_CLAIM
    project_id: str
    uuid: str
    resources: dict

    def to_body(self) -> dict:
        return {"project_id": self.project_id, "uuid": self.uuid,
                "resources": dict(self.resources)}

    @classmethod
    def from_body(cls, body: dict) -> "QuotaClaimRequest":
        return cls(_get(body, "project_id", str), _get(body, "uuid", str),
                   _numbers(body, "resources"))


@attrs.frozen
class QuotaSettleRequest(_NoAnswer):
    """To the holder: the container ``uuid`` was ``committed`` (it exists) or not
    (it will not, or no longer does). Idempotent. -> None."""

    OP: ClassVar[Op] = Op.QUOTA_SETTLE
    project_id: str
    uuid: str
    committed: bool

    def to_body(self) -> dict:
        return {"project_id": self.project_id, "uuid": self.uuid, "committed": self.committed}

    @classmethod
    def from_body(cls, body: dict) -> "QuotaSettleRequest":
        return cls(_get(body, "project_id", str), _get(body, "uuid", str),
                   _get(body, "committed", bool))


@attrs.frozen
class QuotaLimitsPut(_NoAnswer):
    """Keep limits ``key`` (``project:<id>`` or ``class:<name>``) at ``version``
    (``(seconds, node)``); a version older than the one held is ignored; empty
    ``limits`` = back to the defaults. -> None."""

    OP: ClassVar[Op] = Op.QUOTA_LIMITS_PUT
    key: str
    limits: dict
    version: tuple

    def to_body(self) -> dict:
        return {"key": self.key, "limits": dict(self.limits), "version": list(self.version)}

    @classmethod
    def from_body(cls, body: dict) -> "QuotaLimitsPut":
        return cls(_get(body, "key", str), _numbers(body, "limits"), _version(body))


@attrs.frozen
class QuotaLimitsGet:
    """The receiver's copy of limits ``key``. -> (limits, version) or None."""

    OP: ClassVar[Op] = Op.QUOTA_LIMITS_GET
    key: str

    def to_body(self) -> dict:
        return {"key": self.key}

    @classmethod
    def from_body(cls, body: dict) -> "QuotaLimitsGet":
        return cls(_get(body, "key", str))

    @staticmethod
    def answer_to_body(result) -> dict:
        if result is None:
            return {}
        limits, version = result
        return {"limits": dict(limits), "version": list(version)}

    @staticmethod
    def answer_from_body(ok: dict):
        if "limits" not in ok:
            return None
        return _numbers(ok, "limits"), _version(ok)


@attrs.frozen
class QuotaUsageRequest:
    """To the holder: the project's committed usage. -> {resource: amount}."""

    OP: ClassVar[Op] = Op.QUOTA_USAGE
    project_id: str

    def to_body(self) -> dict:
        return {"project_id": self.project_id}

    @classmethod
    def from_body(cls, body: dict) -> "QuotaUsageRequest":
        return cls(_get(body, "project_id", str))

    @staticmethod
    def answer_to_body(usage: dict) -> dict:
        return {"usage": dict(usage)}

    @staticmethod
    def answer_from_body(ok: dict) -> dict:
        return _numbers(ok, "usage")


@attrs.frozen
class QuotaClaimsRequest:
    """To the previous holder of a project's ledger: its live claims, so the new
    holder counts them. -> {uuid: {resource: amount}}."""

    OP: ClassVar[Op] = Op.QUOTA_CLAIMS
    project_id: str

    def to_body(self) -> dict:
        return {"project_id": self.project_id}

    @classmethod
    def from_body(cls, body: dict) -> "QuotaClaimsRequest":
        return cls(_get(body, "project_id", str))

    @staticmethod
    def answer_to_body(claims: dict) -> dict:
        return {"claims": dict(claims)}

    @staticmethod
    def answer_from_body(ok: dict) -> dict:
        claims = _get(ok, "claims", dict)
        return {u: _numbers(claims, u) for u in claims if isinstance(u, str)}


# -- images (zund.images) -------------------------------------------------------------


def _image(value):
    from zund.images.records import ImageRecord

    try:
        return ImageRecord.from_dict(value)
    except (TypeError, ValueError) as e:
        raise WireError(f"image: {e}") from None


@attrs.frozen
class ImagePullRequest:
    """Pull ``image`` onto the receiver with ``image_driver`` (None: its default).
    -> ImageRecord (status Pulling; the pull goes on in the background)."""

    OP: ClassVar[Op] = Op.IMAGE_PULL
    ctx: RequestContext
    image: str
    image_driver: str | None = None

    def to_body(self) -> dict:
        return {"ctx": wire.context_to_dict(self.ctx), "image": self.image,
                "image_driver": self.image_driver}

    @classmethod
    def from_body(cls, body: dict) -> "ImagePullRequest":
        return cls(_ctx(body), _get(body, "image", str),
                   _get(body, "image_driver", str, optional=True))

    @staticmethod
    def answer_to_body(record) -> dict:
        return {"image": record.to_dict()}

    @staticmethod
    def answer_from_body(ok: dict):
        return _image(_get(ok, "image", dict))


@attrs.frozen
class ImageListRequest:
    """The receiver's image records. -> list[ImageRecord]."""

    OP: ClassVar[Op] = Op.IMAGE_LIST
    ctx: RequestContext

    def to_body(self) -> dict:
        return {"ctx": wire.context_to_dict(self.ctx)}

    @classmethod
    def from_body(cls, body: dict) -> "ImageListRequest":
        return cls(_ctx(body))

    @staticmethod
    def answer_to_body(records) -> dict:
        return {"images": [r.to_dict() for r in records]}

    @staticmethod
    def answer_from_body(ok: dict) -> list:
        return [_image(v) for v in _get(ok, "images", list)]


@attrs.frozen
class ImageShowRequest:
    """The receiver's image record ``uuid``. -> ImageRecord (ImageRecordNotFound)."""

    OP: ClassVar[Op] = Op.IMAGE_SHOW
    ctx: RequestContext
    uuid: str

    def to_body(self) -> dict:
        return {"ctx": wire.context_to_dict(self.ctx), "uuid": self.uuid}

    @classmethod
    def from_body(cls, body: dict) -> "ImageShowRequest":
        return cls(_ctx(body), _get(body, "uuid", str))

    @staticmethod
    def answer_to_body(record) -> dict:
        return {"image": record.to_dict()}

    @staticmethod
    def answer_from_body(ok: dict):
        return _image(_get(ok, "image", dict))


@attrs.frozen
class ImageDeleteRequest(_NoAnswer):
    """Delete the receiver's image record ``uuid`` and its image. -> None
    (ImageRecordNotFound, ImageInUse)."""

    OP: ClassVar[Op] = Op.IMAGE_DELETE
    ctx: RequestContext
    uuid: str

    def to_body(self) -> dict:
        return {"ctx": wire.context_to_dict(self.ctx), "uuid": self.uuid}

    @classmethod
    def from_body(cls, body: dict) -> "ImageDeleteRequest":
        return cls(_ctx(body), _get(body, "uuid", str))


IMAGE_REQUESTS = (ImagePullRequest, ImageListRequest, ImageShowRequest, ImageDeleteRequest)


# -- private registries (zund.cluster.registries) ------------------------------------


def _registries(body: dict, name: str) -> list:
    try:
        return [RegistryEntry.from_wire(d) for d in _get(body, name, list)]
    except ValueError as e:
        raise WireError(str(e)) from None


@attrs.frozen
class RegistryPut(_NoAnswer):
    """Keep these registry copies (each only when newer than the one held; the
    password travels in the clear inside the sealed body). -> None."""

    OP: ClassVar[Op] = Op.REGISTRY_PUT
    entries: tuple

    def to_body(self) -> dict:
        return {"entries": [e.to_wire() for e in self.entries]}

    @classmethod
    def from_body(cls, body: dict) -> "RegistryPut":
        return cls(tuple(_registries(body, "entries")))


@attrs.frozen
class RegistryGet:
    """The receiver's copies of project ``project_id``'s registries (every
    project's when None), tombstones included. -> [RegistryEntry]."""

    OP: ClassVar[Op] = Op.REGISTRY_GET
    project_id: str | None

    def to_body(self) -> dict:
        return {"project_id": self.project_id}

    @classmethod
    def from_body(cls, body: dict) -> "RegistryGet":
        return cls(_get(body, "project_id", str, optional=True))

    @staticmethod
    def answer_to_body(entries) -> dict:
        return {"entries": [e.to_wire() for e in entries]}

    @staticmethod
    def answer_from_body(ok: dict) -> list:
        return _registries(ok, "entries")


REGISTRY_REQUESTS = (RegistryPut, RegistryGet)


# -- tenant networks, vxlan backend (zund.network.vxlan) -------------------------------


def _net_items(body: dict, name: str) -> list:
    from zund.network.records import NetItem  # the network package imports us
    try:
        return [NetItem.from_wire(d) for d in _get(body, name, list)]
    except ValueError as e:
        raise WireError(str(e)) from None


@attrs.frozen
class NetworkPut(_NoAnswer):
    """Keep these network items (definitions, block claims), each only when newer
    than the copy held. -> None."""

    OP: ClassVar[Op] = Op.NETWORK_PUT
    items: tuple

    def to_body(self) -> dict:
        return {"items": [i.to_wire() for i in self.items]}

    @classmethod
    def from_body(cls, body: dict) -> "NetworkPut":
        return cls(tuple(_net_items(body, "items")))


@attrs.frozen
class NetworkGet:
    """The receiver's network items of ``group`` (every group's when None),
    tombstones included. -> [NetItem]."""

    OP: ClassVar[Op] = Op.NETWORK_GET
    group: str | None

    def to_body(self) -> dict:
        return {"group": self.group}

    @classmethod
    def from_body(cls, body: dict) -> "NetworkGet":
        return cls(_get(body, "group", str, optional=True))

    @staticmethod
    def answer_to_body(items) -> dict:
        return {"items": [i.to_wire() for i in items]}

    @staticmethod
    def answer_from_body(ok: dict) -> list:
        return _net_items(ok, "items")


@attrs.frozen
class NetworkChanged(_NoAnswer):
    """Network ``net_id``'s blocks changed (a node joined or left it): re-read
    them and update the forwarding entries. -> None."""

    OP: ClassVar[Op] = Op.NETWORK_CHANGED
    net_id: str

    def to_body(self) -> dict:
        return {"net_id": self.net_id}

    @classmethod
    def from_body(cls, body: dict) -> "NetworkChanged":
        return cls(_get(body, "net_id", str))


NETWORK_REQUESTS = (NetworkPut, NetworkGet, NetworkChanged)


# -- flavors created through the compute API (zund.cluster.flavors) ------------------


def _flavors(body: dict, name: str) -> list:
    try:
        return [Flavor.from_wire(d) for d in _get(body, name, list)]
    except ValueError as e:
        raise WireError(str(e)) from None


@attrs.frozen
class FlavorPut(_NoAnswer):
    """Keep these flavor copies (each only when newer than the one held). -> None."""

    OP: ClassVar[Op] = Op.FLAVOR_PUT
    entries: tuple

    def to_body(self) -> dict:
        return {"entries": [f.to_wire() for f in self.entries]}

    @classmethod
    def from_body(cls, body: dict) -> "FlavorPut":
        return cls(tuple(_flavors(body, "entries")))


@attrs.frozen
class FlavorGet:
    """The receiver's flavor copies of ``group`` (every group's when None),
    tombstones included. -> [Flavor]."""

    OP: ClassVar[Op] = Op.FLAVOR_GET
    group: str | None

    def to_body(self) -> dict:
        return {"group": self.group}

    @classmethod
    def from_body(cls, body: dict) -> "FlavorGet":
        return cls(_get(body, "group", str, optional=True))

    @staticmethod
    def answer_to_body(entries) -> dict:
        return {"entries": [f.to_wire() for f in entries]}

    @staticmethod
    def answer_from_body(ok: dict) -> list:
        return _flavors(ok, "entries")


FLAVOR_REQUESTS = (FlavorPut, FlavorGet)


@attrs.frozen
class ServiceStateRequest:
    """An operator's mark on the zun-compute service of ``host`` (Zun's ``PUT
    /v1/services/{enable,disable,force_down}``): ``disabled`` (with ``reason``) is
    sent to ``host``, which drains; ``forced_down`` to every live node, which then
    treats ``host`` as dead (``zund.cluster.healer``). None: unchanged.
    -> {host, disabled, disabled_reason, forced_down} as the receiver knows them."""

    OP: ClassVar[Op] = Op.SERVICE_STATE
    host: str
    disabled: bool | None = None
    reason: str | None = None
    forced_down: bool | None = None

    def to_body(self) -> dict:
        return {"host": self.host, "disabled": self.disabled, "reason": self.reason,
                "forced_down": self.forced_down}

    @classmethod
    def from_body(cls, body: dict) -> "ServiceStateRequest":
        return cls(_get(body, "host", str),
                   _get(body, "disabled", bool, optional=True),
                   _get(body, "reason", str, optional=True),
                   _get(body, "forced_down", bool, optional=True))

    @staticmethod
    def answer_to_body(state) -> dict:
        return {"state": dict(state)}

    @staticmethod
    def answer_from_body(ok: dict) -> dict:
        return dict(_get(ok, "state", dict))


#: marks one SERVICE_MARKS carries at most (a cluster has fewer nodes)
MAX_SERVICE_MARKS = 4096


def _marks(body: dict) -> tuple:
    raw = _get(body, "marks", list)
    if len(raw) > MAX_SERVICE_MARKS:
        raise WireError(f"marks: more than {MAX_SERVICE_MARKS}")
    out = []
    for item in raw:
        if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str)
                or not isinstance(item[1], (int, float)) or isinstance(item[1], bool)
                or not isinstance(item[2], bool)):
            raise WireError("marks: each is [host, stamp, forced_down]")
        out.append((item[0], float(item[1]), item[2]))
    return tuple(out)


@attrs.frozen
class ServiceMarksExchange:
    """Operator marks (forced down) as the sender knows them, each ``(host, stamp,
    forced_down)``: the receiver keeps every one newer than its own, and answers
    with all of its marks after the merge (the sender merges them in turn), so a
    node that joins or restarts learns the marks it missed (``zund.cluster.healer``).
    -> tuple of (host, stamp, forced_down)."""

    OP: ClassVar[Op] = Op.SERVICE_MARKS
    marks: tuple = ()

    def to_body(self) -> dict:
        return {"marks": [[h, float(t), bool(f)] for h, t, f in self.marks]}

    @classmethod
    def from_body(cls, body: dict) -> "ServiceMarksExchange":
        return cls(_marks(body))

    @staticmethod
    def answer_to_body(marks) -> dict:
        return {"marks": [[h, float(t), bool(f)] for h, t, f in marks]}

    @staticmethod
    def answer_from_body(ok: dict) -> tuple:
        return _marks(ok)


#: notes one PEER_NOTES (or one envelope's ``notes``) carries at most, per kind
MAX_NOTES = 4096


def _releases(body: dict) -> tuple:
    raw = _get(body, "releases", list, optional=True, default=[])
    if len(raw) > MAX_NOTES or not all(isinstance(r, str) for r in raw):
        raise WireError(f"releases: at most {MAX_NOTES} reservation ids")
    return tuple(raw)


def _settles(body: dict) -> tuple:
    raw = _get(body, "settles", list, optional=True, default=[])
    if len(raw) > MAX_NOTES:
        raise WireError(f"settles: more than {MAX_NOTES}")
    out = []
    for item in raw:
        if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str)
                or not isinstance(item[1], str) or not isinstance(item[2], bool)):
            raise WireError("settles: each is [project_id, uuid, committed]")
        out.append((item[0], item[1], item[2]))
    return tuple(out)


@attrs.frozen
class PeerNotes(_NoAnswer):
    """Fire-and-forget housekeeping the sender batched for the receiver: RELEASE
    of these reservation ids (``releases``) and QUOTA_SETTLE of these claims
    (``settles``: ``(project_id, uuid, committed)``), each as idempotent as its
    single message. Sent on its own (op PEER_NOTES) when nothing else goes to the
    receiver soon, else in the ``notes`` key of another request's envelope (applied
    before that request). -> None."""

    OP: ClassVar[Op] = Op.PEER_NOTES
    releases: tuple = ()
    settles: tuple = ()

    def __bool__(self) -> bool:
        return bool(self.releases or self.settles)

    def to_body(self) -> dict:
        return {"releases": list(self.releases),
                "settles": [[p, u, bool(c)] for p, u, c in self.settles]}

    @classmethod
    def from_body(cls, body: dict) -> "PeerNotes":
        return cls(_releases(body), _settles(body))


@attrs.frozen
class PingRequest(_NoAnswer):
    """The cheapest signed (and sealed) round trip: the receiver does nothing but
    answer. -> None. Measures the transport's floor (bench/placement_real.py)."""

    OP: ClassVar[Op] = Op.PING

    def to_body(self) -> dict:
        return {}

    @classmethod
    def from_body(cls, body: dict) -> "PingRequest":
        return cls()


def _lease_uses(body: dict, name: str) -> dict:
    raw = _get(body, name, dict, optional=True, default={})
    if len(raw) > MAX_NOTES:
        raise WireError(f"{name}: more than {MAX_NOTES}")
    return {u: _numbers(raw, u) for u in raw if isinstance(u, str)}


def _lease_returns(body: dict) -> tuple:
    raw = _get(body, "returns", list, optional=True, default=[])
    if len(raw) > MAX_NOTES:
        raise WireError(f"returns: at most {MAX_NOTES} leases")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise WireError("returns: each is {project_id, lease_id, committed, pending}")
        out.append((_get(item, "project_id", str), _get(item, "lease_id", str),
                    _lease_uses(item, "committed"), _lease_uses(item, "pending")))
    return tuple(out)


def _returns_body(returns) -> list:
    return [{"project_id": p, "lease_id": lid, "committed": dict(c), "pending": dict(q)}
            for p, lid, c, q in returns]


@attrs.frozen
class QuotaLeaseClaim:
    """To the project's ledger holder, from node ``node``: hand back the leases in
    ``returns`` (``(project_id, lease_id, committed {uuid: demand}, pending {uuid:
    demand})``, any projects this receiver holds),
    then count ``resources`` for the container ``uuid`` (as QUOTA_CLAIM), then,
    when ``want_lease``, lease ``node`` a block of the project's headroom.
    -> ``(lease_id, amounts, ttl_s)`` or None (no lease); QuotaExceeded when the
    claim does not fit (the returns are applied either way)."""

    OP: ClassVar[Op] = Op.QUOTA_LEASE_CLAIM
    project_id: str
    uuid: str
    resources: dict
    node: str
    want_lease: bool = True
    returns: tuple = ()

    def to_body(self) -> dict:
        return {"project_id": self.project_id, "uuid": self.uuid,
                "resources": dict(self.resources), "node": self.node,
                "want_lease": self.want_lease, "returns": _returns_body(self.returns)}

    @classmethod
    def from_body(cls, body: dict) -> "QuotaLeaseClaim":
        return cls(_get(body, "project_id", str), _get(body, "uuid", str),
                   _numbers(body, "resources"), _get(body, "node", str),
                   _get(body, "want_lease", bool, optional=True, default=False),
                   _lease_returns(body))

    @staticmethod
    def answer_to_body(grant) -> dict:
        if grant is None:
            return {}
        lease_id, amounts, ttl_s = grant
        return {"lease_id": lease_id, "amounts": dict(amounts), "ttl_s": float(ttl_s)}

    @staticmethod
    def answer_from_body(ok: dict):
        if "lease_id" not in ok:
            return None
        ttl = _get(ok, "ttl_s", (int, float))
        return _get(ok, "lease_id", str), _numbers(ok, "amounts"), float(ttl)


@attrs.frozen
class QuotaLeaseReturn(_NoAnswer):
    """To a ledger holder: these leases are over (``returns``: ``(project_id,
    lease_id, committed, pending)``; the containers each counted, ``committed``:
    created, ``pending``: creates still in flight, counted as claims). Sent
    batched when no QUOTA_LEASE_CLAIM to the receiver carried them. Idempotent.
    -> None."""

    OP: ClassVar[Op] = Op.QUOTA_LEASE_RETURN
    returns: tuple = ()

    def to_body(self) -> dict:
        return {"returns": _returns_body(self.returns)}

    @classmethod
    def from_body(cls, body: dict) -> "QuotaLeaseReturn":
        return cls(_lease_returns(body))


@attrs.frozen
class QuotaLeasePeek:
    """From the project's ledger holder to a node: the containers the node counted
    against each of its leases of the project (created or in flight; held, spent
    or returned without acknowledgement), and with ``revoke`` (a new holder taking
    over, or the holder taking unused leases back) stop using them.
    -> {lease_id: {uuid: demand}}."""

    OP: ClassVar[Op] = Op.QUOTA_LEASE_PEEK
    project_id: str
    revoke: bool = False

    def to_body(self) -> dict:
        return {"project_id": self.project_id, "revoke": self.revoke}

    @classmethod
    def from_body(cls, body: dict) -> "QuotaLeasePeek":
        return cls(_get(body, "project_id", str),
                   _get(body, "revoke", bool, optional=True, default=False))

    @staticmethod
    def answer_to_body(leases: dict) -> dict:
        return {"leases": {lid: dict(used) for lid, used in leases.items()}}

    @staticmethod
    def answer_from_body(ok: dict) -> dict:
        raw = _get(ok, "leases", dict)
        if len(raw) > MAX_NOTES:
            raise WireError(f"leases: more than {MAX_NOTES}")
        return {lid: _lease_uses(raw, lid) for lid in raw if isinstance(lid, str)}


QUOTA_REQUESTS = (QuotaClaimRequest, QuotaSettleRequest, QuotaLimitsPut, QuotaLimitsGet,
                  QuotaUsageRequest, QuotaClaimsRequest, QuotaLeaseClaim, QuotaLeaseReturn,
                  QuotaLeasePeek)


REQUESTS: dict[Op, type] = {cls.OP: cls for cls in (
    BidRequest, CommitRequest, BidCommitRequest, ReleaseRequest, ListRequest, LocateRequest,
    OwnerCall, HostRequest, ReplicateRequest, ReplicaSyncRequest, ReplicaQuery, CommitStatusRequest,
    ServiceStateRequest, ServiceMarksExchange)
    + QUOTA_REQUESTS + IMAGE_REQUESTS + REGISTRY_REQUESTS + FLAVOR_REQUESTS
    + NETWORK_REQUESTS + (PingRequest, PeerNotes)}


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


def encode_request(msg, notes: "PeerNotes | None" = None) -> dict:
    """The envelope of ``msg``; ``notes`` (a non-empty ``PeerNotes``) ride along in
    its optional ``notes`` key (a receiver that predates it ignores them: a
    reservation then expires by its TTL, a claim is recounted)."""
    envelope = {"v": PROTOCOL_VERSION, "op": int(msg.OP), "body": msg.to_body()}
    if notes:
        envelope["notes"] = notes.to_body()
    return envelope


def decode_notes(envelope: dict) -> "PeerNotes | None":
    """The ``PeerNotes`` riding in ``envelope``, or None. Raises WireError when
    malformed."""
    body = envelope.get("notes")
    if body is None:
        return None
    if not isinstance(body, dict):
        raise WireError("notes: expected a map")
    return PeerNotes.from_body(body) or None


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
