"""The peer RPC server: what other nodes may ask this node (Klein, msgpack bodies).

Every request is POST with a msgpack map body and must carry a valid signature
(``zund.cluster.signing``) addressed to this node; otherwise 401, counted in
``stats``. The pipeline per request: size check → signature → decode → handler →
msgpack answer. Errors travel as ``{"error": {type, message, kwargs}}`` and the
caller re-raises the same zund error class (``zund.cluster.wire``).

The HTTP status of an error is informational (callers decode the body); it is
mapped coarsely below — this is a node-to-node boundary, not the Zun API, whose
status table lives in ``zund/api/errors.py``.

Endpoints (all ``POST /v1/peer/...``):

    bid               {request}                        -> {bid} | {decline}
    commit            {reservation_id, ctx, create, run} -> {record}
    release           {reservation_id}                 -> {}
    containers/list   {ctx, all_projects}              -> {records}
    containers/locate {ctx, ident, refresh?}           -> {record}   (404 if none)
    containers/call   {ctx, uuid, method, kwargs}      -> {result}
    host              {}                               -> {host}
"""

from __future__ import annotations

import collections
import inspect
import uuid as uuidlib

from klein import Klein
from twisted.logger import Logger
from twisted.web.server import Site
from zope.interface import Attribute, Interface

from zund.cluster import signing, wire
from zund.cluster.types import PlacementRequest
from zund.common import errors
from zund.records import ContainerRecord

log = Logger()

#: ContainerManager methods a peer may invoke on a local record, with the
#: caller's context. Everything else (create, recover, sync, ...) is refused.
CALLABLE_METHODS = frozenset({
    "delete", "start", "stop", "reboot", "pause", "unpause", "kill", "logs", "execute",
    "top", "stats", "update", "resize_container", "get_archive", "put_archive", "commit",
    "list_actions", "get_action", "refresh",
})

#: error type -> HTTP status, along the MRO; other ZundErrors 400, anything else 500
_STATUS = (
    (errors.NotAuthenticated, 401),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.NoValidHost, 409),
    (errors.PolicyNotAuthorized, 403),
    (errors.QuotaExceeded, 403),
    (errors.RequestEntityTooLarge, 413),
    (errors.ServiceUnavailable, 503),
    (errors.NotImplementedYet, 501),
    (errors.RuntimeFailure, 500),
)


def status_for(exc: BaseException) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400 if isinstance(exc, errors.ZundError) else 500


class IPeerHandlers(Interface):
    """What the peer server needs from the node (the lead's composition root
    provides it; tests use a fake). Keep it this small."""

    manager = Attribute("The local ContainerManager (lookup, list, refresh, host_info "
                        "and the CALLABLE_METHODS).")

    async def bid(request: PlacementRequest):
        """-> Bid | Decline (the bidder)."""

    async def commit(reservation_id: str, ctx, create: dict, run: bool):
        """-> ContainerRecord (or its wire dict). ``ctx`` is a RequestContext.
        Raises ZundError subclasses (e.g. ReservationExpired) on refusal."""

    def release(reservation_id: str) -> None:
        """Drop a reservation; unknown ids are fine. May be sync or async (so may
        bid and commit)."""


def _field(msg: dict, name: str, types, *, optional: bool = False, default=None):
    if name not in msg or msg[name] is None:
        if optional:
            return default
        raise errors.InvalidInput(field=name, reason="required")
    value = msg[name]
    if not isinstance(value, types):
        raise errors.InvalidInput(field=name, reason=f"wrong type {type(value).__name__}")
    return value


async def _maybe_await(result):
    """Handlers may be plain or async (the bidder's release is synchronous)."""
    if inspect.isawaitable(result):
        return await result
    return result


def _bind_check(fn, args: tuple, kwargs: dict, method: str) -> None:
    """Refuse kwargs the manager method does not take, before calling it (so a
    TypeError from inside the manager is never mistaken for bad input)."""
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as e:
        raise errors.InvalidInput(field="kwargs", reason=f"{method}: {e}") from None


class PeerAPI:
    """The peer RPC surface of one node.

    ``node_name``: this node (requests must be addressed to it);
    ``handlers``: an :class:`IPeerHandlers`;
    ``verifier``: a ``signing.Verifier`` for this node;
    ``clock``: IReactorTime (kept for symmetry and future rate limits);
    ``max_body_bytes``: larger requests are refused with 413 before anything else.

    ``stats`` counts requests, unauthorized, too_large, bad_body, errors (4xx
    answers from handlers), failures (5xx) and ok.
    """

    app = Klein()

    def __init__(self, node_name: str, handlers, verifier: signing.Verifier, clock,
                 max_body_bytes: int = wire.DEFAULT_MAX_BYTES):
        self.node_name = node_name
        self.handlers = handlers
        self.verifier = verifier
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self.stats: collections.Counter = collections.Counter()

    def resource(self):
        return self.app.resource()

    def site(self) -> Site:
        """A twisted.web Site for ``[peer] host_ip:port`` (no I/O here)."""
        return Site(self.resource())

    # -- pipeline --------------------------------------------------------------------

    def _answer(self, request, status: int, payload: dict) -> bytes:
        request.setResponseCode(status)
        request.setHeader("Content-Type", wire.CONTENT_TYPE)
        return wire.pack(payload)

    def _error(self, request, exc: errors.ZundError) -> bytes:
        return self._answer(request, status_for(exc), {"error": wire.error_to_dict(exc)})

    async def _serve(self, request, handle) -> bytes:
        self.stats["requests"] += 1
        body = request.content.read(self.max_body_bytes + 1)
        if len(body) > self.max_body_bytes:
            self.stats["too_large"] += 1
            return self._error(request, errors.RequestEntityTooLarge(limit=self.max_body_bytes))
        headers = {name: request.getHeader(name) for name in (
            signing.HEADER_NODE, signing.HEADER_TARGET, signing.HEADER_TIMESTAMP,
            signing.HEADER_NONCE, signing.HEADER_SIGNATURE)}
        method = request.method.decode("ascii", "replace")
        path = request.uri.decode("utf-8", "replace")
        try:
            sender = self.verifier.verify(method, path, body, headers)
        except signing.SignatureInvalid as e:
            self.stats["unauthorized"] += 1
            self.stats[f"unauthorized.{e.reason}"] += 1
            log.warn("peer.unauthorized path={path} reason={reason} claimed={claimed} "
                     "client={client}", path=path, reason=e.reason,
                     claimed=headers.get(signing.HEADER_NODE),
                     client=getattr(request.getClientAddress(), "host", None))
            return self._error(request, errors.NotAuthenticated())
        try:
            msg = wire.unpack_map(body, self.max_body_bytes)
        except wire.WireError as e:
            self.stats["bad_body"] += 1
            log.warn("peer.bad_body path={path} sender={sender} reason={reason}",
                     path=path, sender=sender, reason=str(e))
            return self._error(request, errors.InvalidInput(field="body", reason=str(e)))
        try:
            result = await handle(msg)
        except wire.WireError as e:
            self.stats["bad_body"] += 1
            return self._error(request, errors.InvalidInput(field="body", reason=str(e)))
        except errors.ZundError as e:
            status = status_for(e)
            self.stats["errors" if status < 500 else "failures"] += 1
            return self._error(request, e)
        except Exception:
            self.stats["failures"] += 1
            cid = str(uuidlib.uuid4())
            log.failure("peer.error path={path} sender={sender} correlation_id={cid}",
                        path=path, sender=sender, cid=cid)
            return self._error(request, errors.RuntimeFailure(
                reason=f"internal error on {self.node_name}, correlation id {cid}"))
        self.stats["ok"] += 1
        return self._answer(request, 200, result)

    # -- placement -------------------------------------------------------------------

    @app.route("/v1/peer/bid", methods=["POST"])
    async def bid(self, request):
        async def handle(msg):
            req = _field(msg, "request", dict)
            try:
                placement = PlacementRequest.from_wire(req)
            except TypeError as e:
                raise errors.InvalidInput(field="request", reason=str(e)) from None
            return wire.bid_to_dict(await _maybe_await(self.handlers.bid(placement)))

        return await self._serve(request, handle)

    @app.route("/v1/peer/commit", methods=["POST"])
    async def commit(self, request):
        async def handle(msg):
            rid = _field(msg, "reservation_id", str)
            ctx = wire.context_from_dict(_field(msg, "ctx", dict))
            create = _field(msg, "create", dict)
            run = _field(msg, "run", bool, optional=True, default=False)
            rec = await _maybe_await(self.handlers.commit(rid, ctx, create, run))
            return {"record": rec}

        return await self._serve(request, handle)

    @app.route("/v1/peer/release", methods=["POST"])
    async def release(self, request):
        async def handle(msg):
            await _maybe_await(self.handlers.release(_field(msg, "reservation_id", str)))
            return {}

        return await self._serve(request, handle)

    # -- containers ------------------------------------------------------------------

    @app.route("/v1/peer/containers/list", methods=["POST"])
    async def containers_list(self, request):
        async def handle(msg):
            ctx = wire.context_from_dict(_field(msg, "ctx", dict))
            all_projects = _field(msg, "all_projects", bool, optional=True, default=False)
            records = await self.handlers.manager.list(ctx, all_projects=all_projects)
            return {"records": list(records)}

        return await self._serve(request, handle)

    @app.route("/v1/peer/containers/locate", methods=["POST"])
    async def containers_locate(self, request):
        async def handle(msg):
            ctx = wire.context_from_dict(_field(msg, "ctx", dict))
            ident = _field(msg, "ident", str)
            refresh = _field(msg, "refresh", bool, optional=True, default=False)
            manager = self.handlers.manager
            rec = await manager.lookup(ctx, ident)
            if refresh:
                rec = await manager.refresh(rec) or rec
            return {"record": rec}

        return await self._serve(request, handle)

    @app.route("/v1/peer/containers/call", methods=["POST"])
    async def containers_call(self, request):
        async def handle(msg):
            ctx = wire.context_from_dict(_field(msg, "ctx", dict))
            uuid = _field(msg, "uuid", str)
            method = _field(msg, "method", str)
            kwargs = _field(msg, "kwargs", dict, optional=True, default={})
            if method not in CALLABLE_METHODS:
                raise errors.InvalidInput(field="method", reason=f"{method!r} is not callable")
            manager = self.handlers.manager
            rec: ContainerRecord = await manager.lookup(ctx, uuid)
            if rec.uuid != uuid.lower():  # a name that happens to match: not this call
                raise errors.ContainerNotFound(ident=uuid)
            fn = getattr(manager, method)
            if method == "refresh":
                _bind_check(fn, (rec,), kwargs, method)
                result = await fn(rec, **kwargs)
            else:
                _bind_check(fn, (ctx, rec), kwargs, method)
                result = await fn(ctx, rec, **kwargs)
            return {"result": result}

        return await self._serve(request, handle)

    @app.route("/v1/peer/host", methods=["POST"])
    async def host(self, request):
        async def handle(msg):
            return {"host": await self.handlers.manager.host_info()}

        return await self._serve(request, handle)
