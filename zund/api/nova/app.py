"""``NovaAPI``: the compute API of one node (see ``zund.api.nova``)."""

from __future__ import annotations

import attrs
from twisted.internet import task

from zund.api.nova.flavor_routes import FlavorsResource
from zund.api.nova.misc import MiscResource
from zund.api.nova.pipeline import NovaBase
from zund.api.nova.servers import ServersResource
from zund.api.pipeline import ApiConfig
from zund.cluster.flavors import FlavorService


class NovaAPI(ServersResource, FlavorsResource, MiscResource, NovaBase):
    """The Nova-compatible compute API over ``containers`` (an ``IContainers``).

    ``config``: the Zun API's :class:`ApiConfig` (node, zone, limits, auth); its
    ``public_url`` is replaced by ``public_url`` (the compute API's own base);
    ``flavors``: the configured ``Flavor`` values; ``flavor_store``: the
    cluster's ``zund.cluster.flavors.FlavorService`` (API-made flavors; None: one
    in this process's memory over ``flavors``); ``glance``: whether this node
    has the Glance driver (an ``imageRef`` that is a uuid is then a Glance image);
    the rest as ``zund.api.app.ZunAPI`` (policy enforcer, clock, rng,
    authenticator, quotas).
    """

    def __init__(self, containers, config: ApiConfig, policy_enforcer, *, flavors=(),
                 flavor_store=None, glance: bool = False, public_url: str | None = None, clock=None,
                 rng=None, authenticator=None, quotas=None):
        super().__init__(containers, attrs.evolve(config, public_url=public_url),
                         policy_enforcer, clock=clock, rng=rng, authenticator=authenticator,
                         quotas=quotas)
        self._flavors = tuple(flavors)
        if flavor_store is None:
            flavor_store = FlavorService(
                config.node, clock if clock is not None else task.Clock(),
                defaults=self._flavors)
        self._flavor_store = flavor_store
        self._glance = glance
