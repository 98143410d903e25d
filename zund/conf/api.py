from oslo_config import cfg

from zund.conf import groups

api_group = cfg.OptGroup("api", title="Zun v1 REST API")

api_opts = [
    cfg.StrOpt("host_ip", default="127.0.0.1",
               help="Address the API listens on. With auth_strategy = noauth a "
                    "non-loopback address is used only when allow_noauth_remote is true "
                    "(otherwise 127.0.0.1, with a warning)."),
    cfg.BoolOpt("allow_noauth_remote", default=False,
                help="With auth_strategy = noauth, serve the unauthenticated (admin) API on "
                     "a non-loopback host_ip. Logged as a warning at every start."),
    cfg.PortOpt("port", default=9517, help="Port the API listens on."),
    cfg.IntOpt("max_limit", default=1000, min=1,
               help="Largest page a list returns (also the default page size)."),
    cfg.IntOpt("max_request_body_bytes", default=114688, min=1024,
               help="Requests with a larger body are refused with 413."),
    cfg.StrOpt("public_url", help="Base URL used in links; default: the request's Host."),
]


def register_opts(conf):
    groups.register_group(conf, api_group)
    conf.register_opts(api_opts, group=api_group.name)


def list_opts():
    return [(api_group.name, api_opts)]
