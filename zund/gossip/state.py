"""The pure SWIM + Lifeguard state machine (memberlist state.go, in one object).

``Membership`` takes events (packets already decoded, timer firings, API
calls) together with ``now`` and returns a list of *effects* for the shell to
carry out.  It never touches sockets, the reactor, ``time`` or ``random``: an
``rng: random.Random`` is passed in, so a simulation replays from its seed.

Effects:

- ``Send(addr, messages)``   one datagram; ``messages`` already fit ``max_datagram``
- ``SetTimer(name, at)``     (re)arm the named timer for absolute time ``at``
- ``CancelTimer(name, reason)``
- ``StartPushPull(addr, join)``  open a TCP full-state exchange
- ``MemberEvent(kind, member)``  kind in join|update|suspect|dead|leave|alive

Timer names: ``probe``, ``probe.indirect``, ``probe.deadline``, ``gossip``, ``gossip.eager``,
``push_pull``, ``reconnect``, ``suspect:<member name>``, ``relay:<seq>``,
``relay.nack:<seq>``.

zund additions to memberlist (each bounded, see ``GossipConfig``): news is
pushed at once instead of on the next gossip tick (``_push``: our metadata
change and news from timers immediately, news from peers after
``eager_gossip_delay_s``; at most one such round per ``push_min_interval_s``,
what comes inside the window coalesces into one round at its end); and a new
suspicion heard from a peer makes about ``suspicion_probers`` members probe the
suspect at once (``_check_suspect``), so Lifeguard's confirmations arrive one
probe interval after the suspicion; and the kernel's word that a datagram found
no socket at a member's address (ICMP port unreachable, ``on_unreachable``:
the process is gone, its host is up) ends the waits that only a silent member
needs: the direct ping's timeout, a relay's nack delay, and the rest of the
probe interval once every relay has nacked; a member we were not probing is
probed at once. Only a probe can make a suspicion, and a suspicion can be
refuted as before, so a forged ICMP message costs a refutation, never a death.

Only the owning shell may call methods; calls are not re-entrant.
"""

from __future__ import annotations

import random

import attrs

from zund.gossip import codec
from zund.gossip.awareness import Awareness
from zund.gossip.broadcast import BroadcastQueue
from zund.gossip.codec import Ack, Alive, Dead, IndirectPing, Nack, Ping, PushPull, PushPullState, Suspect
from zund.gossip.config import GossipConfig, push_pull_scale
from zund.gossip.member import Member, MemberState, MemberView
from zund.gossip.suspicion import Suspicion, expected_confirmations, suspicion_timeout

ALIVE, SUSPECT, DEAD, LEFT = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT
MAX_RELAYS = 1024


# ------------------------------------------------------------------ effects

@attrs.frozen
class Send:
    addr: tuple
    messages: tuple


@attrs.frozen
class SetTimer:
    name: str
    at: float


@attrs.frozen
class CancelTimer:
    name: str
    #: why, where the shell counts it: "unreachable" on ``probe.deadline`` when a
    #: probe ended early on the kernel's word (``_probe_settled``), not on an ack
    reason: str = ""


@attrs.frozen
class StartPushPull:
    addr: tuple
    join: bool


@attrs.frozen
class MemberEvent:
    kind: str
    member: MemberView


@attrs.define
class _Probe:
    seq: int
    target: str
    incarnation: int
    addr: tuple
    nacks: int = 0
    #: the indirect pings went out (to ``relays``)
    indirect: bool = False
    #: the relays asked, by address, less those found unreachable (they never nack)
    relays: tuple = ()
    #: the kernel said nothing listens at ``addr`` (``on_unreachable``)
    unreachable: bool = False

    @property
    def expected_nacks(self) -> int:
        return len(self.relays)


@attrs.define
class _Relay:
    orig_seq: int
    source_addr: tuple
    nack: bool
    nacked: bool = False
    target_addr: tuple = ()


def _alive(member: Member | None) -> bool:
    """Believed reachable: a send to it spends a broadcast's transmit budget."""
    return member is not None and member.state is ALIVE


class Membership:
    """Membership list of one node plus the rules that change it."""

    def __init__(self, config: GossipConfig, name: str, addr: tuple, rng: random.Random, now: float,
                 meta: bytes = b"", incarnation: int = 1):
        if len(meta) > config.max_meta_bytes:
            raise ValueError(f"metadata is {len(meta)} bytes; the limit is {config.max_meta_bytes}")
        self.config = config
        self.name = name
        self.rng = rng
        self.local = Member(name=name, addr=tuple(addr), incarnation=incarnation, state=ALIVE,
                            meta=bytes(meta), meta_version=1 if meta else 0, state_changed_at=now)
        self._members: dict[str, Member] = {name: self.local}
        self._order: list[str] = [name]
        self._probe_index = 0
        self._probe: _Probe | None = None
        self._probe_tick_missed = False
        self._probe_first: str | None = None
        #: a member the kernel said nothing listens for (``on_unreachable``):
        #: probed next, out of turn, once
        self._probe_gone: str | None = None
        self._relays: dict[int, _Relay] = {}
        self._suspicions: dict[str, Suspicion] = {}
        self._seq = 0
        self._n_cache: int | None = None
        self.awareness = Awareness(config.awareness_max_multiplier)
        self.broadcasts = BroadcastQueue(config.retransmit_mult, config.max_broadcasts)
        self.left = False
        self._queued = 0
        self._eager_pending = False
        self._last_push_at = float("-inf")
        self._last_extra_probe_at = float("-inf")
        self._stale_answered: dict[str, float] = {}
        self._overhead = codec.packet_overhead(config.cluster_name)

    # ------------------------------------------------------------ queries

    def members(self) -> list[MemberView]:
        return [m.view() for m in self._members.values()]

    def member(self, name: str) -> MemberView | None:
        m = self._members.get(name)
        return m.view() if m else None

    def local_member(self) -> MemberView:
        return self.local.view()

    def estimated_size(self, now: float | None = None) -> int:
        """memberlist estNumNodes: members not yet forgotten (self included)."""
        if self._n_cache is None:
            self._n_cache = sum(1 for m in self._members.values() if self._countable(m))
        return self._n_cache

    def _countable(self, m: Member) -> bool:
        return m.state in (ALIVE, SUSPECT) or self._recently_dead_at(m, self._last_now)

    def _recently_dead_at(self, m: Member, now: float) -> bool:
        return m.state in (DEAD, LEFT) and now - m.state_changed_at <= self.config.gossip_to_the_dead_time_s

    _last_now = 0.0

    # ------------------------------------------------------------ lifecycle

    def start(self, now: float) -> list:
        """Arm the periodic timers, each with a random stagger (memberlist schedule)."""
        self._last_now = now
        cfg = self.config
        self._queue(Alive(self.local.incarnation, self.name, self.local.addr, self.local.meta,
                          self.local.meta_version))
        return [
            SetTimer("probe", now + self.rng.uniform(0, cfg.probe_interval_s)),
            SetTimer("gossip", now + self.rng.uniform(0, cfg.gossip_interval_s)),
            SetTimer("push_pull", now + self.rng.uniform(0, cfg.push_pull_interval_s)),
            SetTimer("reconnect", now + self.rng.uniform(0, cfg.reconnect_interval_s)),
        ]

    def leave(self, now: float) -> list:
        """Graceful leave: a dead message about ourselves *from* ourselves.

        memberlist Leave: node == from tells peers we left on purpose (state
        ``left``, not ``dead``).  It is pushed out at once, not at the next tick.
        """
        self._last_now = now
        if self.left:
            return []
        self.left = True
        effects = self._dead_node(Dead(self.local.incarnation, self.name, self.name), now)
        return effects + self._gossip_round(now)

    def set_metadata(self, meta: bytes, now: float) -> list:
        """Replace our metadata blob and disseminate it quickly.

        Like memberlist UpdateNode: an alive message with a bumped incarnation
        (so it overrides everything older) goes straight to the broadcast queue;
        unlike memberlist we also gossip it immediately instead of waiting up to
        one gossip interval.  Raises ValueError above ``max_meta_bytes``.
        """
        self._last_now = now
        meta = bytes(meta)
        if len(meta) > self.config.max_meta_bytes:
            raise ValueError(f"metadata is {len(meta)} bytes; the limit is {self.config.max_meta_bytes}")
        if self.left:
            return []
        self.local.meta = meta
        self.local.meta_version += 1
        self.local.incarnation += 1
        self._queue(self._local_alive())
        return [MemberEvent("update", self.local.view())] + self._push(now)

    def bootstrap(self, states, now: float) -> list:
        """Adopt a full member list without gossiping it (benchmarks' steady state)."""
        effects = self.merge_push_pull(PushPull(False, tuple(states)), now)
        self.broadcasts.clear()
        return effects

    # ------------------------------------------------------------ packets

    def on_messages(self, from_addr: tuple, messages, now: float) -> list:
        """Handle the messages of one received (decoded) datagram."""
        self._last_now = now
        effects: list = []
        queued_before = self._queued
        for msg in messages:
            kind = type(msg)
            if kind is Ping:
                effects += self._on_ping(msg, from_addr, now)
            elif kind is Ack:
                effects += self._on_ack(msg, now)
            elif kind is Nack:
                effects += self._on_nack(msg, now)
            elif kind is IndirectPing:
                effects += self._on_indirect_ping(msg, now)
            elif kind is Alive:
                effects += self._alive_node(msg, now)
            elif kind is Suspect:
                effects += self._suspect_node(msg, now)
            elif kind is Dead:
                effects += self._dead_node(msg, now)
                self._told_by(msg.node, from_addr)
            # PushPull over UDP is not a thing: ignored.
        if self._queued != queued_before and self.config.eager_gossip_delay_s > 0:
            # Fresh news: pass it on now rather than at the next gossip tick
            # (the short delay lets the rest of a burst join the same round).
            effects += self._push(now, self.config.eager_gossip_delay_s)
        return effects

    def _on_ping(self, ping: Ping, from_addr: tuple, now: float) -> list:
        # memberlist handlePing: a ping meant for another node (e.g. our address
        # was reused after a restart under a different name) gets no ack.
        if ping.target != self.name:
            return []
        return [self._send(ping.source_addr or from_addr, [Ack(ping.seq)],
                           ping.source_name)]

    def _on_indirect_ping(self, req: IndirectPing, now: float) -> list:
        """SWIM §3.1 ping-req: probe the target on the requester's behalf."""
        if len(self._relays) >= MAX_RELAYS:
            return []
        seq = self._next_seq()
        self._relays[seq] = _Relay(req.seq, req.source_addr, req.nack,
                                   target_addr=tuple(req.target_addr))
        effects = [
            self._send(req.target_addr, [Ping(seq, req.target, self.name, self.local.addr)],
                       req.target, _alive(self._members.get(req.target))),
            # forward the target's ack until probe_timeout (memberlist handleIndirectPing)
            SetTimer(f"relay:{seq}", now + self.config.probe_timeout_s),
        ]
        if req.nack:
            # ...but nack in time for the asker's deadline (GossipConfig.relay_nack_s)
            effects.append(SetTimer(f"relay.nack:{seq}", now + self.config.relay_nack_s))
        return effects

    def _on_ack(self, ack: Ack, now: float) -> list:
        probe = self._probe
        if probe is not None and ack.seq == probe.seq:
            # Any ack before the deadline (direct, late direct or relayed)
            # completes the probe; Lifeguard: a successful probe improves health.
            self._probe = None
            self.awareness.apply_delta(-1)
            return [CancelTimer("probe.indirect"), CancelTimer("probe.deadline")] + self._after_probe(now)
        relay = self._relays.pop(ack.seq, None)
        if relay is not None:
            effects = [CancelTimer(f"relay:{ack.seq}")]
            if relay.nack and not relay.nacked:
                effects.append(CancelTimer(f"relay.nack:{ack.seq}"))
            return effects + [self._send(relay.source_addr, [Ack(relay.orig_seq)])]
        return []

    def _on_nack(self, nack: Nack, now: float) -> list:
        probe = self._probe
        if probe is not None and nack.seq == probe.seq:
            probe.nacks += 1
            return self._probe_settled(now)
        return []

    # ------------------------------------------------------------ unreachable

    def on_unreachable(self, addr: tuple, now: float) -> list:
        """A datagram we sent to ``addr`` found no socket there: the kernel's
        ICMP port unreachable (zund addition, see the module doc). A dead host
        says nothing; a dead process on a live host says this at once.

        - our running probe's target: the indirect pings go now instead of at
          the direct ping's timeout, and the probe ends as soon as every relay
          has nacked (``_probe_settled``) instead of at its deadline;
        - a relay of our running probe: it can never nack, so it is not waited
          for (nor counted against our health);
        - a target we relay pings to: the nack goes now;
        - any other live member: probed now (out of turn, at most one such
          probe per probe interval, as ``_check_suspect``) or at our next tick.
        """
        self._last_now = now
        addr = tuple(addr)
        queued_before = self._queued
        effects: list = []
        probe = self._probe
        if probe is not None and tuple(probe.addr) == addr:
            if not probe.unreachable:
                probe.unreachable = True
                if not probe.indirect:
                    effects += [CancelTimer("probe.indirect")] + self._probe_indirect(now)
                effects += self._probe_settled(now)
        elif probe is not None and addr in probe.relays:
            relays = list(probe.relays)
            relays.remove(addr)
            probe.relays = tuple(relays)
            effects += self._probe_settled(now)
        else:
            member = self._member_at(addr)
            if member is not None and member is not self.local \
                    and member.state in (ALIVE, SUSPECT):
                self._probe_gone = member.name
                if (self._probe is None
                        and now - self._last_extra_probe_at >= self.config.probe_interval_s):
                    self._last_extra_probe_at = now
                    effects += self._start_probe(now)
        for seq, relay in list(self._relays.items()):
            if relay.target_addr == addr:
                effects += self._relay_nack_now(seq)
        if self._queued != queued_before:
            effects += self._push(now)
        return effects

    def _probe_settled(self, now: float) -> list:
        """End the running probe early when its outcome is already known: the
        target is unreachable and every relay still able to answer has nacked
        (no ack can come). The target is suspected as at the deadline, without
        Lifeguard's health penalty: the kernel, not our slowness, explained it."""
        probe = self._probe
        if probe is None or not probe.unreachable or not probe.indirect \
                or probe.nacks < probe.expected_nacks:
            return []
        self._probe = None
        effects = [CancelTimer("probe.deadline", "unreachable")]
        effects += self._suspect_node(Suspect(probe.incarnation, probe.target, self.name), now)
        return effects + self._after_probe(now)

    # ------------------------------------------------------------ timers

    def on_timer(self, name: str, now: float) -> list:
        self._last_now = now
        queued_before = self._queued
        effects = self._on_timer(name, now)
        if self._queued != queued_before:
            # News we made ourselves (a suspicion, a confirmation, a death): push it now.
            effects += self._push(now)
        return effects

    def _on_timer(self, name: str, now: float) -> list:
        if name == "probe":
            return self._probe_tick(now)
        if name == "probe.indirect":
            return self._probe_indirect(now)
        if name == "probe.deadline":
            return self._probe_deadline(now)
        if name == "gossip":
            return [SetTimer("gossip", now + self.config.gossip_interval_s)] + self._gossip_round(now)
        if name == "gossip.eager":
            self._eager_pending = False
            return self._push(now)
        if name == "push_pull":
            return self._push_pull_tick(now)
        if name == "reconnect":
            return self._reconnect_tick(now)
        prefix, _, rest = name.partition(":")
        if prefix == "suspect":
            return self._suspicion_expired(rest, now)
        if prefix == "relay":
            return self._relay_expired(int(rest))
        if prefix == "relay.nack":
            return self._relay_nack(int(rest))
        return []

    # ------------------------------------------------------------ probing (SWIM §4.1-4.3)

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def _probe_tick(self, now: float) -> list:
        if self._probe is not None:
            # Lifeguard stretched the running probe past one interval: skip the
            # tick like Go's ticker does; the probe's end starts the next one.
            self._probe_tick_missed = True
            return []
        return self._start_probe(now)

    def _start_probe(self, now: float) -> list:
        cfg = self.config
        effects: list = [SetTimer("probe", now + cfg.probe_interval_s)]
        target = self._next_probe_target(now)
        if target is None:
            return effects
        seq = self._next_seq()
        self._probe = _Probe(seq, target.name, target.incarnation, target.addr)
        messages = [Ping(seq, target.name, self.name, self.local.addr)]
        if target.state is SUSPECT:
            # Lifeguard §IV-C buddy system: tell the suspect directly so it can
            # refute without waiting for the gossip to reach it.
            messages.append(Suspect(target.incarnation, target.name, self.name))
        effects.append(self._send(target.addr, messages, target.name, _alive(target)))
        # Lifeguard §IV-A: local health scales both the probe timeout and the
        # probe interval (memberlist only scales the interval).
        effects.append(SetTimer("probe.indirect", now + self.awareness.scale(cfg.probe_timeout_s)))
        effects.append(SetTimer("probe.deadline", now + self.awareness.scale(cfg.probe_interval_s)))
        return effects

    def _next_probe_target(self, now: float) -> Member | None:
        """SWIM §4.3 round-robin over a shuffled list (memberlist state.go probe).

        zund addition: a member we just heard is suspected by someone else is
        probed next, out of turn, once.  If it is really gone our failed probe is
        an independent confirmation that shortens the Lifeguard timeout now
        rather than whenever its round-robin turn comes; if it is alive our ping
        carries the buddy suspect message so it can refute sooner.  The
        round-robin order is untouched, so SWIM's detection bound still holds.
        """
        first, self._probe_first = self._probe_first, None
        if first is not None:
            member = self._members.get(first)
            if member is not None and member.state is SUSPECT:
                return member
        gone, self._probe_gone = self._probe_gone, None
        if gone is not None:
            member = self._members.get(gone)
            if member is not None and member.state in (ALIVE, SUSPECT):
                return member
        for _ in range(2 * len(self._order) + 2):
            if self._probe_index >= len(self._order):
                self._reset_order(now)
                self._probe_index = 0
                if len(self._order) <= 1:
                    return None
            name = self._order[self._probe_index]
            self._probe_index += 1
            member = self._members.get(name)
            if member is None or member is self.local or member.state in (DEAD, LEFT):
                continue
            return member
        return None

    def _reset_order(self, now: float) -> None:
        """memberlist resetNodes: forget long-dead members, then reshuffle."""
        retention = self.config.dead_member_retention_s
        for name in [n for n, m in self._members.items()
                     if m.state in (DEAD, LEFT) and m is not self.local and now - m.state_changed_at > retention]:
            del self._members[name]
        self._order = list(self._members)
        self.rng.shuffle(self._order)
        self._n_cache = None

    def _probe_indirect(self, now: float) -> list:
        """Direct ping timed out: SWIM §4.2 ping-req through k random members
        (once per probe: ``on_unreachable`` may have sent them already)."""
        probe = self._probe
        if probe is None or probe.indirect:
            return []
        peers = self._random_members(
            self.config.indirect_checks,
            lambda m: m.state is ALIVE and m.name != probe.target)
        probe.indirect = True
        probe.relays = tuple(tuple(peer.addr) for peer in peers)
        req = IndirectPing(probe.seq, probe.target, probe.addr, True, self.name, self.local.addr)
        return [self._send(peer.addr, [req], peer.name) for peer in peers]  # alive ones

    def _probe_deadline(self, now: float) -> list:
        """No ack within the (scaled) interval: suspect the target (SWIM §4.2)."""
        probe = self._probe
        if probe is None:
            return []
        self._probe = None
        # Lifeguard §IV-A: missing nacks mean *we* may be the slow one; with no
        # relays to ask, any failed probe counts against our health.
        if probe.expected_nacks > 0:
            self.awareness.apply_delta(max(probe.expected_nacks - probe.nacks, 0))
        else:
            self.awareness.apply_delta(1)
        effects = self._suspect_node(Suspect(probe.incarnation, probe.target, self.name), now)
        return effects + self._after_probe(now)

    def _after_probe(self, now: float) -> list:
        if self._probe_tick_missed:
            self._probe_tick_missed = False
            return self._start_probe(now)
        return []

    def _relay_nack(self, seq: int) -> list:
        """No ack from the target yet: tell the asker we are alive (Lifeguard §IV-A)
        while it can still count it; a later ack is still forwarded."""
        relay = self._relays.get(seq)
        if relay is None or not relay.nack or relay.nacked:
            return []
        relay.nacked = True
        return [self._send(relay.source_addr, [Nack(relay.orig_seq)])]

    def _relay_nack_now(self, seq: int) -> list:
        """The relay's nack, if not sent yet, goes now instead of at its timer."""
        effects = self._relay_nack(seq)
        return [CancelTimer(f"relay.nack:{seq}")] + effects if effects else []

    def _relay_expired(self, seq: int) -> list:
        """The relay's forwarding window ends; a nack not sent yet (its timer not
        run, e.g. both due at once after a stall) goes now."""
        effects = self._relay_nack_now(seq)
        self._relays.pop(seq, None)
        return effects

    # ------------------------------------------------------------ state rules

    def _alive_node(self, a: Alive, now: float, bootstrap: bool = False) -> list:
        """memberlist state.go aliveNode."""
        if self.left and a.node == self.name:
            return []  # never resurrect ourselves after Leave
        member = self._members.get(a.node)
        updates_addr = False
        if member is None:
            if len(self._members) >= self.config.max_members:
                return []
            # Unknown members start as "dead" so their first alive is a join.
            member = Member(name=a.node, addr=a.addr, incarnation=-1, state=DEAD,
                            meta=b"", meta_version=0, state_changed_at=now)
            self._members[a.node] = member
            # memberlist randomOffset: insert at a random position so the
            # failure-detection bound stays low on average.
            self._order.append(a.node)
            j = self.rng.randrange(len(self._order))
            self._order[j], self._order[-1] = self._order[-1], self._order[j]
            self._n_cache = None
        elif member.addr != tuple(a.addr):
            reclaim = self.config.dead_node_reclaim_time_s
            can_reclaim = reclaim > 0 and now - member.state_changed_at > reclaim
            if member.state is LEFT or (member.state is DEAD and can_reclaim):
                updates_addr = True
            else:
                return []  # conflicting address for a live name: keep ours

        is_local = member is self.local
        if not is_local and a.incarnation <= member.incarnation and not updates_addr:
            return []
        if is_local and a.incarnation < member.incarnation:
            return []

        effects = self._cancel_suspicion(a.node)
        old_state, old_meta, old_version = member.state, member.meta, member.meta_version

        if is_local and not bootstrap:
            # Our own alive echoed back is fine; anything else claiming to be
            # us at our incarnation (e.g. our previous life) is refuted.
            if (a.incarnation == member.incarnation and a.meta == member.meta
                    and a.meta_version == member.meta_version):
                return effects
            return effects + self._refute(a.incarnation)

        self._queue(a)
        member.incarnation = a.incarnation
        member.meta = a.meta
        member.meta_version = a.meta_version
        member.addr = tuple(a.addr)
        if member.state is not ALIVE:
            self._set_state(member, ALIVE, now)

        if old_state in (DEAD, LEFT):
            effects.append(MemberEvent("join", member.view()))
        else:
            if old_state is SUSPECT:
                effects.append(MemberEvent("alive", member.view()))
            if old_meta != member.meta or old_version != member.meta_version:
                effects.append(MemberEvent("update", member.view()))
        return effects

    def _suspect_node(self, s: Suspect, now: float) -> list:
        """memberlist state.go suspectNode (SWIM §4.2 suspicion, Lifeguard §IV-B)."""
        member = self._members.get(s.node)
        if member is None:
            return []
        if s.incarnation < member.incarnation:
            return self._answer_stale(s, now)
        suspicion = self._suspicions.get(s.node)
        if suspicion is not None:
            # Lifeguard: an independent confirmation shortens the timeout;
            # re-gossip it so other members can count it too.
            if suspicion.confirm(s.sender, now):
                self._queue(s)
                return [SetTimer(f"suspect:{s.node}", suspicion.deadline)]
            return []
        if member.state is not ALIVE:
            return []
        if member is self.local:
            return self._refute(s.incarnation)  # SWIM §4.2: refute with a higher incarnation
        self._queue(s)
        member.incarnation = s.incarnation
        self._set_state(member, SUSPECT, now)
        cfg = self.config
        n = self.estimated_size()
        k = expected_confirmations(cfg.suspicion_mult, n)
        min_s = suspicion_timeout(cfg.suspicion_min_mult, n, cfg.probe_interval_s)
        max_s = cfg.suspicion_max_timeout_mult * suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval_s)
        suspicion = Suspicion(s.sender, k, min_s, max_s, now)
        self._suspicions[s.node] = suspicion
        effects = [SetTimer(f"suspect:{s.node}", suspicion.deadline), MemberEvent("suspect", member.view())]
        if s.sender != self.name:
            effects += self._check_suspect(member, n, now)
        return effects

    def _check_suspect(self, member: Member, n: int, now: float) -> list:
        """zund addition: probe a member someone else suspects, at once, maybe.

        The suspect becomes our next probe target (so our ping carries the
        buddy suspect within a probe interval), and with probability
        ``min(1, suspicion_probers / (n - 2))`` (about that many members, not
        all n) if no probe of ours is running (and we did not already start
        one out of turn this probe interval) the probe starts now; the periodic
        tick is re-armed one interval later, so our probe rate is unchanged.
        If the suspect is gone our failed probe is an independent confirmation
        one probe interval after the suspicion; if it is alive our ping carries
        the buddy suspect so it refutes at once.  The round-robin order is
        untouched, so SWIM's detection bound still holds.
        """
        cfg = self.config
        self._probe_first = member.name  # everyone: next tick at the latest (buddy system)
        share = cfg.suspicion_probers / max(n - 2, 1)
        if cfg.suspicion_probers <= 0 or (share < 1.0 and self.rng.random() >= share):
            return []
        if self._probe is not None or now - self._last_extra_probe_at < cfg.probe_interval_s:
            return []
        self._last_extra_probe_at = now
        return self._start_probe(now)

    def _suspicion_expired(self, name: str, now: float) -> list:
        suspicion = self._suspicions.get(name)
        member = self._members.get(name)
        if suspicion is None or member is None or member.state is not SUSPECT:
            return []
        if now < suspicion.deadline:  # rescheduled by a confirmation; stale firing
            return [SetTimer(f"suspect:{name}", suspicion.deadline)]
        return self._dead_node(Dead(member.incarnation, name, self.name), now)

    def _dead_node(self, d: Dead, now: float) -> list:
        """memberlist state.go deadNode; ``node == sender`` means a graceful leave."""
        member = self._members.get(d.node)
        if member is None:
            return []
        if d.incarnation < member.incarnation:
            return self._answer_stale(d, now)
        effects = self._cancel_suspicion(d.node)
        if member.state in (DEAD, LEFT):
            return effects
        if member is self.local and not self.left:
            return effects + self._refute(d.incarnation)
        self._queue(d)
        member.incarnation = d.incarnation
        left = d.node == d.sender
        self._set_state(member, LEFT if left else DEAD, now)
        effects.append(MemberEvent("leave" if left else "dead", member.view()))
        return effects

    def _told_by(self, name: str, from_addr: tuple) -> None:
        """The member at ``from_addr`` sent us a dead about ``name``, so it has the
        news: our own dead spends no transmit on it. Without this, when several
        members declare at once (Lifeguard's confirmations make that usual) each
        spends its small budget (4 below 10 members) on the others that declared
        and on partitioned members not yet suspected, and one majority member
        could hear no dead at all and wait out its own suspicion (seen in the
        partition simulator: ~4 in 1,000 seeds of 7/3, ~1 in 1,000 with this).
        A linear scan (``_member_at``): dead news is rare."""
        member = self._member_at(from_addr)
        if member is not None:
            self.broadcasts.mark_told(name, member.name)

    def _member_at(self, addr: tuple) -> Member | None:
        """The member at ``addr``, by a linear scan (a member's address can change,
        and the callers are rare: dead news, the kernel's unreachable)."""
        addr = tuple(addr)
        for m in self._members.values():
            if m.addr == addr:
                return m
        return None

    def _answer_stale(self, msg, now: float) -> list:
        """zund addition: an accusation of us older than our incarnation means its
        sender missed our refutation (e.g. every copy was lost); memberlist ignores
        it and the sender's suspicion may run out into a false death.  We send the
        sender our current alive directly, at most once per probe interval each."""
        if msg.node != self.name or self.left or msg.sender == self.name:
            return []
        sender = self._members.get(msg.sender)
        if sender is None or sender.state in (DEAD, LEFT):
            return []
        last = self._stale_answered.get(msg.sender)
        if last is not None and now - last < self.config.probe_interval_s:
            return []
        if len(self._stale_answered) > 4 * len(self._members):
            self._stale_answered.clear()
        self._stale_answered[msg.sender] = now
        return [self._send(sender.addr, [self._local_alive()], sender.name, _alive(sender))]

    def _refute(self, accused_incarnation: int) -> list:
        """memberlist state.go refute: outbid the accusation, costs local health."""
        incarnation = self.local.incarnation + 1
        if accused_incarnation >= incarnation:
            incarnation = accused_incarnation + 1
        self.local.incarnation = incarnation
        # Lifeguard §IV-A: being accused suggests we are the slow one.
        self.awareness.apply_delta(1)
        self._queue(self._local_alive())
        return []

    def _cancel_suspicion(self, name: str) -> list:
        if self._suspicions.pop(name, None) is not None:
            return [CancelTimer(f"suspect:{name}")]
        return []

    def _set_state(self, member: Member, state: MemberState, now: float) -> None:
        member.state = state
        member.state_changed_at = now
        self._n_cache = None

    def _local_alive(self) -> Alive:
        m = self.local
        return Alive(m.incarnation, m.name, m.addr, m.meta, m.meta_version)

    # ------------------------------------------------------------ dissemination (SWIM §4.4)

    def _queue(self, msg) -> None:
        self._queued += 1
        self.broadcasts.queue(msg.node, msg, codec.message_size(msg),
                              msg.sender if isinstance(msg, Suspect) else None)

    def _send(self, addr: tuple, messages: list, to: str | None = None,
              counted: bool = True) -> Send:
        """One datagram: ``messages`` plus as many queued broadcasts as fit.
        ``to``: the member it goes to, if known; ``counted``: whether it is
        believed reachable (alive, or the sender of the packet we answer), so
        that the broadcasts count as transmissions (once per member, see
        ``broadcast``)."""
        used = self._overhead + sum(codec.message_size(m) for m in messages)
        extra = self.broadcasts.get(0, self.config.max_datagram - used, self.estimated_size(),
                                    counted, to)
        return Send(tuple(addr), tuple(messages) + tuple(extra))

    def _push(self, now: float, delay: float = 0.0) -> list:
        """The immediate push: an out-of-tick gossip round (queued broadcasts
        to ``gossip_nodes`` random peers) ``delay`` from now, rate-limited to
        one per ``push_min_interval_s``; inside the window one ``gossip.eager``
        timer is armed for its end and everything queued meanwhile goes in that
        one round (the queue keeps only the newest message per member).  While
        queued news has transmits left, rounds go on once per window: the news
        spends memberlist's transmit budget in a few windows, not in ticks."""
        at = max(now + delay, self._last_push_at + self.config.push_min_interval_s)
        if at <= now:
            effects = self._gossip_round(now)
            if effects:
                self._last_push_at = now
                if len(self.broadcasts) and not self._eager_pending:
                    # Keep pushing, one round per window, until the news has
                    # used its transmit budget (the total stays memberlist's).
                    self._eager_pending = True
                    effects.append(SetTimer("gossip.eager", now + self.config.push_min_interval_s))
            return effects
        if self._eager_pending:
            return []
        self._eager_pending = True
        return [SetTimer("gossip.eager", at)]

    def _gossip_round(self, now: float) -> list:
        """memberlist state.go gossip: queued broadcasts to ``gossip_nodes`` peers,
        including members dead for less than ``gossip_to_the_dead_time``; only
        the sends to alive ones count toward a broadcast's transmit limit."""
        if not len(self.broadcasts):
            return []
        cfg = self.config
        targets = self._random_members(
            cfg.gossip_nodes,
            lambda m: m.state in (ALIVE, SUSPECT) or (m.state is DEAD and self._recently_dead_at(m, now)))
        budget = cfg.max_datagram - self._overhead
        n = self.estimated_size()
        effects = []
        for target in targets:
            messages = self.broadcasts.get(0, budget, n, _alive(target), target.name)
            if not messages:
                break
            effects.append(Send(target.addr, tuple(messages)))
        return effects

    def _random_members(self, k: int, accept) -> list[Member]:
        """memberlist util.go kRandomNodes: up to k distinct members, 3n tries."""
        order = self._order
        n = len(order)
        picked: list[Member] = []
        seen = set()
        for _ in range(3 * n):
            if len(picked) >= k:
                break
            name = order[self.rng.randrange(n)]
            if name in seen:
                continue
            member = self._members.get(name)
            if member is None or member is self.local or not accept(member):
                continue
            seen.add(name)
            picked.append(member)
        return picked

    # ------------------------------------------------------------ push-pull

    def _push_pull_tick(self, now: float) -> list:
        cfg = self.config
        interval = push_pull_scale(cfg.push_pull_interval_s, self.estimated_size())
        effects: list = [SetTimer("push_pull", now + interval)]
        peers = self._random_members(1, lambda m: m.state is ALIVE)
        if peers:
            effects.append(StartPushPull(peers[0].addr, False))
        return effects

    def _reconnect_tick(self, now: float) -> list:
        """Serf handleReconnect: push-pull with a random *dead* member.

        After a partition each side believes the other dead and SWIM alone
        never talks to the dead again; this is how the halves find each other.
        Like Serf, skip with probability 1 - dead/alive so large healthy
        clusters do not hammer the few dead.
        """
        effects: list = [SetTimer("reconnect", now + self.config.reconnect_interval_s)]
        dead = [m for m in self._members.values() if m.state is DEAD]
        if not dead:
            return effects
        alive = sum(1 for m in self._members.values() if m.state is ALIVE)
        if self.rng.random() > len(dead) / max(alive, 1):
            return effects
        effects.append(StartPushPull(self.rng.choice(dead).addr, True))
        return effects

    def push_pull_message(self, join: bool) -> PushPull:
        """Our full state for a push-pull exchange (memberlist sendLocalState)."""
        return PushPull(join, tuple(
            PushPullState(m.name, m.addr, m.incarnation, m.state, m.meta, m.meta_version)
            for m in self._members.values() if m.incarnation >= 0))

    def merge_push_pull(self, remote: PushPull, now: float, joining: bool = False) -> list:
        """memberlist state.go mergeState.

        A remote ``dead`` becomes a local *suspicion* (not an instant death), a
        remote ``left`` is final.  ``joining``: this is the answer to our own
        join, and if it shows our name with an incarnation >= ours we restarted
        after being known; bump above it so our new life wins.
        """
        self._last_now = now
        effects: list = []
        members, local = self._members, self.local
        for s in remote.states:
            if s.name == self.name:
                if joining and not self.left and s.incarnation >= self.local.incarnation and not (
                        s.state is ALIVE and s.incarnation == self.local.incarnation
                        and s.meta == self.local.meta and s.meta_version == self.local.meta_version):
                    effects += self._refute(s.incarnation)
                    continue
            if s.state is ALIVE:
                m = members.get(s.name)
                if (m is not None and m is not local and s.incarnation <= m.incarnation
                        and m.addr == tuple(s.addr)):
                    # what _alive_node ignores first (nothing newer, same address),
                    # without building the message: most of a steady cluster's
                    # push-pull (1,000 members: 1,000 entries each way)
                    continue
                effects += self._alive_node(Alive(s.incarnation, s.name, s.addr, s.meta, s.meta_version), now)
            elif s.state is LEFT:
                effects += self._dead_node(Dead(s.incarnation, s.name, s.name), now)
            else:
                effects += self._suspect_node(Suspect(s.incarnation, s.name, self.name), now)
        return effects

    def on_push_pull_request(self, remote: PushPull, now: float) -> tuple[PushPull, list]:
        """Serve a peer's push-pull: merge theirs, then answer with ours.

        memberlist answers first; we merge first so that a refutation the
        merge triggers (the peer thought *we* were dead, e.g. across a healed
        partition) is already in the reply, and the peer accepts us at once.
        """
        effects = self.merge_push_pull(remote, now)
        return self.push_pull_message(False), effects
