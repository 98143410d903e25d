"""Sealed peer RPC in process (StubTreq, one task.Clock): requests and answers are
AES-GCM sealed with the cluster ring; a wrong key, a replay, a tampered body and an
answer that was not sealed for its request are refused, and the server counts them."""

from __future__ import annotations

import base64

import attrs
import pytest
from treq.testing import StubTreq
from twisted.internet import defer, task

from zund.cluster import messages, sealing, signing, wire
from zund.cluster.peer_client import PATH, PeerClient
from zund.cluster.peer_server import PeerAPI
from zund.cluster.types import Bid, NodeView, PlacementRequest
from zund.common import errors

START = 1_700_000_000.0
KEY_A = b"A" * 32
KEY_B = b"B" * 32
SECRET_PROJECT = "project-hunter2"
SECRET_HOST = "hostname-correct-horse"
REQ = PlacementRequest(request_id="req-1", uuid="11111111-1111-4111-8111-111111111111",
                       project_id=SECRET_PROJECT, user_id="u1", cpu=0.5, memory_mb=64)
NODE = NodeView("n2", "alive", "", "n2:9518", None)


class Handlers:
    """A minimal IPeerHandlers: always bids; host info carries a recognisable value."""

    class containers:
        @staticmethod
        async def host_info():
            return {"hostname": SECRET_HOST}

    async def bid(self, request):
        return Bid(node="n2", reservation_id="r-" + request.project_id, score=1.0,
                   expires_at=0.0)


def ring(*raw):
    return signing.peer_keys([base64.b64encode(k).decode() for k in raw], "zund-test")


class Recorder:
    """treq-like client that records every exchange as sent and as answered."""

    def __init__(self, stub: StubTreq):
        self.stub = stub
        self.sent: list[tuple[dict, bytes]] = []
        self.answers: list[bytes] = []
        self.replace_answer: bytes | None = None

    async def _request(self, method, url, headers=None, data=None):
        self.sent.append((headers, data))
        resp = await self.stub.request(method, url, headers=headers, data=data)
        body = await self.stub.content(resp)
        self.answers.append(body)
        return _Answer(resp.code, self.replace_answer if self.replace_answer else body)

    def request(self, method, url, headers=None, data=None):
        return defer.Deferred.fromCoroutine(self._request(method, url, headers, data))


@attrs.define
class _Answer:
    code: int
    body: bytes

    @property
    def length(self) -> int:
        return len(self.body)

    def deliverBody(self, protocol):
        from twisted.python.failure import Failure
        from twisted.web.client import ResponseDone
        protocol.dataReceived(self.body)
        protocol.connectionLost(Failure(ResponseDone()))


@attrs.define
class Pair:
    clock: task.Clock
    api: PeerAPI
    stub: StubTreq
    wire_log: Recorder

    def client(self, name="n1", keys=(KEY_A,)) -> PeerClient:
        r = ring(*keys)
        return PeerClient(name, signing.Signer(name, r.keys, self.clock), self.wire_log,
                          timeout_s=5.0, clock=self.clock, sealer=sealing.sealer_for(r))

    def run(self, coro):
        d = defer.Deferred.fromCoroutine(coro) if not isinstance(coro, defer.Deferred) else coro
        out = []
        d.addBoth(out.append)
        for _ in range(200):
            if out:
                break
            self.stub.flush()
            self.clock.advance(0.01)
        assert out, "call did not finish"
        if hasattr(out[0], "raiseException"):
            out[0].raiseException()
        return out[0]

    def resend(self, headers: dict, body: bytes) -> tuple[int, bytes]:
        """POST raw bytes with the given headers straight to the server."""
        async def go():
            resp = await self.stub.request("POST", f"http://n2:9518{PATH}", headers=headers,
                                           data=body)
            return resp.code, await self.stub.content(resp)
        return self.run(go())


@pytest.fixture
def pair():
    clock = task.Clock()
    clock.advance(START)
    server_ring = ring(KEY_A)
    api = PeerAPI("n2", Handlers(), signing.Verifier("n2", server_ring.keys, clock), clock,
                  sealer=sealing.sealer_for(server_ring))
    stub = StubTreq(api.resource())
    return Pair(clock, api, stub, Recorder(stub))


def test_requests_and_answers_are_unreadable_on_the_wire(pair):
    """A bid and a host call work; no byte sent or answered shows the tenant's
    project, the host name or even the msgpack field names."""
    client = pair.client()
    assert pair.run(client.bid(NODE, REQ)).reservation_id == "r-" + SECRET_PROJECT
    assert pair.run(client.host(NODE))["hostname"] == SECRET_HOST
    assert pair.api.stats["ok"] == 2
    for headers, body in pair.wire_log.sent:
        assert headers["Content-Type"] == [sealing.CONTENT_TYPE]
        assert SECRET_PROJECT.encode() not in body and b"project_id" not in body
    for body in pair.wire_log.answers:
        assert SECRET_PROJECT.encode() not in body and SECRET_HOST.encode() not in body
        assert b"reservation_id" not in body and b"hostname" not in body


def test_wrong_key_is_refused_and_counted(pair):
    """A node with another cluster key is refused (401, counted) and its caller sees
    the peer as unavailable, never a decoded (forgeable) plaintext error."""
    intruder = pair.client("n9", keys=(KEY_B,))
    with pytest.raises(errors.ServiceUnavailable):
        pair.run(intruder.host(NODE))
    assert pair.api.stats["unauthorized"] == 1
    assert pair.api.stats["unauthorized.bad-signature"] == 1
    assert pair.api.stats["ok"] == 0


def test_replayed_sealed_request_is_refused_and_counted(pair):
    """The same sealed request sent twice: the second is 401, counted as replayed."""
    pair.run(pair.client().host(NODE))
    headers, body = pair.wire_log.sent[0]
    status, _ = pair.resend(headers, body)
    assert status == 401
    assert pair.api.stats["unauthorized.replayed"] == 1 and pair.api.stats["ok"] == 1


def test_tampered_sealed_request_is_refused_and_counted(pair):
    """One flipped bit of a sealed request: 401 (the signature covers the sealed
    bytes), counted; the handler never runs."""
    signer = signing.Signer("n1", ring(KEY_A).keys, pair.clock)
    body = sealing.sealer_for(ring(KEY_A)).seal(
        wire.pack(messages.encode_request(messages.HostRequest())),
        sealing.request_aad("n1", "n2"))
    tampered = body[:-1] + bytes([body[-1] ^ 1])
    headers = {k: [v] for k, v in signer.headers("POST", PATH, body, "n2").items()}
    status, _ = pair.resend(headers, tampered)
    assert status == 401 and pair.api.stats["unauthorized.bad-signature"] == 1


def test_a_body_no_key_opens_is_refused_even_when_signed(pair):
    """Defence in depth: a correctly signed body that is not sealed with the ring
    (plaintext, or sealed under another key) is 401, counted by the seal's reason."""
    signer = signing.Signer("n1", ring(KEY_A).keys, pair.clock)
    plain = wire.pack(messages.encode_request(messages.HostRequest()))
    foreign = sealing.sealer_for(ring(KEY_B)).seal(plain, sealing.request_aad("n1", "n2"))
    for body in (plain, foreign):
        headers = {k: [v] for k, v in signer.headers("POST", PATH, body, "n2").items()}
        status, _ = pair.resend(headers, body)
        assert status == 401
    assert pair.api.stats["unauthorized"] == 2
    assert pair.api.stats["unauthorized.bad-seal"] == 1  # the foreign seal
    assert pair.api.stats["ok"] == 0


def test_an_answer_not_sealed_for_this_request_is_refused(pair):
    """An old sealed answer (of another request) substituted on the path is not
    believed: the caller sees the peer as unavailable."""
    client = pair.client()
    pair.run(client.host(NODE))
    pair.wire_log.replace_answer = pair.wire_log.answers[0]
    with pytest.raises(errors.ServiceUnavailable) as e:
        pair.run(client.host(NODE))
    assert "not sealed for this request" in str(e.value)


def test_keys_rotate_between_nodes_without_refusals(pair):
    """Mid-rotation every node has both keys installed; callers with either key as
    primary are served, and their answers open."""
    r = ring(KEY_A, KEY_B)
    pair.api.verifier = signing.Verifier("n2", r.keys, pair.clock)
    pair.api.sealer = sealing.sealer_for(r)
    old_primary = pair.client("n1", keys=(KEY_A, KEY_B))
    new_primary = pair.client("n3", keys=(KEY_B, KEY_A))
    assert pair.run(old_primary.host(NODE))["hostname"] == SECRET_HOST
    assert pair.run(new_primary.host(NODE))["hostname"] == SECRET_HOST
    assert pair.api.stats["unauthorized"] == 0
