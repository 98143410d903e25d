"""PEER_NOTES on the wire: batched releases and settles, alone or riding in another
request's envelope; malformed notes are refused, absent ones are nothing."""

from __future__ import annotations

import pytest

from zund.cluster import messages, wire

NOTES = messages.PeerNotes(releases=("r1", "r2"),
                           settles=(("p1", "u1", True), ("p2", "u2", False)))


def test_notes_ride_in_another_requests_envelope_and_come_back_equal():
    """A PING carrying notes decodes to the PING and the same notes."""
    envelope = wire.unpack_map(wire.pack(messages.encode_request(messages.PingRequest(),
                                                                 NOTES)), 1 << 20)
    assert messages.decode_request(envelope, "n1") == messages.PingRequest()
    assert messages.decode_notes(envelope) == NOTES


def test_an_envelope_without_notes_or_with_empty_ones_carries_none():
    """No ``notes`` key for empty notes; decoding finds none."""
    envelope = messages.encode_request(messages.PingRequest(), messages.PeerNotes())
    assert "notes" not in envelope and messages.decode_notes(envelope) is None
    assert messages.decode_notes({"v": 1, "op": 100, "body": {},
                                  "notes": {"releases": [], "settles": []}}) is None


def test_notes_sent_alone_are_the_peer_notes_operation():
    """PEER_NOTES (op 110) round-trips through the request envelope."""
    envelope = wire.unpack_map(wire.pack(messages.encode_request(NOTES)), 1 << 20)
    assert envelope["op"] == 110
    assert messages.decode_request(envelope, "n1") == NOTES


@pytest.mark.parametrize("notes", [
    "x", {"releases": "r1"}, {"releases": [1]}, {"settles": [["p", "u"]]},
    {"settles": [["p", "u", "yes"]]}, {"settles": [[1, "u", True]]},
    {"releases": ["r"] * (messages.MAX_NOTES + 1)},
])
def test_malformed_notes_are_a_wire_error(notes):
    """Wrong shapes and oversized batches are refused as a malformed body."""
    with pytest.raises(wire.WireError):
        messages.decode_notes({"v": 1, "op": 100, "body": {}, "notes": notes})
