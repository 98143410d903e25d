"""The peer server's view of this node: bids, commits and releases go to the
bidder; a commit creates the record through this node's containers under the
bidder's lock (so the reservation counts until the record does); every other
operation is served by ``containers`` (a ``zund.compute.local.LocalContainers``)."""

from __future__ import annotations

from zope.interface import implementer

from zund.cluster.peer_server import IPeerHandlers
from zund.common import errors


@implementer(IPeerHandlers)
class NodeHandlers:
    def __init__(self, containers, bidder):
        self.containers = containers
        self.bidder = bidder

    async def bid(self, request):
        return await self.bidder.bid(request)

    async def commit(self, reservation_id: str, ctx, uuid: str, placement, request):
        async def do_create(reservation):
            if reservation.request.uuid != uuid:
                raise errors.InvalidInput(field="uuid",
                                          reason="does not match the reservation")
            return await self.containers.create(ctx, request, uuid=uuid,
                                                placement=placement)

        return await self.bidder.commit(reservation_id, do_create)

    def release(self, reservation_id: str) -> None:
        self.bidder.release(reservation_id)
