"""Options for what operators watch and reach interactively (issue 14):
``[DEFAULT] log_format`` and ``event_journal_size``, ``[metrics]`` (the
Prometheus endpoint) and ``[console]`` (websocket exec/attach)."""

from __future__ import annotations

from oslo_config import cfg

default_opts = [
    cfg.StrOpt("log_format", default="text", choices=["text", "json"],
               help="Log lines on stdout: text (`<time> [<ns>#<level>] event k=v ...`) or "
                    "json (one object per line: time, level, namespace, event, fields)."),
    cfg.IntOpt("event_journal_size", default=1000, min=10,
               help="Events kept by the node's journal (`zund events`)."),
]

metrics_opts = [
    cfg.BoolOpt("enabled", default=True, help="Serve Prometheus metrics at GET /metrics."),
    cfg.HostAddressOpt("host_ip", default="127.0.0.1",
                       help="Address of the metrics listener. Loopback by default: the "
                            "figures describe the whole fleet and need no token, so "
                            "expose them deliberately (e.g. to a Prometheus on this host "
                            "or a private network)."),
    cfg.PortOpt("port", default=9520, help="Port of the metrics listener."),
]

console_opts = [
    cfg.BoolOpt("enabled", default=True,
                help="Serve interactive exec/attach websockets on this node."),
    cfg.IntOpt("port", default=6784, min=0, max=65535,
               help="Port of the console websocket listener (on the API's address); "
                    "6784 is Zun's zun-wsproxy port. 0: any free port."),
    cfg.IntOpt("max_sessions", default=32, min=1,
               help="Console sessions one node serves at once (relayed ones included); "
                    "beyond it exec/attach answer 503 with the reason."),
    cfg.FloatOpt("token_ttl_s", default=30.0, min=1.0,
                 help="Seconds a console URL (one-time token) stays valid."),
    cfg.FloatOpt("idle_timeout_s", default=900.0, min=1.0,
                 help="A console session with no byte either way for this long ends."),
]


def register_opts(conf):
    conf.register_opts(default_opts)
    conf.register_opts(metrics_opts, group="metrics")
    conf.register_opts(console_opts, group="console")


def list_opts():
    return [("DEFAULT", default_opts), ("metrics", metrics_opts), ("console", console_opts)]

