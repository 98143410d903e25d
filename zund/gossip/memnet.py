"""In-memory network for deterministic simulations on one ``task.Clock``.

``MemoryNetwork`` hands out ``MemoryTransport`` objects that implement the same
``IPacketTransport`` as the UDP transport, and adds what a real network does
to packets: latency, loss, partitions and slow receivers (Lifeguard's "slow
node": its inbound processing is delayed).  Everything random comes from the
``rng`` passed in, so a run replays from its seed.

``HeapClock`` is a ``task.Clock`` whose calls live in a heap, and whose
``advance`` moves time to each call's own deadline before running it (a
discrete-event simulation), which keeps 1000-node runs fast and exact.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import defaultdict

from twisted.internet import defer, error, task
from twisted.internet.base import DelayedCall
from zope.interface import implementer

from zund.gossip.transport import IPacketTransport


class HeapClock(task.Clock):
    """``task.Clock`` with O(log n) scheduling and per-call time stamps."""

    def __init__(self):
        super().__init__()
        self._heap: list = []
        self._counter = itertools.count()

    def callLater(self, delay, callable, *args, **kw):
        dc = DelayedCall(self.seconds() + max(delay, 0.0), callable, args, kw,
                         self._cancelled, self._reset, self.seconds)
        heapq.heappush(self._heap, (dc.getTime(), next(self._counter), dc))
        return dc

    def _cancelled(self, dc):
        pass  # lazily skipped when popped

    def _reset(self, dc):
        heapq.heappush(self._heap, (dc.getTime(), next(self._counter), dc))

    def getDelayedCalls(self):
        return [dc for _, _, dc in self._heap if dc.active()]

    def advance(self, amount):
        end = self.rightNow + amount
        heap = self._heap
        while heap and heap[0][0] <= end:
            at, _, dc = heapq.heappop(heap)
            if dc.cancelled or dc.called or dc.getTime() != at:
                continue
            self.rightNow = max(self.rightNow, at)
            dc.called = 1
            dc.func(*dc.args, **dc.kw)
        self.rightNow = end

    def pump(self, timings):
        for amount in timings:
            self.advance(amount)


class NetworkStats:
    def __init__(self):
        self.packets_sent = defaultdict(int)
        self.bytes_sent = defaultdict(int)
        self.stream_bytes = defaultdict(int)
        self.dropped_loss = 0
        self.dropped_partition = 0

    def totals(self) -> dict:
        return {
            "packets": sum(self.packets_sent.values()),
            "bytes": sum(self.bytes_sent.values()),
            "stream_bytes": sum(self.stream_bytes.values()),
            "dropped_loss": self.dropped_loss,
            "dropped_partition": self.dropped_partition,
        }


class MemoryNetwork:
    """A lossy, partitionable network of ``MemoryTransport`` endpoints."""

    def __init__(self, clock, rng: random.Random, loss: float = 0.0,
                 latency: tuple = (0.0005, 0.002), unreachable: bool = False):
        self.clock = clock
        self.rng = rng
        self.loss = loss
        self.latency = latency
        #: a datagram to an address nobody listens on comes back as "unreachable"
        #: to its sender, one latency later (a dead process on a live host: the
        #: kernel's ICMP port unreachable); False: it vanishes (a dead host)
        self.unreachable = unreachable
        self.stats = NetworkStats()
        self._endpoints: dict[tuple, MemoryTransport] = {}
        self._group_of: dict[tuple, int] = {}
        self._slow: dict[tuple, tuple] = {}

    # -- configuration
    def transport(self, bind: tuple) -> "MemoryTransport":
        """Factory with the signature ``GossipService`` expects."""
        return MemoryTransport(self, (bind[0], bind[1]))

    def partition(self, *groups) -> None:
        """Only addresses in the same group can talk; unlisted ones talk to all."""
        self._group_of = {tuple(a): i for i, group in enumerate(groups) for a in group}

    def heal(self) -> None:
        self._group_of = {}

    def set_slow(self, addr: tuple, extra_delay: tuple) -> None:
        """Delay every packet ``addr`` processes by uniform(*extra_delay) seconds."""
        self._slow[tuple(addr)] = extra_delay

    def _blocked(self, src, dst) -> bool:
        a, b = self._group_of.get(src), self._group_of.get(dst)
        return a is not None and b is not None and a != b

    def _delay(self, dst) -> float:
        d = self.rng.uniform(*self.latency)
        slow = self._slow.get(dst)
        if slow is not None:
            d += self.rng.uniform(*slow)
        return d

    # -- delivery
    def _send(self, src, dst, data: bytes) -> None:
        self.stats.packets_sent[src] += 1
        self.stats.bytes_sent[src] += len(data)
        dst = (dst[0], dst[1])
        if self._blocked(src, dst):
            self.stats.dropped_partition += 1
            return
        if self.loss and self.rng.random() < self.loss:
            self.stats.dropped_loss += 1
            return
        if dst not in self._endpoints:
            if self.unreachable:
                self.clock.callLater(self.rng.uniform(*self.latency), self._refuse, src, dst)
            return
        self.clock.callLater(self._delay(dst), self._deliver, src, dst, data)

    def _refuse(self, src, dst):
        endpoint = self._endpoints.get(src)
        if endpoint is not None and endpoint._on_unreachable is not None:
            endpoint._on_unreachable(dst)

    def _deliver(self, src, dst, data):
        endpoint = self._endpoints.get(dst)
        if endpoint is not None and endpoint._on_packet is not None:
            endpoint._on_packet(data, src)

    def _exchange(self, src, dst, data: bytes, timeout_s: float) -> defer.Deferred:
        self.stats.stream_bytes[src] += len(data)
        dst = (dst[0], dst[1])
        result: defer.Deferred = defer.Deferred()
        if self._blocked(src, dst):
            self.clock.callLater(timeout_s, result.errback, defer.TimeoutError("partitioned"))
            return result
        if dst not in self._endpoints:
            self.clock.callLater(self.rng.uniform(*self.latency), result.errback,
                                 error.ConnectionRefusedError(str(dst)))
            return result

        def serve():
            endpoint = self._endpoints.get(dst)
            if endpoint is None:
                result.errback(error.ConnectionLost(str(dst)))
                return
            reply = endpoint._on_stream(data, src)
            if reply is None:
                result.errback(error.ConnectionLost("no reply"))
                return
            self.stats.stream_bytes[dst] += len(reply)
            self.clock.callLater(self.rng.uniform(*self.latency), result.callback, reply)

        self.clock.callLater(self._delay(dst), serve)
        return result


@implementer(IPacketTransport)
class MemoryTransport:
    def __init__(self, network: MemoryNetwork, bind: tuple):
        self.network = network
        self.local_address = bind
        self._on_packet = None
        self._on_stream = None
        self._on_unreachable = None

    def start(self, on_packet, on_stream, on_unreachable=None):
        if self.local_address in self.network._endpoints:
            raise error.CannotListenError(self.local_address[0], self.local_address[1], "address in use")
        self._on_packet, self._on_stream = on_packet, on_stream
        self._on_unreachable = on_unreachable
        self.network._endpoints[self.local_address] = self

    def send(self, data, addr):
        if self._on_packet is not None:
            self.network._send(self.local_address, addr, data)

    def exchange(self, addr, data, timeout_s):
        return self.network._exchange(self.local_address, addr, data, timeout_s)

    def stop(self):
        if self.network._endpoints.get(self.local_address) is self:
            del self.network._endpoints[self.local_address]
        self._on_packet = self._on_stream = self._on_unreachable = None
        return defer.succeed(None)
