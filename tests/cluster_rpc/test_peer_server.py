"""The peer RPC server over StubTreq: signature first, then size and shape checks,
then the handler; every endpoint answers msgpack."""

import pytest

from zund.cluster import signing, wire
from zund.cluster.types import Decline, PlacementRequest

from .conftest import ADMIN, CTX, OTHER_CTX, OTHER_KEY, SERVER, START


def placement(uuid="11111111-1111-4111-8111-111111111111"):
    return PlacementRequest(request_id="req-1", uuid=uuid, project_id="p1", user_id="u1",
                            cpu=0.5, memory_mb=64)


def call(h, ctx, uuid, method, **kwargs):
    return h.post_raw("/v1/peer/containers/call", {
        "ctx": wire.context_to_dict(ctx), "uuid": uuid, "method": method, "kwargs": kwargs},
        signer=h.signer())


def test_unsigned_request_is_401_and_counted(h):
    """No signature: 401 with a NotAuthenticated error, the handler never runs."""
    status, body = h.post_raw("/v1/peer/bid", {"request": placement().to_wire()})
    assert status == 401 and body["error"]["type"] == "NotAuthenticated"
    assert h.api.stats["unauthorized"] == 1
    assert h.handlers.reservations == {}


@pytest.mark.parametrize("case", ["wrong-key", "wrong-target", "replayed", "stale"])
def test_badly_signed_requests_are_401(h, case):
    """Wrong key, wrong target, a replay, a stale timestamp: all 401, each counted."""
    payload = {"reservation_id": "r9"}
    if case == "wrong-key":
        status, _ = h.post_raw("/v1/peer/release", payload, signer=h.signer(key=b"x" * 32))
    elif case == "wrong-target":
        status, _ = h.post_raw("/v1/peer/release", payload, signer=h.signer(), target="n3")
    elif case == "stale":
        signer = signing.Signer("n1", [OTHER_KEY], _Frozen(START - 100.0))
        status, _ = h.post_raw("/v1/peer/release", payload, signer=signer)
    else:
        body = wire.pack(payload)
        headers = h.signer().headers("POST", "/v1/peer/release", body, SERVER)
        first, _ = h.post_raw("/v1/peer/release", None, body=body, headers=headers)
        assert first == 200
        status, _ = h.post_raw("/v1/peer/release", None, body=body, headers=headers)
    assert status == 401
    reason = "bad-signature" if case == "wrong-key" else case
    assert h.api.stats[f"unauthorized.{reason}"] == 1


class _Frozen:
    def __init__(self, t):
        self.t = t

    def seconds(self):
        return self.t


def test_body_over_the_limit_is_413_before_verification(h):
    """An oversized body is refused without being verified or decoded."""
    status, body = h.post_raw("/v1/peer/release", {"x": b"a" * 70_000}, signer=h.signer())
    assert status == 413 and body["error"]["type"] == "RequestEntityTooLarge"
    assert h.api.stats["too_large"] == 1 and h.api.stats["unauthorized"] == 0


def test_signed_garbage_body_is_400(h):
    """A signed but undecodable body is an InvalidInput naming the body."""
    status, body = h.post_raw("/v1/peer/release", None, body=b"\xc1", signer=h.signer())
    assert status == 400 and body["error"]["kwargs"]["field"] == "body"


def test_missing_field_is_400_naming_it(h):
    """A message without a required field names the field."""
    status, body = h.post_raw("/v1/peer/release", {}, signer=h.signer())
    assert status == 400 and body["error"]["kwargs"]["field"] == "reservation_id"


def test_bid_answers_a_bid_or_a_decline(h):
    """/bid passes the PlacementRequest to the bidder and returns its answer."""
    status, body = h.post_raw("/v1/peer/bid", {"request": placement().to_wire()},
                              signer=h.signer())
    assert status == 200 and body["bid"]["reservation_id"] == "r1"
    assert h.handlers.reservations["r1"] == placement()
    u = "22222222-2222-4222-8222-222222222222"
    h.handlers.answers[u] = Decline(SERVER, "full")
    _, body = h.post_raw("/v1/peer/bid", {"request": placement(u).to_wire()}, signer=h.signer())
    assert body == {"decline": {"node": SERVER, "reason": "full"}}


def test_commit_creates_the_record_with_the_callers_context(h):
    """/commit turns a reservation into a record owned by the caller's project."""
    h.post_raw("/v1/peer/bid", {"request": placement().to_wire()}, signer=h.signer())
    status, body = h.post_raw("/v1/peer/commit", {
        "reservation_id": "r1", "ctx": wire.context_to_dict(CTX),
        "create": {"image": "zund-test/busybox:latest", "name": "web"}, "run": False},
        signer=h.signer())
    assert status == 200
    rec = body["record"]
    assert rec.name == "web" and rec.project_id == "p1" and rec.host == SERVER
    h.settle()


def test_commit_of_unknown_reservation_is_the_handlers_error(h):
    """A refusal from the handler travels as its zund error with a 5xx/4xx status."""
    status, body = h.post_raw("/v1/peer/commit", {
        "reservation_id": "nope", "ctx": wire.context_to_dict(CTX), "create": {}, "run": True},
        signer=h.signer())
    assert status == 503 and body["error"]["type"] == "ServiceUnavailable"


def test_release_calls_the_handler(h):
    status, body = h.post_raw("/v1/peer/release", {"reservation_id": "r7"}, signer=h.signer())
    assert (status, body) == (200, {}) and h.handlers.released == ["r7"]


def test_list_is_scoped_by_the_callers_context(h):
    """/containers/list shows the caller's project; all_projects only for admins."""
    mine = h.create(CTX, name="a")
    theirs = h.create(OTHER_CTX, name="b")
    _, body = h.post_raw("/v1/peer/containers/list", {"ctx": wire.context_to_dict(CTX)},
                         signer=h.signer())
    assert [r.uuid for r in body["records"]] == [mine.uuid]
    _, body = h.post_raw("/v1/peer/containers/list",
                         {"ctx": wire.context_to_dict(ADMIN), "all_projects": True},
                         signer=h.signer())
    assert {r.uuid for r in body["records"]} == {mine.uuid, theirs.uuid}


def test_locate_by_uuid_and_name_and_404(h):
    """/containers/locate finds by uuid or name within the caller's scope; else 404."""
    rec = h.create(CTX, name="web")
    for ident in (rec.uuid, "web"):
        status, body = h.post_raw("/v1/peer/containers/locate",
                                  {"ctx": wire.context_to_dict(CTX), "ident": ident},
                                  signer=h.signer())
        assert status == 200 and body["record"].uuid == rec.uuid
    status, body = h.post_raw("/v1/peer/containers/locate",
                              {"ctx": wire.context_to_dict(OTHER_CTX), "ident": rec.uuid},
                              signer=h.signer())
    assert status == 404 and body["error"]["type"] == "ContainerNotFound"


def test_call_runs_allow_listed_methods_with_the_callers_context(h):
    """/containers/call invokes the manager; results come back typed."""
    rec = h.create(CTX, name="web")
    status, body = call(h, CTX, rec.uuid, "execute", argv=["echo", "hi"])
    assert status == 200 and body["result"].exit_code == 0 and "hi" in body["result"].output
    status, body = call(h, CTX, rec.uuid, "stop")
    assert (status, body) == (200, {"result": None})
    h.settle()
    status, body = call(h, CTX, rec.uuid, "list_actions")
    assert status == 200 and {a.action for a in body["result"]} >= {"create", "exec_cmd", "stop"}
    assert all(a.request_id for a in body["result"])


def test_call_refuses_methods_outside_the_allow_list(h):
    rec = h.create(CTX)
    for method in ("create", "recover", "_do_delete", "sync_all"):
        status, body = call(h, CTX, rec.uuid, method)
        assert status == 400 and body["error"]["kwargs"]["field"] == "method"


def test_call_refuses_unknown_kwargs(h):
    """kwargs the manager method does not take are a 400, not a 500."""
    rec = h.create(CTX)
    status, body = call(h, CTX, rec.uuid, "stop", nonsense=1)
    assert status == 400 and body["error"]["kwargs"]["field"] == "kwargs"


def test_call_needs_the_uuid_and_the_callers_scope(h):
    """A name instead of a uuid, or another project's container: 404."""
    rec = h.create(CTX, name="web")
    assert call(h, CTX, "web", "stats")[0] == 404
    assert call(h, OTHER_CTX, rec.uuid, "stats")[0] == 404


def test_call_state_errors_travel_as_conflicts(h):
    """The manager's InvalidStateException comes back 409 with its class name."""
    rec = h.create(CTX)
    status, body = call(h, CTX, rec.uuid, "start")
    assert status == 409 and body["error"]["type"] == "InvalidStateException"


def test_internal_failure_is_500_without_internals(h):
    """A non-zund exception in a handler: 500, a correlation id, no traceback text."""
    async def boom(request):
        raise KeyError("secret-internal-detail")

    h.handlers.bid = boom
    status, body = h.post_raw("/v1/peer/bid", {"request": placement().to_wire()},
                              signer=h.signer())
    assert status == 500 and body["error"]["type"] == "RuntimeFailure"
    assert "secret" not in body["error"]["message"]
    assert "correlation id" in body["error"]["message"]
    assert h.api.stats["failures"] == 1


def test_host_returns_host_info(h):
    status, body = h.post_raw("/v1/peer/host", {}, signer=h.signer())
    assert status == 200 and body["host"]["hostname"] == SERVER
