"""Pure tier: what ``Membership`` does with the kernel's word that a datagram found
no socket at a member's address (``on_unreachable``: ICMP port unreachable)."""

from zund.gossip.codec import Ack, IndirectPing, Nack, Ping, Suspect
from zund.gossip.member import MemberState
from zund.gossip.state import CancelTimer, Send, SetTimer

from tests.pure.gossip.test_gossip_state import ME, NOW, events, make, peer, start_probe, state_of


def addr_of(m, name):
    return m._members[name].addr


def sends(effects, kind):
    return [(e.addr, msg) for e in effects if isinstance(e, Send)
            for msg in e.messages if isinstance(msg, kind)]


def test_the_probe_of_an_unreachable_target_asks_the_relays_at_once():
    """The direct ping's timeout is not waited out: the indirect pings go now."""
    m = make(4)
    _, target, seq = start_probe(m)
    effects = m.on_unreachable(addr_of(m, target), NOW + 0.01)
    assert CancelTimer("probe.indirect") in effects
    relayed = sends(effects, IndirectPing)
    assert len(relayed) == 3
    assert {req.target for _, req in relayed} == {target}
    assert state_of(m, target) == "alive"  # relays may still reach it
    # the timer's firing later finds the indirect pings already sent
    assert sends(m.on_timer("probe.indirect", NOW + 0.5), IndirectPing) == []


def test_an_unreachable_target_is_suspected_once_every_relay_nacked_without_a_health_cost():
    """The probe ends at the last nack, not at its deadline, and the local health
    score is untouched (the kernel explained the failure, not our slowness)."""
    m = make(4)
    _, target, seq = start_probe(m)
    m.on_unreachable(addr_of(m, target), NOW + 0.01)
    *others, last = sorted(m._probe.relays)
    for relay in others:
        m.on_messages(relay, [Nack(seq)], NOW + 0.02)
    assert state_of(m, target) == "alive"
    effects = m.on_messages(last, [Nack(seq)], NOW + 0.03)
    assert state_of(m, target) == "suspect"
    assert CancelTimer("probe.deadline", "unreachable") in effects
    assert events(effects) == [("suspect", target)]
    assert m.broadcasts.pending() == [Suspect(1, target, "a")]
    assert m.awareness.score == 0
    # the deadline timer, had it fired anyway, changes nothing
    assert m.on_timer("probe.deadline", NOW + 1.0) == []


def test_an_unreachable_target_is_not_suspected_before_the_relays_answered():
    """Until every relay has nacked, an ack through one of them can still come:
    the probe runs on (an ack then completes it as usual)."""
    m = make(4)
    _, target, seq = start_probe(m)
    m.on_unreachable(addr_of(m, target), NOW + 0.01)
    first = sorted(m._probe.relays)[0]
    m.on_messages(first, [Nack(seq)], NOW + 0.02)
    assert state_of(m, target) == "alive"
    assert m._probe is not None


def test_a_dead_relay_is_not_waited_for_nor_counted_against_our_health():
    """A relay the kernel says is gone can never nack: the probe settles on the
    others' nacks."""
    m = make(4)
    _, target, seq = start_probe(m)
    m.on_unreachable(addr_of(m, target), NOW + 0.01)
    relays = sorted(m._probe.relays)
    m.on_unreachable(relays[0], NOW + 0.02)
    for relay in relays[1:]:
        m.on_messages(relay, [Nack(seq)], NOW + 0.03)
    assert state_of(m, target) == "suspect"
    assert m.awareness.score == 0


def test_a_relay_nacks_at_once_when_its_ping_finds_nobody():
    """The relay's nack does not wait for ``relay_nack_s``; a later timer sends
    no second nack."""
    m = make(2)
    asker, target = peer(0), peer(1)
    effects = m.on_messages(asker, [IndirectPing(77, "p1", target, True, "p0", asker)], NOW)
    (ping_addr, ping), = sends(effects, Ping)
    assert ping_addr == target
    effects = m.on_unreachable(target, NOW + 0.005)
    assert sends(effects, Nack) == [(asker, Nack(77))]
    seq = ping.seq
    assert CancelTimer(f"relay.nack:{seq}") in effects
    assert sends(m.on_timer(f"relay.nack:{seq}", NOW + 0.4), Nack) == []


def test_an_unreachable_member_we_were_not_probing_is_probed_now_once_per_interval():
    """A datagram of ours (gossip, an answer) found nobody at a member's address:
    it is probed at once, out of turn; another such word inside the probe
    interval waits for the next tick."""
    m = make(4)
    victim = "p2"
    effects = m.on_unreachable(addr_of(m, victim), NOW)
    pings = sends(effects, Ping)
    assert [(a, p.target) for a, p in pings] == [(addr_of(m, victim), victim)]
    assert SetTimer("probe.indirect", NOW + 0.5) in effects
    # the probe ends (acked); a second report inside the interval starts none now
    seq = pings[0][1].seq
    m.on_messages(addr_of(m, victim), [Ack(seq)], NOW + 0.01)
    assert sends(m.on_unreachable(addr_of(m, "p3"), NOW + 0.2), Ping) == []
    # ...but p3 is the next tick's target
    _, target, _ = start_probe(m, NOW + 1.0)
    assert target == "p3"


def test_unreachable_words_about_strangers_dead_members_and_ourselves_change_nothing():
    """Only live members are probed for it; our own address, an unknown one or a
    member already dead is ignored."""
    m = make(3)
    assert m.on_unreachable(("127.0.0.1", 9), NOW) == []
    assert m.on_unreachable(ME, NOW) == []
    _, target, seq = start_probe(m)
    m.on_timer("probe.indirect", NOW + 0.5)
    m.on_timer("probe.deadline", NOW + 1.0)
    m._members[target].state = MemberState.DEAD
    assert sends(m.on_unreachable(addr_of(m, target), NOW + 2.0), Ping) == []
