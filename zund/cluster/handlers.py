"""The peer server's view of this node: bids, commits, commit statuses and
releases go to the bidder; a commit creates the record through this node's
containers under the bidder's lock (so the reservation counts until the record
does), and a commit status reads it under the same lock (exactly-once placement,
``Bidder.resolve``); every other operation is served by ``containers`` (a
``zund.compute.local.LocalContainers``)."""

from __future__ import annotations

from zope.interface import implementer

from zund.cluster.peer_server import IPeerHandlers
from zund.common import errors


@implementer(IPeerHandlers)
class NodeHandlers:
    def __init__(self, containers, bidder, replicas=None, quota=None, images=None,
                 registries=None):
        self.containers = containers
        self.bidder = bidder
        self.replicas = replicas
        #: zund.cluster.quota.QuotaService: serves the QUOTA_* operations
        self.quota = quota
        #: zund.images.local.LocalImages: serves the IMAGE_* operations
        self.images = images
        #: zund.cluster.registries.RegistryService: serves the REGISTRY_* operations
        self.registries = registries
        #: zund.cluster.flavors.FlavorService: serves the FLAVOR_* operations (set by
        #: the composition root)
        self.flavors = None
        #: zund.cluster.healer.Healer: serves SERVICE_STATE (set by the composition root)
        self.healer = None

    async def bid(self, request):
        return await self.bidder.bid(request)

    async def commit(self, reservation_id: str, ctx, uuid: str, placement, request):
        async def do_create(reservation):
            if reservation.request.uuid != uuid:
                raise errors.InvalidInput(field="uuid",
                                          reason="does not match the reservation")
            return await self.containers.create(ctx, request, uuid=uuid,
                                                placement=placement)

        return await self.bidder.commit(reservation_id, do_create,
                                        existing=lambda: self._held(ctx, uuid))

    async def bid_commit(self, request, reservation_id: str, ctx, uuid: str, placement,
                         create, bar=None):
        """BID_COMMIT: bid and, when admitted, commit at once (``Bidder.bid_commit``)."""
        async def do_create(reservation):
            return await self.containers.create(ctx, create, uuid=uuid, placement=placement)

        return await self.bidder.bid_commit(request, reservation_id, do_create,
                                            existing=lambda: self._held(ctx, uuid), bar=bar)

    async def commit_status(self, ctx, uuid: str, reservation_id: str):
        """COMMIT_STATUS: the record when held here, else None with the reservation
        fenced (``Bidder.resolve``)."""
        return await self.bidder.resolve(reservation_id, uuid,
                                         lambda: self._held(ctx, uuid))

    async def _held(self, ctx, uuid: str):
        """The record ``uuid`` if this node holds it (for ``ctx``), else None."""
        try:
            return await self.containers.locate(ctx, uuid)
        except errors.ContainerNotFound:
            return None

    def release(self, reservation_id: str) -> None:
        self.bidder.release(reservation_id)
