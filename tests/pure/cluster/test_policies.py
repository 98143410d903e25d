"""Pure tier: filters, tenant rules, scores, policy loading and the coordinator's
pure helpers (candidate filter, probe size, sampling, bid order)."""

from __future__ import annotations

import random

import pytest

from zund.cluster import policies
from zund.cluster.placement import filter_candidates, order_bids, probe_size, sample
from zund.cluster.policies import NodeState
from zund.cluster.types import Bid, NodeView, PlacementRequest


def req(cpu=1.0, mem=512, disk=0, project="p1", **kw) -> PlacementRequest:
    return PlacementRequest(request_id="r", uuid="u", project_id=project, user_id="u",
                            cpu=cpu, memory_mb=mem, disk_gb=disk, **kw)


def node(name="n1", cpus=4.0, mem=4096, disk=10, cpu_used=0.0, mem_used=0, disk_used=0,
         tenants=None, **kw) -> NodeState:
    kw.setdefault("runtimes", ("runc",))
    kw.setdefault("az", "nova")
    return NodeState(name=name, cpus=cpus, mem_mb=mem, disk_gb=disk, cpu_used=cpu_used,
                     mem_used_mb=mem_used, disk_used_gb=disk_used, tenants=tenants or {}, **kw)


# -- fits ------------------------------------------------------------------------------

def test_fits_accepts_exactly_the_last_slot():
    """A request equal to the free capacity fits (float sums included)."""
    assert policies.fits(req(cpu=0.3, mem=512), node(cpus=1.0, cpu_used=0.7, mem=1024,
                                                      mem_used=512)) is None
    assert policies.fits(req(cpu=0.1 + 0.2), node(cpus=0.3)) is None


@pytest.mark.parametrize("request_kw, node_kw, category", [
    ({"cpu": 2.0}, {"cpus": 4.0, "cpu_used": 2.5}, "cpu"),
    ({"mem": 2048}, {"mem": 4096, "mem_used": 3000}, "memory"),
    ({"disk": 5}, {"disk": 10, "disk_used": 6}, "disk"),
])
def test_fits_names_the_resource_that_is_short(request_kw, node_kw, category):
    """The reason starts with the category of the first resource that does not fit."""
    reason = policies.fits(req(**request_kw), node(**node_kw))
    assert reason is not None and reason.split(":")[0] == category


def test_fits_counts_what_warm_guests_would_give_up_as_free():
    """1,024 MiB free and 512 more held by booted warm guests: 1,536 fits, 1,537
    does not, and the reason names the 1,536 the node could free (cpu alike)."""
    warm = node(mem=4096, mem_used=3072, cpu_used=3.5, yield_mem_mb=512, yield_cpu=0.5)
    assert policies.fits(req(cpu=1.0, mem=1536), warm) is None
    assert policies.fits(req(cpu=1.0, mem=1537), warm) == "memory: need 1537 MiB, free 1536 of 4096"
    assert policies.fits(req(cpu=1.5, mem=512), warm) == "cpu: need 1.5, free 1 of 4"


# -- tenants ------------------------------------------------------------------------------

def test_strict_vetoes_a_node_hosting_another_project():
    """strict: any other project with a container (or reservation) vetoes the node."""
    assert policies.tenant_veto(req(project="a"), node(tenants={"b": 1}), "strict")
    assert policies.tenant_veto(req(project="a"), node(tenants={"a": 3}), "strict") is None
    assert policies.tenant_veto(req(project="a"), node(tenants={"b": 0}), "strict") is None
    assert policies.tenant_veto(req(project="a"), node(), "strict") is None


@pytest.mark.parametrize("mode", ["off", "prefer"])
def test_non_strict_modes_never_veto(mode):
    """off and prefer let projects share nodes."""
    assert policies.tenant_veto(req(project="a"), node(tenants={"b": 5}), mode) is None


def test_prefer_ranks_own_nodes_then_empty_then_others():
    """prefer: hosting the project > empty > hosting only others, whatever the free space."""
    r = req(project="a")
    own = node(tenants={"a": 1}, cpu_used=3.5)
    empty = node()
    other = node(tenants={"b": 1})
    spread = policies.SpreadPolicy()
    scores = [policies.rank_score(spread, r, s, "prefer") for s in (own, empty, other)]
    assert scores[0] > scores[1] > scores[2]


def test_off_mode_adds_no_tenant_bonus():
    """off: the score is the policy's alone."""
    assert policies.tenant_bonus(req(project="a"), node(tenants={"a": 1}), "off") == 0.0


# -- eligibility ---------------------------------------------------------------------------

@pytest.mark.parametrize("request_kw, node_kw, category", [
    ({}, {"draining": True}, "draining"),
    ({"requested_host": "n2"}, {"name": "n1"}, "host"),
    ({"runtime": "microvm"}, {"runtimes": ("runc",)}, "runtime"),
    ({"availability_zone": "az2"}, {"az": "nova"}, "az"),
    ({"labels": {"gpu": "yes"}}, {"labels": {"gpu": "no"}}, "labels"),
])
def test_admit_refuses_ineligible_nodes_with_a_reason(request_kw, node_kw, category):
    """Each hard filter refuses with its own reason category."""
    reason = policies.admit(req(**request_kw), node(**node_kw), "off", policies.SpreadPolicy())
    assert reason is not None and reason.split(":")[0] == category


def test_admit_accepts_matching_requested_host_az_runtime_and_labels():
    """A request that names what the node has is admitted."""
    r = req(requested_host="n1", availability_zone="nova", runtime="runc", labels={"ssd": "1"})
    assert policies.admit(r, node(labels={"ssd": "1", "x": "y"}), "strict") is None


# -- scores -----------------------------------------------------------------------------

def test_spread_prefers_the_emptier_node_and_binpack_the_fuller():
    """spread: most free weighted capacity wins; binpack: least free that fits wins."""
    r = req(cpu=1.0, mem=512)
    empty, busy = node(), node(cpu_used=2.0, mem_used=2048)
    assert policies.SpreadPolicy().score(r, empty) > policies.SpreadPolicy().score(r, busy)
    assert policies.BinpackPolicy().score(r, busy) > policies.BinpackPolicy().score(r, empty)


def test_scores_stay_in_unit_interval_even_for_zero_totals():
    """A node with no capacity scores 0 free, not a division error."""
    for policy in (policies.SpreadPolicy(), policies.BinpackPolicy()):
        for s in (node(cpus=0.0, mem=0), node(), node(cpu_used=4.0, mem_used=4096)):
            assert 0.0 <= policy.score(req(), s) <= 1.0


def test_spread_score_is_mean_of_cpu_and_memory_free_fractions_after_placement():
    """spread = ((4-1-1)/4 + (4096-1024-1024)/4096) / 2 = 0.5."""
    s = node(cpu_used=1.0, mem_used=1024)
    assert policies.SpreadPolicy().score(req(cpu=1.0, mem=1024), s) == pytest.approx(0.5)


# -- loading -------------------------------------------------------------------------------

def test_load_policy_returns_builtins_and_refuses_unknown_names():
    """spread/binpack load (entry point or fallback); an unknown name is a ValueError."""
    assert isinstance(policies.load_policy("spread"), policies.SpreadPolicy)
    assert isinstance(policies.load_policy("binpack"), policies.BinpackPolicy)
    with pytest.raises(ValueError):
        policies.load_policy("no-such-policy")


def test_node_state_from_gossip_metadata():
    """NodeState.from_meta reads the NodeMeta a peer's blob decodes to."""
    from zund.cluster import metadata
    from zund.compute.capacity import Usage
    built = metadata.build(metadata.NodeFacts(az="az1", runtimes=["runc"], labels={"a": "b"},
                                              draining=True), Usage(1.5, 100, 2, 3),
                           {"cpus": 8.0, "mem_mb": 1000, "disk_gb": 20}, {"p": 3})
    meta = metadata.decode(metadata.encode(built))
    assert meta == built
    s = NodeState.from_meta("n9", meta)
    assert (s.cpu_free, s.mem_free_mb, s.disk_free_gb) == (6.5, 900, 18)
    assert (s.az, s.runtimes, s.labels, s.tenants, s.draining) == (
        "az1", ("runc",), {"a": "b"}, {"p": 3}, True)


# -- coordinator helpers --------------------------------------------------------------------

@pytest.mark.parametrize("n, ratio, below, round_no, expected", [
    (5, 2.0, 8, 1, 5),      # few candidates: ask all
    (8, 2.0, 8, 1, 8),
    (100, 2.0, 8, 1, 2),    # d·k = 2
    (100, 2.0, 8, 2, 4),    # later rounds double
    (100, 1.5, 8, 1, 2),    # ceil
    (3, 2.0, 0, 3, 3),      # never more than there are
])
def test_probe_size_table(n, ratio, below, round_no, expected):
    """ceil(probe_ratio·k) doubled per round, capped by the candidates; all when few."""
    assert probe_size(n, ratio, below, round_no) == expected


def test_sample_is_distinct_and_seeded():
    """The same seed samples the same nodes; no node twice."""
    pool = list(range(50))
    a = sample(pool, 5, random.Random(7))
    assert a == sample(pool, 5, random.Random(7)) and len(set(a)) == 5


def test_order_bids_best_first_and_ties_broken_randomly():
    """Highest score first; equal scores do not always favour the same node."""
    bids = [Bid("a", "1", 0.5, 0), Bid("b", "2", 0.9, 0), Bid("c", "3", 0.5, 0)]
    firsts = set()
    for seed in range(20):
        ordered = order_bids(bids, random.Random(seed))
        assert ordered[0].node == "b"
        firsts.add(ordered[1].node)
    assert firsts == {"a", "c"}


def test_filter_candidates_drops_dead_draining_metadata_less_and_full_nodes():
    """Only alive nodes with metadata that pass the filters by metadata remain."""
    from zund.cluster import metadata
    from zund.compute.capacity import Usage
    lim = {"cpus": 4.0, "mem_mb": 4096, "disk_gb": 10}

    def meta(used_cpu=0.0, draining=False):
        return metadata.build(metadata.NodeFacts(runtimes=["runc"], draining=draining),
                              Usage(used_cpu, 0, 0, 0), lim, {})
    views = [NodeView("ok", "alive", "", "", meta()),
             NodeView("dead", "dead", "", "", meta()),
             NodeView("suspect", "suspect", "", "", meta()),
             NodeView("drain", "alive", "", "", meta(draining=True)),
             NodeView("full", "alive", "", "", meta(used_cpu=4.0)),
             NodeView("blank", "alive", "", "", None)]
    chosen, filtered = filter_candidates(req(), views, "off", policies.SpreadPolicy())
    assert [v.name for v in chosen] == ["ok"]
    assert filtered == {"state-dead": 1, "state-suspect": 1, "draining": 1, "cpu": 1,
                        "no-metadata": 1}
