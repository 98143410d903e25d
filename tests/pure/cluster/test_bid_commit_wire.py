"""BID_COMMIT (op 111) on the wire: the request and both answers (record, decline)
round-trip; a uuid that is not the placement request's is refused."""

from __future__ import annotations

import pytest

from zund.cluster import messages, wire
from zund.cluster.types import Decline, PlacementRequest
from zund.common.context import RequestContext
from zund.records import ContainerRecord, CreateRequest

U = "7d9a6a4e-2f7b-4b8e-9d43-0e7b3f1c2a11"
REQ = PlacementRequest(request_id="req-1", uuid=U, project_id="p1", user_id="u1", cpu=0.5,
                       memory_mb=256)
MSG = messages.BidCommitRequest(
    request=REQ, reservation_id="ab" * 16, ctx=RequestContext(user_id="u1", project_id="p1"),
    uuid=U, create=CreateRequest(image="busybox", name="c1", cpu=0.5, memory=256),
    placement={"winner": "n2", "why": "fast path"})


def roundtrip(envelope: dict) -> dict:
    return wire.unpack_map(wire.pack(envelope), 1 << 20)


def test_the_request_round_trips_as_op_111():
    """Every field comes back equal; the op number is 111."""
    envelope = roundtrip(messages.encode_request(MSG))
    assert envelope["op"] == 111
    assert messages.decode_request(envelope, "n2") == MSG


@pytest.mark.parametrize("answer", [
    ContainerRecord(uuid=U, project_id="p1", user_id="u1", image="busybox"),
    Decline("", "cpu: needs 0.5, 0 free"),
])
def test_both_answers_round_trip(answer):
    """The record (accepted) and the decline with its reason."""
    envelope = roundtrip(messages.encode_answer(MSG, answer))
    assert messages.decode_answer(MSG, envelope, "n1") == answer


def test_a_uuid_other_than_the_requests_is_a_wire_error():
    """The container created must be the one that was bid for."""
    body = messages.encode_request(MSG)["body"]
    body["uuid"] = "other"
    with pytest.raises(wire.WireError):
        messages.decode_request({"v": 1, "op": 111, "body": body}, "n2")


LOAD = {"cpu_used": 3.5, "mem_used_mb": 2048, "disk_used_gb": 0, "project": "p1",
        "project_n": 4}


@pytest.mark.parametrize("answer", [
    ContainerRecord(uuid=U, project_id="p1", user_id="u1", image="busybox"),
    Decline("", "outbid: score 0.4 is below the next candidate's 0.5 by metadata"),
])
def test_an_answer_with_the_nodes_load_round_trips_with_it(answer):
    """The answering node's load (its truth after the bid) comes back beside the
    outcome, for the coordinator's fresher view."""
    envelope = roundtrip(messages.encode_answer(MSG, messages.LoadedAnswer(answer, LOAD)))
    assert messages.decode_answer(MSG, envelope, "n1") == messages.LoadedAnswer(answer, LOAD)


@pytest.mark.parametrize("load", [
    "full", {"cpu_used": "3"}, {"cpu_used": 1.0, "mem_used_mb": -1, "disk_used_gb": 0},
    {"cpu_used": float("nan"), "mem_used_mb": 1, "disk_used_gb": 0},
])
def test_a_malformed_load_is_dropped_and_the_outcome_kept(load):
    """The load is a hint: a garbled one never makes the placement's outcome unknown."""
    record = ContainerRecord(uuid=U, project_id="p1", user_id="u1", image="busybox")
    envelope = roundtrip(messages.encode_answer(MSG, record))
    envelope["ok"]["load"] = load
    assert messages.decode_answer(MSG, envelope, "n1") == record
