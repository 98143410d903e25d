"""``[peer]`` options: node-to-node RPC (HTTP + msgpack, every request signed).

The signing keys are not configured here: they come from ``[gossip] keys`` (the
one cluster key ring; first key signs, every key verifies) — see
:func:`peer_config` and ``zund.cluster.signing.peer_keys``.
"""

from __future__ import annotations

import attrs
from oslo_config import cfg

GROUP = "peer"

peer_opts = [
    cfg.HostAddressOpt("host_ip", default="0.0.0.0",
                       help="Address the peer RPC server listens on."),
    cfg.PortOpt("port", default=9518, help="Port the peer RPC server listens on."),
    cfg.StrOpt("advertise_host", default=None,
               help="Address peers use to reach this node's peer RPC (announced in gossip "
                    "metadata). Default: host_ip, or the gossip advertise address when "
                    "host_ip is a wildcard."),
    cfg.FloatOpt("timeout_s", default=5.0, min=0.1,
                 help="Seconds a peer call (bid, commit, lookup, list, quick actions) may "
                      "take before the peer counts as not answering."),
    cfg.FloatOpt("slow_call_timeout_s", default=120.0, min=1.0,
                 help="Seconds for forwarded actions that can legitimately take long "
                      "(execute, commit, get_archive, put_archive, logs, top, stats)."),
    cfg.IntOpt("max_body_bytes", default=1024 * 1024, min=4096,
               help="Largest peer request body a node accepts (413 above)."),
    cfg.IntOpt("max_response_bytes", default=64 * 1024 * 1024, min=65536,
               help="Largest peer response body a caller reads (logs and archives can be "
                    "big); a larger answer fails the call."),
    cfg.BoolOpt("channel", default=True,
                help="Send peer calls over one persistent, multiplexed connection per "
                     "peer (length-prefixed frames carrying the same signed and sealed "
                     "messages, on the same port as HTTP) instead of one HTTP request "
                     "per call. Slow owner calls (logs, archives) and peers that do not "
                     "speak the channel use HTTP. The listener always accepts both."),
    cfg.FloatOpt("clock_skew_s", default=30.0, min=1.0,
                 help="Largest accepted difference between a signed request's timestamp "
                      "and this node's clock; nonces are remembered for twice as long."),
    cfg.FloatOpt("notes_delay_s", default=0.05, min=0.0, max=5.0,
                 help="Seconds a peer note (a losing bid's release, a committed quota "
                      "settle) waits for the next request to the same peer to ride on "
                      "before it is sent alone, batched with the others queued for that "
                      "peer. 0 sends each note at once. Nobody waits for a note; a lost "
                      "one is repaired by the reservation TTL or the ledger recount."),
]


@attrs.frozen
class PeerConfig:
    """Plain values for the peer RPC parts (built by :func:`peer_config`)."""

    host_ip: str = "0.0.0.0"
    port: int = 9518
    advertise_host: str | None = None
    timeout_s: float = 5.0
    slow_call_timeout_s: float = 120.0
    max_body_bytes: int = 1024 * 1024
    max_response_bytes: int = 64 * 1024 * 1024
    clock_skew_s: float = 30.0
    channel: bool = True
    notes_delay_s: float = 0.05
    #: base64 strings of ``[gossip] keys`` (may be empty) and the cluster name,
    #: the inputs of ``zund.cluster.signing.peer_keys``
    gossip_keys: tuple[str, ...] = ()
    cluster_name: str = "zund"


def peer_config(conf) -> PeerConfig:
    """From a ConfigOpts with the ``peer`` and ``gossip`` groups registered."""
    group = conf[GROUP]
    return PeerConfig(
        host_ip=group.host_ip, port=group.port, advertise_host=group.advertise_host,
        timeout_s=group.timeout_s, slow_call_timeout_s=group.slow_call_timeout_s,
        max_body_bytes=group.max_body_bytes, max_response_bytes=group.max_response_bytes,
        clock_skew_s=group.clock_skew_s, channel=group.channel,
        notes_delay_s=group.notes_delay_s,
        # conf.gossip.keys is the Mapping method, not the option (see zund.conf.gossip)
        gossip_keys=tuple(conf["gossip"]["keys"]),
        cluster_name=conf["gossip"]["cluster_name"],
    )


def register_opts(conf):
    conf.register_opts(peer_opts, group=GROUP)


def list_opts():
    return [(GROUP, peer_opts)]
