"""``IImages`` for the whole cluster, from any node.

Image records live on the node that pulled the image (``LocalImages`` there). A
pull goes to the named host as one ``IMAGE_PULL`` peer operation; a list asks
every live node in parallel (``IMAGE_LIST``) and names the nodes that did not
answer in ``partial_nodes``; show and delete find the record on this node, else
ask the live peers (``IMAGE_SHOW``) and send the delete to the node that holds it.
Search runs on this node (its engine, or Glance, which every node sees alike).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from zund.cluster import messages
from zund.cluster.directory import LIVE_STATES
from zund.common import errors
from zund.images.interface import IImages, ImageListing

log = Logger()


@implementer(IImages)
class ClusterImages:
    """``node``: this node's name; ``local``: its ``LocalImages``; ``client``: a
    ``zund.cluster.peer_client.PeerClient``; ``view``: ``() -> list[NodeView]`` from
    gossip (this node included)."""

    def __init__(self, node: str, local, client, view):
        self.node = node
        self.local = local
        self._client = client
        self._view = view

    def _peers(self) -> list:
        return [n for n in self._view() if n.name != self.node and n.state in LIVE_STATES]

    async def pull(self, ctx, image, host=None, image_driver=None):
        if host in (None, "", self.node):
            return await self.local.pull(ctx, image, None, image_driver)
        for n in self._view():
            if n.name == host:
                if n.state not in LIVE_STATES:
                    raise errors.ServiceUnavailable(reason=f"host {host} is {n.state}")
                return await self._client.call(
                    n, messages.ImagePullRequest(ctx, image, image_driver))
        raise errors.HostNotFound(ident=host)

    async def _ask_all(self, make_msg):
        peers = self._peers()
        results = await defer.DeferredList(
            [defer.Deferred.fromCoroutine(self._client.call(n, make_msg())) for n in peers],
            consumeErrors=True)
        return list(zip(peers, results))

    async def list(self, ctx):
        records = list((await self.local.list(ctx)).records)
        partial = []
        for node, (ok, value) in await self._ask_all(lambda: messages.ImageListRequest(ctx)):
            if ok:
                records.extend(value)
            else:
                partial.append(node.name)
                log.warn("images.list_partial node={node} reason={reason}", node=node.name,
                         reason=value.getErrorMessage())
        return ImageListing(records, partial)

    async def _holder(self, ctx, ident):
        """(node view or None for this node, record) of image ``ident``."""
        try:
            return None, await self.local.show(ctx, ident)
        except errors.ImageRecordNotFound:
            pass
        unreachable = []
        for node, (ok, value) in await self._ask_all(
                lambda: messages.ImageShowRequest(ctx, ident)):
            if ok:
                return node, value
            if not value.check(errors.ImageRecordNotFound):
                unreachable.append(node.name)
        if unreachable:
            raise errors.ServiceUnavailable(
                reason=f"image {ident} not found; nodes {', '.join(sorted(unreachable))} "
                       "did not answer")
        raise errors.ImageRecordNotFound(image=ident)

    async def show(self, ctx, ident):
        return (await self._holder(ctx, ident))[1]

    async def delete(self, ctx, ident):
        node, rec = await self._holder(ctx, ident)
        if node is None:
            return await self.local.delete(ctx, ident)
        return await self._client.call(node, messages.ImageDeleteRequest(ctx, rec.uuid))

    async def search(self, ctx, term, image_driver=None, exact_match=False):
        return await self.local.search(ctx, term, image_driver, exact_match)
