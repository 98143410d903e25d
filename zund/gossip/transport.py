"""The network seam: ``IPacketTransport`` and its UDP + TCP implementation.

Mirrors memberlist transport.go / net_transport.go: unreliable datagrams for
probes and gossip, a reliable stream (here one length-prefixed request and one
reply per TCP connection) for push-pull state sync.  The transport moves bytes
only; the envelope, encryption and protocol live above it.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer, error, protocol
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from zope.interface import Attribute, Interface, implementer

log = Logger()

PacketHandler = Callable[[bytes, tuple], None]
StreamHandler = Callable[[bytes, tuple], "bytes | None"]


class IPacketTransport(Interface):
    """What ``GossipService`` needs from the network (memberlist Transport)."""

    local_address = Attribute("(host, port) actually bound, once started")

    def start(on_packet: PacketHandler, on_stream: StreamHandler) -> None:
        """Bind and deliver datagrams to ``on_packet(data, addr)``; a stream
        request to ``on_stream(data, addr)``, whose bytes (or None: close) are
        the reply.  Raises on bind failure."""

    def send(data: bytes, addr: tuple) -> None:
        """Best-effort datagram; never raises on network errors."""

    def exchange(addr: tuple, data: bytes, timeout_s: float) -> defer.Deferred:
        """One stream request/reply; fires with the reply bytes or fails."""

    def stop() -> defer.Deferred:
        """Close every socket; fires when closed."""


class _Datagrams(protocol.DatagramProtocol):
    def __init__(self, owner: "UdpTcpTransport"):
        self.owner = owner

    def datagramReceived(self, data, addr):
        self.owner._on_packet(data, (addr[0], addr[1]))

    def connectionRefused(self):  # ICMP port unreachable on a connected socket: ignore
        pass


class _StreamServer(Int32StringReceiver):
    def __init__(self, owner: "UdpTcpTransport"):
        self.owner = owner
        self.MAX_LENGTH = owner.max_stream_bytes
        self._timeout = None

    def connectionMade(self):
        self._timeout = self.owner.reactor.callLater(self.owner.timeout_s, self.transport.abortConnection)

    def connectionLost(self, reason=protocol.connectionDone):
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()

    def stringReceived(self, data):
        peer = self.transport.getPeer()
        try:
            reply = self.owner._on_stream(data, (peer.host, peer.port))
        except Exception:
            log.failure("gossip.transport.stream_handler_failed")
            reply = None
        if reply is not None:
            self.sendString(reply)
        self.transport.loseConnection()

    def lengthLimitExceeded(self, length):
        self.transport.abortConnection()


class _StreamClient(Int32StringReceiver):
    def __init__(self, request: bytes, result: defer.Deferred, max_length: int):
        self.request = request
        self.result = result
        self.MAX_LENGTH = max_length

    def connectionMade(self):
        self.sendString(self.request)

    def stringReceived(self, data):
        if not self.result.called:
            self.result.callback(data)
        self.transport.loseConnection()

    def lengthLimitExceeded(self, length):
        if not self.result.called:
            self.result.errback(ValueError(f"push-pull reply of {length} bytes is too large"))
        self.transport.abortConnection()

    def connectionLost(self, reason=protocol.connectionDone):
        if not self.result.called:
            self.result.errback(reason)


class _ClientFactory(protocol.ClientFactory):
    def __init__(self, request, result, max_length):
        self.request, self.result, self.max_length = request, result, max_length

    def buildProtocol(self, addr):
        return _StreamClient(self.request, self.result, self.max_length)

    def clientConnectionFailed(self, connector, reason):
        if not self.result.called:
            self.result.errback(reason)


@implementer(IPacketTransport)
class UdpTcpTransport:
    """UDP datagrams and TCP streams on the same port number.

    ``reactor`` must provide IReactorUDP, IReactorTCP and IReactorTime; it is
    passed in (only ``zund/cmd`` touches the global reactor).
    """

    def __init__(self, reactor, bind: tuple, max_stream_bytes: int = 8 * 1024 * 1024,
                 timeout_s: float = 10.0):
        self.reactor = reactor
        self.bind = bind
        self.max_stream_bytes = max_stream_bytes
        self.timeout_s = timeout_s
        self.local_address = None
        self._udp = None
        self._tcp = None
        self._on_packet = None
        self._on_stream = None

    def start(self, on_packet, on_stream):
        self._on_packet, self._on_stream = on_packet, on_stream
        host, port = self.bind
        self._udp = self.reactor.listenUDP(port, _Datagrams(self), interface=host, maxPacketSize=65535)
        bound_port = self._udp.getHost().port
        factory = protocol.Factory.forProtocol(lambda: _StreamServer(self))
        try:
            self._tcp = self.reactor.listenTCP(bound_port, factory, interface=host)
        except Exception:
            self._udp.stopListening()
            raise
        self.local_address = (host, bound_port)

    def send(self, data, addr):
        if self._udp is None:
            return
        try:
            self._udp.write(data, (addr[0], addr[1]))
        except (OSError, error.MessageLengthError) as e:
            log.debug("gossip.transport.send_failed addr={addr} error={error}", addr=addr, error=e)

    def exchange(self, addr, data, timeout_s):
        result: defer.Deferred = defer.Deferred()
        connector = self.reactor.connectTCP(addr[0], addr[1], _ClientFactory(data, result, self.max_stream_bytes),
                                            timeout=timeout_s)

        def on_timeout():
            if not result.called:
                connector.disconnect()
                if not result.called:
                    result.errback(defer.TimeoutError(f"push-pull with {addr} timed out"))

        timer = self.reactor.callLater(timeout_s, on_timeout)

        def done(value):
            if timer.active():
                timer.cancel()
            return value

        return result.addBoth(done)

    def stop(self):
        waits = []
        for port in (self._udp, self._tcp):
            if port is not None:
                waits.append(defer.maybeDeferred(port.stopListening))
        self._udp = self._tcp = None
        return defer.gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)
