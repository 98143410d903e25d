"""Pure tier: timeout maths tables, awareness, broadcast queue, presets."""

import pytest

from zund.gossip import config
from zund.gossip.awareness import Awareness
from zund.gossip.broadcast import BroadcastQueue
from zund.gossip.suspicion import (
    Suspicion, expected_confirmations, remaining_suspicion_time, suspicion_timeout)


@pytest.mark.parametrize("mult,n,interval,expected", [
    # memberlist util_test.go TestSuspicionTimeout
    (3, 1, 1.0, 3.0),
    (3, 5, 1.0, 3.0),
    (3, 10, 1.0, 3.0),
    (3, 50, 1.0, 5.097),
    (3, 100, 1.0, 6.0),
    (3, 1000, 1.0, 9.0),
    (4, 20, 1.0, 5.204),
    (6, 100, 5.0, 60.0),
])
def test_suspicion_timeout_table(mult, n, interval, expected):
    """min = mult * max(1, log10(max(1, n))) * probe_interval."""
    assert suspicion_timeout(mult, n, interval) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("n,k,elapsed,expected", [
    # memberlist suspicion_test.go TestSuspicion_remainingSuspicionTime (min 2 s, max 30 s)
    (0, 3, 0, 30.0),
    (1, 3, 2, 14.0),
    (2, 3, 3, 4.810),
    (3, 3, 4, -2.0),
    (4, 3, 5, -3.0),
    (5, 3, 10, -8.0),
])
def test_remaining_suspicion_time_table(n, k, elapsed, expected):
    """timeout = max - (max-min)*log(n+1)/log(k+1), floored to ms, >= min, minus elapsed."""
    assert remaining_suspicion_time(n, k, elapsed, 2.0, 30.0) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("mult,n,k", [(4, 1, 0), (4, 3, 0), (4, 4, 2), (4, 100, 2), (3, 3, 1), (6, 5, 0), (6, 6, 4)])
def test_expected_confirmations_table(mult, n, k):
    """k = mult - 2, or 0 when the other n - 2 members could not provide k."""
    assert expected_confirmations(mult, n) == k


def test_suspicion_confirmations_are_unique_and_capped():
    """One confirmation per peer, the accuser excluded, at most k."""
    s = Suspicion("accuser", k=2, min_s=2.0, max_s=30.0, start=0.0)
    assert s.deadline == 30.0
    assert not s.confirm("accuser", 1.0)
    assert s.confirm("b", 1.0)
    assert not s.confirm("b", 1.5)
    assert s.confirm("c", 2.0)
    assert s.deadline == 2.0
    assert not s.confirm("d", 2.5)


def test_suspicion_without_expected_confirmations_uses_min():
    """k = 0: the timer is the minimum from the start."""
    assert Suspicion("a", k=0, min_s=4.0, max_s=24.0, start=10.0).deadline == 14.0


def test_awareness_clamps_and_scales():
    """Lifeguard §IV-A: score within [0, max-1]; timeout * (score + 1)."""
    a = Awareness(8)
    a.apply_delta(-5)
    assert a.score == 0 and a.scale(0.5) == 0.5
    a.apply_delta(3)
    assert a.scale(1.0) == 4.0
    a.apply_delta(100)
    assert a.score == 7 and a.scale(1.0) == 8.0


@pytest.mark.parametrize("mult,n,limit", [(4, 1, 4), (4, 9, 4), (4, 10, 8), (4, 99, 8), (4, 100, 12), (2, 1000, 8)])
def test_retransmit_limit_table(mult, n, limit):
    """memberlist retransmitLimit: mult * ceil(log10(n + 1))."""
    assert config.retransmit_limit(mult, n) == limit


@pytest.mark.parametrize("n,expected", [(1, 30), (32, 30), (33, 60), (64, 60), (65, 90), (1000, 180)])
def test_push_pull_scale_table(n, expected):
    """memberlist pushPullScale: one more interval per doubling above 32 nodes."""
    assert config.push_pull_scale(30.0, n) == expected


def test_queue_newer_message_invalidates_older():
    """A newer message about a member replaces the queued older one."""
    q = BroadcastQueue(4, 100)
    q.queue("n1", "alive-1", 10)
    q.queue("n2", "alive-2", 10)
    q.queue("n1", "dead-1", 10)
    assert q.pending() == ["alive-2", "dead-1"]


def test_queue_prefers_fewest_transmits_then_newest_and_fits_budget():
    """GetBroadcasts: least-sent first, newest first, skipping what does not fit."""
    q = BroadcastQueue(4, 100)
    q.queue("a", "A", 50)
    q.queue("b", "B", 50)
    assert q.get(0, 60, n=1) == ["B"]
    assert q.get(0, 60, n=1) == ["A"]
    q.queue("c", "C-big", 500)
    assert q.get(0, 120, n=1) == ["B", "A"]


def test_queue_drops_message_after_transmit_limit():
    """Each message is sent retransmit_limit times, then leaves the queue."""
    q = BroadcastQueue(2, 100)
    q.queue("a", "A", 10)
    sent = sum(len(q.get(0, 100, n=5)) for _ in range(10))
    assert sent == 2 and len(q) == 0


def test_queue_is_bounded():
    """Beyond max_items the most transmitted / oldest messages are pruned."""
    q = BroadcastQueue(4, 3)
    for i in range(10):
        q.queue(f"n{i}", i, 1)
    assert q.pending() == [7, 8, 9]


def test_presets_match_memberlist():
    """lan/local/wan carry memberlist's DefaultLANConfig/LocalConfig/WANConfig numbers."""
    lan = config.lan()
    assert (lan.probe_interval_s, lan.probe_timeout_s, lan.gossip_interval_s, lan.gossip_nodes,
            lan.indirect_checks, lan.retransmit_mult, lan.suspicion_mult, lan.suspicion_max_timeout_mult,
            lan.push_pull_interval_s, lan.awareness_max_multiplier, lan.gossip_to_the_dead_time_s,
            lan.max_datagram) == (1.0, 0.5, 0.2, 3, 3, 4, 4, 6, 30.0, 8, 30.0, 1400)
    local = config.local()
    assert (local.probe_timeout_s, local.gossip_interval_s, local.indirect_checks, local.retransmit_mult,
            local.suspicion_mult, local.push_pull_interval_s, local.gossip_to_the_dead_time_s) == (
        0.2, 0.1, 1, 2, 3, 15.0, 15.0)
    wan = config.wan()
    assert (wan.probe_interval_s, wan.probe_timeout_s, wan.gossip_interval_s, wan.gossip_nodes,
            wan.suspicion_mult, wan.push_pull_interval_s, wan.gossip_to_the_dead_time_s) == (
        5.0, 3.0, 0.5, 4, 6, 60.0, 60.0)


def test_from_values_builds_preset_and_rejects_unknown_profile():
    """from_values takes plain [gossip] values; unknown profiles are an error."""
    c = config.from_values("wan", "prod")
    assert c.cluster_name == "prod" and c.probe_interval_s == 5.0
    with pytest.raises(ValueError):
        config.from_values("moon", "x")


def test_config_rejects_timeout_longer_than_interval():
    with pytest.raises(ValueError):
        config.lan(probe_timeout_s=2.0)


def test_resolve_advertise_host():
    """Explicit advertise, else a concrete bind host, else hostname resolution."""
    assert config.resolve_advertise_host("0.0.0.0", "127.0.0.5", lambda: "x") == "127.0.0.5"
    assert config.resolve_advertise_host("127.0.0.2", None, lambda: "x") == "127.0.0.2"
    assert config.resolve_advertise_host("0.0.0.0", None, lambda: "127.0.1.1") == "127.0.1.1"


def test_oslo_options_register():
    """[gossip] options exist with the documented defaults."""
    from oslo_config import cfg

    from zund.conf import gossip as gossip_conf

    conf = cfg.ConfigOpts()
    gossip_conf.register_opts(conf)
    conf([])
    g = conf.gossip
    assert (g.bind_host, g.bind_port, g.advertise_host, g.seeds, g.cluster_name, g.profile) == (
        "0.0.0.0", 9519, None, [], "zund", "lan")
    # GroupAttr is a Mapping, so ``conf.gossip.keys`` is Mapping.keys: use the helper.
    assert gossip_conf.gossip_keys(conf) == []
    assert gossip_conf.list_opts()[0][0] == "gossip"
    assert [o for o in gossip_conf.gossip_opts if o.name == "keys"][0].secret


def test_zund_timing_knobs_are_validated():
    """suspicion_min_mult must be in (0, suspicion_mult]; push interval and probers non-negative."""
    assert config.lan().suspicion_min_mult == 1.0 and config.lan().suspicion_probers == 6
    for bad in ({"suspicion_min_mult": 0}, {"suspicion_min_mult": 5}, {"push_min_interval_s": -1},
                {"suspicion_probers": -1}):
        with pytest.raises(ValueError):
            config.lan(**bad)
