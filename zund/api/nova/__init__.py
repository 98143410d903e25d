"""The Nova-compatible compute API (v2.1 with microversions) over zund's containers.

One set of containers, two views: a server is a zund container, reached through
the same ``IContainers`` seam, authenticator, policy rules and quotas as the Zun
API (``zund.api.app``). Served on its own port (``[nova_api] port``, Nova's 8774).
Modules: ``microversions`` and ``faults`` (the wire conventions), ``pipeline``
(routing and the shared request steps, reusing ``zund.api.pipeline.ApiBase``),
``views`` (status mapping and the server body), ``flavors`` (flavors from
configuration), one module per resource (``servers``, ``flavor_routes``,
``misc`` for availability zones, limits and version discovery) and ``app``.
"""
