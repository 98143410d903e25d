"""``[nova_api]``: the Nova-compatible compute API (``zund.api.nova``).

Served by every node on its own port (Nova's 8774), beside the Zun API, over the
same containers, identity, policy and quotas. Flavors come from here: the
``flavors`` list and/or a ``flavors_file`` (JSON), parsed once by
``zund.api.nova.flavors.flavors_from_conf``.
"""

from __future__ import annotations

from oslo_config import cfg

from zund.conf import groups

from zund.conf.safety import LOOPBACK, is_loopback

nova_api_group = cfg.OptGroup("nova_api", title="Nova-compatible compute API (v2.1)")

nova_api_opts = [
    cfg.BoolOpt("enabled", default=True, help="Serve the Nova-compatible compute API."),
    cfg.StrOpt("host_ip",
               help="Address the compute API listens on; default: [api] host_ip (so "
                    "nodes on 127.0.0.i keep apart). With auth_strategy = noauth a "
                    "non-loopback address is used only when [api] allow_noauth_remote is "
                    "true (otherwise 127.0.0.1, with a warning), as for the Zun API."),
    cfg.PortOpt("port", default=8774, help="Port the compute API listens on (Nova's)."),
    cfg.StrOpt("public_url",
               help="Base URL of links and Location headers (e.g. "
                    "http://cloud.example:8774); default: the request's Host."),
    cfg.ListOpt("flavors",
                default=["c1.tiny:1:128:1", "c1.small:1:512:1", "c1.medium:2:2048:5",
                         "c1.large:4:4096:10"],
                help="Flavors, each NAME:VCPUS:RAM_MB:DISK_GB[:KEY=VALUE[;KEY=VALUE]] "
                     "(extra specs, e.g. zund:runtime=microvm selects the micro-VM "
                     "runtime). The flavor's id is its name."),
    cfg.StrOpt("flavors_file", default="",
               help="A JSON file with a list of flavors "
                    "({name, id?, vcpus, ram, disk, description?, extra_specs?}), added to "
                    "``flavors`` (a name in both: the file wins)."),
]


def register_opts(conf):
    groups.register_group(conf, nova_api_group)
    conf.register_opts(nova_api_opts, group=nova_api_group.name)


def list_opts():
    return [(nova_api_group.name, nova_api_opts)]


def listen_host(conf) -> tuple[str, str | None]:
    """(address to bind, warning or None) under the Zun API's noauth rule."""
    host = conf.nova_api.host_ip or conf.api.host_ip
    if conf.auth_strategy == "noauth" and not is_loopback(host) \
            and not conf.api.allow_noauth_remote:
        return LOOPBACK, (f"nova_api.noauth_loopback: auth_strategy = noauth, so the compute "
                          f"API binds {LOOPBACK}, not [nova_api] host_ip = {host}")
    return host, None
