"""SERVICE_STATE (Op 80): an operator's enable/disable/force_down of a node's
zun-compute service travels as a typed, versioned peer message
(zund.cluster.healer)."""

from __future__ import annotations

import pytest

from zund.cluster import messages, wire
from zund.cluster.messages import ServiceStateRequest


def over_the_wire(envelope: dict) -> dict:
    return wire.unpack_map(wire.pack(envelope))


@pytest.mark.parametrize("msg", [
    ServiceStateRequest("node-2", disabled=True, reason="kernel upgrade"),
    ServiceStateRequest("node-2", disabled=False),
    ServiceStateRequest("node-3", forced_down=True),
    ServiceStateRequest("node-3", forced_down=False),
], ids=lambda m: f"{m.disabled}-{m.forced_down}")
def test_a_service_state_round_trips_with_op_80(msg):
    """encode → msgpack → decode gives back the same request, as Op 80."""
    envelope = over_the_wire(messages.encode_request(msg))
    assert envelope["op"] == 80 == messages.Op.SERVICE_STATE
    assert messages.decode_request(envelope, "n2") == msg


def test_a_service_state_answer_round_trips():
    """The answer (the receiver's view of the host) comes back as the same dict."""
    msg = ServiceStateRequest("node-2", disabled=True, reason="r")
    state = {"host": "node-2", "disabled": True, "disabled_reason": "r", "forced_down": False}
    envelope = over_the_wire(messages.encode_answer(msg, state))
    assert messages.decode_answer(msg, envelope, "n1") == state


@pytest.mark.parametrize("body", [{}, {"host": 3}, {"host": "n", "disabled": "yes"},
                                  {"host": "n", "forced_down": 1}])
def test_a_malformed_service_state_is_refused(body):
    """A body of the wrong shape is a wire error, never a crash."""
    envelope = {"v": messages.PROTOCOL_VERSION, "op": 80, "body": body}
    with pytest.raises(wire.WireError):
        messages.decode_request(envelope, "n2")
