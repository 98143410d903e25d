"""Limits of the HTTP listeners (``[api]`` and ``[peer]``) against hostile clients.

Registered into the existing ``api`` and ``peer`` groups (the listener they
govern); read once by ``zund.service.build_node`` into a plain
:class:`zund.common.http.ListenerLimits` per listener.
"""

from __future__ import annotations

from oslo_config import cfg

from zund.common.http import ListenerLimits


def _listener_opts(what: str, max_connections: int) -> list:
    return [
        cfg.FloatOpt("header_timeout_s", default=10.0, min=0.1,
                     help=f"Seconds a client of the {what} has to send a request's complete "
                          f"headers (from connecting, or from the end of its previous "
                          f"request); slower clients are disconnected."),
        cfg.FloatOpt("idle_timeout_s", default=120.0, min=0.1,
                     help=f"Seconds a connection to the {what} may stay silent (between "
                          f"requests or while sending a body) before it is closed. Keep it "
                          f"above the 60 s a peer keeps an idle pooled connection, so a "
                          f"node never reuses one this side is closing."),
        cfg.IntOpt("max_connections", default=max_connections, min=1,
                   help=f"Open connections the {what} accepts at once; more are closed "
                        f"as soon as they are accepted."),
    ]


api_opts = _listener_opts("Zun API", 512) + [
    cfg.IntOpt("max_archive_body_bytes", default=1024 * 1024, min=1024,
               help="Largest body of POST /v1/containers/<id>/put_archive (413 above); "
                    "keep [peer] max_body_bytes at least this large so an archive can "
                    "be forwarded to the node that holds the container."),
]
peer_opts = _listener_opts("peer RPC server", 256)


def listener_limits(conf, group: str) -> ListenerLimits:
    """The limits of the ``api`` or ``peer`` listener from a ConfigOpts."""
    g = conf[group]
    return ListenerLimits(header_timeout_s=g.header_timeout_s,
                          idle_timeout_s=g.idle_timeout_s,
                          max_connections=g.max_connections)


def register_opts(conf):
    conf.register_opts(api_opts, group="api")
    conf.register_opts(peer_opts, group="peer")


def list_opts():
    return [("api", api_opts), ("peer", peer_opts)]
