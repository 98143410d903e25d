"""The persistent, multiplexed peer channel: peer RPC without HTTP per call.

Why (issue 13 §1): on loopback, a signed and sealed peer call over HTTP cost
~2.5 ms, almost all of it twisted.web and treq parsing headers and bodies, while
signing, sealing and msgpack took tens of microseconds. The channel keeps ONE TCP
connection per peer and sends every call as one length-prefixed frame on it,
answers coming back in any order, matched by id.

Nothing about the messages changes: a request frame carries exactly what the
HTTP POST carried — the signature headers (``zund.cluster.signing``: method
``POST`` and path ``/v1/peer`` are implied and signed as before) and the body
(sealed with ``zund.cluster.sealing`` when keys are set) — and the server runs the
same pipeline (``PeerAPI.exchange``: size, signature, nonce, seal, versioned
envelope, handler). An answer frame carries the HTTP status and the (sealed)
answer body. Versioning, replay protection and confidentiality are the
messages' own, as over HTTP.

Wire::

    client → server  b"ZPC1\\r\\n"      (magic: this protocol, version 1; to an
    server → client  b"ZPC1\\r\\n"       HTTP-only listener, a bad request line: 400)
    then frames both ways: 4-byte big-endian length | msgpack array
      request  [id: int, headers: {str: str}, body: bin]
      answer   [id: int, status: int, body: bin]

Same port as the HTTP peer listener: :class:`PeerPortFactory` looks at the first
bytes of a connection — the magic starts the channel, anything else is handed to
the HTTP site — so a node that does not speak the channel (an older version)
answers HTTP, and the client then uses HTTP to it (:class:`ChannelPool` remembers
that for ``fallback_s``).

Bounds (STYLE §4): a frame larger than the limit closes the connection; a server
connection handles at most ``max_in_flight`` requests at once (it stops reading
until one finishes); a connection that sends nothing for the listener's idle
timeout with nothing in flight is closed; a silent connection must send its magic
within the header timeout. A frame that does not decode closes the connection
(hostile or broken: never raised into the reactor).

Failure contract (for ``PeerClient``): a refused connection raises
``ConnectionRefusedError`` (the request never left: definite); a connection lost
with calls in flight fails them with ``ConnectionLost`` (their outcome is
unknown); :class:`NoChannel` means "use HTTP to this peer".
"""

from __future__ import annotations

import struct

import msgpack
from twisted.internet import defer, error, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

MAGIC = b"ZPC1\r\n"
_LEN = struct.Struct(">I")
#: the HTTP request line and path the signature of a channel request covers
METHOD = "POST"
PATH = "/v1/peer"
#: framing overhead allowed above the body limit (ids, headers)
HEADROOM = 4096
_MAX_HEADERS = 16
_MAX_HEADER_LEN = 512


class NoChannel(Exception):
    """The peer does not speak the channel: use HTTP to it."""


class FrameError(ValueError):
    """A frame that is too large or malformed."""


def no_delay(transport) -> None:
    """TCP_NODELAY on a channel's socket. Many calls share one connection, so with
    Nagle a frame written while an earlier one is unacknowledged waits for that
    ACK, which a peer in delayed-ACK mode holds up to 40 ms (Linux) unless an
    answer carries it: calls queued behind a slow one. Frames written in one
    reactor turn still leave in one send (the transport buffers them)."""
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is not None:
        try:
            setter(True)
        except OSError:  # not a TCP socket after all (tests, UNIX sockets)
            pass


def pack_frame(items: list) -> bytes:
    data = msgpack.packb(items, use_bin_type=True)
    return _LEN.pack(len(data)) + data


def _unpack(data: bytes) -> list:
    try:
        items = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as e:  # malformed msgpack of any kind
        raise FrameError(f"undecodable frame: {type(e).__name__}") from None
    if not isinstance(items, list) or len(items) != 3:
        raise FrameError("a frame is a 3-item array")
    if not isinstance(items[0], int) or isinstance(items[0], bool):
        raise FrameError("bad frame id")
    return items


class _Framed(protocol.Protocol):
    """Length-prefixed frames after the magic; ``frame_received(items)``."""

    max_frame = 1024 * 1024 + HEADROOM

    def __init__(self):
        self._buf = bytearray()

    def dataReceived(self, data: bytes) -> None:
        self._buf += data
        while True:
            if len(self._buf) < 4:
                return
            (size,) = _LEN.unpack_from(self._buf)
            if size > self.max_frame:
                self.frame_error(FrameError(f"frame of {size} bytes exceeds {self.max_frame}"))
                return
            if len(self._buf) < 4 + size:
                return
            data = bytes(self._buf[4:4 + size])
            del self._buf[:4 + size]
            try:
                items = _unpack(data)
            except FrameError as e:
                self.frame_error(e)
                return
            self.frame_received(items)
            if self.transport is None or getattr(self.transport, "disconnecting", False):
                return

    def frame_error(self, e: FrameError) -> None:
        log.warn("peer.channel.bad_frame reason={reason}", reason=str(e))
        self._buf.clear()
        self.transport.abortConnection()

    def frame_received(self, items: list) -> None:
        raise NotImplementedError


# -- server ------------------------------------------------------------------------------

class ChannelServerProtocol(_Framed):
    """One peer's channel into this node's ``PeerAPI``."""

    def __init__(self, api, clock, max_in_flight: int = 256, idle_timeout_s: float = 120.0):
        super().__init__()
        self._api = api
        self._clock = clock
        self.max_frame = api.max_body_bytes + HEADROOM
        self.max_in_flight = max_in_flight
        self.idle_timeout_s = idle_timeout_s
        self._in_flight = 0
        self._paused = False
        self._idle = None
        self._client = None

    def connectionMade(self) -> None:
        self._client = getattr(self.transport.getPeer(), "host", None)
        no_delay(self.transport)
        self.transport.write(MAGIC)
        self._touch()

    def _touch(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = self._clock.callLater(self.idle_timeout_s, self._idle_out)

    def _idle_out(self) -> None:
        self._idle = None
        if self._in_flight:
            self._touch()
            return
        self.transport.loseConnection()

    def frame_received(self, items: list) -> None:
        self._touch()
        call_id, headers, body = items
        if (not isinstance(headers, dict) or len(headers) > _MAX_HEADERS
                or not all(isinstance(k, str) and isinstance(v, str) and len(v) <= _MAX_HEADER_LEN
                           for k, v in headers.items())
                or not isinstance(body, bytes)):
            self.frame_error(FrameError("bad request frame"))
            return
        self._in_flight += 1
        if self._in_flight >= self.max_in_flight and not self._paused:
            self._paused = True
            self.transport.pauseProducing()
        d = defer.Deferred.fromCoroutine(self._api.exchange(headers, body, self._client))
        d.addCallbacks(lambda answer: self._answer(call_id, answer[0], answer[2]),
                       lambda f: self._failed(call_id, f))

    def _failed(self, call_id: int, failure: Failure) -> None:
        # PeerAPI.exchange answers every error itself; this is a bug, not an input
        log.failure("peer.channel.exchange_failed", failure)
        self._answer(call_id, 500, b"")

    def _answer(self, call_id: int, status: int, data: bytes) -> None:
        self._in_flight -= 1
        if self.transport is None or not self.connected:
            return
        self.transport.write(pack_frame([call_id, status, data]))
        if self._paused and self._in_flight < self.max_in_flight:
            self._paused = False
            self.transport.resumeProducing()

    def connectionLost(self, reason) -> None:
        self.connected = 0
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None


class _Sniffer(protocol.Protocol):
    """The first bytes of a connection decide: the channel's magic, or HTTP."""

    def __init__(self, factory: "PeerPortFactory", addr):
        self._factory = factory
        self._addr = addr
        self._buf = b""
        self._inner = None
        self._deadline = None

    def connectionMade(self) -> None:
        self._deadline = self._factory.clock.callLater(self._factory.header_timeout_s,
                                                      self.transport.abortConnection)

    def dataReceived(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.dataReceived(data)
            return
        self._buf += data
        if len(self._buf) < len(MAGIC) and MAGIC.startswith(self._buf):
            return  # not decided yet
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        if self._buf.startswith(MAGIC):
            inner = self._factory.channel_protocol()
            rest = self._buf[len(MAGIC):]
        else:
            inner = self._factory.site.buildProtocol(self._addr)
            rest = self._buf
        self._buf = b""
        if inner is None:  # the site's connection cap
            self.transport.loseConnection()
            return
        self._inner = inner
        inner.makeConnection(self.transport)
        if rest:
            inner.dataReceived(rest)

    def connectionLost(self, reason) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        if self._inner is not None:
            self._inner.connectionLost(reason)


class PeerPortFactory(protocol.Factory):
    """The peer listener: the channel and the HTTP ``site`` (a ``HardenedSite``) on
    one port. ``api``: the node's ``PeerAPI``; ``clock``: IReactorTime."""

    noisy = False

    def __init__(self, site, api, clock, header_timeout_s: float = 10.0,
                 idle_timeout_s: float = 120.0, max_in_flight: int = 256):
        self.site = site
        self.api = api
        self.clock = clock
        self.header_timeout_s = header_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.max_in_flight = max_in_flight

    def channel_protocol(self) -> ChannelServerProtocol:
        return ChannelServerProtocol(self.api, self.clock, self.max_in_flight,
                                     self.idle_timeout_s)

    def buildProtocol(self, addr):
        return _Sniffer(self, addr)

    def doStart(self):
        self.site.doStart()

    def doStop(self):
        self.site.doStop()


# -- client ------------------------------------------------------------------------------

class ChannelClientProtocol(_Framed):
    """Our end of one channel: calls in flight by id."""

    def __init__(self, max_frame: int):
        super().__init__()
        self.max_frame = max_frame
        self.ready: defer.Deferred = defer.Deferred()  # fires at the server's magic
        self._greeted = False
        self._hello = b""
        self._next_id = 0
        self._pending: dict[int, defer.Deferred] = {}
        self.lost = False

    def connectionMade(self) -> None:
        no_delay(self.transport)
        self.transport.write(MAGIC)

    def dataReceived(self, data: bytes) -> None:
        if not self._greeted:
            self._hello += data
            if len(self._hello) < len(MAGIC) and MAGIC.startswith(self._hello):
                return
            if not self._hello.startswith(MAGIC):
                self.transport.abortConnection()
                if not self.ready.called:
                    self.ready.errback(NoChannel("the peer answered without the channel"))
                return
            self._greeted = True
            data, self._hello = self._hello[len(MAGIC):], b""
            self.ready.callback(self)
            if not data:
                return
        super().dataReceived(data)

    def call(self, headers: dict, body: bytes) -> defer.Deferred:
        """Fires with (status, answer body); cancelling forgets the call."""
        self._next_id += 1
        call_id = self._next_id

        def forget(_d):
            self._pending.pop(call_id, None)

        d: defer.Deferred = defer.Deferred(forget)
        self._pending[call_id] = d
        self.transport.write(pack_frame([call_id, headers, body]))
        return d

    def frame_received(self, items: list) -> None:
        call_id, status, body = items
        if not isinstance(status, int) or not isinstance(body, bytes):
            self.frame_error(FrameError("bad answer frame"))
            return
        d = self._pending.pop(call_id, None)
        if d is not None:  # None: the caller gave up (timeout)
            d.callback((status, body))

    def connectionLost(self, reason) -> None:
        self.lost = True
        if not self.ready.called:
            failure = reason if reason.check(error.ConnectionRefusedError) else Failure(
                NoChannel(f"the peer closed before the channel opened: {reason.value}"))
            self.ready.errback(failure)
        pending, self._pending = self._pending, {}
        for d in pending.values():
            d.errback(error.ConnectionLost(f"peer channel lost: {reason.value}"))


class ChannelPool:
    """One channel per peer address, opened on first use, reopened after a loss.

    ``reactor``: IReactorTCP + IReactorTime; ``max_frame``: the largest answer
    accepted; ``connect_timeout_s``; ``fallback_s``: how long a peer that answered
    without the channel is sent HTTP before it is tried again.
    """

    def __init__(self, reactor, max_frame: int, connect_timeout_s: float = 5.0,
                 fallback_s: float = 60.0):
        self._reactor = reactor
        self.max_frame = max_frame + HEADROOM
        self.connect_timeout_s = connect_timeout_s
        self.fallback_s = fallback_s
        self._channels: dict[str, ChannelClientProtocol] = {}
        self._opening: dict[str, list[defer.Deferred]] = {}
        self._http_until: dict[str, float] = {}

    async def exchange(self, address: str, headers: dict, body: bytes) -> tuple[int, bytes]:
        """(status, answer body) of one call to ``address`` ("host:port"). Raises
        NoChannel (use HTTP), ConnectionRefusedError, ConnectionLost, ..."""
        until = self._http_until.get(address)
        if until is not None:
            if self._reactor.seconds() < until:
                raise NoChannel(address)
            del self._http_until[address]
        channel = self._channels.get(address)
        if channel is None or channel.lost:
            channel = await self._open(address)
        return await channel.call(headers, body)

    def _open(self, address: str) -> defer.Deferred:
        waiters = self._opening.get(address)
        d: defer.Deferred = defer.Deferred()
        if waiters is not None:
            waiters.append(d)
            return d
        self._opening[address] = [d]
        host, _, port = address.rpartition(":")
        proto = ChannelClientProtocol(self.max_frame)
        endpoint = TCP4ClientEndpoint(self._reactor, host, int(port),
                                      timeout=self.connect_timeout_s)
        connecting = endpoint.connect(protocol.Factory.forProtocol(lambda: proto))

        def opened(_):
            # a peer that accepts but never greets (hung, or a blackhole) must not
            # keep every later call waiting on this opening
            timer = self._reactor.callLater(self.connect_timeout_s,
                                            proto.transport.abortConnection)

            def greeted(result):
                if timer.active():
                    timer.cancel()
                return result

            return proto.ready.addBoth(greeted)

        def done(result):
            waiting = self._opening.pop(address, [])
            if isinstance(result, Failure):
                if result.check(NoChannel):
                    self._http_until[address] = self._reactor.seconds() + self.fallback_s
                    log.info("peer.channel.unsupported address={address}", address=address)
            else:
                self._channels[address] = proto
            for w in waiting:
                if w.called:  # the caller gave up (timeout) while it was opening
                    continue
                if isinstance(result, Failure):
                    w.errback(result)
                else:
                    w.callback(proto)

        connecting.addCallback(opened).addBoth(done)
        return d

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for ch in channels:
            if ch.transport is not None and not ch.lost:
                ch.transport.loseConnection()
