"""Simulated tier: a node that was not running when its probe timers were due (SIGSTOP,
a starved cgroup) reads the acks that arrived meanwhile before it acts on those timers."""

import random

from twisted.internet import defer, task

from zund.gossip import codec, config
from zund.gossip.codec import Ack, Ping, PushPullState
from zund.gossip.keyring import Keyring
from zund.gossip.member import MemberState
from zund.gossip.service import GossipService

A, B = ("127.0.0.1", 9519), ("127.0.0.2", 9519)
CFG = config.lan()


class _ReactorClock(task.Clock):
    """Runs what was due when ``advance`` began, not what those calls schedule (even for
    now): like the reactor's ``runUntilCurrent``, which reads sockets in between."""

    def advance(self, amount):
        self.rightNow += amount
        due = sorted((c for c in self.calls if c.getTime() <= self.rightNow), key=lambda c: c.getTime())
        for call in due:
            if call in self.calls:
                self.calls.remove(call)
                call.called = 1
                call.func(*call.args, **call.kw)


class _Wire:
    """A transport that only records what the node sends."""

    def __init__(self):
        self.sent = []
        self.on_packet = None

    def start(self, on_packet, on_stream, on_unreachable=None):
        self.on_packet = on_packet

    def send(self, data, addr):
        self.sent.append((data, addr))

    def exchange(self, addr, data, timeout_s):
        return defer.fail(ConnectionError("no streams here"))

    def stop(self):
        return defer.succeed(None)


def _node():
    clock, wire = _ReactorClock(), _Wire()
    node = GossipService(CFG, "a", A, A, [], Keyring(), clock, random.Random(1),
                         transport_factory=lambda bind: wire)
    node.startService()
    states = [PushPullState(name, addr, 1, MemberState.ALIVE, b"", 0) for name, addr in (("a", A), ("b", B))]
    node._apply(node._membership.bootstrap(states, clock.seconds()))
    return node, clock, wire


def _ping_to_b(node, clock, wire):
    """Advance in small steps until the node pings b; returns the ping's seq."""
    limits = codec.Limits(max_size=CFG.max_datagram)
    for _ in range(400):
        for data, addr in wire.sent:
            pings = [m for m in codec.decode_packet(data, CFG.cluster_name, node.keyring, limits).messages
                     if isinstance(m, Ping) and m.target == "b"]
            if addr == B and pings:
                return pings[0].seq
        wire.sent.clear()
        clock.advance(0.01)
    raise AssertionError("the node never probed b")


def test_ack_read_after_a_stall_clears_the_probe_its_late_timers_would_fail():
    """Stopped past its whole probe interval with b's ack waiting unread, the node reads the
    ack first on resuming (its timers fire one reactor turn late), so b is not suspected."""
    node, clock, wire = _node()
    seq = _ping_to_b(node, clock, wire)
    clock.advance(1.5)  # stopped: the timers are due; the reactor runs them before reading
    wire.on_packet(codec.encode_packet(CFG.cluster_name, [Ack(seq)], node.keyring), B)
    clock.advance(0)
    assert {m.name: m.state for m in node.members()}["b"] == "alive"
    assert node.local_health == 0
    assert node.stats["probe_timeouts"] == 0


def test_timer_late_with_nothing_to_read_still_fires():
    """The late timer is only put off one reactor turn: with no ack waiting, b is suspected."""
    node, clock, wire = _node()
    _ping_to_b(node, clock, wire)
    clock.advance(1.5)
    clock.advance(0)
    assert {m.name: m.state for m in node.members()}["b"] == "suspect"
