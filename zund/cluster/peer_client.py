"""The peer RPC client: signed, sealed msgpack POSTs to other nodes (see peer_server).

Implements ``zund.cluster.types.IPeerClient`` (bid / commit / release, and
bid_commit: the placement fast path) plus the
calls the directory and the cluster containers need on other nodes (list,
locate, owner calls, host info). Every call sends one typed, versioned message
(``zund.cluster.messages``) to ``POST /v1/peer``.

Failure contract:
- a peer that answers with an error object: the same zund error class is raised
  (``wire.error_from_dict``), e.g. ContainerNotFound, ContainerBusy;
- a peer that does not answer (connect error, reset, timeout, oversized or
  garbled answer): ``bid`` returns ``Decline(reason)``, ``release`` logs and
  returns, every other call raises ``errors.ServiceUnavailable`` naming the node.

Fire-and-forget housekeeping is batched per peer (issue 13 §1): ``release`` and
``note_settle`` (a quota claim's "committed") only queue the note in this
client's outbox for that peer; the notes ride in the envelope of the next call
to the peer (``messages.encode_request(msg, notes)``: bids, commits, claims,
replication all carry them, applied by the receiver before the call itself), or
go as one ``PEER_NOTES`` after ``notes_delay_s`` when no call went there
meanwhile, or at once when ``max_pending_notes`` are queued. Nothing waits for
them; a note lost with its carrier is repaired as a lost single message would be
(a reservation expires by its TTL, a quota claim is recounted by its holder).
A release addressed to this node itself is served in process at once.

Timeouts run on the injected ``clock`` (``Deferred.addTimeout``), so simulations
on ``task.Clock`` are deterministic. The constructor does no I/O: the HTTP
connection pool is built on first use.
"""

from __future__ import annotations

import attrs
from twisted.internet import defer, error
from twisted.logger import Logger
from zope.interface import implementer

from zund.cluster import messages, sealing, signing, wire
from zund.cluster.types import Bid, Decline, IPeerClient, NodeView, PlacementRequest
from zund.common import errors
from zund.common.context import RequestContext
from zund.compute.interface import ContainerRef
from zund.records import ContainerRecord, CreateRequest

log = Logger()

#: the one peer RPC endpoint (the operation is in the message)
PATH = "/v1/peer"


class _TooLarge(Exception):
    pass


class PeerTimeout(errors.ServiceUnavailable):
    """The peer did not answer within the timeout (client-side only, never on the wire)."""


class PeerUnreachable(errors.ServiceUnavailable):
    """Connect/transport failure or an unusable answer (client-side only)."""


class PeerRefused(PeerUnreachable):
    """The connection was refused: the request never left this node, so the peer
    certainly did not act on it (client-side only)."""


@implementer(IPeerClient)
class PeerClient:
    """Signed calls from node ``node_name`` to its peers.

    ``signer``: a ``signing.Signer`` of this node;
    ``treq_client``: anything with treq's ``request(method, url, headers=, data=)``
    (``treq.testing.StubTreq`` in tests); default: a treq ``HTTPClient`` over a
    persistent connection pool on ``reactor`` (default: ``clock``), built lazily;
    ``timeout_s``: per call, covering connect, request and reading the answer;
    ``clock``: IReactorTime for timeouts;
    ``sealer``: a ``sealing.Sealer`` (requests sealed, answers must be sealed for
    the request), or None for plaintext (no ``[gossip] keys``: insecure mode).
    """

    def __init__(self, node_name: str, signer: signing.Signer, treq_client=None, *,
                 timeout_s: float = 5.0, clock, reactor=None,
                 slow_timeout_s: float = 120.0,
                 max_response_bytes: int = 64 * 1024 * 1024,
                 sealer: sealing.Sealer | None = None, channel: bool = False,
                 notes_delay_s: float | None = 0.05):
        self.node_name = node_name
        #: how long a note (release, committed settle) may wait for a call to its
        #: peer to ride on before it is sent alone; None: every note at once, alone.
        #: 50 ms: under load most notes ride (bench/placement_real.py: 0.3 PEER_NOTES
        #: per placement instead of 0.8 with 20 ms, 1.6 RELEASE+SETTLE unbatched); a
        #: losing bid's reservation is held that much longer (its TTL is 10 s)
        self.notes_delay_s = notes_delay_s
        #: peer name -> its queued notes (``_Outbox``)
        self._outbox: dict[str, _Outbox] = {}
        self.notes_stats = {"queued": 0, "carried": 0, "flushed": 0}
        #: True: calls go over one persistent multiplexed channel per peer
        #: (``zund.cluster.channel``), HTTP for slow owner calls (big answers must
        #: not hold up bids behind them) and for peers without the channel
        self.channel = channel
        self._channels = None
        self._signer = signer
        self._sealer = sealer
        self._http = treq_client
        self._pool = None
        self._reactor = reactor
        self.timeout_s = timeout_s
        self.slow_timeout_s = slow_timeout_s
        self.max_response_bytes = max_response_bytes
        self._clock = clock

    #: idle persistent connections kept per peer
    max_connections_per_peer = 32

    def _client(self):
        if self._http is None:
            from treq.client import HTTPClient
            from twisted.web.client import Agent, HTTPConnectionPool

            reactor = self._reactor or self._clock
            self._pool = HTTPConnectionPool(reactor, persistent=True)
            # one connection per concurrent call is kept (bids fan out to every
            # sampled node while other calls are in flight): fewer would close and
            # reopen connections under load
            self._pool.maxPersistentPerHost = self.max_connections_per_peer
            self._pool.cachedConnectionTimeout = 60
            self._http = HTTPClient(Agent(reactor, pool=self._pool))
        return self._http

    def _channel_pool(self):
        if self._channels is None:
            from zund.cluster.channel import ChannelPool

            self._channels = ChannelPool(self._reactor or self._clock,
                                         max_frame=self.max_response_bytes,
                                         connect_timeout_s=self.timeout_s)
        return self._channels

    async def close(self) -> None:
        """Close pooled connections and channels (call from stopService). Queued
        notes are dropped (each is repaired on its own: TTL, recount)."""
        for name in list(self._outbox):
            box = self._outbox.pop(name)
            if box.timer is not None and box.timer.active():
                box.timer.cancel()
        if self._channels is not None:
            await self._channels.close()
        if self._pool is not None:
            await self._pool.closeCachedConnections()

    # -- transport -------------------------------------------------------------------

    async def _exchange(self, node: NodeView, path: str, body: bytes,
                        signature: dict[str, str], use_channel: bool = False
                        ) -> tuple[int, bytes]:
        if use_channel and self.channel:
            from zund.cluster.channel import NoChannel

            try:
                return await self._channel_pool().exchange(node.peer, signature, body)
            except NoChannel:
                pass  # a peer without the channel: HTTP below
        content_type = wire.CONTENT_TYPE if self._sealer is None else sealing.CONTENT_TYPE
        headers = {"Content-Type": [content_type]}
        for name, value in signature.items():
            headers[name] = [value]
        response = await self._client().request(
            "POST", f"http://{node.peer}{path}", headers=headers, data=body)
        limit = self.max_response_bytes
        chunks: list[bytes] = []
        size = [0]

        def collect(data: bytes) -> None:
            size[0] += len(data)
            if size[0] > limit:
                raise _TooLarge(f"answer exceeds {limit} bytes")
            chunks.append(data)

        import treq  # loaded with the HTTP client (first slow call): ~0.8 MB

        await treq.collect(response, collect)
        return response.code, b"".join(chunks)

    #: callable(op: str, seconds: float, error: str | None) told of every call
    #: (``zund.metrics.NodeMetrics.observe_peer``); set by the composition root
    observer = None

    async def _send(self, node: NodeView, msg):
        """:meth:`_send_untimed`, timed for the ``observer`` (op name, seconds,
        the error's type name or None)."""
        started = self._clock.seconds()
        op = msg.OP.name.lower()
        if isinstance(msg, messages.OwnerCall):
            op = f"owner_call.{msg.operation}"
        try:
            answer = await self._send_untimed(node, msg)
        except Exception as e:
            if self.observer is not None:
                self.observer(op, self._clock.seconds() - started, type(e).__name__)
            raise
        if self.observer is not None:
            self.observer(op, self._clock.seconds() - started, None)
        return answer

    #: this node's own ``peer_server.PeerAPI`` (set by the composition root): a call
    #: addressed to this node is served in-process (``PeerAPI.serve_in_process``):
    #: the same envelopes, packed and unpacked as on the wire so caller and handler
    #: share nothing, but no HTTP round trip, signature or seal. None: over HTTP.
    local = None

    async def _send_in_process(self, msg, body: bytes, timeout_s: float, what: str):
        # The handler is never cancelled (over HTTP a caller's timeout does not stop
        # the peer either: a commit half-way must finish, exactly once); only the
        # wait for it times out.
        handled = defer.Deferred.fromCoroutine(self.local.serve_in_process(body))
        waiter: defer.Deferred = defer.Deferred()

        def deliver(result):
            if not waiter.called:
                waiter.callback(result)

        handled.addBoth(deliver)
        waiter.addTimeout(timeout_s, self._clock)
        try:
            data = await waiter
        except (defer.TimeoutError, defer.CancelledError) as e:
            raise PeerTimeout(reason=f"this node ({self.node_name}) did not answer {what} "
                                     f"in time") from e
        if not isinstance(data, bytes):  # serve_in_process never raises; be sure
            raise errors.RuntimeFailure(reason=f"in-process {what} failed: {data!r}")
        try:
            return messages.decode_answer(msg, wire.unpack_map(data, self.max_response_bytes),
                                          self.node_name)
        except wire.WireError as e:
            raise errors.ServiceUnavailable(
                reason=f"this node ({self.node_name}) made a malformed {what} answer: "
                       f"{e}") from e

    async def _send_untimed(self, node: NodeView, msg):
        """One call; the typed answer. Raises the peer's zund error, or
        ServiceUnavailable when the peer did not answer usefully. Owner calls that
        IContainers marks slow get ``slow_timeout_s``."""
        slow = isinstance(msg, messages.OwnerCall) and msg.slow
        timeout_s = self.slow_timeout_s if slow else self.timeout_s
        what = f"{msg.OP.name.lower()}"
        if self.local is not None and node.name == self.node_name:
            body = wire.pack(messages.encode_request(msg))
            return await self._send_in_process(msg, body, timeout_s, what)
        # queued notes for this peer ride along (applied there before ``msg``)
        notes = self._take_notes(node.name)
        if notes is not None:
            self.notes_stats["carried"] += 1
        body = wire.pack(messages.encode_request(msg, notes))
        if self._sealer is not None:
            body = self._sealer.seal(body, sealing.request_aad(self.node_name, node.name))
        # the signature covers the bytes as sent (sealed when keys are configured)
        signature = self._signer.headers("POST", PATH, body, node.name)
        d = defer.Deferred.fromCoroutine(self._exchange(node, PATH, body, signature,
                                                        use_channel=not slow))
        d.addTimeout(timeout_s, self._clock)
        try:
            status, data = await d
        except (error.TimeoutError, defer.TimeoutError, defer.CancelledError) as e:
            raise PeerTimeout(
                reason=f"peer {node.name} ({node.peer}) did not answer {what} in time") from e
        except error.ConnectionRefusedError as e:
            raise PeerRefused(
                reason=f"peer {node.name} ({node.peer}) refused {what}: {e}") from e
        except Exception as e:  # connect refused, reset, too large, ...
            raise PeerUnreachable(
                reason=f"peer {node.name} ({node.peer}) failed {what}: "
                       f"{type(e).__name__}: {e}") from e
        if self._sealer is not None:
            # only an answer sealed for THIS request is believed; a plaintext one
            # (a peer that refused our signature, or anyone on the path) is a failure
            try:
                data = self._sealer.open(data, sealing.answer_aad(
                    self.node_name, node.name, signature[signing.HEADER_NONCE]))
            except sealing.Unsealable as e:
                raise PeerUnreachable(
                    reason=f"peer {node.name} answered {what} with HTTP {status} and a body "
                           f"not sealed for this request ({e.reason})") from e
        try:
            answer = wire.unpack_map(data, self.max_response_bytes)
        except wire.WireError as e:
            raise PeerUnreachable(
                reason=f"peer {node.name} answered {what} with HTTP {status} and an "
                       f"undecodable body") from e
        if "error" not in answer and status != 200:
            raise errors.ServiceUnavailable(
                reason=f"peer {node.name} answered {what} with HTTP {status}")
        try:
            return messages.decode_answer(msg, answer, self.node_name)
        except wire.WireError as e:
            raise errors.ServiceUnavailable(
                reason=f"peer {node.name} sent a malformed {what} answer: {e}") from e

    # -- IPeerClient -----------------------------------------------------------------

    async def bid(self, node: NodeView, request: PlacementRequest) -> Bid | Decline:
        """Bid or Decline. Decline reasons for failures start with ``timeout:``,
        ``unreachable:`` or ``error:`` (the coordinator keys on these prefixes)."""
        try:
            return await self._send(node, messages.BidRequest(request))
        except PeerTimeout as e:
            return Decline(node=node.name, reason=f"timeout: {e}")
        except PeerUnreachable as e:
            return Decline(node=node.name, reason=f"unreachable: {e}")
        except errors.ZundError as e:
            return Decline(node=node.name, reason=f"error: {type(e).__name__}: {e}")

    async def commit(self, node: NodeView, reservation_id: str, ctx, uuid: str,
                     placement: dict | None, request: CreateRequest) -> ContainerRecord:
        """The record the winner created."""
        return await self._send(node, messages.CommitRequest(
            reservation_id=reservation_id, ctx=_context(ctx), uuid=uuid, request=request,
            placement=placement))

    async def bid_commit(self, node: NodeView, request: PlacementRequest,
                         reservation_id: str, ctx, placement: dict | None,
                         create: CreateRequest, bar: float | None = None,
                         on_load=None) -> ContainerRecord | Decline:
        """The placement fast path (BID_COMMIT): the record ``node`` created under
        ``reservation_id``, or its Decline. A node that does not know the operation
        declines (``error: UnsupportedPeerOperation``: it certainly did nothing).
        Failures raise as ``commit``'s do (PeerRefused: definite; PeerTimeout and
        other ServiceUnavailable: unknown, resolved with ``commit_status``).
        ``on_load(dict)`` hears the node's load when its answer carries one
        (``messages.LoadedAnswer``)."""
        try:
            answer = await self._send(node, messages.BidCommitRequest(
                request=request, reservation_id=reservation_id, ctx=_context(ctx),
                uuid=request.uuid, create=create, placement=placement, bar=bar))
        except (errors.UnsupportedPeerOperation, errors.UnsupportedPeerVersion) as e:
            return Decline(node=node.name, reason=f"error: {type(e).__name__}: {e}")
        if isinstance(answer, messages.LoadedAnswer):
            if on_load is not None:
                try:
                    on_load(answer.load)
                except Exception:  # a hint: never lose the outcome over it
                    log.failure("peer.on_load_failed")
            answer = answer.outcome
        if isinstance(answer, Decline):
            return attrs.evolve(answer, node=node.name)
        return answer

    async def commit_status(self, node: NodeView, ctx, uuid: str,
                            reservation_id: str) -> ContainerRecord | None:
        """The record ``uuid`` when ``node`` holds it; None when it does not (and
        then the reservation is fenced there: no later COMMIT of it can succeed).
        Raises ServiceUnavailable (PeerTimeout, PeerUnreachable) when unanswered."""
        return await self._send(node, messages.CommitStatusRequest(
            ctx=_context(ctx), uuid=uuid, reservation_id=reservation_id))

    async def release(self, node: NodeView, reservation_id: str) -> None:
        """Queue the release (see the module docstring); at once when addressed to
        this node (in process) or when batching is off. Never raises."""
        if self.notes_delay_s is not None and not (self.local is not None
                                                   and node.name == self.node_name):
            self._note(node, release=reservation_id)
            return
        try:
            await self._send(node, messages.ReleaseRequest(reservation_id))
        except Exception as e:  # best effort: an unreleased reservation expires
            log.info("peer.release_failed node={node} reservation={rid} reason={reason}",
                     node=node.name, rid=reservation_id, reason=str(e))

    # -- the outbox of notes -----------------------------------------------------------

    #: a peer's queued notes are sent at once when this many are waiting
    max_pending_notes = 256

    def note_settle(self, node: NodeView, project_id: str, uuid: str,
                    committed: bool) -> None:
        """Queue a quota settle for the ledger holder ``node`` (``zund.cluster.quota``);
        sent alone at once when batching is off. Never raises, never waits."""
        if self.notes_delay_s is None:
            self._send_notes(node, messages.PeerNotes(settles=((project_id, uuid,
                                                                bool(committed)),)))
            return
        self._note(node, settle=(project_id, uuid, bool(committed)))

    def pending_notes(self, name: str) -> int:
        """How many notes wait for peer ``name``."""
        box = self._outbox.get(name)
        return 0 if box is None else len(box.releases) + len(box.settles)

    def _note(self, node: NodeView, release: str | None = None,
              settle: tuple | None = None) -> None:
        box = self._outbox.get(node.name)
        if box is None:
            box = self._outbox[node.name] = _Outbox(node)
        box.node = node  # the newest address
        if release is not None:
            box.releases.append(release)
        if settle is not None:
            box.settles.append(settle)
        self.notes_stats["queued"] += 1
        if len(box.releases) + len(box.settles) >= self.max_pending_notes:
            self._flush(node.name)
        elif box.timer is None:
            box.timer = self._clock.callLater(self.notes_delay_s, self._flush, node.name)

    def _take_notes(self, name: str) -> messages.PeerNotes | None:
        box = self._outbox.pop(name, None)
        if box is None:
            return None
        if box.timer is not None and box.timer.active():
            box.timer.cancel()
        notes = messages.PeerNotes(tuple(box.releases), tuple(box.settles))
        return notes or None

    def _flush(self, name: str) -> None:
        """Send ``name``'s queued notes alone now (its timer fired, or too many)."""
        box = self._outbox.get(name)
        notes = self._take_notes(name)  # cancels the timer when it has not fired
        if notes is not None and box is not None:
            self.notes_stats["flushed"] += 1
            self._send_notes(box.node, notes)

    def _send_notes(self, node: NodeView, notes: messages.PeerNotes) -> None:
        async def send():
            try:
                await self._send(node, notes)
            except Exception as e:  # best effort: TTL and recount repair a lost note
                log.info("peer.notes_failed node={node} releases={r} settles={s} "
                         "reason={reason}", node=node.name, r=len(notes.releases),
                         s=len(notes.settles), reason=str(e))

        defer.Deferred.fromCoroutine(send())

    # -- containers ------------------------------------------------------------------

    async def list_containers(self, node: NodeView, ctx: RequestContext,
                              all_projects: bool = False) -> list[ContainerRecord]:
        return await self._send(node, messages.ListRequest(_context(ctx), bool(all_projects)))

    async def locate(self, node: NodeView, ctx: RequestContext, ident: str,
                     all_projects: bool = False) -> ContainerRecord:
        """The record ``ident`` (uuid or name) on ``node``, scoped by ``ctx``, as
        stored (no runtime round trip); ContainerNotFound / Conflicts as the owner
        raises them."""
        return await self._send(node, messages.LocateRequest(_context(ctx), ident,
                                                             bool(all_projects)))

    async def owner_call(self, node: NodeView, ctx: RequestContext, operation: str,
                         ref: ContainerRef, args: dict):
        """``IContainers.<operation>(ctx, ref, **args)`` on the owner ``node``:
        lookup, policy on the record and the action in one round trip; returns
        what the operation returns (records, ExecResult, bytes, tuples, dicts,
        lists of ActionRecord)."""
        return await self._send(node, messages.OwnerCall(_context(ctx), operation, ref,
                                                         dict(args)))

    async def ping(self, node: NodeView) -> None:
        """The cheapest signed (and sealed) round trip (``PING``): the transport's floor."""
        await self._send(node, messages.PingRequest())

    async def host(self, node: NodeView) -> dict:
        return await self._send(node, messages.HostRequest())

    async def call(self, node: NodeView, msg):
        """Send any typed peer message (``zund.cluster.messages``); its typed answer.
        Same failure contract as the calls above (used by ``zund.cluster.quota``)."""
        return await self._send(node, msg)

    # -- record replicas (zund.cluster.replicas) -----------------------------------------

    async def replicate(self, node: NodeView, items: list) -> int:
        """Send copies (``messages.ReplicaItem``) of this node's records to ``node``;
        how many it kept."""
        return await self._send(node, messages.ReplicateRequest(tuple(items)))

    async def replica_sync(self, node: NodeView, owner: str, digest: dict) -> list[str]:
        """Anti-entropy with ``node``: what it should hold of ``owner``; the uuids
        it lacks."""
        return await self._send(node, messages.ReplicaSyncRequest(owner, dict(digest)))

    async def replica_query(self, node: NodeView, ctx: RequestContext,
                            except_owners: list[str], ident: str | None = None,
                            all_projects: bool = False) -> list:
        """The copies ``node`` keeps of records visible to ``ctx`` whose owner is not
        in ``except_owners`` (those named ``ident`` when given)."""
        return await self._send(node, messages.ReplicaQuery(
            _context(ctx), tuple(except_owners), ident, bool(all_projects)))


class _Outbox:
    """Notes queued for one peer, and the timer that sends them alone."""

    __slots__ = ("node", "releases", "settles", "timer")

    def __init__(self, node: NodeView):
        self.node = node
        self.releases: list[str] = []
        self.settles: list[tuple] = []
        self.timer = None


def _context(ctx) -> RequestContext:
    return ctx if isinstance(ctx, RequestContext) else RequestContext.from_dict(ctx)
