"""``[placement]`` options reach the coordinator's PlacementConfig."""

from __future__ import annotations

from zund.conf import make_conf
from zund.service import placement_config


def test_commit_resolve_s_is_read_from_the_placement_group():
    """``[placement] commit_resolve_s`` (default 20 s) bounds how long an unknown
    COMMIT outcome is asked about."""
    conf = make_conf()
    conf([])
    assert placement_config(conf).commit_resolve_s == 20.0
    conf.set_override("commit_resolve_s", 4.5, group="placement")
    assert placement_config(conf).commit_resolve_s == 4.5
