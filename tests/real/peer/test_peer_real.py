"""Real tier: PeerAPI on a real TCP socket on 127.0.0.1 and PeerClient with its
own connection pool, on the real reactor (one process)."""

import pytest_twisted

from zund.cluster import signing
from zund.cluster.peer_client import PeerClient
from zund.cluster.peer_server import PeerAPI
from zund.cluster.types import Bid, NodeView, PlacementRequest
from zund.common import errors

REQ = PlacementRequest(request_id="req-1", uuid="11111111-1111-4111-8111-111111111111",
                       project_id="p1", user_id="u1", cpu=0.5, memory_mb=64)


class Handlers:
    """A minimal IPeerHandlers: a bidder that always bids and a node's host info."""

    class containers:
        @staticmethod
        async def host_info():
            return {"hostname": "n2"}

    async def bid(self, request):
        return Bid(node="n2", reservation_id="r1", score=1.0, expires_at=0.0)


@pytest_twisted.ensureDeferred
async def test_signed_calls_over_a_real_socket():
    """Bid and host over real HTTP; a wrong key is refused; a closed port is
    ServiceUnavailable; the pool closes cleanly."""
    from twisted.internet import reactor

    keys = signing.peer_keys([], "zund-test").keys
    api = PeerAPI("n2", Handlers(), signing.Verifier("n2", keys, reactor), reactor)
    port = reactor.listenTCP(0, api.site(), interface="127.0.0.1")
    node = NodeView("n2", "alive", "", f"127.0.0.1:{port.getHost().port}", None)
    client = PeerClient("n1", signing.Signer("n1", keys, reactor), timeout_s=5.0, clock=reactor)
    intruder = PeerClient("evil", signing.Signer("evil", [b"x" * 32], reactor), timeout_s=5.0,
                          clock=reactor)
    try:
        assert await client.bid(node, REQ) == Bid("n2", "r1", 1.0, 0.0)
        assert (await client.host(node))["hostname"] == "n2"
        try:
            await intruder.host(node)
        except errors.NotAuthenticated:
            pass
        else:
            raise AssertionError("wrong key accepted")
        assert api.stats["unauthorized"] == 1 and api.stats["ok"] == 2
    finally:
        await client.close()
        await intruder.close()
        await port.stopListening()
    try:
        await client.host(node)
    except errors.ServiceUnavailable as e:
        assert "n2" in str(e)
    else:
        raise AssertionError("closed port answered")
    await client.close()


@pytest_twisted.ensureDeferred
async def test_sealed_calls_over_a_real_socket_refuse_wrong_key_replay_and_tampering():
    """With [gossip] keys, bodies are sealed on a real socket: calls work, the
    request bytes hide the tenant; a wrong key, a replayed request and a tampered
    body are refused (401) and counted by the server."""
    import base64

    from treq.client import HTTPClient
    from twisted.internet import reactor
    from twisted.web.client import Agent, HTTPConnectionPool

    from zund.cluster import messages, sealing, wire

    def ring(key: bytes):
        return signing.peer_keys([base64.b64encode(key).decode()], "zund-test")

    good, bad = ring(b"g" * 32), ring(b"b" * 32)
    api = PeerAPI("n2", Handlers(), signing.Verifier("n2", good.keys, reactor), reactor,
                  sealer=sealing.sealer_for(good))
    port = reactor.listenTCP(0, api.site(), interface="127.0.0.1")
    url = f"http://127.0.0.1:{port.getHost().port}/v1/peer"
    node = NodeView("n2", "alive", "", f"127.0.0.1:{port.getHost().port}", None)
    client = PeerClient("n1", signing.Signer("n1", good.keys, reactor), timeout_s=5.0,
                        clock=reactor, sealer=sealing.sealer_for(good))
    intruder = PeerClient("evil", signing.Signer("evil", bad.keys, reactor), timeout_s=5.0,
                          clock=reactor, sealer=sealing.sealer_for(bad))
    pool = HTTPConnectionPool(reactor, persistent=False)
    http = HTTPClient(Agent(reactor, pool=pool))

    async def post(body: bytes, signature: dict) -> int:
        headers = {k: [v] for k, v in signature.items()}
        resp = await http.request("POST", url, headers=headers, data=body)
        await resp.content()
        return resp.code

    try:
        assert await client.bid(node, REQ) == Bid("n2", "r1", 1.0, 0.0)
        try:
            await intruder.host(node)
        except errors.ServiceUnavailable:
            pass
        else:
            raise AssertionError("wrong key accepted")
        # a sealed request captured on the wire, sent twice, then tampered with
        signer = signing.Signer("n1", good.keys, reactor)
        body = sealing.sealer_for(good).seal(
            wire.pack(messages.encode_request(messages.BidRequest(REQ))),
            sealing.request_aad("n1", "n2"))
        assert b"p1" not in body and b"project_id" not in body
        signature = signer.headers("POST", "/v1/peer", body, "n2")
        assert await post(body, signature) == 200
        assert await post(body, signature) == 401
        tampered = body[:-1] + bytes([body[-1] ^ 1])
        assert await post(tampered, signer.headers("POST", "/v1/peer", body, "n2")) == 401
        assert api.stats["unauthorized.bad-signature"] == 2  # wrong key, tampered
        assert api.stats["unauthorized.replayed"] == 1
        assert api.stats["ok"] == 2
    finally:
        await client.close()
        await intruder.close()
        await pool.closeCachedConnections()
        await port.stopListening()
