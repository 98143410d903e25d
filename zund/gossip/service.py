"""``GossipService``: the thin Twisted shell around the pure ``Membership``.

It owns the transport, the timers and the keyring; it decodes packets, feeds
them to the state machine with ``clock.seconds()`` and carries out the effects
the state machine returns.  Constructors do no I/O: sockets open in
``startService``; ``stopService`` announces a graceful leave, waits
``leave_propagate_s`` and closes.

Rejoin after any restart (``snapshot_path``, ``zund.gossip.snapshot``): the
live members are saved on every membership change (debounced, bounded); on
start the node push-pulls with the seeds AND the members of its last snapshot,
and retries them every ``join_retry_interval_s`` until one answers (or another
member reaches it) — so a restarted seed is back within one push-pull interval
instead of waiting alone while its peers keep it ``left``.
"""

from __future__ import annotations

import random

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from zund.gossip import codec
from zund.gossip.codec import IndirectPing, PushPull
from zund.gossip.config import GossipConfig
from zund.gossip.keyring import Keyring
from zund.gossip.member import MemberView, format_addr, parse_addr
from zund.gossip.snapshot import MemberSnapshot
from zund.gossip.state import CancelTimer, MemberEvent, Membership, Send, SetTimer, StartPushPull
from zund.gossip.transport import UdpTcpTransport

log = Logger()

EVENT_KINDS = ("join", "update", "suspect", "dead", "leave", "alive")
STAT_KEYS = (
    "packets_sent", "bytes_sent", "packets_received", "bytes_received",
    "dropped_decrypt", "dropped_decode", "dropped_cluster", "dropped_version", "dropped_oversize",
    "messages_bad", "messages_unknown_type", "push_pull_ok", "push_pull_failed", "push_pull_served",
    "listener_errors", "join_attempts",
    "probes_sent", "probe_acks", "probe_timeouts", "probes_unreachable", "indirect_probes_sent",
    "unreachable_reported",
)
#: the state machine's probe timers: set when a probe starts, cancelled by its ack,
#: fired when it times out (zund.gossip.state); the shell counts them from the effects
_PROBE_DEADLINE = "probe.deadline"
#: a timer firing this late means this process was not running when it was due
LATE_TIMER_S = 0.05


class GossipService(service.Service):
    """One cluster member.

    Public API (what the rest of zund uses): ``set_metadata``, ``members``,
    ``local_member``, ``add_listener``/``remove_listener``, ``join``,
    ``stats``, ``keyring`` (mutable, for rotation), ``joined`` (a Deferred that
    fires once a seed has answered, or at start when there are no seeds).
    """

    name = "gossip"

    def __init__(self, config: GossipConfig, name: str, bind: tuple, advertise: tuple,
                 seeds: list, keyring: Keyring | None, clock, rng: random.Random,
                 transport_factory=None, snapshot_path: str | None = None,
                 snapshot_interval_s: float = 1.0):
        self.config = config
        self.node_name = name
        self.bind = (bind[0], int(bind[1]))
        self.advertise = (advertise[0], int(advertise[1]))
        self.seeds = [(h, int(p)) for h, p in seeds]
        self.keyring = keyring if keyring is not None else Keyring()
        self.clock = clock
        self.rng = rng
        self._transport_factory = transport_factory or (
            lambda bind_addr: UdpTcpTransport(clock, bind_addr, config.max_stream_bytes, config.tcp_timeout_s))
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self._membership = Membership(config, name, self.advertise, rng, clock.seconds())
        self._listeners: list = []
        self._timers: dict = {}
        self._transport = None
        self._active = False
        self._join_call = None
        self.joined: defer.Deferred = defer.Deferred()
        self._snapshot = MemberSnapshot(snapshot_path) if snapshot_path else None
        self.snapshot_interval_s = snapshot_interval_s
        self._snapshot_call = None
        #: addresses of the members of the last snapshot, tried with the seeds
        self.remembered: list = []
        self._udp_limits = codec.Limits(max_size=config.max_datagram, max_meta_bytes=config.max_meta_bytes,
                                        max_members=config.max_members)
        self._stream_limits = codec.Limits(max_size=config.max_stream_bytes,
                                           max_meta_bytes=config.max_meta_bytes, max_members=config.max_members)

    # ------------------------------------------------------------ public API

    def set_metadata(self, blob: bytes) -> None:
        """Replace this node's metadata and disseminate it (ValueError if too big)."""
        self._apply(self._membership.set_metadata(bytes(blob), self.clock.seconds()))

    def members(self) -> list[MemberView]:
        """Every known member, this node included (dead/left ones until forgotten)."""
        return self._membership.members()

    def local_member(self) -> MemberView:
        return self._membership.local_member()

    @property
    def local_health(self) -> int:
        """Lifeguard local health score: 0 is healthy (``zund.gossip.awareness``)."""
        return self._membership.awareness.score

    def add_listener(self, listener) -> None:
        """``listener(event_kind: str, member: MemberView)``; kinds: EVENT_KINDS.

        Called synchronously from the reactor thread; exceptions are logged
        and counted in ``stats["listener_errors"]``, never propagated.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener) -> None:
        self._listeners.remove(listener)

    async def join(self, seeds: list) -> int:
        """Push-pull with each seed; returns how many answered."""
        addrs = [(h, int(p)) for h, p in seeds if (h, int(p)) not in (self.advertise, self.bind)]
        if not addrs:
            return 0
        self.stats["join_attempts"] += 1
        results = await defer.gatherResults(
            [defer.Deferred.fromCoroutine(self._push_pull(addr, join=True)) for addr in addrs])
        return sum(1 for ok in results if ok)

    # ------------------------------------------------------------ lifecycle

    def startService(self):
        transport = self._transport_factory(self.bind)
        transport.start(self._on_datagram, self._on_stream, self._on_unreachable)
        self._transport = transport
        self._active = True
        super().startService()
        log.info("gossip.started name={name} bind={bind} advertise={advertise} encrypted={encrypted}",
                 name=self.node_name, bind=format_addr(self.bind), advertise=format_addr(self.advertise),
                 encrypted=self.keyring.enabled)
        if not self.keyring.enabled:
            log.warn("gossip.plaintext: gossip is NOT encrypted; set [gossip] keys for any real deployment")
        if self._snapshot is not None:
            self.remembered = self._load_snapshot()
            self.add_listener(self._membership_changed)
        self._apply(self._membership.start(self.clock.seconds()))
        self._join_call = self.clock.callLater(0, self._join_attempt)

    def stopService(self):
        super().stopService()
        return defer.Deferred.fromCoroutine(self._graceful_stop())

    async def _graceful_stop(self):
        if not self._active:
            return
        self._save_snapshot()  # the members as they were, before we leave them
        self._apply(self._membership.leave(self.clock.seconds()))
        await task.deferLater(self.clock, self.config.leave_propagate_s, lambda: None)
        await self._close()

    def stop_without_leave(self) -> defer.Deferred:
        """Close sockets and timers without announcing a leave (a crash, for tests)."""
        if self.running:
            super().stopService()
        return defer.Deferred.fromCoroutine(self._close())

    async def _close(self):
        self._active = False
        if self._join_call is not None and self._join_call.active():
            self._join_call.cancel()
        if self._snapshot_call is not None and self._snapshot_call.active():
            self._snapshot_call.cancel()
        self._snapshot_call = None
        if self._snapshot is not None and self._membership_changed in self._listeners:
            self._listeners.remove(self._membership_changed)
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.stop()
        log.info("gossip.stopped name={name}", name=self.node_name)

    def _join_attempt(self):
        self._join_call = None
        if not self._active:
            return
        own = (self.advertise, self.bind)
        seeds = [s for s in self.seeds if s not in own]
        remembered = [a for a in self.remembered if a not in own and a not in seeds]
        if not seeds:
            # a seed standing alone serves at once; it still looks for the members
            # of its last life (below) until one answers or another member comes
            self._joined_now()
            if not remembered or self._others_alive():
                return
        targets = seeds + remembered

        def done(answered):
            if answered:
                self._joined_now()
            elif self._active and not (not seeds and self._others_alive()):
                log.info("gossip.join.retry name={name} targets={targets}", name=self.node_name,
                         targets=",".join(format_addr(s) for s in targets))
                self._join_call = self.clock.callLater(self.config.join_retry_interval_s, self._join_attempt)

        defer.Deferred.fromCoroutine(self.join(targets)).addCallback(done).addErrback(
            lambda f: log.failure("gossip.join.failed", f))

    def _others_alive(self) -> bool:
        return any(m.state == "alive" and m.name != self.node_name for m in self.members())

    # ------------------------------------------------------------ member snapshot

    def _load_snapshot(self) -> list:
        addrs = []
        for name, addr in self._snapshot.load():
            if name == self.node_name:
                continue
            try:
                addrs.append(parse_addr(addr))
            except ValueError:
                continue
        if addrs:
            log.info("gossip.snapshot.loaded name={name} members={count}", name=self.node_name,
                     count=len(addrs))
        return addrs

    def _membership_changed(self, kind: str, member: MemberView) -> None:
        if kind == "update" or not self._active:
            return
        if self._snapshot_call is None or not self._snapshot_call.active():
            self._snapshot_call = self.clock.callLater(self.snapshot_interval_s,
                                                       self._save_snapshot)

    def _save_snapshot(self) -> None:
        """Write the live members (this node excluded) to the snapshot."""
        self._snapshot_call = None
        if self._snapshot is None:
            return
        live = [(m.name, m.addr) for m in self.members()
                if m.name != self.node_name and m.state in ("alive", "suspect")]
        if live:  # alone: keep the last members we knew, they are worth retrying
            self._snapshot.save(live)

    def _joined_now(self):
        if not self.joined.called:
            self.joined.callback(None)

    # ------------------------------------------------------------ inbound

    def _on_datagram(self, data: bytes, addr: tuple) -> None:
        if not self._active:
            return
        self.stats["packets_received"] += 1
        self.stats["bytes_received"] += len(data)
        decoded = codec.decode_packet(data, self.config.cluster_name, self.keyring, self._udp_limits)
        if not self._count(decoded, addr):
            return
        self._apply(self._membership.on_messages(addr, decoded.messages, self.clock.seconds()))

    def _on_unreachable(self, addr: tuple) -> None:
        """The kernel's ICMP port unreachable for a datagram we sent to ``addr``
        (``UdpTcpTransport``): nothing listens there now."""
        if not self._active:
            return
        self.stats["unreachable_reported"] += 1
        self._apply(self._membership.on_unreachable(addr, self.clock.seconds()))

    def _on_stream(self, data: bytes, addr: tuple):
        if not self._active:
            return None
        decoded = codec.decode_packet(data, self.config.cluster_name, self.keyring, self._stream_limits)
        if not self._count(decoded, addr):
            return None
        requests = [m for m in decoded.messages if isinstance(m, PushPull)]
        if len(requests) != 1:
            self.stats["dropped_decode"] += 1
            return None
        reply, effects = self._membership.on_push_pull_request(requests[0], self.clock.seconds())
        self._apply(effects)
        self.stats["push_pull_served"] += 1
        return codec.encode_packet(self.config.cluster_name, [reply], self.keyring)

    def _count(self, decoded: codec.Decoded, addr: tuple) -> bool:
        self.stats["messages_bad"] += decoded.bad_messages
        self.stats["messages_unknown_type"] += decoded.unknown_messages
        if decoded.error is not None:
            # Hostile or foreign input is counted and dropped, never raised.
            self.stats[decoded.error] = self.stats.get(decoded.error, 0) + 1
            log.debug("gossip.packet.dropped reason={reason} addr={addr}", reason=decoded.error, addr=addr)
            return False
        return True

    async def _push_pull(self, addr: tuple, join: bool) -> bool:
        if not self._active:
            return False
        request = codec.encode_packet(self.config.cluster_name, [self._membership.push_pull_message(join)],
                                      self.keyring)
        try:
            reply = await self._transport.exchange(addr, request, self.config.tcp_timeout_s)
        except Exception as e:
            self.stats["push_pull_failed"] += 1
            log.debug("gossip.push_pull.failed addr={addr} error={error}", addr=addr, error=e)
            return False
        if not self._active:
            return False
        decoded = codec.decode_packet(reply, self.config.cluster_name, self.keyring, self._stream_limits)
        if not self._count(decoded, addr):
            self.stats["push_pull_failed"] += 1
            return False
        now = self.clock.seconds()
        for msg in decoded.messages:
            if isinstance(msg, PushPull):
                self._apply(self._membership.merge_push_pull(msg, now, joining=join))
        self.stats["push_pull_ok"] += 1
        return True

    # ------------------------------------------------------------ effects

    def _apply(self, effects) -> None:
        for effect in effects:
            kind = type(effect)
            if kind is Send:
                if self._transport is None:
                    continue
                data = codec.encode_packet(self.config.cluster_name, effect.messages, self.keyring)
                self.stats["indirect_probes_sent"] += sum(
                    type(m) is IndirectPing for m in effect.messages)
                self.stats["packets_sent"] += 1
                self.stats["bytes_sent"] += len(data)
                self._transport.send(data, effect.addr)
            elif kind is SetTimer:
                if not self._active:
                    continue
                if effect.name == _PROBE_DEADLINE:
                    self.stats["probes_sent"] += 1
                old = self._timers.get(effect.name)
                if old is not None and old.active():
                    old.cancel()
                delay = max(0.0, effect.at - self.clock.seconds())
                self._timers[effect.name] = self.clock.callLater(delay, self._fire, effect.name, effect.at)
            elif kind is CancelTimer:
                if effect.name == _PROBE_DEADLINE:
                    self.stats["probes_unreachable" if effect.reason == "unreachable"
                               else "probe_acks"] += 1
                old = self._timers.pop(effect.name, None)
                if old is not None and old.active():
                    old.cancel()
            elif kind is MemberEvent:
                self._emit(effect)
            elif kind is StartPushPull:
                if self._active:
                    defer.Deferred.fromCoroutine(self._push_pull(effect.addr, effect.join)).addErrback(
                        lambda f: log.failure("gossip.push_pull.crashed", f))

    def _fire(self, name: str, at: float | None = None) -> None:
        if at is not None and self.clock.seconds() - at > LATE_TIMER_S:
            # We were not running when this timer was due (SIGSTOP, a starved
            # cgroup, a long pause): the reactor runs due timers before it reads
            # the datagrams that arrived meanwhile (epoll_wait even fails with
            # EINTR after SIGCONT), so an ack or refutation already here would be
            # ignored and a live peer suspected.  Read them first: the timer
            # fires one reactor turn later, and an ack still cancels it.
            self._timers[name] = self.clock.callLater(0, self._fire, name)
            return
        self._timers.pop(name, None)
        if self._active:
            if name == _PROBE_DEADLINE:
                self.stats["probe_timeouts"] += 1
            self._apply(self._membership.on_timer(name, self.clock.seconds()))

    def _emit(self, event: MemberEvent) -> None:
        member = event.member
        if event.kind in ("suspect", "dead", "leave"):
            log.info("gossip.member.{kind} local={local} name={name} addr={addr} incarnation={incarnation}",
                     kind=event.kind, local=self.node_name, name=member.name, addr=member.addr,
                     incarnation=member.incarnation)
        for listener in list(self._listeners):
            try:
                listener(event.kind, member)
            except Exception:
                self.stats["listener_errors"] += 1
                log.failure("gossip.listener.failed kind={kind}", kind=event.kind)
