"""The peer RPC server: what other nodes may ask this node (Klein, msgpack bodies).

One endpoint, ``POST /v1/peer``. Every request must carry a valid signature
(``zund.cluster.signing``) addressed to this node; otherwise 401, counted in
``stats``. The pipeline per request: size check → signature (over the bytes as
sent; a replayed nonce is refused) → open the AES-GCM seal (``zund.cluster.sealing``,
when ``[gossip] keys`` are set; a body no key opens is 401) → decode the versioned
envelope into a typed message (``zund.cluster.messages``) → handler → msgpack
answer, sealed for this request. Errors travel as ``{"v", "error": {type, message, kwargs}}`` and
the caller re-raises the same zund error class (``zund.cluster.wire``); a message
of an unknown version or operation is answered with ``UnsupportedPeerVersion`` /
``UnsupportedPeerOperation``.

The HTTP status of an error is informational (callers decode the body); it is
mapped coarsely below — this is a node-to-node boundary, not the Zun API, whose
status table lives in ``zund/api/errors.py``.

Operations (``messages.Op``): BID → bidder, COMMIT → bidder + local create,
BID_COMMIT → both at once (the placement fast path), RELEASE → bidder, LIST / LOCATE / HOST → this node's containers, OWNER_CALL → the
``IContainers`` owner call it names (the allowlist and the arguments are derived
from the interface declaration).
"""

from __future__ import annotations

import collections
import inspect
import uuid as uuidlib

from klein import Klein
from twisted.logger import Logger
from twisted.web.server import Site
from zope.interface import Attribute, Interface

from zund.cluster import messages, sealing, signing, wire
from zund.common import errors
from zund.compute import interface

log = Logger()

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


#: the request headers the signature travels in (``zund.cluster.signing``)
SIGNED_HEADERS = (signing.HEADER_NODE, signing.HEADER_TARGET, signing.HEADER_TIMESTAMP,
                  signing.HEADER_NONCE, signing.HEADER_SIGNATURE)


def status_for(exc: BaseException) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400 if isinstance(exc, errors.ZundError) else 500


class IPeerHandlers(Interface):
    """What the peer server needs from the node (the composition root provides
    ``zund.cluster.handlers.NodeHandlers``; tests may use a fake). Keep it this small."""

    containers = Attribute("This node's zund.compute.local.LocalContainers (locate, list, "
                           "host_info and every IContainers owner call).")

    async def bid(request):
        """-> Bid | Decline for a PlacementRequest (the bidder)."""

    async def commit(reservation_id, ctx, uuid, placement, request):
        """-> ContainerRecord created from the CreateRequest ``request`` with the
        entry node's ``uuid`` and ``placement`` decision. Raises ZundError
        subclasses (e.g. ReservationExpired) on refusal."""

    def release(reservation_id):
        """Drop a reservation; unknown ids are fine. May be sync or async."""

    async def bid_commit(request, reservation_id, ctx, uuid, placement, create, bar):
        """Optional (BID_COMMIT, the placement fast path): the bid for the
        PlacementRequest ``request`` and, when this node would bid, the commit of
        ``create`` under the coordinator's ``reservation_id`` at once -> the
        ContainerRecord, or the Decline (also when its score is below ``bar``,
        a number or None). Without it BID_COMMIT is refused as an
        unsupported operation (the coordinator falls back to the bid round)."""

    async def commit_status(ctx, uuid, reservation_id):
        """-> the ContainerRecord ``uuid`` when this node holds it; else None, and
        the reservation is fenced (a later COMMIT of it is refused)."""

    replicas = Attribute("Optional: this node's zund.cluster.replicas.ReplicaHolder "
                         "(receive, sync, query) for REPLICATE / REPLICA_SYNC / "
                         "REPLICA_QUERY; None refuses them.")


async def _maybe_await(result):
    """Handlers may be plain or async (the bidder's release is synchronous)."""
    if inspect.isawaitable(result):
        return await result
    return result


class PeerAPI:
    """The peer RPC surface of one node.

    ``node_name``: this node (requests must be addressed to it);
    ``handlers``: an :class:`IPeerHandlers`;
    ``verifier``: a ``signing.Verifier`` for this node;
    ``clock``: IReactorTime (kept for symmetry and future rate limits);
    ``max_body_bytes``: larger requests are refused with 413 before anything else;
    ``sealer``: a ``sealing.Sealer``: requests must be sealed with the ring and every
    answer to an authenticated request is sealed; None: plaintext (insecure mode).

    ``stats`` counts requests, unauthorized, too_large, bad_body, refused
    (unsupported version or operation, undeclared arguments), errors (4xx answers
    from handlers), failures (5xx) and ok.
    """

    app = Klein()

    def __init__(self, node_name: str, handlers, verifier: signing.Verifier, clock,
                 max_body_bytes: int = wire.DEFAULT_MAX_BYTES,
                 sealer: sealing.Sealer | None = None):
        self.node_name = node_name
        self.handlers = handlers
        self.verifier = verifier
        self.sealer = sealer
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self.stats: collections.Counter = collections.Counter()

    def resource(self):
        return self.app.resource()

    def site(self) -> Site:
        """A twisted.web Site for ``[peer] host_ip:port`` (no I/O here)."""
        return Site(self.resource())

    # -- pipeline --------------------------------------------------------------------

    def _answer(self, status: int, payload: dict,
                seal_aad: bytes | None = None) -> tuple[int, str, bytes]:
        return self._reply(status, wire.pack(payload), seal_aad)

    def _reply(self, status: int, data: bytes,
               seal_aad: bytes | None) -> tuple[int, str, bytes]:
        """(status, content type, body). ``seal_aad``: the answer's associated data
        once the request is authenticated and sealing is on (every answer to it is
        then sealed, errors included); None: plaintext (refusals of unauthenticated
        requests, insecure mode)."""
        if seal_aad is None:
            return status, wire.CONTENT_TYPE, data
        return status, sealing.CONTENT_TYPE, self.sealer.seal(data, seal_aad)

    def _error(self, exc: errors.ZundError,
               seal_aad: bytes | None = None) -> tuple[int, str, bytes]:
        return self._answer(status_for(exc), messages.encode_error(exc), seal_aad)

    @app.route("/v1/peer", methods=["POST"])
    async def rpc(self, request):
        """The HTTP transport of :meth:`exchange`."""
        body = request.content.read(self.max_body_bytes + 1)
        headers = {name: request.getHeader(name) for name in SIGNED_HEADERS}
        status, content_type, data = await self.exchange(
            headers, body, getattr(request.getClientAddress(), "host", None),
            method=request.method.decode("ascii", "replace"),
            path=request.uri.decode("utf-8", "replace"))
        request.setResponseCode(status)
        request.setHeader("Content-Type", content_type)
        return data

    async def exchange(self, headers: dict, body: bytes, client: str | None = None, *,
                       method: str = "POST", path: str = "/v1/peer") -> tuple[int, str, bytes]:
        """One peer request, whatever carried it (HTTP, or the channel:
        ``zund.cluster.channel``): ``headers`` maps the signature header names to
        their values; the answer as (status, content type, body). Never raises."""
        self.stats["requests"] += 1
        if len(body) > self.max_body_bytes:
            self.stats["too_large"] += 1
            return self._error(errors.RequestEntityTooLarge(limit=self.max_body_bytes))
        headers = {name: headers.get(name) for name in SIGNED_HEADERS}
        try:
            sender = self.verifier.verify(method, path, body, headers)
        except signing.SignatureInvalid as e:
            self.stats["unauthorized"] += 1
            self.stats[f"unauthorized.{e.reason}"] += 1
            log.warn("peer.unauthorized path={path} reason={reason} claimed={claimed} "
                     "client={client}", path=path, reason=e.reason,
                     claimed=headers.get(signing.HEADER_NODE), client=client)
            return self._error(errors.NotAuthenticated())
        seal = None
        if self.sealer is not None:
            # the signature verified the sealed bytes; now they must open with our
            # ring, bound to this sender and this node (sealing.request_aad)
            try:
                body = self.sealer.open(body, sealing.request_aad(sender, self.node_name))
            except sealing.Unsealable as e:
                self.stats["unauthorized"] += 1
                self.stats[f"unauthorized.{e.reason}"] += 1
                log.warn("peer.unsealable sender={sender} reason={reason}", sender=sender,
                         reason=e.reason)
                return self._error(errors.NotAuthenticated())
            seal = sealing.answer_aad(sender, self.node_name, headers[signing.HEADER_NONCE])
        try:
            envelope = wire.unpack_map(body, self.max_body_bytes)
            msg = messages.decode_request(envelope, self.node_name)
            notes = messages.decode_notes(envelope)  # batched RELEASE/SETTLE riding along
        except wire.WireError as e:
            self.stats["bad_body"] += 1
            log.warn("peer.bad_body sender={sender} reason={reason}", sender=sender,
                     reason=str(e))
            return self._error(errors.InvalidInput(field="body", reason=str(e)), seal)
        except errors.ZundError as e:  # unsupported version / operation, bad arguments
            self.stats["refused"] += 1
            log.warn("peer.refused sender={sender} error={error}", sender=sender,
                     error=str(e))
            return self._error(e, seal)
        self.stats[f"op.{msg.OP.name}"] += 1
        ctx = getattr(msg, "ctx", None)  # messages that act for a user carry one
        if ctx is not None:
            # the owner's trace of a forwarded call: both ids, so one user action
            # can be followed from the calling service through the entry node to here
            log.debug("peer.call op={op} sender={sender} user_id={user_id} "
                      "project_id={project_id} request_id={request_id} "
                      "global_request_id={global_request_id}", op=msg.OP.name,
                      sender=sender, user_id=ctx.user_id, project_id=ctx.project_id,
                      request_id=ctx.request_id, global_request_id=ctx.global_request_id)
        if notes is not None:
            self.stats["notes_carried"] += 1
            await self._apply_notes(notes)
        try:
            result = await self._handle(msg)
            answer = wire.pack(messages.encode_answer(msg, result))
        except wire.WireError as e:
            self.stats["bad_body"] += 1
            return self._error(errors.InvalidInput(field="body", reason=str(e)), seal)
        except errors.ZundError as e:
            status = status_for(e)
            self.stats["errors" if status < 500 else "failures"] += 1
            return self._error(e, seal)
        except Exception:
            self.stats["failures"] += 1
            cid = str(uuidlib.uuid4())
            log.failure("peer.error op={op} sender={sender} correlation_id={cid}",
                        op=msg.OP.name, sender=sender, cid=cid)
            return self._error(errors.RuntimeFailure(
                reason=f"internal error on {self.node_name}, correlation id {cid}"), seal)
        self.stats["ok"] += 1
        return self._reply(200, answer, seal)

    async def serve_in_process(self, body: bytes) -> bytes:
        """The packed answer to ``body`` (a packed request envelope) that this node
        sends to itself (``PeerClient.local``): the pipeline of :meth:`rpc` after
        authentication — the same decoding, handlers, errors and answers — without
        HTTP, signature or seal (nothing crosses a trust boundary). Never raises.
        Counted as ``in_process``, not as a request."""
        self.stats["in_process"] += 1
        try:
            msg = messages.decode_request(wire.unpack_map(body, self.max_body_bytes),
                                          self.node_name)
        except wire.WireError as e:
            return wire.pack(messages.encode_error(errors.InvalidInput(field="body",
                                                                       reason=str(e))))
        except errors.ZundError as e:
            return wire.pack(messages.encode_error(e))
        try:
            return wire.pack(messages.encode_answer(msg, await self._handle(msg)))
        except wire.WireError as e:
            return wire.pack(messages.encode_error(errors.InvalidInput(field="body",
                                                                       reason=str(e))))
        except errors.ZundError as e:
            return wire.pack(messages.encode_error(e))
        except Exception:
            cid = str(uuidlib.uuid4())
            log.failure("peer.error op={op} sender={sender} correlation_id={cid}",
                        op=msg.OP.name, sender=self.node_name, cid=cid)
            return wire.pack(messages.encode_error(errors.RuntimeFailure(
                reason=f"internal error on {self.node_name}, correlation id {cid}")))

    async def _apply_notes(self, notes: messages.PeerNotes) -> None:
        """The sender's batched RELEASEs and QUOTA_SETTLEs (``zund.cluster.peer_client``
        outbox); best effort, never fails the request they rode with."""
        h = self.handlers
        try:
            for rid in notes.releases:
                await _maybe_await(h.release(rid))
            quota = getattr(h, "quota", None)
            if notes.settles and quota is not None:
                await quota.settle_many(notes.settles)
        except Exception:
            log.failure("peer.notes_failed")

    async def _handle(self, msg):
        h = self.handlers
        if isinstance(msg, messages.PingRequest):
            return None
        if isinstance(msg, messages.PeerNotes):
            return await self._apply_notes(msg)
        if isinstance(msg, messages.BidRequest):
            return await _maybe_await(h.bid(msg.request))
        if isinstance(msg, messages.CommitRequest):
            return await _maybe_await(h.commit(msg.reservation_id, msg.ctx, msg.uuid,
                                               msg.placement, msg.request))
        if isinstance(msg, messages.BidCommitRequest):
            bid_commit = getattr(h, "bid_commit", None)
            if bid_commit is None:  # a node without the fast path: the bid round
                raise errors.UnsupportedPeerOperation(operation=msg.OP.name,
                                                      node=self.node_name)
            outcome = await bid_commit(msg.request, msg.reservation_id, msg.ctx, msg.uuid,
                                       msg.placement, msg.create, msg.bar)
            # the bidder's truth as of this bid (or a later one: fresher still),
            # which the coordinator ranks by until this node's next metadata
            load = getattr(getattr(h, "bidder", None), "last_load", None)
            return outcome if load is None else messages.LoadedAnswer(outcome, load)
        if isinstance(msg, messages.ReleaseRequest):
            return await _maybe_await(h.release(msg.reservation_id))
        if isinstance(msg, messages.CommitStatusRequest):
            return await h.commit_status(msg.ctx, msg.uuid, msg.reservation_id)
        if isinstance(msg, messages.ListRequest):
            listing = await h.containers.list(msg.ctx, msg.all_projects)
            return listing.records
        if isinstance(msg, messages.LocateRequest):
            return await h.containers.locate(msg.ctx, msg.ident, msg.all_projects)
        if isinstance(msg, messages.HostRequest):
            return await h.containers.host_info()
        if isinstance(msg, (messages.ReplicateRequest, messages.ReplicaSyncRequest,
                            messages.ReplicaQuery)):
            return await self._replica_op(msg)
        if isinstance(msg, messages.IMAGE_REQUESTS):
            return await self._image_op(msg)
        if isinstance(msg, messages.OwnerCall):
            return await self._owner_call(msg)
        if (isinstance(msg, messages.ServiceStateRequest)
                and getattr(h, "healer", None) is not None):
            return h.healer.apply_service_state(msg)
        if (isinstance(msg, messages.ServiceMarksExchange)
                and getattr(h, "healer", None) is not None):
            return h.healer.exchange_marks(msg)
        if isinstance(msg, messages.QUOTA_REQUESTS) and getattr(h, "quota", None) is not None:
            return await h.quota.handle(msg)
        if (isinstance(msg, messages.REGISTRY_REQUESTS)
                and getattr(h, "registries", None) is not None):
            return await h.registries.handle(msg)
        if (isinstance(msg, messages.NETWORK_REQUESTS)
                and getattr(h, "networks", None) is not None):
            return await h.networks.handle(msg)
        if (isinstance(msg, messages.FLAVOR_REQUESTS)
                and getattr(h, "flavors", None) is not None):
            return await h.flavors.handle(msg)
        raise errors.UnsupportedPeerOperation(operation=msg.OP.name, node=self.node_name)

    async def _replica_op(self, msg):
        holder = getattr(self.handlers, "replicas", None)
        if holder is None:
            raise errors.UnsupportedPeerOperation(operation=msg.OP.name, node=self.node_name)
        if isinstance(msg, messages.ReplicateRequest):
            return await holder.receive(list(msg.items))
        if isinstance(msg, messages.ReplicaSyncRequest):
            return await holder.sync(msg.owner, dict(msg.digest))
        return await holder.query(msg.ctx, list(msg.except_owners), msg.ident,
                                  msg.all_projects)

    async def _image_op(self, msg):
        images = getattr(self.handlers, "images", None)  # a node without images
        if images is None:
            raise errors.UnsupportedPeerOperation(operation=msg.OP.name, node=self.node_name)
        if isinstance(msg, messages.ImagePullRequest):
            return await images.pull(msg.ctx, msg.image, None, msg.image_driver)
        if isinstance(msg, messages.ImageListRequest):
            return (await images.list(msg.ctx)).records
        if isinstance(msg, messages.ImageShowRequest):
            return await images.show(msg.ctx, msg.uuid)
        return await images.delete(msg.ctx, msg.uuid)

    async def _owner_call(self, msg: messages.OwnerCall):
        # the operation was checked against IContainers' owner calls when decoded;
        # bind it on this node's implementation of that same declaration
        if msg.operation not in interface.owner_operations():
            raise errors.UnsupportedPeerOperation(operation=msg.operation,
                                                  node=self.node_name)
        method = getattr(self.handlers.containers, msg.operation)
        return await method(msg.ctx, msg.ref, **msg.args)
