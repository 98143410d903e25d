"""The peer server's view of this node: bids, commits and releases go to the
bidder; a commit creates the record through the compute manager under the
bidder's lock (so the reservation counts until the record does)."""

from __future__ import annotations

from zope.interface import implementer

from zund.cluster.peer_server import IPeerHandlers
from zund.common import errors


@implementer(IPeerHandlers)
class NodeHandlers:
    def __init__(self, manager, bidder):
        self.manager = manager
        self.bidder = bidder

    async def bid(self, request):
        return await self.bidder.bid(request)

    async def commit(self, reservation_id: str, ctx, create: dict, run: bool):
        async def do_create(reservation):
            if reservation.request.uuid != create.get("uuid"):
                raise errors.InvalidInput(field="uuid",
                                          reason="does not match the reservation")
            return await self.manager.create(ctx, create, run)

        return await self.bidder.commit(reservation_id, do_create)

    def release(self, reservation_id: str) -> None:
        self.bidder.release(reservation_id)
