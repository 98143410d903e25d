"""Forced-down marks (zund.cluster.healer.ServiceMarks): last writer wins by
stamp, survive a restart in a small file, travel as SERVICE_MARKS (Op 81)."""

from __future__ import annotations

import pytest

from zund.cluster import messages, wire
from zund.cluster.healer import ServiceMarks
from zund.cluster.messages import ServiceMarksExchange
from zund.cluster.types import NodeView


def test_a_newer_mark_wins_and_an_older_one_is_ignored():
    """merge keeps a peer's mark only when its stamp is newer than this node's."""
    marks = ServiceMarks(local="n1")
    assert marks.merge([("n3", 10.0, True)]) == ["n3"]
    assert marks.merge([("n3", 5.0, False)]) == []
    assert marks.forced_down == {"n3"}
    assert marks.merge([("n3", 11.0, False)]) == ["n3"]
    assert marks.forced_down == set()
    assert marks.merge([("n3", 10.5, True)]) == []  # a cleared mark blocks older copies


def test_an_operators_mark_is_never_behind_what_the_node_knew():
    """set() applies the operator's mark even when the local clock is behind."""
    marks = ServiceMarks(local="n1")
    marks.merge([("n3", 100.0, True)])
    marks.set("n3", False, 50.0)
    assert marks.forced_down == set() and marks.stamps["n3"][0] > 100.0


def test_a_node_keeps_its_own_mark_but_never_reads_itself_dead():
    """The local node's mark is passed on, but its view keeps it alive."""
    marks = ServiceMarks(local="n1")
    marks.merge([("n1", 1.0, True), ("n2", 1.0, True)])
    view = marks.wrap(lambda: [NodeView(n, "alive", "", "", None) for n in ("n1", "n2")])()
    assert [(n.name, n.state) for n in view] == [("n1", "alive"), ("n2", "dead")]
    assert ("n1", 1.0, True) in marks.entries()


def test_marks_survive_a_restart_in_their_file(tmp_path):
    """What one ServiceMarks saved, a new one on the same path loads."""
    path = str(tmp_path / "service-marks.json")
    before = ServiceMarks(path, local="n1")
    before.set("n3", True, 7.0)
    before.set("n4", False, 8.0)
    after = ServiceMarks(path, local="n1")
    after.load()
    assert after.forced_down == {"n3"} and after.entries() == before.entries()


@pytest.mark.parametrize("content", [b"", b"{", b"[1, 2]", b'{"v": 1, "marks": [[1]]}',
                                     b'{"v": 9, "marks": []}', b"x" * 600_000])
def test_a_malformed_marks_file_is_no_marks_never_an_error(tmp_path, content):
    """Garbage, a wrong version or an oversized file loads as no marks."""
    path = tmp_path / "service-marks.json"
    path.write_bytes(content)
    marks = ServiceMarks(str(path))
    marks.load()
    assert marks.forced_down == set()


def test_service_marks_round_trip_as_op_81():
    """encode → msgpack → decode gives back the marks, as Op 81, and the answer too."""
    msg = ServiceMarksExchange((("n3", 12.5, True), ("n4", 3.0, False)))
    envelope = wire.unpack_map(wire.pack(messages.encode_request(msg)))
    assert envelope["op"] == 81 == messages.Op.SERVICE_MARKS
    assert messages.decode_request(envelope, "n2") == msg
    answer = wire.unpack_map(wire.pack(messages.encode_answer(msg, msg.marks)))
    assert messages.decode_answer(msg, answer, "n1") == msg.marks


@pytest.mark.parametrize("body", [{}, {"marks": 3}, {"marks": [["n", 1.0]]},
                                  {"marks": [["n", "1", True]]}, {"marks": [[1, 1.0, True]]},
                                  {"marks": [["n", True, True]]},
                                  {"marks": [["n", 1.0, True]] * 5000}])
def test_a_malformed_service_marks_is_refused(body):
    """A body of the wrong shape or size is a wire error, never a crash."""
    envelope = {"v": messages.PROTOCOL_VERSION, "op": 81, "body": body}
    with pytest.raises(wire.WireError):
        messages.decode_request(envelope, "n2")
