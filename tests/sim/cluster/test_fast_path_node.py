"""The placement fast path through whole simulated nodes (service tree, signed and
sealed peer RPC, store): creates go as one BID_COMMIT, none as bids; an entry node
that is its own pick serves it in process; ``[placement] fast_path = false`` keeps
the bid round."""

from __future__ import annotations

import zlib

import pytest
from twisted.internet import defer

from tests.support.harness import SimCluster, SimConfig

ADMIN = "admin:demo"


@pytest.fixture
def make_cluster(request):
    made = []

    def make(config=None):
        c = SimCluster(zlib.crc32(request.node.nodeid.encode()), config)
        made.append(c)
        return c.start()

    yield make
    for c in made:
        c.stop()


def ops(c, name: str) -> int:
    return sum(n.parts.peer_api.stats[f"op.{name}"] for n in c.nodes)


def creates(c, count: int) -> list:
    ds = [c.request_async(i % len(c.nodes), "POST", "/containers?run=true", token=ADMIN,
                          json={"image": "zund-test/busybox:latest", "name": f"f{i}",
                                "command": ["sleep", "1000000"], "memory": 32, "cpu": 0.1})
          for i in range(count)]
    return c.wait(defer.gatherResults(ds), timeout_s=300)


def live(c) -> list:
    return [r.uuid for n in c.nodes for r in c.run(n.store.list_containers(None))
            if r.status != "Deleted"]


def test_concurrent_creates_go_as_one_bid_commit_each_and_land_once(make_cluster):
    """Twelve creates through three nodes: every one placed by the fast path, no BID
    sent, each container held by exactly one node; every answer brought the
    winner's load back to its entry node (the fresher view)."""
    c = make_cluster(SimConfig(nodes=3))
    answers = creates(c, 12)
    assert all(r.status == 202 for r in answers), [r.status for r in answers]
    accepted = sum(n.parts.coordinator.stats["fast_path_accepted"] for n in c.nodes)
    assert accepted == 12 and ops(c, "BID") == 0
    heard = sum(n.parts.coordinator.stats["fast_path_loads_heard"] for n in c.nodes)
    assert heard == 12
    uuids = live(c)
    assert len(uuids) == len(set(uuids)) == 12


def test_an_entry_node_that_is_its_own_pick_serves_the_bid_commit_in_process(make_cluster):
    """One node: the create is placed by the fast path with no peer request."""
    c = make_cluster(SimConfig(nodes=1))
    answer = c.create(0, token=ADMIN, name="solo", memory=32, cpu=0.1)
    assert answer["uuid"]
    assert c.nodes[0].parts.coordinator.stats["fast_path_accepted"] == 1
    assert ops(c, "BID_COMMIT") == 0 and c.nodes[0].parts.peer_api.stats["in_process"] >= 1


def test_fast_path_off_places_by_the_bid_round(make_cluster):
    """``fast_path = false``: bids and commits, no BID_COMMIT."""
    c = make_cluster(SimConfig(nodes=3, fast_path=False))
    answers = creates(c, 4)
    assert all(r.status == 202 for r in answers)
    assert ops(c, "BID_COMMIT") == 0 and ops(c, "BID") > 0
    assert len(live(c)) == 4


# -- kill -9 of the winner with the BID_COMMIT answer lost (durable stores) ----------


def lose_the_bid_commit_answer_then_kill_the_winner(request, tmp_path, winner: int):
    """A 3-node chaos cluster (every hop 0.1 s); a create pinned to node ``winner``
    whose BID_COMMIT answer is lost; once the winner's store holds the record, it
    dies (kill -9). -> the Chaos."""
    from tests.sim.whole_cluster.test_chaos_sim import Chaos
    from tests.support.memrpc import LinkFaults

    ch = Chaos(zlib.crc32(request.node.nodeid.encode()), tmp_path, SimConfig(nodes=3),
               LinkFaults(delay=(0.1, 0.1)))
    c = ch.c
    c.peers.kind_faults["BID_COMMIT"] = LinkFaults(drop_reply=1.0, delay=(0.1, 0.1))
    ch.create_async(0, "pinned", host=f"node-{winner}")
    c.run_until(lambda: c.run(c.nodes[winner].store.list_containers()), timeout_s=5,
                step_s=0.01)
    del c.peers.kind_faults["BID_COMMIT"]
    ch.kill9(winner)
    return ch


def test_a_lost_bid_commit_answer_waits_for_the_killed_winner_and_lands_once(request,
                                                                             tmp_path):
    """The winner wrote the record, its BID_COMMIT answer was lost and it died: the
    entry node keeps asking (COMMIT_STATUS), places it nowhere else, and answers
    202 once the winner is back; it runs there, once."""
    from tests.sim.whole_cluster.test_chaos_sim import assert_sound

    ch = lose_the_bid_commit_answer_then_kill_the_winner(request, tmp_path, 2)
    try:
        ch.c.advance(3.0)
        assert not ch.out.accepted and not ch.out.refused  # still resolving
        ch.restart(2)
        ch.settle()
        v = ch.verdict()
        assert_sound(v)
        assert v["accepted"] == 1 and v["statuses"] == {"Running": 1}, v
        ((_, copies),) = ch.held().items()
        assert copies[0][0] == "node-2"
    finally:
        ch.stop()


def test_a_lost_bid_commit_answer_with_the_winner_dead_is_a_503_without_a_twin(request,
                                                                              tmp_path):
    """Same, the winner stays dead past commit_resolve_s: 503, and the one record it
    wrote is the only one anywhere after its restart."""
    from tests.sim.whole_cluster.test_chaos_sim import assert_sound

    ch = lose_the_bid_commit_answer_then_kill_the_winner(request, tmp_path, 2)
    try:
        ch.c.run_until(lambda: all(d.called for d in ch.pending), timeout_s=60, step_s=0.1)
        assert ch.out.refused == {503: 1} and not ch.out.accepted
        ch.settle()
        v = ch.verdict()
        assert_sound(v)
        assert [name for copies in ch.held().values() for name, _ in copies] == ["node-2"]
    finally:
        ch.stop()


@pytest.mark.parametrize("fast_path", [True, False])
def test_every_bidder_is_asked_with_the_containers_image(make_cluster, fast_path):
    """The placement request each bidder admits, in process or over the sealed
    peer RPC, by BID_COMMIT or by the bid round, names the create's image: a
    bidder whose warm guests must make room sets aside one of the container's
    own shape first by it (``LibvirtRuntime.yield_capacity``)."""
    c = make_cluster(SimConfig(nodes=3, fast_path=fast_path))
    seen = []
    for n in c.nodes:
        admit = n.parts.bidder._admit

        async def asked(req, rid, bar=None, admit=admit):
            seen.append(req.image)
            return await admit(req, rid, bar)
        n.parts.bidder._admit = asked
    answers = creates(c, 4)
    assert all(r.status == 202 for r in answers)
    assert len(seen) >= 4 and set(seen) == {"zund-test/busybox:latest"}
