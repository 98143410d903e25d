"""In-memory HTTP between simulated nodes, with a seeded fault model on one clock.

``LoopbackNetwork`` maps ``host:port`` addresses to twisted.web resources (each
node's PeerAPI and ZunAPI). Requests travel as real HTTP/1.1 bytes over
``iosim`` transports, like ``treq.testing.StubTreq``, but the bytes move on the
simulation clock (``callLater(0)`` after every write) instead of on explicit
``flush()`` calls, so a single ``clock.advance`` runs whole request cascades
(entry node → bids → commit → answer) and nothing needs polling.

``PeerHttpClient`` is the treq-like client a ``PeerClient`` takes (``treq_client=``).
Before a request reaches the target, the fault model decides, from the network's
seeded ``random.Random`` and in a fixed order of draws, whether to

- refuse it: the target is not registered (a crashed node) → connection refused;
- lose it: the two nodes are partitioned, or ``drop_request`` → never answered (the
  caller's own timeout on the clock fires);
- delay it: ``delay`` seconds each way, uniform in the range;
- duplicate it: ``duplicate`` → the same bytes (same signature nonce) arrive twice,
  the copy's answer is discarded;
- lose the answer: ``drop_reply`` → the target did the work, the caller never hears.

Faults are set for all calls, or per kind of call (``kind_faults``, keyed by what
the ``classify(path, body, sender, target)`` callable says, e.g. the peer operation ``"COMMIT"``),
so a test can lose exactly the commit answers. Everything is counted in ``stats``.
"""

from __future__ import annotations

import collections
import random
from typing import Callable
from urllib.parse import urlsplit

import attrs
import treq
from treq.client import HTTPClient
from twisted.internet import defer, error
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.web.client import Agent, ResponseDone
from twisted.web.iweb import UNKNOWN_LENGTH, IAgentEndpointFactory, IBodyProducer
from twisted.web.server import Site
from zope.interface import implementer


@attrs.frozen
class LinkFaults:
    """Probabilities (0..1) and a delay range (seconds, each way) for peer calls."""

    drop_request: float = 0.0
    drop_reply: float = 0.0
    duplicate: float = 0.0
    delay: tuple = (0.0, 0.0)


NO_FAULTS = LinkFaults()


class _ClockedTransport(iosim.FakeTransport):
    """An iosim transport whose writes and closes schedule a pump on the clock."""

    def __init__(self, wire: "_Wire", *a, **kw):
        super().__init__(*a, **kw)
        self._wire = wire

    def write(self, data):
        super().write(data)
        self._wire.kick()

    def loseConnection(self):
        super().loseConnection()
        self._wire.kick()

    abortConnection = loseConnection


class _Wire:
    """One in-memory TCP connection between a client protocol and a server protocol."""

    def __init__(self, clock, server_proto, client_proto, server_addr, client_addr):
        self._clock = clock
        self._pending = None
        st = _ClockedTransport(self, server_proto, isServer=True, hostAddress=server_addr,
                               peerAddress=client_addr)
        ct = _ClockedTransport(self, client_proto, isServer=False, hostAddress=client_addr,
                               peerAddress=server_addr)
        self._pump = iosim.connect(server_proto, st, client_proto, ct, greet=False, clock=clock)
        self.kick()

    def kick(self) -> None:
        if self._pending is None:
            self._pending = self._clock.callLater(0, self._flush)

    def _flush(self) -> None:
        self._pending = None
        self._pump.flush(advanceClock=False)


@implementer(IStreamClientEndpoint)
class _Endpoint:
    def __init__(self, network: "LoopbackNetwork", address: str, client_host: str):
        self._network = network
        self._address = address
        self._client_host = client_host

    def connect(self, factory):
        site = self._network.sites.get(self._address)
        if site is None:
            return defer.fail(error.ConnectionRefusedError(self._address))
        host, port = self._address.rsplit(":", 1)
        server_addr = IPv4Address("TCP", host, int(port))
        client_addr = IPv4Address("TCP", self._client_host, self._network.next_port())
        server_proto = site.buildProtocol(client_addr)
        client_proto = factory.buildProtocol(server_addr)
        _Wire(self._network.clock, server_proto, client_proto, server_addr, client_addr)
        return defer.succeed(client_proto)


@implementer(IAgentEndpointFactory)
class _EndpointFactory:
    def __init__(self, network: "LoopbackNetwork", client_host: str):
        self._network = network
        self._client_host = client_host

    def endpointForURI(self, uri):
        return _Endpoint(self._network, f"{uri.host.decode()}:{uri.port}", self._client_host)


@implementer(IBodyProducer)
class _BytesProducer:
    """Writes the whole body at once (treq's default producer needs the global reactor)."""

    def __init__(self, body):
        self.body = body.encode() if isinstance(body, str) else bytes(body or b"")
        self.length = len(self.body)

    def startProducing(self, consumer):
        consumer.write(self.body)
        return defer.succeed(None)

    def stopProducing(self):
        pass

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass


@attrs.define
class BufferedResponse:
    """A complete answer handed to the caller after the fault model let it through;
    enough of ``IResponse`` for ``treq.collect`` / ``treq.content``."""

    code: int
    headers: object
    body: bytes

    @property
    def length(self):
        return len(self.body) if self.body else UNKNOWN_LENGTH

    def deliverBody(self, protocol):
        protocol.makeConnection(None)
        if self.body:
            protocol.dataReceived(self.body)
        protocol.connectionLost(Failure(ResponseDone()))


class LoopbackNetwork:
    """Addresses → web resources, reached over in-memory HTTP on ``clock``.

    ``rng``: the only source of fault decisions (a run replays from its seed).
    ``node_of``: address → node name (partitions are between node names).
    """

    def __init__(self, clock, rng: random.Random, faults: LinkFaults = NO_FAULTS,
                 classify: Callable[[str, bytes, str | None, str | None], str] | None = None):
        self.clock = clock
        self.rng = rng
        self.faults = faults
        self.kind_faults: dict[str, LinkFaults] = {}
        self._classify = classify
        self.sites: dict[str, Site] = {}
        self.node_of: dict[str, str] = {}
        self.stats: collections.Counter = collections.Counter()
        self._group_of: dict[str, int] = {}
        self._ports = 40000

    # -- topology ------------------------------------------------------------------

    def serve(self, address: str, node: str, resource) -> None:
        site = Site(resource, timeout=None, reactor=self.clock)
        site.noisy = False
        site.log = lambda request: None  # no access log lines in a simulation
        self.sites[address] = site
        self.node_of[address] = node

    def unserve(self, address: str) -> None:
        """The node behind ``address`` is gone: new connections are refused."""
        self.sites.pop(address, None)

    def partition(self, *groups) -> None:
        """Only nodes in the same group reach each other; unlisted nodes reach all."""
        self._group_of = {name: i for i, group in enumerate(groups) for name in group}

    def heal(self) -> None:
        self._group_of = {}

    def blocked(self, src: str, dst: str) -> bool:
        a, b = self._group_of.get(src), self._group_of.get(dst)
        return a is not None and b is not None and a != b

    def next_port(self) -> int:
        self._ports = 40000 + (self._ports - 39999) % 20000
        return self._ports

    # -- clients -------------------------------------------------------------------

    def http_client(self, client_host: str = "127.0.0.250") -> HTTPClient:
        """A plain treq client (no faults): for the tests' API calls."""
        agent = Agent.usingEndpointFactory(self.clock, _EndpointFactory(self, client_host))
        return HTTPClient(agent, data_to_body_producer=_BytesProducer)

    def peer_client(self, node: str, client_host: str) -> "PeerHttpClient":
        return PeerHttpClient(self, node, self.http_client(client_host))

    def faults_for(self, path: str, body: bytes, sender: str | None = None,
                   target: str | None = None) -> LinkFaults:
        if self.kind_faults and self._classify is not None:
            # sender and target: a sealed body opens only with both (sealing.request_aad)
            rule = self.kind_faults.get(self._classify(path, body, sender, target))
            if rule is not None:
                return rule
        return self.faults


class PeerHttpClient:
    """treq-like ``request(method, url, headers=, data=)`` from node ``node``,
    through the network's fault model."""

    def __init__(self, network: LoopbackNetwork, node: str, http: HTTPClient):
        self._net = network
        self.node = node
        self._http = http

    def request(self, method: str, url: str, headers=None, data=None) -> defer.Deferred:
        net, rng, stats = self._net, self._net.rng, self._net.stats
        parts = urlsplit(url)
        address, path = parts.netloc, parts.path
        faults = net.faults_for(path, data, self.node, net.node_of.get(address))
        # the draws happen in a fixed order whatever the outcome, so one fault
        # setting never shifts the random stream of the others
        lose_request = faults.drop_request and rng.random() < faults.drop_request
        lose_reply = faults.drop_reply and rng.random() < faults.drop_reply
        duplicate = faults.duplicate and rng.random() < faults.duplicate
        there = rng.uniform(*faults.delay) if faults.delay[1] > 0 else 0.0
        back = rng.uniform(*faults.delay) if faults.delay[1] > 0 else 0.0
        stats["requests"] += 1
        reply: defer.Deferred = defer.Deferred()  # cancelled by the caller's timeout

        def answer(outcome):
            if reply.called:
                return  # the caller gave up (timeout): the answer is lost
            if isinstance(outcome, Exception):
                reply.errback(outcome)
            else:
                reply.callback(outcome)

        dst = net.node_of.get(address)
        if dst is not None and net.blocked(self.node, dst):
            stats["partitioned"] += 1
            return reply
        if lose_request:
            stats["dropped_request"] += 1
            return reply

        def send(copy: bool):
            d = defer.Deferred.fromCoroutine(self._exchange(method, url, headers, data))
            if copy:
                d.addErrback(lambda _f: None)
                return

            def done(outcome):
                if lose_reply:
                    stats["dropped_reply"] += 1
                    return
                if back > 0:
                    net.clock.callLater(back, answer, outcome)
                else:
                    answer(outcome)

            d.addCallbacks(done, lambda f: done(f.value))

        net.clock.callLater(there, send, False)
        if duplicate:
            stats["duplicated"] += 1
            net.clock.callLater(there + (rng.uniform(*faults.delay) if faults.delay[1] > 0
                                         else 0.0), send, True)
        return reply

    async def _exchange(self, method, url, headers, data) -> BufferedResponse:
        response = await self._http.request(method, url, headers=headers, data=data)
        body = await treq.content(response)
        return BufferedResponse(response.code, response.headers, body)
