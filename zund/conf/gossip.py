"""``[gossip]`` options: the SWIM membership layer (zund/gossip)."""

from oslo_config import cfg

GROUP = "gossip"

gossip_opts = [
    cfg.HostAddressOpt("bind_host", default="0.0.0.0",
                       help="Address the gossip UDP/TCP sockets bind to."),
    cfg.PortOpt("bind_port", default=9519,
                help="Port for gossip (UDP datagrams and TCP push-pull)."),
    cfg.HostAddressOpt("advertise_host", default=None,
                       help="Address peers use to reach this node. Default: bind_host, or the "
                            "resolved hostname when bind_host is a wildcard."),
    cfg.ListOpt("seeds", default=[],
                help="host:port of existing members to join through; retried until one answers."),
    cfg.StrOpt("cluster_name", default="zund",
               help="Carried in every packet; nodes of different clusters never merge."),
    cfg.ListOpt("keys", default=[], secret=True,
                help="Base64 32-byte AES-GCM keys. The first encrypts, all decrypt (rotation). "
                     "Empty means PLAINTEXT gossip, which is logged as a warning."),
    cfg.BoolOpt("allow_insecure", default=False,
                help="With no keys, still bind gossip and peer RPC to non-loopback addresses "
                     "and join non-loopback seeds (plaintext gossip; peer RPC signed with a key "
                     "derived from cluster_name, which anyone can compute). Without it a node "
                     "with no keys binds 127.0.0.1 and refuses non-loopback seeds."),
    cfg.StrOpt("profile", default="lan", choices=["lan", "local", "wan"],
               help="Timing preset, after memberlist's DefaultLANConfig/LocalConfig/WANConfig."),
    cfg.FloatOpt("metadata_min_interval", default=0.1, min=0.0,
                 help="Seconds between two re-announcements of this node's metadata "
                      "(capacity, tenants); a change is always announced, at most this late "
                      "(longer in clusters above 200 nodes: members / 2000 s, so the "
                      "cluster makes at most 2000 announcements a second). Entry nodes "
                      "rank fast-path candidates by it: longer means more fast-path "
                      "declines under load."),
]


def gossip_keys(conf) -> list:
    """The ``keys`` option.  Read it as ``conf.gossip["keys"]`` (or via this helper):
    ``conf.gossip.keys`` is the group's Mapping.keys method, not the option."""
    return list(conf[GROUP]["keys"])


def register_opts(conf):
    conf.register_opts(gossip_opts, group=GROUP)


def list_opts():
    return [(GROUP, gossip_opts)]
