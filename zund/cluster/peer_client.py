"""The peer RPC client: signed msgpack POSTs to other nodes (see peer_server).

Implements ``zund.cluster.types.IPeerClient`` (bid / commit / release) plus the
calls the directory and the API need on other nodes (list, locate, forwarded
actions, host info).

Failure contract:
- a peer that answers with an error object: the same zund error class is raised
  (``wire.error_from_dict``), e.g. ContainerNotFound, ContainerBusy;
- a peer that does not answer (connect error, reset, timeout, oversized or
  garbled answer): ``bid`` returns ``Decline(reason)``, ``release`` logs and
  returns, every other call raises ``errors.ServiceUnavailable`` naming the node.

Timeouts run on the injected ``clock`` (``Deferred.addTimeout``), so simulations
on ``task.Clock`` are deterministic. The constructor does no I/O: the HTTP
connection pool is built on first use.
"""

from __future__ import annotations

import treq
from twisted.internet import defer, error
from twisted.logger import Logger
from zope.interface import implementer

from zund.cluster import signing, wire
from zund.cluster.types import Bid, Decline, IPeerClient, NodeView, PlacementRequest
from zund.common import errors
from zund.common.context import RequestContext
from zund.records import ContainerRecord

log = Logger()

#: forwarded actions that may legitimately take long (they run synchronously on
#: the owner); they get ``slow_timeout_s`` instead of ``timeout_s``.
SLOW_METHODS = frozenset({"execute", "commit", "get_archive", "put_archive", "logs", "top",
                          "stats"})


class _TooLarge(Exception):
    pass


class PeerTimeout(errors.ServiceUnavailable):
    """The peer did not answer within the timeout (client-side only, never on the wire)."""


class PeerUnreachable(errors.ServiceUnavailable):
    """Connect/transport failure or an unusable answer (client-side only)."""


@implementer(IPeerClient)
class PeerClient:
    """Signed calls from node ``node_name`` to its peers.

    ``signer``: a ``signing.Signer`` of this node;
    ``treq_client``: anything with treq's ``request(method, url, headers=, data=)``
    (``treq.testing.StubTreq`` in tests); default: a treq ``HTTPClient`` over a
    persistent connection pool on ``reactor`` (default: ``clock``), built lazily;
    ``timeout_s``: per call, covering connect, request and reading the answer;
    ``clock``: IReactorTime for timeouts.
    """

    def __init__(self, node_name: str, signer: signing.Signer, treq_client=None, *,
                 timeout_s: float = 5.0, clock, reactor=None,
                 slow_timeout_s: float = 120.0,
                 max_response_bytes: int = 64 * 1024 * 1024):
        self.node_name = node_name
        self._signer = signer
        self._http = treq_client
        self._pool = None
        self._reactor = reactor
        self.timeout_s = timeout_s
        self.slow_timeout_s = slow_timeout_s
        self.max_response_bytes = max_response_bytes
        self._clock = clock

    def _client(self):
        if self._http is None:
            from treq.client import HTTPClient
            from twisted.web.client import Agent, HTTPConnectionPool

            reactor = self._reactor or self._clock
            self._pool = HTTPConnectionPool(reactor, persistent=True)
            self._pool.maxPersistentPerHost = 4
            self._pool.cachedConnectionTimeout = 60
            self._http = HTTPClient(Agent(reactor, pool=self._pool))
        return self._http

    async def close(self) -> None:
        """Close pooled connections (call from stopService)."""
        if self._pool is not None:
            await self._pool.closeCachedConnections()

    # -- transport -------------------------------------------------------------------

    async def _exchange(self, node: NodeView, path: str, body: bytes) -> tuple[int, bytes]:
        headers = {"Content-Type": [wire.CONTENT_TYPE]}
        for name, value in self._signer.headers("POST", path, body, node.name).items():
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

        await treq.collect(response, collect)
        return response.code, b"".join(chunks)

    async def _post(self, node: NodeView, path: str, payload: dict,
                    timeout_s: float | None = None) -> dict:
        """One call; the decoded answer map. Raises the peer's zund error, or
        ServiceUnavailable when the peer did not answer usefully."""
        body = wire.pack(payload)
        d = defer.Deferred.fromCoroutine(self._exchange(node, path, body))
        d.addTimeout(self.timeout_s if timeout_s is None else timeout_s, self._clock)
        try:
            status, data = await d
        except (error.TimeoutError, defer.TimeoutError, defer.CancelledError) as e:
            raise PeerTimeout(
                reason=f"peer {node.name} ({node.peer}) did not answer {path} in time") from e
        except Exception as e:  # connect refused, reset, too large, ...
            raise PeerUnreachable(
                reason=f"peer {node.name} ({node.peer}) failed {path}: "
                       f"{type(e).__name__}: {e}") from e
        try:
            answer = wire.unpack_map(data, self.max_response_bytes)
        except wire.WireError as e:
            raise PeerUnreachable(
                reason=f"peer {node.name} answered {path} with HTTP {status} and an "
                       f"undecodable body") from e
        if "error" in answer:
            raise wire.error_from_dict(answer["error"])
        if status != 200:
            raise errors.ServiceUnavailable(
                reason=f"peer {node.name} answered {path} with HTTP {status}")
        return answer

    @staticmethod
    def _expect(answer: dict, key: str, types, node: NodeView):
        value = answer.get(key)
        if not isinstance(value, types):
            raise errors.ServiceUnavailable(
                reason=f"peer {node.name} sent a malformed answer (no {key!r})")
        return value

    # -- IPeerClient -----------------------------------------------------------------

    async def bid(self, node: NodeView, request: PlacementRequest) -> Bid | Decline:
        """Bid or Decline. Decline reasons for failures start with ``timeout:``,
        ``unreachable:`` or ``error:`` (the coordinator keys on these prefixes)."""
        try:
            answer = await self._post(node, "/v1/peer/bid", {"request": request.to_wire()})
            return wire.bid_from_dict(answer)
        except PeerTimeout as e:
            return Decline(node=node.name, reason=f"timeout: {e}")
        except PeerUnreachable as e:
            return Decline(node=node.name, reason=f"unreachable: {e}")
        except errors.ZundError as e:
            return Decline(node=node.name, reason=f"error: {type(e).__name__}: {e}")
        except wire.WireError as e:
            return Decline(node=node.name, reason=f"error: malformed bid answer: {e}")

    async def commit(self, node: NodeView, reservation_id: str, ctx, create: dict,
                     run: bool) -> dict:
        """The created record as a wire dict (``wire.record_from_dict`` rebuilds it)."""
        answer = await self._post(node, "/v1/peer/commit", {
            "reservation_id": reservation_id, "ctx": wire.context_to_dict(ctx),
            "create": create, "run": bool(run)})
        rec = answer.get("record")
        if isinstance(rec, ContainerRecord):
            return wire.record_to_dict(rec)
        return self._expect(answer, "record", dict, node)

    async def release(self, node: NodeView, reservation_id: str) -> None:
        try:
            await self._post(node, "/v1/peer/release", {"reservation_id": reservation_id})
        except Exception as e:  # best effort: an unreleased reservation expires
            log.info("peer.release_failed node={node} reservation={rid} reason={reason}",
                     node=node.name, rid=reservation_id, reason=str(e))

    # -- containers ------------------------------------------------------------------

    async def list_containers(self, node: NodeView, ctx: RequestContext | dict,
                              all_projects: bool = False) -> list[ContainerRecord]:
        answer = await self._post(node, "/v1/peer/containers/list", {
            "ctx": wire.context_to_dict(ctx), "all_projects": bool(all_projects)})
        records = self._expect(answer, "records", list, node)
        if not all(isinstance(r, ContainerRecord) for r in records):
            raise errors.ServiceUnavailable(reason=f"peer {node.name} sent a malformed list")
        return records

    async def locate(self, node: NodeView, ctx: RequestContext | dict, ident: str,
                     refresh: bool = False) -> ContainerRecord:
        """The record ``ident`` (uuid or name) on ``node``, scoped by ``ctx``;
        ContainerNotFound / Conflicts as the owner raises them. ``refresh``: the
        owner re-reads live state from its runtime first (ContainerManager.refresh)."""
        answer = await self._post(node, "/v1/peer/containers/locate", {
            "ctx": wire.context_to_dict(ctx), "ident": ident, "refresh": bool(refresh)})
        return self._expect(answer, "record", ContainerRecord, node)

    async def call(self, node: NodeView, ctx: RequestContext | dict, uuid: str, method: str,
                   **kwargs):
        """Invoke ``ContainerManager.<method>(ctx, rec, **kwargs)`` on the owner of
        ``uuid``; returns what the method returns (records, ExecResult, bytes,
        tuples, dicts, lists of ActionRecord)."""
        timeout = self.slow_timeout_s if method in SLOW_METHODS else self.timeout_s
        answer = await self._post(node, "/v1/peer/containers/call", {
            "ctx": wire.context_to_dict(ctx), "uuid": uuid, "method": method,
            "kwargs": kwargs}, timeout_s=timeout)
        return answer.get("result")

    async def host(self, node: NodeView) -> dict:
        answer = await self._post(node, "/v1/peer/host", {})
        return self._expect(answer, "host", dict, node)
