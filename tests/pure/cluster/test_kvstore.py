"""The replicated-store helper's pure rules: per-record merge by version with
tombstones, and versions that always beat the copy they replace."""

from __future__ import annotations

import attrs

from zund.cluster.kvstore import merge, newer, next_version


@attrs.frozen
class Rec:
    uuid: str
    version: tuple
    deleted: bool = False


def test_merge_keeps_the_newest_copy_of_each_record_tombstones_included():
    """Two holders' copies: each record's newest wins, a newer tombstone beats a
    live copy, records only one holder has survive."""
    a = [Rec("x", (1.0, "n1")), Rec("y", (5.0, "n1"), deleted=True)]
    b = [Rec("x", (2.0, "n2")), Rec("y", (4.0, "n2")), Rec("z", (1.0, "n2"))]
    out = merge([a, b], lambda r: r.uuid)
    assert out == {"x": b[0], "y": a[1], "z": b[2]}


def test_next_version_beats_the_previous_copy_even_on_a_slow_clock():
    """A writer whose clock is behind still writes a newer version; ties break by node."""
    previous = Rec("x", (100.0, "n9"))
    v = next_version(50.0, "n1", previous)
    assert v > previous.version and newer(Rec("x", v), previous)
    assert next_version(200.0, "n1", previous) == (200.0, "n1")
    assert newer(Rec("x", (1.0, "n2")), Rec("x", (1.0, "n1")))
    assert not newer(Rec("x", (1.0, "n1")), Rec("x", (1.0, "n1")))
