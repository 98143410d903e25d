"""PeerClient against the real PeerAPI through StubTreq, plus its failure
contract (no answer → Decline / ServiceUnavailable) on the shared task.Clock."""

import pytest
from treq.testing import StubTreq
from twisted.internet import defer
from twisted.internet.error import ConnectionRefusedError
from twisted.web.resource import Resource
from zope.interface.verify import verifyObject

from zund.cluster import messages, signing, wire
from zund.cluster.peer_client import PeerClient
from zund.cluster.types import Bid, Decline, IPeerClient, PlacementRequest
from zund.common import errors
from zund.compute import interface
from zund.compute.interface import ContainerRef
from zund.runtimes.base import ExecResult
from zund.records import ActionRecord, ContainerRecord

from .conftest import ADMIN, CALLER, CTX, OTHER_CTX, SERVER, create_request

REQ = PlacementRequest(request_id="req-1", uuid="11111111-1111-4111-8111-111111111111",
                       project_id="p1", user_id="u1", cpu=0.5, memory_mb=64)


def _ref(ident, rule="container:get_one"):
    return ContainerRef(ident=ident, rule=rule)


def test_client_provides_ipeerclient(h):
    """The client is checked against the interface the coordinator uses."""
    assert verifyObject(IPeerClient, h.client)


def test_bid_commit_release_round(h):
    """A full placement round through the client: bid, commit (a record with the
    entry node's uuid), release."""
    bid = h.run(h.client.bid(h.node, REQ))
    assert isinstance(bid, Bid) and bid.node == SERVER
    rec = h.run(h.client.commit(h.node, bid.reservation_id, CTX, REQ.uuid, {"winner": SERVER},
                                create_request(name="web")))
    assert isinstance(rec, ContainerRecord)
    assert (rec.uuid, rec.name, rec.project_id) == (REQ.uuid, "web", "p1")
    h.settle()
    assert h.run(h.store.get_container(REQ.uuid)).status == "Running"
    assert h.run(h.client.release(h.node, "r-other")) is None  # queued (batched notes)
    h.clock.advance(h.client.notes_delay_s)
    h.run(defer.succeed(None))  # pump: the queued notes went alone (PEER_NOTES)
    assert h.handlers.released == ["r-other"]


def test_commit_refusal_raises_the_peers_error(h):
    """The bidder's refusal is raised as the same zund error class."""
    with pytest.raises(errors.ServiceUnavailable, match="expired"):
        h.run(h.client.commit(h.node, "gone", CTX, REQ.uuid, None, create_request()))


def test_list_locate_owner_call_host(h):
    """The directory's and the cluster's calls: list, locate, owner calls with typed
    results, host."""
    rec = h.create(CTX, name="web")
    h.create(OTHER_CTX, name="other")
    listed = h.run(h.client.list_containers(h.node, CTX, False))
    assert [r.uuid for r in listed] == [rec.uuid] and isinstance(listed[0], ContainerRecord)
    assert len(h.run(h.client.list_containers(h.node, ADMIN, True))) == 2
    assert h.run(h.client.locate(h.node, CTX, "web")).uuid == rec.uuid
    call = lambda op, rule, **args: h.run(h.client.owner_call(h.node, CTX, op,
                                                               _ref(rec.uuid, rule), args))
    result = call("execute", "container:execute", argv=["echo", "hi"])
    assert isinstance(result, ExecResult) and result.exit_code == 0
    call("put_archive", "container:put_archive", path="/tmp", data=_tar("f.txt", b"x"))
    data, stat = call("get_archive", "container:get_archive", path="/tmp/f.txt")
    assert isinstance(data, bytes) and isinstance(stat, dict)
    updated = call("update", "container:update", patch={"name": "web2"})
    assert isinstance(updated, ContainerRecord) and updated.name == "web2"
    acts = call("list_actions", "container:actions")
    assert acts and all(isinstance(a, ActionRecord) for a in acts)
    act = call("get_action", "container:actions", request_id=acts[0].request_id)
    assert act.events
    assert call("show", "container:get_one").name == "web2"
    assert h.run(h.client.host(h.node))["hostname"] == SERVER


def test_locate_is_cheap_and_show_reads_the_runtime(h):
    """LOCATE answers the stored record; a show owner call reconciles with the
    runtime first."""
    rec = h.create(CTX, name="web")
    h.runtime.exit_process(rec.uuid, 3)  # behind the manager's back
    h.clock.advance(2.0)  # past refresh_min_interval_s
    assert h.run(h.client.locate(h.node, CTX, "web")).status == "Running"
    shown = h.run(h.client.owner_call(h.node, CTX, "show", _ref("web"), {}))
    assert shown.status == "Stopped"


def _tar(name: str, data: bytes) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_remote_errors_are_reraised_by_class(h):
    """ContainerNotFound, InvalidStateException from the owner keep their class."""
    rec = h.create(CTX)
    with pytest.raises(errors.ContainerNotFound):
        h.run(h.client.locate(h.node, OTHER_CTX, rec.uuid))
    with pytest.raises(errors.InvalidStateException):
        h.run(h.client.owner_call(h.node, CTX, "start", _ref(rec.uuid, "container:start"), {}))


def test_wrong_cluster_key_is_service_unavailable_not_a_crash(h):
    """A node with the wrong key gets NotAuthenticated back (and bids decline)."""
    client = PeerClient(CALLER, signing.Signer(CALLER, [b"z" * 32], h.clock), h.stub,
                        clock=h.clock)
    with pytest.raises(errors.NotAuthenticated):
        h.run(client.host(h.node))
    answer = h.run(client.bid(h.node, REQ))
    assert isinstance(answer, Decline) and answer.reason.startswith("error: NotAuthenticated")


class _Never:
    """A treq-like client whose requests never answer."""

    def __init__(self):
        self.pending = []

    def request(self, method, url, **kw):
        d = defer.Deferred()
        self.pending.append(d)
        return d


class _Refused:
    def request(self, method, url, **kw):
        return defer.fail(ConnectionRefusedError("refused"))


def _drive(h, coro):
    d = defer.Deferred.fromCoroutine(coro)
    out = []
    d.addBoth(out.append)
    return out


def test_timeouts_on_the_clock(h):
    """No answer in timeout_s: bid declines, commit/list raise ServiceUnavailable,
    release returns quietly."""
    never = _Never()
    client = PeerClient(CALLER, h.signer(), never, timeout_s=5.0, clock=h.clock)
    bid = _drive(h, client.bid(h.node, REQ))
    commit = _drive(h, client.commit(h.node, "r1", CTX, REQ.uuid, None, create_request()))
    release = _drive(h, client.release(h.node, "r1"))
    listed = _drive(h, client.list_containers(h.node, CTX))
    assert release == [None]  # a release is only queued (batched notes): never waits
    h.clock.advance(4.9)
    assert bid == commit == listed == []
    h.clock.advance(0.2)
    assert isinstance(bid[0], Decline) and bid[0].reason.startswith("timeout:")
    assert commit[0].check(errors.ServiceUnavailable)
    assert listed[0].check(errors.ServiceUnavailable)
    assert all(d.called for d in never.pending)  # the requests were cancelled


_ARGS = {"execute": {"argv": ["true"]}, "update": {"patch": {}},
         "get_archive": {"path": "/"}, "put_archive": {"path": "/", "data": b""},
         "commit": {"repository": "r"}, "get_action": {"request_id": "req-1"},
         "console_open": {"kind": "exec"}, "console_resize": {"width": 80, "height": 24},
         "network_action": {"action": "detach", "args": {"network": "n"}}}


@pytest.mark.parametrize("operation", sorted(interface.owner_operations()))
def test_slow_owner_calls_get_the_longer_timeout(h, operation):
    """The owner calls IContainers marks slow may take slow_timeout_s; the others
    time out after timeout_s."""
    client = PeerClient(CALLER, h.signer(), _Never(), timeout_s=5.0, slow_timeout_s=60.0,
                        clock=h.clock)
    out = _drive(h, client.owner_call(h.node, CTX, operation, _ref("u"),
                                      _ARGS.get(operation, {})))
    h.clock.advance(5.1)
    if interface.is_slow(operation):
        assert out == []
        h.clock.advance(55.0)
    assert out[0].check(errors.ServiceUnavailable)


def test_an_owner_call_the_interface_does_not_declare_is_never_sent(h):
    """The client refuses to build an owner call for an operation that is not one."""
    never = _Never()
    client = PeerClient(CALLER, h.signer(), never, clock=h.clock)
    out = _drive(h, client.owner_call(h.node, CTX, "recover", _ref("u"), {}))
    assert out[0].check(errors.UnsupportedPeerOperation) and never.pending == []


def test_an_answer_of_a_newer_version_is_refused(h):
    """An answer envelope of a version this node does not speak is an error, not
    a misread answer."""
    stub = StubTreq(_Answer(200, wire.pack({"v": messages.PROTOCOL_VERSION + 1,
                                            "ok": {"host": {}}})))
    client = PeerClient(CALLER, h.signer(), stub, clock=h.clock)
    d = defer.Deferred.fromCoroutine(client.host(h.node))
    stub.flush()
    out = []
    d.addBoth(out.append)
    assert out[0].check(errors.UnsupportedPeerVersion)


def test_connection_refused(h):
    """A refused connection: Decline for bids, ServiceUnavailable naming the node otherwise."""
    client = PeerClient(CALLER, h.signer(), _Refused(), clock=h.clock)
    answer = h.run(client.bid(h.node, REQ))
    assert isinstance(answer, Decline) and answer.node == SERVER
    assert answer.reason.startswith("unreachable:")
    with pytest.raises(errors.ServiceUnavailable, match=SERVER):
        h.run(client.host(h.node))


class _Answer(Resource):
    isLeaf = True

    def __init__(self, code, body):
        super().__init__()
        self.code, self.body = code, body

    def render_POST(self, request):
        request.setResponseCode(self.code)
        return self.body


@pytest.mark.parametrize("code,body", [
    (502, b"<html>bad gateway</html>"),       # not msgpack
    (200, wire.pack([1, 2])),                 # not a map
    (200, wire.pack({"nothing": 1})),         # no version, no answer
    (200, wire.pack({"v": 1, "ok": {"nothing": 1}})),  # no expected key
    (500, wire.pack({})),                     # error status without an error object
])
def test_garbled_answers_are_service_unavailable(h, code, body):
    """Whatever a broken peer answers, the caller gets ServiceUnavailable."""
    stub = StubTreq(_Answer(code, body))
    client = PeerClient(CALLER, h.signer(), stub, clock=h.clock)

    def run(coro):
        d = defer.Deferred.fromCoroutine(coro)
        stub.flush()
        out = []
        d.addBoth(out.append)
        return out[0]

    assert run(client.host(h.node)).check(errors.ServiceUnavailable)
    assert isinstance(run(client.bid(h.node, REQ)), Decline)


def test_oversized_answer_is_refused(h):
    """An answer larger than max_response_bytes fails the call."""
    stub = StubTreq(_Answer(200, wire.pack({"v": 1, "ok": {"host": {"x": b"a" * 5000}}})))
    client = PeerClient(CALLER, h.signer(), stub, clock=h.clock, max_response_bytes=1000)
    d = defer.Deferred.fromCoroutine(client.host(h.node))
    stub.flush()
    out = []
    d.addBoth(out.append)
    assert out[0].check(errors.ServiceUnavailable)


class _Untouchable:
    """A reactor that records every use."""

    def __init__(self):
        self.touched = []

    def __getattr__(self, name):
        self.touched.append(name)
        raise AssertionError(f"reactor.{name} used")


def test_constructor_does_no_io(h):
    """Building a client with no treq client touches no reactor until the first
    call; closing an unused client is fine and touches nothing either."""
    reactor = _Untouchable()
    client = PeerClient(CALLER, h.signer(), clock=h.clock, reactor=reactor)
    assert h.run(client.close()) is None
    assert reactor.touched == []


def test_the_owner_decides_with_the_forwarded_roles(h):
    """An owner call reaches the owner with the caller's roles: a reader of the
    project may show but not stop (refused by the owner, whatever the sender), a
    role-less user of the project may do neither, a member may stop."""
    from zund.common.context import RequestContext

    rec = h.create(CTX, name="web")
    reader = RequestContext(user_id="r1", project_id="p1", roles=("reader",))
    nobody = RequestContext(user_id="n1", project_id="p1")

    def call(ctx, op, rule):
        return h.run(h.client.owner_call(h.node, ctx, op, _ref(rec.uuid, rule), {}))

    assert call(reader, "show", "container:get_one").uuid == rec.uuid
    for ctx, op, rule in ((reader, "stop", "container:stop"),
                          (nobody, "show", "container:get_one")):
        with pytest.raises(errors.PolicyNotAuthorized) as e:
            call(ctx, op, rule)
        assert rule in str(e.value)
    assert h.run(h.store.get_container(rec.uuid)).status == "Running"
    call(CTX, "stop", "container:stop")
    h.settle()
    assert h.run(h.store.get_container(rec.uuid)).status == "Stopped"
