"""The gossip member snapshot file: round trip, bounds, and junk read as empty."""

from __future__ import annotations

from zund.gossip.snapshot import MAX_BYTES, MemberSnapshot


def test_saved_members_load_back_sorted(tmp_path):
    """What is saved is what loads, sorted, duplicates once."""
    snap = MemberSnapshot(str(tmp_path / "m.json"))
    snap.save([("node-2", "127.0.0.2:9519"), ("node-1", "127.0.0.1:9519"),
               ("node-2", "127.0.0.2:9519")])
    assert snap.load() == [("node-1", "127.0.0.1:9519"), ("node-2", "127.0.0.2:9519")]


def test_a_snapshot_keeps_at_most_max_members(tmp_path):
    """A snapshot never grows past its bound."""
    snap = MemberSnapshot(str(tmp_path / "m.json"), max_members=3)
    snap.save([(f"n{i}", f"127.0.0.{i}:9519") for i in range(1, 10)])
    assert len(snap.load()) == 3


def test_missing_malformed_or_oversized_files_load_as_empty(tmp_path):
    """No file, junk, a wrong version or a huge file: an empty snapshot, no error."""
    path = tmp_path / "m.json"
    snap = MemberSnapshot(str(path))
    assert snap.load() == []
    for junk in (b"{not json", b'{"v": 99, "members": []}', b'{"v": 1, "members": [1, {}]}',
                 b"[]", b" " * (MAX_BYTES + 1)):
        path.write_bytes(junk)
        assert snap.load() == []


def test_a_write_that_cannot_happen_is_logged_not_raised(tmp_path):
    """A snapshot under a file (not a directory) fails quietly."""
    (tmp_path / "file").write_text("x")
    MemberSnapshot(str(tmp_path / "file" / "m.json")).save([("n", "127.0.0.1:1")])
