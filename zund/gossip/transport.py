"""The network seam: ``IPacketTransport`` and its UDP + TCP implementation.

Mirrors memberlist transport.go / net_transport.go: unreliable datagrams for
probes and gossip, a reliable stream (here one length-prefixed request and one
reply per TCP connection) for push-pull state sync.  The transport moves bytes
only; the envelope, encryption and protocol live above it.

zund addition: the UDP socket asks Linux for its ICMP errors (``IP_RECVERR``)
and reports a datagram that found no socket at its destination (port
unreachable: the member's process is gone while its host is up) to
``on_unreachable(addr)``.  memberlist's unconnected UDP socket never hears of
them, so it waits out every probe timeout for a process that has already died.
"""

from __future__ import annotations

import socket
import struct
from typing import Callable

from twisted.internet import defer, error, protocol, udp
from twisted.internet.interfaces import IHalfCloseableDescriptor
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from zope.interface import Attribute, Interface, implementer

log = Logger()

PacketHandler = Callable[[bytes, tuple], None]
StreamHandler = Callable[[bytes, tuple], "bytes | None"]
UnreachableHandler = Callable[[tuple], None]

# linux/in.h, linux/in6.h, linux/errqueue.h, linux/icmp.h, linux/icmpv6.h (Python's
# socket module does not name them)
IP_RECVERR, IPV6_RECVERR = 11, 25
SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 2, 3
#: (origin, type, code) of "port unreachable" in ICMP and ICMPv6
PORT_UNREACHABLE = {(SO_EE_ORIGIN_ICMP, 3, 3), (SO_EE_ORIGIN_ICMP6, 1, 4)}
#: struct sock_extended_err: ee_errno, ee_origin, ee_type, ee_code, ee_pad, ee_info, ee_data
_EXTENDED_ERR = struct.Struct("=IBBBBII")
#: queued errors read per call (the queue is bounded by the socket's receive buffer)
MAX_ERRORS_PER_READ = 256


def port_unreachable(ancdata) -> bool:
    """Whether ``recvmsg(..., MSG_ERRQUEUE)``'s ancillary data says port unreachable."""
    for level, kind, data in ancdata:
        if (level, kind) in ((socket.IPPROTO_IP, IP_RECVERR),
                             (socket.IPPROTO_IPV6, IPV6_RECVERR)) \
                and len(data) >= _EXTENDED_ERR.size:
            _errno, origin, icmp_type, code, _pad, _info, _data = _EXTENDED_ERR.unpack_from(data)
            if (origin, icmp_type, code) in PORT_UNREACHABLE:
                return True
    return False


@implementer(IHalfCloseableDescriptor)
class ErrQueuePort(udp.Port):
    """A UDP port that reads its socket's error queue (``IP_RECVERR``).

    With ``IP_RECVERR`` an ICMP error is queued on the socket, and the socket is
    also marked with it: the next ``recvfrom`` or ``sendto`` fails once with
    ``ECONNREFUSED`` (Twisted's write swallows that, losing the datagram), and
    while the queue is not empty epoll reports only ``EPOLLERR``, on which the
    reactor stops reading (a half-close: ``readConnectionLost``). So the queue
    is drained before every read, a write refused by an earlier datagram's
    error is sent again, and a half-close re-arms the reading."""

    def __init__(self, *args, on_unreachable: UnreachableHandler | None = None, **kw):
        super().__init__(*args, **kw)
        self.on_unreachable = on_unreachable

    def _bindSocket(self):
        super()._bindSocket()
        levels = [(socket.IPPROTO_IP, IP_RECVERR)]
        if self.addressFamily == socket.AF_INET6:
            levels.insert(0, (socket.IPPROTO_IPV6, IPV6_RECVERR))
        for level, option in levels:
            try:
                self.socket.setsockopt(level, option, 1)
            except OSError:  # not Linux: no ICMP errors, as memberlist
                pass

    def drain_errors(self) -> int:
        """Read the queued ICMP errors; report each port unreachable. How many."""
        read = 0
        while read < MAX_ERRORS_PER_READ:
            try:
                _data, ancdata, _flags, addr = self.socket.recvmsg(1, 512, socket.MSG_ERRQUEUE)
            except InterruptedError:
                continue
            except OSError:  # EAGAIN: empty (or no error queue here)
                return read
            read += 1
            if self.on_unreachable is not None and addr and port_unreachable(ancdata):
                try:
                    self.on_unreachable((addr[0], addr[1]))
                except Exception:
                    log.failure("gossip.transport.unreachable_handler_failed")
        return read

    def doRead(self):
        self.drain_errors()
        return super().doRead()

    def readConnectionLost(self, reason):
        """epoll said EPOLLERR only (an error queued, no datagram): not a close."""
        if getattr(self, "socket", None) is None:
            return
        self.drain_errors()
        self.startReading()

    def write(self, datagram, addr=None):
        sent = super().write(datagram, addr)
        if sent is None:
            # refused with an earlier datagram's queued error (ECONNREFUSED,
            # swallowed by Twisted): read it, then this datagram goes after all
            self.drain_errors()
            sent = super().write(datagram, addr)
        return sent


class IPacketTransport(Interface):
    """What ``GossipService`` needs from the network (memberlist Transport)."""

    local_address = Attribute("(host, port) actually bound, once started")

    def start(on_packet: PacketHandler, on_stream: StreamHandler,
              on_unreachable: UnreachableHandler | None = None) -> None:
        """Bind and deliver datagrams to ``on_packet(data, addr)``; a stream
        request to ``on_stream(data, addr)``, whose bytes (or None: close) are
        the reply; ``on_unreachable(addr)`` when a datagram sent to ``addr``
        found no socket listening there (where the network says so).  Raises on
        bind failure."""

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

    def start(self, on_packet, on_stream, on_unreachable=None):
        self._on_packet, self._on_stream = on_packet, on_stream
        host, port = self.bind
        # reactor.listenUDP, with the port that reads its ICMP errors
        self._udp = ErrQueuePort(port, _Datagrams(self), interface=host, maxPacketSize=65535,
                                 reactor=self.reactor, on_unreachable=on_unreachable)
        self._udp.startListening()
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
