"""Peer messages of the record replicas (ops 30-32): round trips through the wire,
and malformed bodies refused as WireError, never raised as anything else."""

from __future__ import annotations

import pytest

from zund.cluster import messages, wire
from zund.cluster.messages import Op, ReplicaItem
from zund.common.context import RequestContext
from zund.records import ContainerRecord

U = "5b8e5a59-3c51-4d8e-9e43-6f6c1e1b0a01"


def _roundtrip(msg):
    return messages.decode_request(wire.unpack_map(wire.pack(messages.encode_request(msg))),
                                   "node-1")


def test_replica_messages_use_the_30s_and_round_trip():
    """REPLICATE, REPLICA_SYNC and REPLICA_QUERY are ops 30-32 and decode to what
    was sent (records and tombstones alike)."""
    rec = ContainerRecord(uuid=U, project_id="p", user_id="u", image="busybox", name="web",
                          host="node-2", status="Running", generation=4)
    sent = [
        messages.ReplicateRequest((ReplicaItem(U, "node-2", 4, rec),
                                   ReplicaItem("u2", "node-2", 9, None))),
        messages.ReplicaSyncRequest("node-2", {U: 4}),
        messages.ReplicaQuery(RequestContext(project_id="p", user_id="u"), ("node-1",), "web",
                              True),
    ]
    assert [int(m.OP) for m in sent] == [Op.REPLICATE, Op.REPLICA_SYNC, Op.REPLICA_QUERY] \
        == [30, 31, 32]
    for msg in sent:
        assert _roundtrip(msg) == msg


@pytest.mark.parametrize("body", [
    {"items": [["u", "node", "not-a-generation", None]]},
    {"items": [["u", "node", 1]]},
    {"items": "nope"},
    {"items": [[U, "node", 1, ContainerRecord(uuid="other", project_id="p", user_id="u",
                                              image="i")]]},
])
def test_malformed_replicate_bodies_are_wire_errors(body):
    """Wrong shapes, types or a record under another uuid: WireError."""
    envelope = wire.unpack_map(wire.pack({"v": 1, "op": int(Op.REPLICATE), "body": body}))
    with pytest.raises(wire.WireError):
        messages.decode_request(envelope, "node-1")


def test_a_sync_digest_must_map_uuids_to_generations():
    """A digest with a non-integer generation is refused."""
    envelope = wire.unpack_map(wire.pack({"v": 1, "op": int(Op.REPLICA_SYNC),
                                          "body": {"owner": "n", "digest": {U: "x"}}}))
    with pytest.raises(wire.WireError):
        messages.decode_request(envelope, "node-1")
