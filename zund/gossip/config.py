"""Gossip configuration: a frozen attrs object plus memberlist's presets.

Components receive this object; they never read a global CONF.  This module
must not import oslo.config: ``from_values`` takes plain values, and
``zund/service.py`` feeds it from ``conf.gossip``.
"""

from __future__ import annotations

import math

import attrs

PROFILES = ("lan", "local", "wan")


@attrs.frozen
class GossipConfig:
    """Every knob of the SWIM + Lifeguard protocol.  Durations are float seconds."""

    cluster_name: str = "zund"
    # SWIM §4.1 failure detector (memberlist config.go ProbeInterval/ProbeTimeout).
    probe_interval_s: float = 1.0
    probe_timeout_s: float = 0.5
    indirect_checks: int = 3
    # Dissemination (memberlist GossipInterval/GossipNodes/RetransmitMult).
    gossip_interval_s: float = 0.2
    gossip_nodes: int = 3
    retransmit_mult: int = 4
    gossip_to_the_dead_time_s: float = 30.0
    # zund addition: news heard from a peer (a new alive/suspect/dead) is
    # re-gossiped after this short delay instead of waiting for the next gossip
    # tick; the transmit limit still bounds the total.  0 disables it.
    eager_gossip_delay_s: float = 0.005
    # zund addition, the immediate push's rate limit: a node runs at most one
    # out-of-tick gossip round (its own metadata change, or relayed news) per
    # this many seconds; changes inside the window coalesce (the queue keeps only
    # the newest message per member) into one push at the window's end.
    push_min_interval_s: float = 0.02
    push_pull_interval_s: float = 30.0
    # Serf reconnect (serf.go handleReconnect): periodically try a full sync with
    # a random dead member so healed partitions merge again.
    reconnect_interval_s: float = 30.0
    # Lifeguard §IV-B (suspicion) and §IV-A (awareness).
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    # zund tuning of Lifeguard §IV-B: the suspicion timeout once all k =
    # suspicion_mult - 2 independent confirmations are in is
    # suspicion_min_mult * max(1, log10 n) * probe_interval (memberlist uses
    # suspicion_mult here).  Each confirmation is itself a failed direct +
    # indirect probe lasting a whole probe_interval, so the minimum only has to
    # leave the suspect time to refute what it hears; a lone accuser still waits
    # suspicion_max_timeout_mult * suspicion_mult * max(1, log10 n) * probe_interval.
    suspicion_min_mult: float = 1.0
    # zund addition: a member that hears a new suspicion probes the suspect at
    # once (not at its next tick) with probability min(1, suspicion_probers /
    # (n - 2)): about this many members check it in parallel, so k
    # confirmations arrive one probe_interval after the suspicion, without a
    # herd at 1,000 nodes.
    suspicion_probers: int = 6
    awareness_max_multiplier: int = 8
    # Wire and resource bounds.
    max_datagram: int = 1400
    max_meta_bytes: int = 1024
    max_stream_bytes: int = 8 * 1024 * 1024
    max_members: int = 10_000
    max_broadcasts: int = 4096
    tcp_timeout_s: float = 10.0
    # Service behaviour.
    join_retry_interval_s: float = 2.0
    leave_propagate_s: float = 0.5
    # memberlist DeadNodeReclaimTime: 0 = a dead node's address is never reclaimed
    # by a different address under the same name (a left node's always is).
    dead_node_reclaim_time_s: float = 0.0
    # How long dead/left members stay listed before being forgotten (Serf keeps
    # failed members 24h for its reconnect logic; we keep them an hour).
    dead_member_retention_s: float = 3600.0

    @property
    def relay_nack_s(self) -> float:
        """When a relay that has heard no ack from an indirect probe's target sends
        its nack (Lifeguard §IV-A): early enough to reach the asker before its
        probe deadline, or it can never count.  The asker sends the indirect
        pings ``probe_timeout_s`` into its probe and gives up at
        ``probe_interval_s``; memberlist's relays nack after a whole
        ``probe_timeout_s``, which with the LAN timings (0.5 s of a 1 s interval)
        lands a network latency after the deadline, so every failed probe of a
        member that really died counted all its nacks missing and raised the
        asker's local health score by ``indirect_checks``: after one death every
        survivor probed up to 4x slower for seconds and detected the next death
        later.  Here the nack leaves at 80 % of the time the asker has left
        (0.4 s LAN, 0.16 s local, 1.6 s WAN); the relay still forwards a later
        ack until ``probe_timeout_s``."""
        window = min(self.probe_timeout_s, self.probe_interval_s - self.probe_timeout_s)
        return 0.8 * window if window > 0 else self.probe_timeout_s

    def __attrs_post_init__(self):
        if self.probe_interval_s <= 0 or self.probe_timeout_s <= 0:
            raise ValueError("probe_interval_s and probe_timeout_s must be > 0")
        if self.probe_timeout_s > self.probe_interval_s:
            raise ValueError("probe_timeout_s must be <= probe_interval_s")
        if not 512 <= self.max_datagram <= 65_000:
            raise ValueError("max_datagram must be within 512..65000")
        if self.gossip_interval_s <= 0 or self.push_pull_interval_s <= 0:
            raise ValueError("gossip_interval_s and push_pull_interval_s must be > 0")
        if not 0 < self.suspicion_min_mult <= self.suspicion_mult:
            raise ValueError("suspicion_min_mult must be within (0, suspicion_mult]")
        if self.push_min_interval_s < 0 or self.suspicion_probers < 0:
            raise ValueError("push_min_interval_s and suspicion_probers must be >= 0")


def lan(**overrides) -> GossipConfig:
    """memberlist DefaultLANConfig: a single datacenter / LAN."""
    return attrs.evolve(GossipConfig(), **overrides)


def local(**overrides) -> GossipConfig:
    """memberlist DefaultLocalConfig: loopback or a very fast, reliable LAN."""
    base = GossipConfig(
        tcp_timeout_s=1.0,
        indirect_checks=1,
        retransmit_mult=2,
        suspicion_mult=3,
        push_pull_interval_s=15.0,
        probe_timeout_s=0.2,
        probe_interval_s=1.0,
        gossip_interval_s=0.1,
        gossip_to_the_dead_time_s=15.0,
    )
    return attrs.evolve(base, **overrides)


def wan(**overrides) -> GossipConfig:
    """memberlist DefaultWANConfig: high latency, lossy links."""
    base = GossipConfig(
        tcp_timeout_s=30.0,
        suspicion_mult=6,
        push_pull_interval_s=60.0,
        probe_timeout_s=3.0,
        probe_interval_s=5.0,
        gossip_nodes=4,
        gossip_interval_s=0.5,
        gossip_to_the_dead_time_s=60.0,
    )
    return attrs.evolve(base, **overrides)


_PRESETS = {"lan": lan, "local": local, "wan": wan}


def from_values(profile: str = "lan", cluster_name: str = "zund", **overrides) -> GossipConfig:
    """Build a config from plain values (what ``[gossip]`` options hold).

    ``zund/service.py`` calls ``from_values(conf.gossip.profile,
    conf.gossip.cluster_name)``; this module stays free of oslo.config.
    """
    try:
        preset = _PRESETS[profile]
    except KeyError:
        raise ValueError(f"unknown gossip profile {profile!r}; expected one of {PROFILES}") from None
    return preset(cluster_name=cluster_name, **overrides)


def retransmit_limit(retransmit_mult: int, n: int) -> int:
    """memberlist util.go retransmitLimit: mult * ceil(log10(n + 1))."""
    node_scale = math.ceil(math.log10(n + 1))
    return retransmit_mult * node_scale


def push_pull_scale(interval_s: float, n: int) -> float:
    """memberlist util.go pushPullScale: back off full syncs above 32 nodes."""
    threshold = 32
    if n <= threshold:
        return interval_s
    multiplier = math.ceil(math.log2(n) - math.log2(threshold)) + 1.0
    return interval_s * multiplier


def resolve_advertise_host(bind_host: str, advertise_host: str | None, resolve_hostname) -> str:
    """Pick the address peers should use: explicit, else bind, else ``resolve_hostname()``.

    ``resolve_hostname`` is passed in (e.g. ``lambda: socket.gethostbyname(socket.gethostname())``)
    so this stays a pure function.
    """
    if advertise_host:
        return advertise_host
    if bind_host not in ("0.0.0.0", "::", ""):
        return bind_host
    return resolve_hostname()
