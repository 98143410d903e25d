"""Real tier: the persistent multiplexed peer channel (zund.cluster.channel) on a real
TCP socket on 127.0.0.1, sharing the port with HTTP, on the real reactor."""

import socket
import struct

import pytest_twisted
from twisted.internet import defer, task

from zund.cluster import sealing, signing
from zund.cluster.channel import MAGIC, PeerPortFactory
from zund.cluster.peer_client import PeerClient, PeerRefused
from zund.cluster.peer_server import PeerAPI
from zund.cluster.types import Bid, NodeView, PlacementRequest
from zund.common import errors
from zund.common.http import FixedBodyLimit, HardenedSite, ListenerLimits, plain_refusal


def req(i: int) -> PlacementRequest:
    return PlacementRequest(request_id=f"req-{i}", uuid=f"11111111-1111-4111-8111-{i:012d}",
                            project_id="p1", user_id="u1", cpu=0.5, memory_mb=64)


class Handlers:
    """Bids whose answers come back out of order: even requests wait a little."""

    def __init__(self, reactor):
        self._reactor = reactor

    class containers:
        @staticmethod
        async def host_info():
            return {"hostname": "n2"}

    async def bid(self, request):
        n = int(request.uuid[-12:])
        if n % 2 == 0:
            await task.deferLater(self._reactor, 0.02, lambda: None)
        return Bid(node="n2", reservation_id=f"r{n}", score=float(n), expires_at=0.0)


def serve(reactor, keys, sealer, channel=True):
    api = PeerAPI("n2", Handlers(reactor), signing.Verifier("n2", keys, reactor), reactor,
                  sealer=sealer)
    site = HardenedSite(api.resource(), FixedBodyLimit(api.max_body_bytes, plain_refusal),
                        ListenerLimits(), reactor, name="peer-rpc", access_log=False)
    factory = PeerPortFactory(site, api, reactor) if channel else site
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    return api, port, NodeView("n2", "alive", "", f"127.0.0.1:{port.getHost().port}", None)


def ring():
    return signing.peer_keys(["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="], "zund-test")


@pytest_twisted.ensureDeferred
async def test_calls_share_one_channel_and_answers_may_come_out_of_order():
    """Forty concurrent signed, sealed bids over the channel: each caller gets its own
    answer (the slow even ones overtaken by the odd ones), HTTP still answers on the
    same port, and a wrong key is refused."""
    from twisted.internet import reactor

    keys = ring()
    api, port, node = serve(reactor, keys.keys, sealing.sealer_for(keys))
    client = PeerClient("n1", signing.Signer("n1", keys.keys, reactor), timeout_s=5.0,
                        clock=reactor, reactor=reactor, sealer=sealing.sealer_for(keys),
                        channel=True)
    http_only = PeerClient("n1", signing.Signer("n1", keys.keys, reactor), timeout_s=5.0,
                           clock=reactor, reactor=reactor, sealer=sealing.sealer_for(keys))
    evil = ring()
    intruder = PeerClient("evil", signing.Signer("evil", [b"x" * 32], reactor), timeout_s=5.0,
                          clock=reactor, reactor=reactor, sealer=sealing.sealer_for(evil),
                          channel=True)
    try:
        answers = await defer.gatherResults([
            defer.Deferred.fromCoroutine(client.bid(node, req(i))) for i in range(1, 41)])
        assert [a.reservation_id for a in answers] == [f"r{i}" for i in range(1, 41)]
        assert len(client._channel_pool()._channels) == 1
        assert (await http_only.host(node))["hostname"] == "n2"
        await client.ping(node)
        try:
            await intruder.host(node)
        except errors.ServiceUnavailable:  # a plaintext 401: not sealed for it
            pass
        else:
            raise AssertionError("wrong key accepted")
        assert api.stats["ok"] == 42 and api.stats["unauthorized"] == 1
    finally:
        for c in (client, http_only, intruder):
            await c.close()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_peer_without_the_channel_is_called_over_http():
    """A listener that only speaks HTTP (an older node): the client falls back to
    HTTP for it and the calls succeed."""
    from twisted.internet import reactor

    keys = ring()
    api, port, node = serve(reactor, keys.keys, sealing.sealer_for(keys), channel=False)
    client = PeerClient("n1", signing.Signer("n1", keys.keys, reactor), timeout_s=5.0,
                        clock=reactor, reactor=reactor, sealer=sealing.sealer_for(keys),
                        channel=True)
    try:
        assert (await client.bid(node, req(1))).reservation_id == "r1"
        assert (await client.bid(node, req(3))).reservation_id == "r3"
        assert api.stats["ok"] == 2
    finally:
        await client.close()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_closed_port_is_refused_and_a_garbage_frame_only_closes_its_connection():
    """No listener: PeerRefused (the call never left). A frame that does not decode
    closes that connection; the listener keeps serving others."""
    from twisted.internet import reactor

    keys = ring()
    api, port, node = serve(reactor, keys.keys, sealing.sealer_for(keys))
    client = PeerClient("n1", signing.Signer("n1", keys.keys, reactor), timeout_s=5.0,
                        clock=reactor, reactor=reactor, sealer=sealing.sealer_for(keys),
                        channel=True)
    try:
        host, number = node.peer.split(":")

        def garbage():
            with socket.create_connection((host, int(number)), timeout=5) as s:
                s.sendall(MAGIC + struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1")
                got = b""
                while True:
                    try:
                        chunk = s.recv(100)
                    except ConnectionResetError:  # aborted: closed without lingering
                        return got
                    if not chunk:
                        return got
                    got += chunk

        from twisted.internet import threads
        # greeted, then closed (an abort may discard the unread greeting)
        assert await threads.deferToThread(garbage) in (b"", MAGIC)
        assert (await client.bid(node, req(5))).reservation_id == "r5"
    finally:
        await port.stopListening()
    await client.close()
    try:
        await client.host(node)
    except PeerRefused:
        pass
    else:
        raise AssertionError("closed port answered")
