"""``[neutron]``: how the Neutron network backend (``[network] driver = neutron``)
reaches Neutron.

Registered the way OpenStack services do it, like ``[glance]``: keystoneauth
session options (cafile, timeout...), auth options and adapter options
(``service_type`` = network, ``endpoint_override``, ``valid_interfaces``,
``region_name``). Networks, subnets and ports are made with the CALLER's token;
the auth options name zund's service user, which Neutron's policy requires for
what only a compute service may do (``binding:host_id``, deleting ``compute:*``
ports, whose requests carry its token as ``X-Service-Token``) and which finds
Neutron in the Keystone catalog when there is no ``endpoint_override``.
"""

from oslo_config import cfg

from zund.conf import _service_client

GROUP = "neutron"

neutron_group = cfg.OptGroup(GROUP, title="Neutron network backend")

neutron_opts = [
    cfg.FloatOpt("port_active_timeout", default=60.0, min=0.1,
                 help="Seconds a new port may take to become ACTIVE once bound to "
                      "this node (Neutron's agent wiring it) before the create fails."),
    cfg.FloatOpt("port_poll_interval", default=0.5, min=0.01,
                 help="Seconds between reads of a port's status while waiting for ACTIVE."),
    cfg.StrOpt("auto_cidr_pool", default="10.96.0.0/12",
               help="Where a network created without a cidr gets its /24 (Neutron "
                    "allows overlapping subnets between projects)."),
    cfg.IntOpt("max_workers", default=4, min=1,
               help="Threads for blocking Neutron calls."),
]


def register_opts(conf):
    _service_client.register(conf, neutron_group, neutron_opts, "network")


def list_opts():
    return _service_client.list_opts(neutron_group, neutron_opts)
