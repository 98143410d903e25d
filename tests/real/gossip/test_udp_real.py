"""Real tier: GossipService over real UDP/TCP on 127.0.0.1, one process, real reactor.

Encryption is on.  Timings are a sped-up ``local`` profile so the test stays short.
Only 127.0.0.1 is ever addressed.
"""

import random

import pytest
import pytest_twisted
from twisted.internet import task

from tests.support.nodeproc import free_port
from zund.gossip import config
from zund.gossip.keyring import Keyring
from zund.gossip.service import GossipService

KEY = b"r" * 32
FAST = config.local(probe_interval_s=0.2, probe_timeout_s=0.1, gossip_interval_s=0.05,
                    push_pull_interval_s=2.0, leave_propagate_s=0.1, join_retry_interval_s=0.2)


def free_ports(n):
    """Ports free for both UDP and TCP on 127.0.0.1, outside the ephemeral range."""
    return [free_port("127.0.0.1") for _ in range(n)]


async def wait_for(reactor, predicate, timeout_s):
    waited = 0.0
    while not predicate():
        if waited > timeout_s:
            return False
        await task.deferLater(reactor, 0.05, lambda: None)
        waited += 0.05
    return True


def states(node):
    return {m.name: m.state for m in node.members()}


@pytest_twisted.ensureDeferred
async def test_real_udp_cluster_converges_and_detects_a_crash():
    """5 encrypted nodes on 127.0.0.1 converge; one closes its sockets without leaving; all mark it dead."""
    from twisted.internet import reactor

    ports = free_ports(5)
    seeds = [("127.0.0.1", ports[0])]
    nodes = [GossipService(FAST, f"r{i}", ("127.0.0.1", p), ("127.0.0.1", p), seeds, Keyring([KEY]),
                           reactor, random.Random(i)) for i, p in enumerate(ports)]
    for node in nodes:
        node.startService()
    try:
        everyone = {f"r{i}" for i in range(5)}
        assert await wait_for(reactor, lambda: all(
            {n for n, s in states(node).items() if s == "alive"} == everyone for node in nodes), 10)

        nodes[2].set_metadata(b"hello")
        assert await wait_for(reactor, lambda: all(
            {m.name: m.meta for m in node.members()}["r2"] == b"hello" for node in nodes), 5)

        await nodes[4].stop_without_leave()
        survivors = nodes[:4]
        assert await wait_for(reactor, lambda: all(states(n)["r4"] == "dead" for n in survivors), 15)
        assert all(states(n)[f"r{i}"] == "alive" for n in survivors for i in range(4))
        assert all(n.stats["dropped_decrypt"] == 0 for n in survivors)
        assert all(n.stats["packets_received"] > 0 for n in survivors)
        # its port closed on a live host: the kernel answered the probes of it
        # (ICMP port unreachable), and the probes ended on that word
        assert sum(n.stats["unreachable_reported"] for n in survivors) > 0
        assert sum(n.stats["probes_unreachable"] for n in survivors) > 0
    finally:
        for node in nodes[:4]:
            await node.stopService()


@pytest_twisted.ensureDeferred
async def test_real_udp_transport_reports_a_port_nobody_listens_on_and_keeps_working():
    """IP_RECVERR on a real socket: a datagram to a loopback port with nothing bound
    is reported with that address; the port then still sends (a write that the
    queued error refuses goes again) and still receives (an error-only wakeup does
    not stop the reading)."""
    from twisted.internet import reactor

    from zund.gossip.transport import UdpTcpTransport

    a_port, b_port, nobody = free_ports(3)
    got_a, got_b, unreachable = [], [], []
    a = UdpTcpTransport(reactor, ("127.0.0.1", a_port))
    b = UdpTcpTransport(reactor, ("127.0.0.1", b_port))
    a.start(lambda data, addr: got_a.append(data), lambda data, addr: None, unreachable.append)
    b.start(lambda data, addr: got_b.append(data), lambda data, addr: None)
    try:
        a.send(b"x", ("127.0.0.1", nobody))
        assert await wait_for(reactor, lambda: ("127.0.0.1", nobody) in unreachable, 5)
        # error-only wakeups, then at once a datagram to a live peer, each round
        for i in range(5):
            a.send(b"x", ("127.0.0.1", nobody))
            a.send(b"x", ("127.0.0.1", nobody))
            a.send(b"to-b-%d" % i, ("127.0.0.1", b_port))
            b.send(b"to-a-%d" % i, ("127.0.0.1", a_port))
        assert await wait_for(reactor, lambda: len(got_b) == 5 and len(got_a) == 5, 5)
        assert sorted(got_b) == [b"to-b-%d" % i for i in range(5)]
        assert sorted(got_a) == [b"to-a-%d" % i for i in range(5)]
        assert set(unreachable) == {("127.0.0.1", nobody)}
        assert await wait_for(reactor, lambda: len(unreachable) == 11, 5)
    finally:
        await a.stop()
        await b.stop()


@pytest_twisted.ensureDeferred
async def test_real_udp_graceful_leave():
    """stopService over real sockets: the peer records the node as left."""
    from twisted.internet import reactor

    ports = free_ports(2)
    a = GossipService(FAST, "a", ("127.0.0.1", ports[0]), ("127.0.0.1", ports[0]), [], Keyring([KEY]),
                      reactor, random.Random(1))
    b = GossipService(FAST, "b", ("127.0.0.1", ports[1]), ("127.0.0.1", ports[1]), [("127.0.0.1", ports[0])],
                      Keyring([KEY]), reactor, random.Random(2))
    a.startService()
    b.startService()
    try:
        await b.joined
        assert await wait_for(reactor, lambda: states(a).get("b") == "alive", 5)
        await b.stopService()
        assert await wait_for(reactor, lambda: states(a).get("b") == "left", 5)
    finally:
        await a.stopService()


@pytest_twisted.ensureDeferred
async def test_real_udp_metadata_change_is_pushed_at_once():
    """Encrypted UDP, gossip ticks and probes every 30 s: a metadata change is on all 4 peers within 1 s."""
    from twisted.internet import reactor

    slow_ticks = config.lan(probe_interval_s=30.0, gossip_interval_s=30.0, push_pull_interval_s=60.0,
                            reconnect_interval_s=60.0, leave_propagate_s=0.1)
    ports = free_ports(5)
    addrs = [("127.0.0.1", p) for p in ports]
    nodes = [GossipService(slow_ticks, f"r{i}", a, a, [s for s in addrs if s != a], Keyring([KEY]),
                           reactor, random.Random(i)) for i, a in enumerate(addrs)]
    for node in nodes:
        node.startService()
    try:
        everyone = {f"r{i}" for i in range(5)}
        assert await wait_for(reactor, lambda: all(
            {n for n, s in states(node).items() if s == "alive"} == everyone for node in nodes), 10)
        started = reactor.seconds()
        nodes[1].set_metadata(b"draining")
        assert await wait_for(reactor, lambda: all(
            {m.name: m.meta for m in node.members()}["r1"] == b"draining" for node in nodes), 1.0)
        assert reactor.seconds() - started < 1.0
    finally:
        for node in nodes:
            await node.stopService()
