"""A twisted.web ``Site`` that survives hostile clients (the API and peer listeners).

twisted.web's defaults trust the client: a request body of any size is buffered
(to a temporary file above 100 kB) before any resource sees it, and a connection
may take hours to send its headers. :class:`HardenedSite` bounds all three things
an unauthenticated client controls, before any buffering or authentication:

- **body size**, per route: ``BodyPolicy.limit_for(method, target)`` is asked as
  soon as the headers are in; a larger ``Content-Length`` is answered with the
  policy's refusal (413) and the connection is closed without reading the body;
  a body without a length (chunked) is counted while it streams and refused the
  moment it passes the limit. A refused request never reaches the resource.
- **time**: the request headers must be complete within ``header_timeout_s`` of
  the connection (on a kept-alive connection: of the first byte of the next
  request), so a slowloris dribbling a byte at a time is dropped; a silent
  connection is closed after ``idle_timeout_s`` (twisted.web's own idle timer,
  which it pauses while a request is being handled).
- **connections**: at most ``max_connections`` open at once per listener; the
  excess is closed as soon as it is accepted.

Counters are in ``HardenedSite.stats``. Pure wiring over twisted.web: the clock is
the reactor given to the site, nothing here touches the global reactor.
"""

from __future__ import annotations

import collections
import io
import tempfile
from typing import Callable, Protocol

import attrs
from twisted.logger import Logger
from twisted.web import http, server

log = Logger()

#: bodies up to this size stay in memory; larger allowed bodies spool to disk
#: past it (still never beyond the route's limit)
SPOOL_BYTES = 1024 * 1024


@attrs.frozen
class ListenerLimits:
    """Time and connection bounds of one listener (see ``zund.conf.listeners``)."""

    header_timeout_s: float = 10.0
    idle_timeout_s: float = 120.0
    max_connections: int = 512


@attrs.frozen
class Refusal:
    """The answer sent for an oversized body, before the connection is closed."""

    status: int
    content_type: str
    body: bytes


class BodyPolicy(Protocol):
    """Which body a route accepts, and how a refusal looks (the API's own error
    format, or the peer protocol's)."""

    def limit_for(self, method: bytes, target: bytes) -> int:
        """Largest body in bytes for a request line's method and target."""

    def refusal(self, limit: int) -> Refusal:
        """The 413 answer for a body over ``limit``."""


def plain_refusal(limit: int) -> Refusal:
    return Refusal(413, "text/plain; charset=utf-8",
                   f"Request body is larger than the limit of {limit} bytes.\n".encode())


@attrs.frozen
class FixedBodyLimit:
    """One limit for every route (the peer RPC server has one endpoint)."""

    limit: int
    render: Callable[[int], Refusal] = plain_refusal

    def limit_for(self, method: bytes, target: bytes) -> int:
        return self.limit

    def refusal(self, limit: int) -> Refusal:
        return self.render(limit)


class LimitedRequest(server.Request):
    """A request whose body is bounded by its site's :class:`BodyPolicy` before it
    is buffered. Only ``HardenedChannel`` creates it."""

    _limit: int = 0
    _received: int = 0
    refused: bool = False

    def __init__(self, channel, *args, **kw):
        # zund's listeners take JSON and msgpack bodies only: twisted.web's form
        # parsing of every POST (a Content-Type parse through ``email``, ~10% of a
        # peer call's server time) is skipped; ``request.args`` keeps the query
        kw.setdefault("parsePOSTFormSubmission", False)
        super().__init__(channel, *args, **kw)

    def gotLength(self, length):
        # Called by the channel once the headers are in, before any body byte.
        # The request line is not parsed into this object yet: the channel
        # holds it (see HardenedChannel.request_line).
        site = self.channel.site
        method, target = self.channel.request_line()
        self._limit = site.body_policy.limit_for(method, target)
        if length is not None and length > self._limit:
            self.content = io.BytesIO()
            # no "100 Continue" for a body we refuse
            self.requestHeaders.removeHeader(b"expect")
            self._refuse("content-length", length)
            return
        self.content = (io.BytesIO() if self._limit <= SPOOL_BYTES
                        else tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))

    def handleContentChunk(self, data):
        if self.refused:
            return
        self._received += len(data)
        if self._received > self._limit:
            self._refuse("streamed", self._received)
            return
        self.content.write(data)

    def requestReceived(self, command, path, version):
        if self.refused:  # the rest of a refused body arrived with its last chunk
            return
        super().requestReceived(command, path, version)

    def _refuse(self, how: str, size: int) -> None:
        self.refused = True
        channel = self.channel
        site = channel.site
        site.stats["too_large"] += 1
        refusal = site.body_policy.refusal(self._limit)
        log.info("http.body_too_large listener={listener} how={how} size={size} "
                 "limit={limit} client={client}", listener=site.name, how=how, size=size,
                 limit=self._limit, client=getattr(channel.transport.getPeer(), "host", None))
        head = (f"HTTP/1.1 {refusal.status} {http.RESPONSES.get(refusal.status, b'').decode()}"
                f"\r\nContent-Type: {refusal.content_type}\r\nContent-Length: "
                f"{len(refusal.body)}\r\nConnection: close\r\n\r\n").encode("latin-1")
        channel.transport.write(head + refusal.body)
        # stops reading: the rest of the body is never received, let alone stored
        channel.loseConnection()


class HardenedChannel(http.HTTPChannel):
    """HTTP/1.1 channel with a deadline for the request headers and a place in
    its site's connection count."""

    _header_deadline = None
    _counted = False
    #: between requests: the next byte starts the next request's header deadline
    _between_requests = False

    def request_line(self) -> tuple[bytes, bytes]:
        """(method, target) of the request whose headers were just received."""
        # twisted.web keeps the parsed request line on the channel until the
        # body is complete; only Request.requestReceived gets it officially.
        return getattr(self, "_command", b""), getattr(self, "_path", b"")

    def connectionMade(self):
        self.site.connection_opened(self)
        self._counted = True
        super().connectionMade()
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.callLater(self.site.limits.header_timeout_s,
                                               self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        call, self._header_deadline = self._header_deadline, None
        if call is not None and call.active():
            call.cancel()

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        self.site.stats["header_timeouts"] += 1
        log.info("http.header_timeout listener={listener} client={client}",
                 listener=self.site.name,
                 client=getattr(self.transport.getPeer(), "host", None))
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
        self.loseConnection()

    def dataReceived(self, data):
        if self._between_requests:
            self._between_requests = False
            self._arm_header_deadline()
        super().dataReceived(data)

    def allHeadersReceived(self):
        self._between_requests = False
        self._disarm_header_deadline()
        super().allHeadersReceived()

    def requestDone(self, request):
        # an idle kept-alive connection is the idle timer's business (a pooled
        # peer connection waits for its next call); set before the channel replays
        # pipelined data, whose headers may complete (and clear it) at once
        if self.persistent:
            self._between_requests = True
        super().requestDone(request)

    def connectionLost(self, reason):
        self._disarm_header_deadline()
        if self._counted:
            self._counted = False
            self.site.connection_closed(self)
        super().connectionLost(reason)


class HardenedSite(server.Site):
    """``Site`` with body limits, header/idle timeouts and a connection cap.

    ``body_policy``: a :class:`BodyPolicy`; ``limits``: :class:`ListenerLimits`;
    ``clock``: the IReactorTime of every timer; ``name``: for logs. No I/O here.
    """

    protocol = HardenedChannel
    noisy = False

    def __init__(self, resource, body_policy: BodyPolicy, limits: ListenerLimits, clock,
                 name: str = "http", access_log: bool = True):
        super().__init__(resource, requestFactory=LimitedRequest,
                         timeout=limits.idle_timeout_s, reactor=clock)
        #: False: no access-log line per request (the peer listener: every RPC is
        #: already counted and timed in the metrics)
        self.access_log = access_log
        self.body_policy = body_policy
        self.limits = limits
        self.name = name
        self.open_connections = 0
        self.stats: collections.Counter = collections.Counter()

    def log(self, request):
        if self.access_log:
            super().log(request)

    def buildProtocol(self, addr):
        if self.open_connections >= self.limits.max_connections:
            # None: the port closes the accepted socket at once
            self.stats["refused_connections"] += 1
            if self.stats["refused_connections"] % 100 == 1:
                log.warn("http.connection_cap listener={listener} open={open} "
                         "refused={refused}", listener=self.name, open=self.open_connections,
                         refused=self.stats["refused_connections"])
            return None
        return super().buildProtocol(addr)

    def connection_opened(self, channel) -> None:
        self.open_connections += 1

    def connection_closed(self, channel) -> None:
        self.open_connections -= 1
