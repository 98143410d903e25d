"""``IImages``: what the API may ask of the images, declared once.

Two implementations write every method out: ``zund.images.local.LocalImages``
(this node's image records) and ``zund.images.cluster.ClusterImages`` (every
node's, from any node: a pull goes to the named host as a typed peer operation,
a list is a scatter-gather, show and delete go to the node holding the record).
Errors are zund errors (``ImageRecordNotFound``, ``ImageInUse``, ``HostNotFound``,
``InvalidInput``); policy is the API's business (every image route is admin).
"""

from __future__ import annotations

import attrs
from zope.interface import Interface


@attrs.frozen
class ImageListing:
    """Image records of every node that answered, and the nodes that did not
    (shown in ``Zund-Partial-Nodes``, never dropped silently)."""

    records: tuple = attrs.field(converter=tuple)
    partial_nodes: frozenset = attrs.field(default=frozenset(), converter=frozenset)


class IImages(Interface):

    async def pull(ctx, image, host=None, image_driver=None):
        """Start pulling ``image`` (``repo[:tag]``) onto ``host`` (None: this node)
        with ``image_driver`` (None: the node's default); -> ImageRecord with status
        Pulling. The pull runs in the background; the record shows its outcome."""

    async def list(ctx):
        """-> ImageListing of every node's image records."""

    async def show(ctx, ident):
        """The record with uuid ``ident``; ImageRecordNotFound."""

    async def delete(ctx, ident):
        """Delete the record and remove the image from its node's engine;
        ImageInUse while a container of that node uses it."""

    async def search(ctx, term, image_driver=None, exact_match=False):
        """-> list of dicts (id, name, tags, status, size, metadata): images
        matching ``term`` in this node's engine (docker) or in Glance (glance)."""
