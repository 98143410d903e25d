"""The peer RPC server over StubTreq: signature first, then size, version and shape
checks, then the handler; every answer is a versioned msgpack envelope."""

import pytest

from zund.cluster import messages, signing, wire
from zund.cluster.peer_client import PATH
from zund.cluster.types import Decline, PlacementRequest
from zund.compute.interface import ContainerRef

from .conftest import ADMIN, CTX, OTHER_CTX, OTHER_KEY, SERVER, START, create_request


def placement(uuid="11111111-1111-4111-8111-111111111111"):
    return PlacementRequest(request_id="req-1", uuid=uuid, project_id="p1", user_id="u1",
                            cpu=0.5, memory_mb=64)


def send(h, msg, **kw):
    """POST one typed message, signed by the caller: (status, answer envelope)."""
    kw.setdefault("signer", h.signer())
    return h.post_raw(PATH, messages.encode_request(msg), **kw)


def owner_call(h, ctx, ident, operation, rule="container:get_one", **args):
    """An OWNER_CALL envelope built by hand (so bad operations can be sent too)."""
    ref = ContainerRef(ident=ident, rule=rule)
    return h.post_raw(PATH, {"v": messages.PROTOCOL_VERSION, "op": int(messages.Op.OWNER_CALL),
                             "body": {"ctx": wire.context_to_dict(ctx), "operation": operation,
                                      "ref": ref.to_wire(), "args": args}},
                      signer=h.signer())


def test_unsigned_request_is_401_and_counted(h):
    """No signature: 401 with a NotAuthenticated error, the handler never runs."""
    status, body = send(h, messages.BidRequest(placement()), signer=None)
    assert status == 401 and body["error"]["type"] == "NotAuthenticated"
    assert h.api.stats["unauthorized"] == 1
    assert h.handlers.reservations == {}


@pytest.mark.parametrize("case", ["wrong-key", "wrong-target", "replayed", "stale"])
def test_badly_signed_requests_are_401(h, case):
    """Wrong key, wrong target, a replay, a stale timestamp: all 401, each counted."""
    payload = messages.encode_request(messages.ReleaseRequest("r9"))
    if case == "wrong-key":
        status, _ = h.post_raw(PATH, payload, signer=h.signer(key=b"x" * 32))
    elif case == "wrong-target":
        status, _ = h.post_raw(PATH, payload, signer=h.signer(), target="n3")
    elif case == "stale":
        signer = signing.Signer("n1", [OTHER_KEY], _Frozen(START - 100.0))
        status, _ = h.post_raw(PATH, payload, signer=signer)
    else:
        body = wire.pack(payload)
        headers = h.signer().headers("POST", PATH, body, SERVER)
        first, _ = h.post_raw(PATH, None, body=body, headers=headers)
        assert first == 200
        status, _ = h.post_raw(PATH, None, body=body, headers=headers)
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
    status, body = h.post_raw(PATH, {"x": b"a" * 70_000}, signer=h.signer())
    assert status == 413 and body["error"]["type"] == "RequestEntityTooLarge"
    assert h.api.stats["too_large"] == 1 and h.api.stats["unauthorized"] == 0


def test_signed_garbage_body_is_400(h):
    """A signed but undecodable body is an InvalidInput naming the body."""
    status, body = h.post_raw(PATH, None, body=b"\xc1", signer=h.signer())
    assert status == 400 and body["error"]["kwargs"]["field"] == "body"


def test_missing_field_is_400_naming_it(h):
    """A message without a required field names the field."""
    status, body = h.post_raw(PATH, {"v": 1, "op": int(messages.Op.RELEASE), "body": {}},
                              signer=h.signer())
    assert status == 400 and "reservation_id" in body["error"]["message"]


@pytest.mark.parametrize("version", [messages.PROTOCOL_VERSION + 1, 0, None, "1", True])
def test_unknown_version_is_refused_with_a_clear_error(h, version):
    """A newer (or nonsense) protocol version: UnsupportedPeerVersion, handler not run."""
    envelope = messages.encode_request(messages.ReleaseRequest("r9"))
    envelope["v"] = version
    status, body = h.post_raw(PATH, envelope, signer=h.signer())
    assert status == 503 and body["error"]["type"] == "UnsupportedPeerVersion"
    assert body["v"] == messages.PROTOCOL_VERSION
    assert SERVER in body["error"]["message"]
    assert h.handlers.released == [] and h.api.stats["refused"] == 1


@pytest.mark.parametrize("op", [99, -1, "BID", None])
def test_unknown_operation_is_refused_with_a_clear_error(h, op):
    """An operation this node does not know: UnsupportedPeerOperation, never a 500."""
    status, body = h.post_raw(PATH, {"v": messages.PROTOCOL_VERSION, "op": op, "body": {}},
                              signer=h.signer())
    assert status == 503 and body["error"]["type"] == "UnsupportedPeerOperation"
    assert h.api.stats["failures"] == 0


def test_bid_answers_a_bid_or_a_decline(h):
    """BID passes the PlacementRequest to the bidder and returns its answer."""
    status, body = send(h, messages.BidRequest(placement()))
    assert status == 200 and body["ok"]["bid"]["reservation_id"] == "r1"
    assert h.handlers.reservations["r1"] == placement()
    u = "22222222-2222-4222-8222-222222222222"
    h.handlers.answers[u] = Decline(SERVER, "full")
    _, body = send(h, messages.BidRequest(placement(u)))
    assert body["ok"] == {"decline": {"node": SERVER, "reason": "full"}}


def test_commit_creates_the_record_with_uuid_and_placement_beside_the_request(h):
    """COMMIT turns a reservation into the container the entry node named, owned by
    the caller's project, with the placement decision in its create action."""
    send(h, messages.BidRequest(placement()))
    status, body = send(h, messages.CommitRequest(
        reservation_id="r1", ctx=CTX, uuid=placement().uuid, placement={"winner": SERVER},
        request=create_request(run=False, name="web")))
    assert status == 200
    rec = body["ok"]["record"]
    assert rec.uuid == placement().uuid
    assert rec.name == "web" and rec.project_id == "p1" and rec.host == SERVER
    h.settle()
    (create,) = h.run(h.store.list_actions(rec.uuid))
    events = h.run(h.store.get_action(rec.uuid, create.request_id)).events
    assert any(e.details == {"winner": SERVER} for e in events)


def test_commit_of_unknown_reservation_is_the_handlers_error(h):
    """A refusal from the handler travels as its zund error."""
    status, body = send(h, messages.CommitRequest(
        reservation_id="nope", ctx=CTX, uuid=placement().uuid, request=create_request()))
    assert status == 503 and body["error"]["type"] == "ServiceUnavailable"


def test_release_calls_the_handler(h):
    """RELEASE reaches the bidder."""
    status, body = send(h, messages.ReleaseRequest("r7"))
    assert (status, body["ok"]) == (200, {}) and h.handlers.released == ["r7"]


def test_list_is_scoped_by_the_callers_context(h):
    """LIST shows the caller's project; all_projects only for admins."""
    mine = h.create(CTX, name="a")
    theirs = h.create(OTHER_CTX, name="b")
    _, body = send(h, messages.ListRequest(CTX))
    assert [r.uuid for r in body["ok"]["records"]] == [mine.uuid]
    _, body = send(h, messages.ListRequest(ADMIN, all_projects=True))
    assert {r.uuid for r in body["ok"]["records"]} == {mine.uuid, theirs.uuid}


def test_locate_by_uuid_and_name_and_404(h):
    """LOCATE finds by uuid or name within the caller's scope; else 404."""
    rec = h.create(CTX, name="web")
    for ident in (rec.uuid, "web"):
        status, body = send(h, messages.LocateRequest(CTX, ident))
        assert status == 200 and body["ok"]["record"].uuid == rec.uuid
    status, body = send(h, messages.LocateRequest(OTHER_CTX, rec.uuid))
    assert status == 404 and body["error"]["type"] == "ContainerNotFound"


def test_owner_call_runs_the_operation_with_the_callers_context(h):
    """OWNER_CALL looks up, checks policy on the record and acts; results come back typed."""
    rec = h.create(CTX, name="web")
    status, body = owner_call(h, CTX, rec.uuid, "execute", "container:execute",
                              argv=["echo", "hi"])
    assert status == 200 and body["ok"]["result"].exit_code == 0
    assert "hi" in body["ok"]["result"].output
    status, body = owner_call(h, CTX, "web", "stop", "container:stop")
    assert (status, body["ok"]) == (200, {"result": None})
    h.settle()
    status, body = owner_call(h, CTX, rec.uuid, "list_actions", "container:actions")
    actions = body["ok"]["result"]
    assert status == 200 and {a.action for a in actions} >= {"create", "exec_cmd", "stop"}
    assert h.run(h.store.get_container(rec.uuid)).status == "Stopped"


def test_owner_call_checks_the_rule_against_the_record(h):
    """The owner enforces the ref's rule on the real record: an admin-only rule is
    403 for a member of the container's own project, and nothing happens."""
    rec = h.create(CTX, name="web")
    status, body = owner_call(h, CTX, rec.uuid, "delete", "container:delete_force",
                              force=True)
    assert status == 403 and body["error"]["type"] == "PolicyNotAuthorized"
    assert h.run(h.store.get_container(rec.uuid)).status == "Running"


@pytest.mark.parametrize("operation", ["create", "recover", "_do_delete", "sync_all", "list",
                                       "hosts", "locate"])
def test_owner_call_refuses_operations_the_interface_does_not_route(h, operation):
    """Only IContainers owner calls may be asked for; anything else is refused."""
    rec = h.create(CTX)
    status, body = owner_call(h, CTX, rec.uuid, operation)
    assert status == 503 and body["error"]["type"] == "UnsupportedPeerOperation"


def test_owner_call_refuses_undeclared_or_missing_arguments(h):
    """Arguments the interface does not declare, or required ones missing: 400."""
    rec = h.create(CTX)
    status, body = owner_call(h, CTX, rec.uuid, "stop", "container:stop", nonsense=1)
    assert status == 400 and body["error"]["kwargs"]["field"] == "args"
    status, body = owner_call(h, CTX, rec.uuid, "execute", "container:execute")
    assert status == 400 and body["error"]["kwargs"]["field"] == "args"


def test_owner_call_needs_the_callers_scope(h):
    """Another project's container: 404."""
    rec = h.create(CTX, name="web")
    assert owner_call(h, OTHER_CTX, rec.uuid, "stats", "container:stats")[0] == 404


def test_owner_call_state_errors_travel_as_conflicts(h):
    """The manager's InvalidStateException comes back 409 with its class name."""
    rec = h.create(CTX)
    status, body = owner_call(h, CTX, rec.uuid, "start", "container:start")
    assert status == 409 and body["error"]["type"] == "InvalidStateException"


@pytest.mark.allow_logged_errors
def test_internal_failure_is_500_without_internals(h):
    """A non-zund exception in a handler: 500, a correlation id, no traceback text."""
    async def boom(request):
        raise KeyError("secret-internal-detail")

    h.handlers.bid = boom
    status, body = send(h, messages.BidRequest(placement()))
    assert status == 500 and body["error"]["type"] == "RuntimeFailure"
    assert "secret" not in body["error"]["message"]
    assert "correlation id" in body["error"]["message"]
    assert h.api.stats["failures"] == 1


def test_host_returns_host_info(h):
    """HOST answers this node as a Zun host."""
    status, body = send(h, messages.HostRequest())
    assert status == 200 and body["ok"]["host"]["hostname"] == SERVER
