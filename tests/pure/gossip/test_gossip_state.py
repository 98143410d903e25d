"""Pure tier: the SWIM + Lifeguard rules of ``Membership``, exact effects."""

import random

import pytest

from zund.gossip import config
from zund.gossip.codec import Ack, Alive, Dead, IndirectPing, Nack, Ping, PushPull, PushPullState, Suspect
from zund.gossip.member import MemberState
from zund.gossip.state import CancelTimer, MemberEvent, Membership, Send, SetTimer, StartPushPull
from zund.gossip import codec

CFG = config.lan(eager_gossip_delay_s=0.0)
ME = ("127.0.0.1", 7000)
NOW = 1000.0


def peer(i):
    return ("127.0.0.1", 7001 + i)


def make(n_peers=4, cfg=CFG, seed=1):
    """A started member ``a`` that knows alive peers p0..p{n-1}; empty broadcast queue."""
    m = Membership(cfg, "a", ME, random.Random(seed), NOW)
    m.start(NOW)
    for i in range(n_peers):
        m.on_messages(peer(i), [Alive(1, f"p{i}", peer(i), b"", 0)], NOW)
    m.broadcasts.clear()
    return m


def state_of(m, name):
    return m.member(name).state


def events(effects):
    return [(e.kind, e.member.name) for e in effects if isinstance(e, MemberEvent)]


def start_probe(m, now=NOW):
    """Run the probe tick; returns (effects, target name, seq)."""
    effects = m.on_timer("probe", now)
    send = next(e for e in effects if isinstance(e, Send))
    ping = send.messages[0]
    return effects, ping.target, ping.seq


def test_start_arms_staggered_timers_and_announces_self():
    """start() arms probe/gossip/push_pull within one interval and queues our alive."""
    m = Membership(CFG, "a", ME, random.Random(1), NOW)
    effects = m.start(NOW)
    names = {e.name: e.at for e in effects}
    assert set(names) == {"probe", "gossip", "push_pull", "reconnect"}
    assert NOW <= names["probe"] <= NOW + 1.0
    assert NOW <= names["gossip"] <= NOW + 0.2
    assert NOW <= names["push_pull"] <= NOW + 30.0
    assert m.broadcasts.pending() == [Alive(1, "a", ME, b"", 0)]


def test_new_alive_member_is_a_join_event_and_is_rebroadcast():
    """An unknown member's alive message adds it, emits join and is re-gossiped."""
    m = make(0)
    effects = m.on_messages(peer(0), [Alive(3, "p0", peer(0), b"m", 1)], NOW)
    assert events(effects) == [("join", "p0")]
    assert m.member("p0").incarnation == 3
    assert m.broadcasts.pending() == [Alive(3, "p0", peer(0), b"m", 1)]


def test_ping_for_us_is_acked_to_source_addr():
    """SWIM §3.1: a ping addressed to our name is acked to its source address."""
    m = make(0)
    effects = m.on_messages(("10.0.0.9", 1), [Ping(42, "a", "x", peer(3))], NOW)
    assert effects == [Send(peer(3), (Ack(42),))]


def test_ping_for_another_name_is_ignored():
    """memberlist handlePing: a ping meant for a different node gets no ack."""
    m = make(0)
    assert m.on_messages(peer(0), [Ping(42, "someone-else", "x", peer(0))], NOW) == []


def test_probe_sends_ping_and_arms_timeout_and_deadline():
    """SWIM §4.1: one probe per period: ping, ack timeout, deadline, next tick."""
    m = make(4)
    effects, target, seq = start_probe(m)
    addr = m.member(target).addr
    assert effects == [
        SetTimer("probe", NOW + 1.0),
        Send(tuple(int(p) if p.isdigit() else p for p in addr.split(":")), (Ping(seq, target, "a", ME),)),
        SetTimer("probe.indirect", NOW + 0.5),
        SetTimer("probe.deadline", NOW + 1.0),
    ]


def test_probe_order_is_round_robin_over_all_members():
    """SWIM §4.3: every member is probed once per round, in shuffled order."""
    m = make(5)
    targets = []
    for i in range(10):
        _, target, seq = start_probe(m, NOW + i)
        m.on_messages(peer(0), [Ack(seq)], NOW + i + 0.01)
        targets.append(target)
    assert sorted(targets[:5]) == [f"p{i}" for i in range(5)]
    assert sorted(targets[5:]) == [f"p{i}" for i in range(5)]


def test_ack_completes_probe_and_improves_health():
    """An ack cancels the probe timers; Lifeguard: success lowers the health score."""
    m = make(4)
    m.awareness.apply_delta(2)
    _, _, seq = start_probe(m)
    effects = m.on_messages(peer(0), [Ack(seq)], NOW + 0.1)
    assert effects == [CancelTimer("probe.indirect"), CancelTimer("probe.deadline")]
    assert m.awareness.score == 1


def test_direct_timeout_sends_indirect_pings_to_k_other_alive_members():
    """SWIM §4.2: after the ack timeout, ping-req through indirect_checks peers."""
    m = make(5)
    _, target, seq = start_probe(m)
    effects = m.on_timer("probe.indirect", NOW + 0.5)
    assert len(effects) == 3
    target_addr = next(e for e in m.members() if e.name == target).addr
    for e in effects:
        (req,) = e.messages
        assert req == IndirectPing(seq, target, _addr(target_addr), True, "a", ME)
        assert e.addr != _addr(target_addr)
    assert len({e.addr for e in effects}) == 3


def _addr(text):
    host, port = text.rsplit(":", 1)
    return (host, int(port))


def test_failed_probe_suspects_target_with_lifeguard_timeout():
    """SWIM §4.2 + Lifeguard §IV-B: no ack by the deadline -> suspect, timer at max."""
    m = make(4)
    _, target, seq = start_probe(m)
    m.on_timer("probe.indirect", NOW + 0.5)
    effects = m.on_timer("probe.deadline", NOW + 1.0)
    # n = 5 members, k = 4 - 2 = 2, min = 4 * max(1, log10 5) * 1 s = 4 s, max = 24 s
    assert effects[0] == SetTimer(f"suspect:{target}", NOW + 1.0 + 24.0)
    assert events(effects) == [("suspect", target)]
    assert state_of(m, target) == "suspect"
    assert m.broadcasts.pending() == [Suspect(1, target, "a")]


@pytest.mark.parametrize("nacks,expected_score", [(0, 3), (1, 2), (3, 0)])
def test_missing_nacks_degrade_local_health(nacks, expected_score):
    """Lifeguard §IV-A: each expected nack that never came adds one to the score."""
    m = make(4)
    _, _, seq = start_probe(m)
    m.on_timer("probe.indirect", NOW + 0.5)
    for _ in range(nacks):
        m.on_messages(peer(0), [Nack(seq)], NOW + 0.9)
    m.on_timer("probe.deadline", NOW + 1.0)
    assert m.awareness.score == expected_score


def test_failed_probe_without_relays_counts_one():
    """Lifeguard: with nobody to ask for nacks, a failed probe costs 1."""
    m = make(1)
    start_probe(m)
    assert m.on_timer("probe.indirect", NOW + 0.5) == []
    m.on_timer("probe.deadline", NOW + 1.0)
    assert m.awareness.score == 1


def test_unhealthy_node_scales_probe_timeout_and_interval():
    """Lifeguard §IV-A: score s multiplies the probe timeout and deadline by s+1."""
    m = make(4)
    m.awareness.apply_delta(3)
    effects, _, _ = start_probe(m)
    timers = {e.name: e.at for e in effects if isinstance(e, SetTimer)}
    assert timers["probe.indirect"] == NOW + 0.5 * 4
    assert timers["probe.deadline"] == NOW + 1.0 * 4


def test_probe_tick_during_stretched_probe_is_deferred():
    """A tick that lands inside a running (stretched) probe starts the next one at its end."""
    m = make(4)
    m.awareness.apply_delta(1)
    _, _, seq = start_probe(m)
    assert m.on_timer("probe", NOW + 1.0) == []
    effects = m.on_messages(peer(0), [Ack(seq)], NOW + 1.5)
    assert SetTimer("probe", NOW + 2.5) in effects
    assert any(isinstance(e, Send) and isinstance(e.messages[0], Ping) for e in effects)


def test_probe_of_suspect_carries_suspect_message_buddy_system():
    """Lifeguard §IV-C: the ping to a suspect also tells it that it is suspected."""
    m = make(1)
    m.on_messages(peer(0), [Suspect(1, "p0", "x")], NOW)  # probed at once (zund), see below
    m.on_messages(peer(0), [Ack(m._probe.seq)], NOW)
    effects, target, seq = start_probe(m, NOW + 1)
    send = next(e for e in effects if isinstance(e, Send))
    assert target == "p0"
    assert send.messages[:2] == (Ping(seq, "p0", "a", ME), Suspect(1, "p0", "a"))


def test_indirect_ping_relays_and_forwards_ack():
    """SWIM §4.2: a relay pings the target and forwards its ack with the original seq."""
    m = make(0)
    effects = m.on_messages(peer(1), [IndirectPing(77, "t", peer(2), True, "req", peer(1))], NOW)
    send, forward_until, nack_at = effects
    (ping,) = send.messages
    assert send.addr == peer(2) and ping == Ping(ping.seq, "t", "a", ME)
    assert forward_until == SetTimer(f"relay:{ping.seq}", NOW + 0.5)
    assert nack_at == SetTimer(f"relay.nack:{ping.seq}", NOW + 0.4)
    assert m.on_messages(peer(2), [Ack(ping.seq)], NOW + 0.1) == [
        CancelTimer(f"relay:{ping.seq}"), CancelTimer(f"relay.nack:{ping.seq}"),
        Send(peer(1), (Ack(77),))]


def test_indirect_ping_without_ack_sends_nack_before_the_askers_deadline():
    """Lifeguard §IV-A: a relay that hears nothing nacks, proving it is alive, and
    early enough to count: the asker sent the request probe_timeout (0.5 s) into
    its probe and stops counting at probe_interval (1 s), so a nack after a whole
    probe_timeout would arrive a network latency late. An ack after the nack is
    still forwarded until probe_timeout, once."""
    cfg = config.lan()
    assert cfg.probe_timeout_s + cfg.relay_nack_s < cfg.probe_interval_s
    m = make(0)
    effects = m.on_messages(peer(1), [IndirectPing(77, "t", peer(2), True, "req", peer(1))], NOW)
    seq = effects[0].messages[0].seq
    assert m.on_timer(f"relay.nack:{seq}", NOW + 0.4) == [Send(peer(1), (Nack(77),))]
    assert m.on_messages(peer(2), [Ack(seq)], NOW + 0.45) == [
        CancelTimer(f"relay:{seq}"), Send(peer(1), (Ack(77),))]
    assert m.on_timer(f"relay:{seq}", NOW + 0.5) == []


def test_relay_window_end_sends_a_nack_its_timer_has_not_yet_sent():
    """After a stall both relay timers are due at once, in either order: the nack
    is sent exactly once."""
    m = make(0)
    effects = m.on_messages(peer(1), [IndirectPing(77, "t", peer(2), True, "req", peer(1))], NOW)
    seq = effects[0].messages[0].seq
    assert m.on_timer(f"relay:{seq}", NOW + 2) == [
        CancelTimer(f"relay.nack:{seq}"), Send(peer(1), (Nack(77),))]
    assert m.on_timer(f"relay.nack:{seq}", NOW + 2) == []
    # a request that asked no nack gets none
    effects = m.on_messages(peer(1), [IndirectPing(78, "t", peer(2), False, "req", peer(1))], NOW)
    assert len(effects) == 2
    assert m.on_timer(f"relay:{effects[0].messages[0].seq}", NOW + 2) == []


def test_relay_nack_reaches_the_asker_before_its_deadline_in_every_profile():
    """Each preset leaves the nack time to travel: the asker counts nacks until
    probe_interval, having asked at probe_timeout."""
    for make_cfg in (config.lan, config.local, config.wan):
        cfg = make_cfg()
        slack = cfg.probe_interval_s - cfg.probe_timeout_s - cfg.relay_nack_s
        assert slack >= 0.2 * (cfg.probe_interval_s - cfg.probe_timeout_s) - 1e-9, cfg
        assert 0 < cfg.relay_nack_s <= cfg.probe_timeout_s


def test_suspect_about_us_is_refuted_with_higher_incarnation():
    """SWIM §4.2: a suspected member re-announces alive above the accusation."""
    m = make(1)
    assert m.on_messages(peer(0), [Suspect(5, "a", "p0")], NOW) == []
    assert m.local_member().incarnation == 6
    assert m.broadcasts.pending() == [Alive(6, "a", ME, b"", 0)]
    assert m.awareness.score == 1  # Lifeguard: having to refute costs health


def test_dead_about_us_is_refuted():
    """A dead message about a member that is still running is refuted."""
    m = make(1)
    m.on_messages(peer(0), [Dead(1, "a", "p0")], NOW)
    assert m.local_member().state == "alive"
    assert m.local_member().incarnation == 2


def test_refutation_clears_suspicion():
    """A newer alive cancels the suspicion timer and emits alive."""
    m = make(2)
    m.on_messages(peer(1), [Suspect(1, "p0", "p1")], NOW)
    effects = m.on_messages(peer(0), [Alive(2, "p0", peer(0), b"", 0)], NOW + 1)
    assert effects == [CancelTimer("suspect:p0"), MemberEvent("alive", m.member("p0"))]
    assert state_of(m, "p0") == "alive"


def test_old_incarnations_are_ignored():
    """Messages with an incarnation below what we know change nothing."""
    m = make(1)
    m.on_messages(peer(0), [Alive(5, "p0", peer(0), b"", 0)], NOW)
    m.broadcasts.clear()
    assert m.on_messages(peer(0), [Alive(4, "p0", peer(0), b"x", 9)], NOW) == []
    assert m.on_messages(peer(0), [Suspect(4, "p0", "z")], NOW) == []
    assert m.on_messages(peer(0), [Dead(4, "p0", "z")], NOW) == []
    assert state_of(m, "p0") == "alive"
    assert m.broadcasts.pending() == []


def test_suspicion_expires_into_dead():
    """SWIM §4.2: an unrefuted suspicion becomes dead and is gossiped."""
    m = make(4)
    effects = m.on_messages(peer(1), [Suspect(1, "p0", "p1")], NOW)
    (timer,) = [e for e in effects if isinstance(e, SetTimer) and e.name == "suspect:p0"]
    effects = m.on_timer("suspect:p0", timer.at)
    assert events(effects) == [("dead", "p0")]
    sends = [e for e in effects if isinstance(e, Send)]  # pushed at once, not at the next tick
    assert sends and all(Dead(1, "p0", "a") in s.messages for s in sends)


def test_confirmations_shorten_suspicion():
    """Lifeguard §IV-B: each independent suspect message moves the deadline earlier."""
    m = make(4, cfg=config.lan(eager_gossip_delay_s=0.0, suspicion_min_mult=4))  # memberlist: min 4 s, max 24 s, k = 2
    m.on_messages(peer(1), [Suspect(1, "p0", "p1")], NOW)
    e1 = m.on_messages(peer(2), [Suspect(1, "p0", "p2")], NOW + 1)
    # 24 - 20 * log(2)/log(3) = 11.381 (floored to ms) from the start
    assert e1 == [SetTimer("suspect:p0", NOW + 11.381)]
    assert m.on_messages(peer(2), [Suspect(1, "p0", "p2")], NOW + 1) == []  # same peer twice
    e2 = m.on_messages(peer(3), [Suspect(1, "p0", "p3")], NOW + 2)
    assert e2 == [SetTimer("suspect:p0", NOW + 4.0)]


def test_a_member_that_told_us_a_death_spends_none_of_our_retelling():
    """Our dead about p0 goes to members that may lack it: sends to p1, which sent
    it to us, spend no transmit, so it is still queued after the limit's worth of
    sends (p1 and limit - 1 others) and leaves only after one more member."""
    m = make(8)
    m.on_messages(peer(1), [Dead(1, "p0", "p1")], NOW)
    dead = Dead(1, "p0", "p1")
    assert dead in m.broadcasts.pending()
    limit = config.retransmit_limit(CFG.retransmit_mult, 9)
    for to in ["p1"] + [f"p{i}" for i in range(2, 1 + limit)]:
        assert dead in m.broadcasts.get(overhead=0, budget=1400, n=9, to=to)
    assert dead in m.broadcasts.pending()
    assert dead in m.broadcasts.get(overhead=0, budget=1400, n=9, to=f"p{1 + limit}")
    assert dead not in m.broadcasts.pending()


def test_dead_from_the_node_itself_means_left():
    """memberlist Leave: a dead message with node == from is a graceful leave."""
    m = make(2)
    effects = m.on_messages(peer(0), [Dead(1, "p0", "p0")], NOW)
    assert events(effects) == [("leave", "p0")]
    assert state_of(m, "p0") == "left"
    effects = m.on_messages(peer(1), [Dead(1, "p1", "a")], NOW)
    assert events(effects) == [("dead", "p1")]


def test_dead_member_rejoins_with_higher_incarnation():
    """A restarted member's alive above its dead incarnation is a join."""
    m = make(2)
    m.on_messages(peer(1), [Dead(3, "p0", "p1")], NOW)
    assert m.on_messages(peer(0), [Alive(3, "p0", peer(0), b"", 0)], NOW + 5) == []
    effects = m.on_messages(peer(0), [Alive(4, "p0", peer(0), b"", 0)], NOW + 5)
    assert events(effects) == [("join", "p0")]
    assert state_of(m, "p0") == "alive"


def test_conflicting_address_for_live_name_is_ignored():
    """memberlist aliveNode: a live name cannot move to another address."""
    m = make(1)
    assert m.on_messages(peer(5), [Alive(9, "p0", peer(5), b"", 0)], NOW) == []
    assert m.member("p0").addr == "127.0.0.1:7001"


def test_left_member_may_come_back_at_a_new_address():
    """A left member's name can be reused at another address (memberlist StateLeft)."""
    m = make(1)
    m.on_messages(peer(0), [Dead(1, "p0", "p0")], NOW)
    effects = m.on_messages(peer(5), [Alive(2, "p0", peer(5), b"", 0)], NOW)
    assert events(effects) == [("join", "p0")]
    assert m.member("p0").addr == "127.0.0.1:7006"


def test_set_metadata_bumps_incarnation_and_gossips_now():
    """UpdateNode: new meta goes out as an alive with a higher incarnation, at once."""
    m = make(4)
    effects = m.set_metadata(b"cap", NOW)
    me = m.local_member()
    assert (me.incarnation, me.meta, me.meta_version) == (2, b"cap", 1)
    assert effects[0] == MemberEvent("update", me)
    sends = [e for e in effects if isinstance(e, Send)]
    assert len(sends) == 3 and all(s.messages == (Alive(2, "a", ME, b"cap", 1),) for s in sends)


def test_set_metadata_rejects_oversized_blob():
    """Metadata above max_meta_bytes (1024) is refused at set time."""
    m = make(0)
    m.set_metadata(b"x" * 1024, NOW)
    with pytest.raises(ValueError):
        m.set_metadata(b"x" * 1025, NOW)


def test_peer_metadata_change_emits_update():
    """A newer alive with different meta is an update event."""
    m = make(1)
    effects = m.on_messages(peer(0), [Alive(2, "p0", peer(0), b"new", 1)], NOW)
    assert events(effects) == [("update", "p0")]
    assert m.member("p0").meta == b"new"


def test_leave_broadcasts_dead_from_self_immediately():
    """Graceful leave: dead(node=self, from=self), gossiped without waiting."""
    m = make(4)
    effects = m.leave(NOW)
    assert events(effects) == [("leave", "a")]
    sends = [e for e in effects if isinstance(e, Send)]
    assert sends and all(s.messages == (Dead(1, "a", "a"),) for s in sends)
    assert m.on_messages(peer(0), [Alive(9, "a", ME, b"", 0)], NOW) == []  # no resurrection


def test_gossip_round_sends_to_gossip_nodes_and_respects_transmit_limit():
    """SWIM §4.4: each broadcast reaches retransmit_mult*ceil(log10(n+1)) distinct
    alive members (a repeated target does not count), then leaves the queue."""
    m = make(4)
    m.on_messages(peer(0), [Alive(2, "p0", peer(0), b"z", 1)], NOW)
    sends = []
    for i in range(20):
        effects = m.on_timer("gossip", NOW + 0.2 * i)
        sends += [e for e in effects if isinstance(e, Send) and e.messages]
    assert {e.addr for e in sends} == {peer(i) for i in range(4)}  # n = 5 -> 4 * ceil(log10 6)
    assert 4 <= len(sends) <= 3 * 4 and len(m.broadcasts) == 0


def test_sends_to_suspect_members_do_not_spend_the_transmit_budget():
    """During a partition the unreachable (suspect) members get the news too, but
    only sends to alive members count: every alive member is reached."""
    m = make(6)
    for i in (4, 5):
        m.on_messages(peer(0), [Suspect(1, f"p{i}", "p0")], NOW)
    m.broadcasts.clear()
    m.on_messages(peer(0), [Alive(2, "p0", peer(0), b"z", 1)], NOW)
    got = set()
    for i in range(40):
        got |= {e.addr for e in m.on_timer("gossip", NOW + 0.2 * i)
                if isinstance(e, Send) and Alive(2, "p0", peer(0), b"z", 1) in e.messages}
    assert {peer(i) for i in range(4)} <= got and len(m.broadcasts) == 0


def test_suspicions_by_different_senders_are_queued_side_by_side():
    """Lifeguard confirmations: a relayed suspicion does not replace our own (or another
    sender's) about the same member; an alive about it replaces them all."""
    m = make(4)
    m.broadcasts.clear()
    m.broadcasts.queue("p3", Suspect(1, "p3", "a"), 10, sender="a")
    m.broadcasts.queue("p3", Suspect(1, "p3", "p0"), 10, sender="p0")
    m.broadcasts.queue("p3", Suspect(1, "p3", "p0"), 10, sender="p0")
    assert m.broadcasts.pending() == [Suspect(1, "p3", "a"), Suspect(1, "p3", "p0")]
    m.broadcasts.queue("p3", Alive(2, "p3", peer(3), b"", 0), 10)
    assert m.broadcasts.pending() == [Alive(2, "p3", peer(3), b"", 0)]


def test_gossip_includes_recently_dead_members():
    """memberlist gossip: dead members are gossiped to for gossip_to_the_dead_time."""
    m = make(1)
    m.on_messages(peer(0), [Dead(1, "p0", "x")], NOW)
    effects = m.on_timer("gossip", NOW + 1)
    assert [e.addr for e in effects if isinstance(e, Send)] == [peer(0)]
    m.on_messages(peer(0), [Alive(1, "zz", peer(3), b"", 0)], NOW + 40)
    effects = m.on_timer("gossip", NOW + 40)
    assert peer(0) not in [e.addr for e in effects if isinstance(e, Send)]


def test_push_pull_tick_picks_a_live_peer():
    """Anti-entropy: every push_pull_interval a full sync with one random live peer."""
    m = make(3)
    effects = m.on_timer("push_pull", NOW)
    assert effects[0] == SetTimer("push_pull", NOW + 30.0)
    assert isinstance(effects[1], StartPushPull) and effects[1].join is False


def test_push_pull_merge_turns_remote_dead_into_suspicion():
    """mergeState: remote dead -> local suspect (not instant death), left -> left."""
    m = make(2)
    remote = PushPull(False, (
        PushPullState("p0", peer(0), 1, MemberState.DEAD, b"", 0),
        PushPullState("p1", peer(1), 1, MemberState.LEFT, b"", 0),
        PushPullState("p9", peer(9), 4, MemberState.ALIVE, b"m", 2),
    ))
    effects = m.merge_push_pull(remote, NOW)
    assert events(effects) == [("suspect", "p0"), ("leave", "p1"), ("join", "p9")]


def test_push_pull_merge_ignores_what_it_knows_and_takes_what_is_newer():
    """A peer's full state that says nothing new (same incarnation and address)
    changes nothing and queues nothing; an entry with a newer incarnation is taken
    (an update), and a live name at another address keeps ours (memberlist
    aliveNode's address conflict)."""
    m = make(2)
    m.broadcasts.clear()
    before = {v.name: v for v in m.members()}
    assert m.merge_push_pull(m.push_pull_message(False), NOW + 1) == []
    assert m.merge_push_pull(PushPull(False, (
        PushPullState("p0", peer(0), 0, MemberState.ALIVE, b"old", 0),)), NOW + 1) == []
    assert {v.name: v for v in m.members()} == before and m.broadcasts.pending() == []
    effects = m.merge_push_pull(PushPull(False, (
        PushPullState("p0", peer(0), 5, MemberState.ALIVE, b"new", 3),
        PushPullState("p1", peer(7), 9, MemberState.ALIVE, b"thief", 1))), NOW + 2)
    assert events(effects) == [("update", "p0")]
    assert (m.member("p0").incarnation, m.member("p0").meta) == (5, b"new")
    assert (m.member("p1").addr, m.member("p1").incarnation) == ("127.0.0.1:7002", 1)


def test_join_push_pull_showing_our_older_life_bumps_incarnation():
    """Rejoin: if the seed knows our name at incarnation >= ours we outbid it."""
    m = make(0)
    remote = PushPull(False, (PushPullState("a", ME, 7, MemberState.DEAD, b"", 0),))
    m.merge_push_pull(remote, NOW, joining=True)
    assert m.local_member().incarnation == 8
    assert m.broadcasts.pending() == [Alive(8, "a", ME, b"", 0)]


def test_push_pull_request_merges_then_answers_with_refutation():
    """A served push-pull merges first, so a refutation of our death is in the reply."""
    m = make(1)
    reply, effects = m.on_push_pull_request(PushPull(True, (
        PushPullState("new", peer(8), 1, MemberState.ALIVE, b"", 0),
        PushPullState("a", ME, 1, MemberState.DEAD, b"", 0))), NOW)
    assert {s.name: s.incarnation for s in reply.states} == {"a": 2, "p0": 1, "new": 1}
    assert events(effects) == [("join", "new")]


def test_reconnect_tick_tries_a_dead_member():
    """Serf reconnect: a full sync with a random dead member, to heal partitions."""
    m = make(1)
    assert m.on_timer("reconnect", NOW) == [SetTimer("reconnect", NOW + 30.0)]
    m.on_messages(peer(0), [Dead(1, "p0", "x")], NOW)
    assert m.on_timer("reconnect", NOW) == [SetTimer("reconnect", NOW + 30.0), StartPushPull(peer(0), True)]


def test_piggybacked_packets_never_exceed_max_datagram():
    """Compound packets carry as many broadcasts as fit in max_datagram, no more."""
    m = make(0)
    for i in range(200):
        m.on_messages(peer(0), [Alive(1, f"x{i:03d}", ("127.0.9.%d" % (i % 250), 9000 + i), b"m" * 100, 1)], NOW)
    effects = m.on_messages(peer(0), [Ping(1, "a", "x", peer(0))], NOW)
    (send,) = effects
    assert len(send.messages) > 5
    packet = codec.encode_packet(CFG.cluster_name, send.messages, _keyring())
    assert len(packet) <= CFG.max_datagram
    assert len(packet) > CFG.max_datagram - 150  # and it is reasonably full


def _keyring():
    from zund.gossip.keyring import Keyring
    return Keyring([b"k" * 32])


def test_eager_gossip_passes_news_on_quickly():
    """zund addition: news from a peer arms a short gossip.eager timer, once."""
    m = make(2, cfg=config.lan())
    m.on_timer("gossip.eager", NOW)  # the one armed while make() added peers
    effects = m.on_messages(peer(0), [Alive(2, "p0", peer(0), b"n", 1)], NOW)
    assert SetTimer("gossip.eager", NOW + 0.005) in effects
    effects = m.on_messages(peer(1), [Alive(2, "p1", peer(1), b"n", 1)], NOW)
    assert not any(isinstance(e, SetTimer) for e in effects)
    effects = m.on_timer("gossip.eager", NOW + 0.005)
    assert len([e for e in effects if isinstance(e, Send)]) == 2


def test_member_suspected_by_others_is_probed_at_once_out_of_turn():
    """zund addition: hearing a suspicion starts a probe of the suspect now, buddy message included."""
    m = make(6)
    effects = m.on_messages(peer(3), [Suspect(1, "p3", "p5")], NOW)
    (send,) = [e for e in effects if isinstance(e, Send) and e.addr == peer(3)]
    assert send.messages[:2] == (Ping(m._probe.seq, "p3", "a", ME), Suspect(1, "p3", "a"))
    assert SetTimer("probe", NOW + 1.0) in effects  # the periodic tick moves: probe rate unchanged


def test_suspect_heard_while_probing_is_probed_next():
    """With a probe of ours running, the suspect is the next target instead."""
    m = make(6)
    start_probe(m)
    m.on_messages(peer(3), [Suspect(1, "p3", "p5")], NOW)
    m.on_messages(peer(0), [Ack(m._probe.seq)], NOW)  # whatever we probed answers
    effects, target, _ = start_probe(m, NOW + 1)
    assert target == "p3"


def test_only_about_suspicion_probers_members_probe_a_suspect_at_once():
    """At n = 102 a suspicion makes ~suspicion_probers (6) members probe, not all 100."""
    probed = 0
    for seed in range(200):
        m = make(100, seed=seed)
        effects = m.on_messages(peer(7), [Suspect(1, "p3", "p5")], NOW)
        probed += any(isinstance(e, Send) and e.addr == peer(3) for e in effects)
    assert 200 * 6 / 100 * 0.4 <= probed <= 200 * 6 / 100 * 2  # ~12 of 200


def test_out_of_turn_probes_are_limited_to_one_per_probe_interval():
    """A stream of suspicions cannot make a member probe faster than once per interval."""
    m = make(6)
    m.on_messages(peer(3), [Suspect(1, "p3", "p5")], NOW)
    m.on_messages(peer(3), [Ack(m._probe.seq)], NOW + 0.01)
    effects = m.on_messages(peer(4), [Suspect(1, "p4", "p5")], NOW + 0.02)
    assert not any(isinstance(e, Send) and e.addr == peer(4) for e in effects)
    effects, target, _ = start_probe(m, NOW + 1)
    assert target == "p4"


def test_confirmed_suspicion_ends_after_the_zund_minimum():
    """With k = 2 confirmations the suspicion ends suspicion_min_mult (1) * probe_interval after it began."""
    m = make(4)  # n = 5: min 1 s, max 24 s, k = 2
    m.on_messages(peer(1), [Suspect(1, "p0", "p1")], NOW)
    m.on_messages(peer(2), [Suspect(1, "p0", "p2")], NOW + 0.5)
    e2 = m.on_messages(peer(3), [Suspect(1, "p0", "p3")], NOW + 0.6)
    assert SetTimer("suspect:p0", NOW + 1.0) in e2
    assert events(m.on_timer("suspect:p0", NOW + 1.0)) == [("dead", "p0")]


def test_lone_accuser_still_waits_the_maximum():
    """Without confirmations a suspicion lasts 6 * 4 * probe_interval = 24 s at n = 5 (as memberlist)."""
    m = make(4)
    effects = m.on_messages(peer(1), [Suspect(1, "p0", "p1")], NOW)
    assert SetTimer("suspect:p0", NOW + 24.0) in effects


def test_metadata_changes_inside_the_push_window_coalesce_into_one_push():
    """Rate limit: a second change within push_min_interval_s waits for one push at the window's end."""
    m = make(4)
    first = m.set_metadata(b"v1", NOW)
    assert len([e for e in first if isinstance(e, Send)]) == 3
    assert SetTimer("gossip.eager", NOW + 0.02) in first  # the window's end
    second = m.set_metadata(b"v2", NOW + 0.005)
    third = m.set_metadata(b"v3", NOW + 0.010)
    assert [e for e in second + third if not isinstance(e, MemberEvent)] == []  # nothing sent yet
    pushed = [e for e in m.on_timer("gossip.eager", NOW + 0.02) if isinstance(e, Send)]
    latest = Alive(4, "a", ME, b"v3", 3)
    assert pushed and all(isinstance(e, Send) and latest in e.messages for e in pushed)
    assert not any(Alive(3, "a", ME, b"v2", 2) in e.messages for e in pushed)  # v2 never sent


def test_eager_relay_respects_the_push_rate_limit():
    """Relayed news right after our own push waits for the end of the push window."""
    m = make(2, cfg=config.lan())
    m.on_timer("gossip.eager", NOW)
    m.set_metadata(b"v1", NOW)
    effects = m.on_messages(peer(0), [Alive(2, "p0", peer(0), b"n", 1)], NOW + 0.001)
    assert not any(isinstance(e, Send) for e in effects)
    assert m.on_timer("gossip.eager", NOW + 0.015) == [SetTimer("gossip.eager", NOW + 0.02)]  # early: waits
    pushed = [e for e in m.on_timer("gossip.eager", NOW + 0.02) if isinstance(e, Send)]
    assert pushed and all(Alive(2, "p0", peer(0), b"n", 1) in e.messages for e in pushed)


def test_pushes_continue_until_the_transmit_budget_is_spent():
    """Queued news keeps going out once per window until it reached retransmit_mult *
    ceil(log10(n+1)) distinct alive members."""
    m = make(4)  # n = 5: 4 members per message
    sends = [e for e in m.set_metadata(b"v1", NOW) if isinstance(e, Send)]
    at = NOW
    while m._eager_pending:
        at += 0.02
        sends += [e for e in m.on_timer("gossip.eager", at) if isinstance(e, Send)]
    assert {e.addr for e in sends} == {peer(i) for i in range(4)} and len(m.broadcasts) == 0
    assert len(sends) <= 3 * 4 and at <= NOW + 0.02 * 4


def test_stale_accusation_of_us_is_answered_with_our_alive_to_its_sender():
    """zund addition: a suspect/dead about us below our incarnation (its sender missed our
    refutation) gets our current alive sent straight to the sender, once per probe interval."""
    m = make(3)
    m.on_messages(peer(0), [Suspect(1, "a", "p0")], NOW)  # refuted: we are at incarnation 2
    assert m.local_member().incarnation == 2
    effects = m.on_messages(peer(2), [Suspect(1, "a", "p1")], NOW + 5)
    (send,) = [e for e in effects if isinstance(e, Send)]
    assert send.addr == peer(1) and send.messages[0] == Alive(2, "a", ME, b"", 0)
    assert not any(isinstance(e, Send) for e in m.on_messages(peer(2), [Suspect(1, "a", "p1")], NOW + 5.5))
    effects = m.on_messages(peer(2), [Dead(1, "a", "p2")], NOW + 6)
    (send,) = [e for e in effects if isinstance(e, Send)]
    assert send.addr == peer(2) and send.messages[0] == Alive(2, "a", ME, b"", 0)
    assert m.local_member().incarnation == 2 and state_of(m, "a") == "alive"
