"""PeerClient calls a node makes to itself (``PeerClient.local``): served in-process
by its own PeerAPI with the same answers and errors as over the wire, never over
HTTP, and a caller's timeout never cancels the handler (on a ``task.Clock``)."""

from twisted.internet import defer, task

from zund.cluster import messages, signing
from zund.cluster.peer_client import PeerClient, PeerTimeout
from zund.cluster.peer_server import PeerAPI
from zund.cluster.types import Bid, NodeView, PlacementRequest
from zund.common import errors

REQ = PlacementRequest(request_id="req-1", uuid="11111111-1111-4111-8111-111111111111",
                       project_id="p1", user_id="u1", cpu=0.5, memory_mb=64)


class NoHttp:
    """An HTTP client that must not be used."""

    def request(self, *a, **kw):
        raise AssertionError("a call to this node went over HTTP")


class Handlers:
    def __init__(self, clock):
        self.clock = clock
        self.finished = []
        self.mode = "bid"

    class containers:
        @staticmethod
        async def host_info():
            return {"hostname": "n1"}

    async def bid(self, request):
        if self.mode == "refuse":
            raise errors.ReservationExpired(reservation_id="r", node="n1")
        if self.mode == "crash":
            raise KeyError("internal detail")
        if self.mode == "slow":
            await task.deferLater(self.clock, 30.0, lambda: None)
            self.finished.append(request.uuid)
        return Bid(node="n1", reservation_id="r1", score=0.5, expires_at=10.0)


def make():
    clock = task.Clock()
    keys = signing.peer_keys([], "zund-test").keys
    handlers = Handlers(clock)
    api = PeerAPI("n1", handlers, signing.Verifier("n1", keys, clock), clock)
    client = PeerClient("n1", signing.Signer("n1", keys, clock), NoHttp(), timeout_s=5.0,
                        clock=clock)
    client.local = api
    return client, api, handlers, clock, NodeView("n1", "alive", "", "127.0.0.1:1", None)


def outcome(coro):
    out = []
    defer.Deferred.fromCoroutine(coro).addBoth(out.append)
    return out


def test_a_call_to_this_node_is_answered_in_process():
    """Bid and host to itself: typed answers, no HTTP, counted as in_process."""
    client, api, _, _, me = make()
    (bid,) = outcome(client.bid(me, REQ))
    assert bid == Bid("n1", "r1", 0.5, 10.0)
    (host,) = outcome(client.host(me))
    assert host == {"hostname": "n1"}
    assert api.stats["in_process"] == 2 and api.stats["requests"] == 0


def test_errors_in_process_are_those_of_the_wire():
    """A zund error keeps its class; anything else becomes RuntimeFailure naming a
    correlation id, never the internal detail."""
    client, _, handlers, _, me = make()
    handlers.mode = "refuse"
    (got,) = outcome(client.call(me, _bid_msg()))
    assert got.check(errors.ReservationExpired)
    handlers.mode = "crash"
    (got,) = outcome(client.call(me, _bid_msg()))
    assert got.check(errors.RuntimeFailure) and "internal detail" not in str(got.value)
    assert "correlation id" in str(got.value)


def test_a_timeout_does_not_cancel_the_handler():
    """The caller gives up after timeout_s (PeerTimeout); the handler runs on to
    its end, as a peer's would."""
    client, _, handlers, clock, me = make()
    handlers.mode = "slow"
    out = outcome(client.call(me, _bid_msg()))
    clock.advance(5.0)
    assert out and out[0].check(PeerTimeout)
    clock.advance(30.0)
    assert handlers.finished == [REQ.uuid]


def _bid_msg():
    return messages.BidRequest(REQ)
