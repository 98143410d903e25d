"""``[network]``: tenant networks for containers (issue 16, ``zund.network``).

``driver = none`` keeps the behaviour from before networks: containers get the
runtime's own network mode and the API refuses ``nets``, network attach/detach
and security groups with a 400. ``vxlan`` needs only the kernel (bridges, VXLAN,
iptables); ``neutron`` uses a real cloud's Neutron (options in ``[neutron]``).
"""

from oslo_config import cfg

from zund.conf import groups

GROUP = "network"

network_group = cfg.OptGroup(GROUP, title="Tenant networks")

network_opts = [
    cfg.StrOpt("driver", default="none", choices=("none", "vxlan", "neutron"),
               help="The network backend."),
    cfg.StrOpt("local_ip", default="",
               help="vxlan: this node's VXLAN tunnel address on the underlay "
                    "(empty: the peer RPC address, [peer] host_ip)."),
    cfg.IntOpt("underlay_mtu", default=1500, min=1280,
               help="vxlan: MTU of the underlay; tenant networks get 50 bytes less."),
    cfg.PortOpt("vxlan_port", default=4789, help="vxlan: UDP port of the tunnels."),
    cfg.IntOpt("block_size", default=16, min=4,
               help="vxlan: addresses a node claims at a time from a network's "
                    "subnet (a power of two); nodes never share a block, so no "
                    "address allocation takes a cross-node lock."),
    cfg.StrOpt("auto_cidr_pool", default="10.96.0.0/12",
               help="vxlan: where a network created without a cidr gets its /24."),
    cfg.StrOpt("sandbox_image", default="zund-test/busybox:latest",
               help="docker: image of the sandbox container that owns a container's "
                    "network namespace (any image with a `sleep`)."),
    cfg.FloatOpt("sync_interval", default=5.0, min=0.5,
                 help="vxlan: seconds between re-reads of the networks this node "
                      "serves (forwarding entries of other nodes; pushes are sent "
                      "on change, this repairs missed ones)."),
    cfg.IntOpt("max_workers", default=2, min=1,
               help="Threads for blocking netlink and engine calls of the plugger."),
]


def register_opts(conf):
    groups.register_group(conf, network_group)
    conf.register_opts(network_opts, group=network_group.name)


def list_opts():
    return [(GROUP, network_opts)]
