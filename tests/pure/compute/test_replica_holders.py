"""Pure: which nodes hold the copies of a container's record (rendezvous hashing)."""

from __future__ import annotations

from zund.cluster.replicas import holders

MEMBERS = [f"node-{i}" for i in range(8)]
UUIDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(200)]


def test_holders_are_r_distinct_nodes_never_the_owner():
    """Each container gets R distinct holders, none of them its owner."""
    for uuid in UUIDS:
        chosen = holders(uuid, "node-0", MEMBERS, 2)
        assert len(chosen) == len(set(chosen)) == 2
        assert "node-0" not in chosen


def test_every_node_computes_the_same_holders_whatever_the_member_order():
    """The choice depends only on the uuid and the member set (and case of the uuid)."""
    for uuid in UUIDS[:20]:
        assert holders(uuid, "node-0", MEMBERS, 2) == \
            holders(uuid.upper(), "node-0", list(reversed(MEMBERS)), 2)


def test_a_member_leaving_moves_only_the_copies_it_held():
    """When a node leaves, containers it did not hold keep exactly their holders,
    and those it held keep the surviving one."""
    fewer = [m for m in MEMBERS if m != "node-5"]
    for uuid in UUIDS:
        before = holders(uuid, "node-0", MEMBERS, 2)
        after = holders(uuid, "node-0", fewer, 2)
        if "node-5" not in before:
            assert after == before
        else:
            assert set(before) - {"node-5"} <= set(after)


def test_copies_spread_over_the_members():
    """200 containers of one owner spread their copies over all other members."""
    used = {h for uuid in UUIDS for h in holders(uuid, "node-0", MEMBERS, 2)}
    assert used == set(MEMBERS) - {"node-0"}


def test_fewer_members_than_r_gives_every_other_member():
    """A two-node cluster keeps one copy, on the other node; alone, none."""
    assert holders(UUIDS[0], "node-0", ["node-0", "node-1"], 2) == ["node-1"]
    assert holders(UUIDS[0], "node-0", ["node-0"], 2) == []
