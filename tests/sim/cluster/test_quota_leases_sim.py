"""Quota leases across a simulated cluster: entry nodes claim from a block of the
project's headroom leased by its ledger holder, with no round trip, and still
never overshoot; a dead node's lease and a lowered limit stop mattering within
the lease's TTL."""

from __future__ import annotations

import attrs
import pytest
from twisted.internet import defer

from tests.support.harness import SimCluster, SimConfig
from tests.support.memrpc import LinkFaults

ADMIN = "admin:demo"
TENANT = "alice:projl"
PROJECT = "projl"


@pytest.fixture
def cluster(request):
    made = []

    def make(nodes=5):
        c = SimCluster(1000 + len(request.node.name), SimConfig(nodes=nodes)).start()
        made.append(c)
        return c
    yield make
    for c in made:
        c.heal()
        c.stop()


def set_quota(c, **limits):
    r = c.api(0, "PUT", f"/quotas/{PROJECT}", json=limits, token=ADMIN)
    assert r.status == 200, (r.status, r.body)


def body(name):
    return {"image": "zund-test/busybox:latest", "name": name, "memory": 32, "cpu": 0.1}


def create_concurrently(c, entries, names):
    ds = [c.request_async(e, "POST", "/containers", token=TENANT, json=body(n))
          for e, n in zip(entries, names)]
    return c.wait(defer.gatherResults(ds), timeout_s=300)


def create_one(c, entry, name):
    return c.api(entry, "POST", "/containers", token=TENANT, json=body(name)).status


def live(c) -> set:
    return {r.uuid for n in c.nodes if n.up
            for r in c.run(n.store.list_containers(PROJECT)) if r.status != "Deleted"}


def quota_of(c, index):
    return c.nodes[index].parts.facade.quota


def holder_index(c) -> int:
    name = quota_of(c, 0).holder(PROJECT)
    return next(n.index for n in c.nodes if n.name == name)


def leases_on_the_others(c, containers: int, prefix: str) -> tuple[int, list[int]]:
    """Limit the project to ``containers`` (the rest unlimited) and create one
    container through every node but the ledger holder, each of which then holds
    a lease: (the holder's index, those nodes' indexes)."""
    set_quota(c, containers=containers, cpu=-1, memory=-1, disk=-1)
    h = holder_index(c)
    entries = [i for i in range(5) if i != h]
    for k, e in enumerate(entries):
        assert create_one(c, e, f"{prefix}{k}") == 202
    assert all(PROJECT in quota_of(c, e).held_leases for e in entries)
    return h, entries


def test_leases_never_let_usage_exceed_the_limit_under_concurrent_creates_on_every_node(cluster):
    """Waves of concurrent creates through all 5 nodes, lease returns lost or
    duplicated: exactly the limit is created, some creates were counted by a lease
    without a round trip, and the usage view counts exactly the containers."""
    c = cluster()
    set_quota(c, containers=30, cpu=-1, memory=-1, disk=-1)
    c.peers.kind_faults["QUOTA_LEASE_RETURN"] = LinkFaults(drop_request=0.3, duplicate=0.3)
    answers, leased = [], 0
    for wave in range(4):
        answers += create_concurrently(c, [i % 5 for i in range(20)],
                                       [f"w{wave}-{i}" for i in range(20)])
        leased += sum(len(quota_of(c, n.index).held_leases) for n in c.nodes)
        shown = c.api(wave % 5, "GET", f"/quotas/{PROJECT}?usages=true", token=TENANT).json
        assert shown["containers"]["in_use"] == len(live(c)), (wave, shown)
    accepted = {r.json["uuid"] for r in answers if r.status == 202}
    assert all(r.status in (202, 403) for r in answers), [r.status for r in answers]
    assert len(accepted) == 30 and live(c) == accepted
    assert leased > 0


def test_a_dead_nodes_lease_stops_counting_after_its_ttl(cluster):
    """A node holding a lease dies: its block still counts until the lease's TTL
    (creates are refused one block early), then the project fills to its limit."""
    c = cluster()
    set_quota(c, containers=12, cpu=-1, memory=-1, disk=-1)
    h = holder_index(c)
    x = next(i for i in range(5) if i != h)
    assert create_one(c, x, "first") == 202
    lease = quota_of(c, x).held_leases[PROJECT]
    assert lease.remaining["containers"] >= 1
    block = lease.remaining["containers"] + len(lease.used)
    c.crash(x)
    before = [create_one(c, h, f"b{k}") for k in range(12)]
    assert before.count(202) == 12 - 1 - block + len(lease.used), before
    c.advance(quota_of(c, h).config.lease_ttl_s)
    after = [create_one(c, h, f"a{k}") for k in range(12)]
    assert 403 in after
    assert len(live(c)) == 12


def test_a_limit_lowered_below_outstanding_leases_takes_effect_within_the_ttl(cluster):
    """Four nodes hold leases of a 40-container limit; the limit drops to 5: one
    lease TTL later only one more create (of eight) is accepted."""
    c = cluster()
    h, entries = leases_on_the_others(c, 40, "l")
    set_quota(c, containers=5)
    c.advance(quota_of(c, h).config.lease_ttl_s)
    statuses = [create_one(c, entries[k % 4], f"m{k}") for k in range(8)]
    assert statuses.count(202) == 1, statuses
    assert len(live(c)) == 5


def test_leases_of_a_dead_holder_never_let_the_new_holder_overshoot(cluster):
    """The ledger holder dies while the other nodes hold its leases (still within
    their TTL): one survivor fills the project through the new holder, then the
    nodes still holding those leases are refused too: exactly the limit exists."""
    c = cluster()
    for n in c.nodes:  # leases outlive the failure detection
        q = quota_of(c, n.index)
        q.config = attrs.evolve(q.config, lease_ttl_s=600.0)
    h, entries = leases_on_the_others(c, 24, "s")
    c.crash(h)
    c.run_until(lambda: all(quota_of(c, e).holder(PROJECT) != c.nodes[h].name
                            for e in entries), timeout_s=120)
    filled = [create_one(c, entries[0], f"t{i}") for i in range(24)]
    assert 403 in filled, filled
    late = [create_one(c, e, f"u{e}-{k}") for e in entries[1:] for k in range(3)]
    assert set(late) == {403}, late
    assert len(live(c)) == 24


def test_leases_never_refuse_a_create_that_fits_the_limit(cluster):
    """Every node holds a lease when 60 creates arrive at once for the last 36 of
    a 40-container limit: the holder takes unused leases back rather than
    refuse, so exactly 40 exist."""
    c = cluster()
    leases_on_the_others(c, 40, "p")
    answers = create_concurrently(c, [i % 5 for i in range(60)], [f"r{i}" for i in range(60)])
    assert [r.status for r in answers].count(202) == 36, [r.status for r in answers]
    assert len(live(c)) == 40
