"""Peer messages (pure): every typed request survives the wire unchanged, protocol
values travel beside the user's request, unknown versions and operations are
refused with clear zund errors, owner calls follow the IContainers declaration."""

import pytest

from zund.cluster import messages, wire
from zund.cluster.types import Bid, Decline, PlacementRequest
from zund.common import errors
from zund.common.context import RequestContext
from zund.compute import interface
from zund.compute.interface import ContainerRef
from zund.records import ContainerRecord, CreateRequest

CTX = RequestContext(user_id="u1", project_id="p1", roles=("member",), request_id="req-1")
U = "11111111-1111-4111-8111-111111111111"
PLACEMENT = PlacementRequest(request_id="req-1", uuid=U, project_id="p1", user_id="u1",
                             cpu=0.5, memory_mb=64, labels={"ssd": "yes"})
CREATE = CreateRequest(image="busybox", name="web", cpu=0.5, memory=64,
                       command=("sleep", "1"), environment={"A": "1"}, run=True)
REF = ContainerRef(ident="web", rule="container:stop", all_projects=True,
                   extra_rules=("container:delete_force",))

REQUESTS = [
    messages.BidRequest(PLACEMENT),
    messages.CommitRequest(reservation_id="r1", ctx=CTX, uuid=U, request=CREATE,
                           placement={"winner": "n2", "why": "best"}),
    messages.CommitRequest(reservation_id="r1", ctx=CTX, uuid=U, request=CREATE),
    messages.ReleaseRequest("r1"),
    messages.ListRequest(CTX, all_projects=True),
    messages.LocateRequest(CTX, "web"),
    messages.OwnerCall(CTX, "stop", REF, {"timeout_s": 3.0}),
    messages.OwnerCall(CTX, "execute", REF, {"argv": ["ls", "-l"]}),
    messages.HostRequest(),
]


def over_the_wire(envelope):
    return wire.unpack_map(wire.pack(envelope))


@pytest.mark.parametrize("msg", REQUESTS, ids=lambda m: type(m).__name__)
def test_every_request_round_trips(msg):
    """encode → msgpack → decode gives back an equal typed request."""
    envelope = over_the_wire(messages.encode_request(msg))
    assert envelope["v"] == messages.PROTOCOL_VERSION and envelope["op"] == msg.OP
    assert messages.decode_request(envelope, "n2") == msg


def test_uuid_and_placement_travel_beside_the_users_request():
    """The commit body keeps the protocol values out of the CreateRequest."""
    body = messages.encode_request(REQUESTS[1])["body"]
    assert body["uuid"] == U and body["placement"]["winner"] == "n2"
    assert "uuid" not in body["request"] and "placement" not in body["request"]


@pytest.mark.parametrize("msg, result", [
    (REQUESTS[0], Bid("n2", "r1", 0.5, 10.0)),
    (REQUESTS[0], Decline("n2", "full")),
    (REQUESTS[1], ContainerRecord(uuid=U, project_id="p1", user_id="u1", image="busybox")),
    (REQUESTS[3], None),
    (REQUESTS[4], [ContainerRecord(uuid=U, project_id="p1", user_id="u1", image="busybox")]),
    (REQUESTS[7], (b"tar", {"name": "x"})),
    (REQUESTS[8], {"hostname": "n2"}),
], ids=lambda v: type(v).__name__)
def test_every_answer_round_trips(msg, result):
    """An answer comes back as the same typed value."""
    envelope = over_the_wire(messages.encode_answer(msg, result))
    assert messages.decode_answer(msg, envelope, "n1") == result


@pytest.mark.parametrize("version", [messages.PROTOCOL_VERSION + 1, 0, None, "1", 1.0, True])
def test_unknown_versions_are_refused(version):
    """A request or an answer of a version this node does not speak is refused."""
    envelope = messages.encode_request(REQUESTS[3])
    envelope["v"] = version
    with pytest.raises(errors.UnsupportedPeerVersion, match="n2"):
        messages.decode_request(envelope, "n2")
    answer = messages.encode_answer(REQUESTS[3], None)
    answer["v"] = version
    with pytest.raises(errors.UnsupportedPeerVersion):
        messages.decode_answer(REQUESTS[3], answer, "n1")


@pytest.mark.parametrize("op", [0, 99, "BID", None, 2.0])
def test_unknown_operations_are_refused(op):
    """An operation outside the append-only Op enum is refused by name."""
    with pytest.raises(errors.UnsupportedPeerOperation, match="n2"):
        messages.decode_request({"v": 1, "op": op, "body": {}}, "n2")


def test_malformed_fields_are_wire_errors():
    """A field of the wrong type is a WireError (the server answers 400)."""
    with pytest.raises(wire.WireError, match="reservation_id"):
        messages.decode_request({"v": 1, "op": int(messages.Op.RELEASE),
                                 "body": {"reservation_id": 5}}, "n2")
    with pytest.raises(wire.WireError, match="request"):
        messages.decode_request({"v": 1, "op": int(messages.Op.COMMIT), "body": {
            "reservation_id": "r", "ctx": wire.context_to_dict(CTX), "uuid": U,
            "request": {"image": "x", "bogus": 1}}}, "n2")


def test_owner_calls_follow_the_interface():
    """Only IContainers owner calls, with exactly their declared arguments."""
    assert {"show", "stop", "execute", "get_action"} <= interface.owner_operations()
    assert not {"create", "list", "hosts", "services"} & interface.owner_operations()
    with pytest.raises(errors.UnsupportedPeerOperation):
        messages.OwnerCall(CTX, "recover", REF, {})
    with pytest.raises(errors.InvalidInput):
        messages.OwnerCall(CTX, "stop", REF, {"bogus": 1})
    with pytest.raises(errors.InvalidInput):
        messages.OwnerCall(CTX, "execute", REF, {})
    assert messages.OwnerCall(CTX, "logs", REF, {}).slow
    assert not messages.OwnerCall(CTX, "stop", REF, {}).slow


def test_error_answers_are_raised_as_their_class():
    """An error envelope from a peer is raised as the same zund error."""
    envelope = over_the_wire(messages.encode_error(errors.ContainerNotFound(ident="x")))
    with pytest.raises(errors.ContainerNotFound):
        messages.decode_answer(REQUESTS[5], envelope, "n1")
