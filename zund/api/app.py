"""The Zun v1 REST API as a Klein app (zun-api.md).

``ZunAPI`` is the whole HTTP surface of one node: discovery, containers and their
actions, hosts, services, availability zones — one module per resource under
``zund/api/resources/``. Each route is an ``async def``
taking an :class:`ApiRequest`; the shared request pipeline (request id →
microversion → body size and JSON → authentication → handler → view or error)
lives in ``zund.api.pipeline`` (``ApiBase._dispatch``), so every answer — 404s for unknown routes
included — has the version headers, the request id and, for 4xx/5xx, Zun's
``errors`` body. Paths work with and without ``/v1`` and with a trailing slash.

Controllers only check policy, validate input and render views; they ask
``zund.compute.interface.IContainers`` (this node's containers, or the whole
cluster's) and nothing else. Each container route checks its policy rule first
against the caller's own project (a forbidden caller costs no lookup and no peer
call) and names the container with a ``ContainerRef`` carrying that rule, which
the container's owner checks again against the real record. The owner raises
domain errors, which ``zund.api.errors`` maps to HTTP.
"""

from __future__ import annotations

from zund.api.pipeline import ApiBase, ApiConfig, ApiRequest, Reply  # noqa: F401 (re-export)
from zund.api.resources.containers import ContainersResource
from zund.api.resources.discovery import DiscoveryResource
from zund.api.resources.hosts import HostsResource
from zund.api.resources.images import ImagesResource
from zund.api.resources.networks import NetworksResource
from zund.api.resources.quotas import QuotasResource
from zund.api.resources.registries import RegistriesResource
from zund.api.resources.services import ServicesResource


class ZunAPI(ContainersResource, HostsResource, ServicesResource, ImagesResource,
             DiscoveryResource, QuotasResource, RegistriesResource, NetworksResource,
             ApiBase):
    """The Zun v1 API of one node.

    ``containers``: an ``IContainers`` (``zund.compute.local.LocalContainers`` or
    ``zund.cluster.facade.ClusterContainers``);
    ``config``: an :class:`ApiConfig`;
    ``policy_enforcer``: a ``zund.api.policy.PolicyEnforcer``;
    ``clock``: IReactorTime for service timestamps (wall clock when None);
    ``rng``: random.Random for generated container names;
    ``authenticator``: a ``zund.api.auth`` authenticator (default: from ``config``).
    """
