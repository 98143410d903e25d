"""``IImages`` over this node: image records in the node's store, images in its
engine (``IImageEngine``), Glance through ``zund.images.glance.GlanceImages``.

A pull writes the record (status Pulling) and answers at once; the pull runs as a
tracked background task (drained when the node stops) and leaves the record
Ready (with the engine's id and size) or Error (with the reason). The peer server
runs these same methods for operations other nodes forward (Op 50-53).
"""

from __future__ import annotations

import datetime
import uuid as uuidlib
from typing import Callable

from twisted.logger import Logger
from zope.interface import implementer

from zund.common import errors
from zund.images import records
from zund.images.interface import IImages, ImageListing
from zund.images.records import ImageRecord, split_reference

log = Logger()

#: container statuses that no longer hold their image
_GONE = ("Deleted",)


def _uuid4() -> str:
    return str(uuidlib.uuid4())


def same_image(a: str, b: str) -> bool:
    """``busybox`` and ``busybox:latest`` name the same image."""
    return split_reference(a) == split_reference(b)


@implementer(IImages)
class LocalImages:
    """This node's images.

    ``node``: this node's name; ``store``: its ``zund.store.Store``; ``engine``: its
    ``IImageEngine``; ``glance``: a ``GlanceImages`` or None (glance driver refused);
    ``tasks``: a ``zund.compute.tasks.BackgroundTasks`` (the manager's, so stopping
    the node waits for pulls); ``clock``: IReactorTime for timestamps;
    ``default_driver``: the driver of a pull or search that names none."""

    def __init__(self, node: str, store, engine, tasks, clock, glance=None,
                 default_driver: str = "docker", new_uuid: Callable[[], str] = _uuid4):
        self.node = node
        self._store = store
        self.engine = engine
        self.glance = glance
        self._tasks = tasks
        self._clock = clock
        self.default_driver = default_driver
        self._new_uuid = new_uuid

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(
            self._clock.seconds(), datetime.timezone.utc).replace(tzinfo=None)

    def _driver(self, image_driver: str | None) -> str:
        driver = image_driver or self.default_driver
        if driver not in records.DRIVERS:
            raise errors.InvalidInput(field="image_driver",
                                      reason=f"must be one of {', '.join(records.DRIVERS)}")
        if driver == "glance" and self.glance is None:
            raise errors.InvalidInput(field="image_driver",
                                      reason=f"node {self.node} has no Glance configured")
        return driver

    # -- IImages ------------------------------------------------------------------------

    async def pull(self, ctx, image, host=None, image_driver=None):
        if host not in (None, self.node):
            raise errors.HostNotFound(ident=host)
        driver = self._driver(image_driver)
        repo, tag = split_reference(image)
        now = self._now()
        rec = await self._store.find_image(repo, tag)
        if rec is None:
            rec = ImageRecord(uuid=self._new_uuid(), repo=repo, tag=tag, host=self.node,
                              project_id=ctx.project_id or "", driver=driver,
                              created_at=now)
        rec.driver = driver
        rec.status = records.PULLING
        rec.status_reason = None
        rec.updated_at = now
        await self._store.put_image(rec)
        self._tasks.spawn(self._do_pull(rec.uuid), f"image-pull {rec.reference}")
        log.info("images.pull.started image={image} driver={driver} uuid={uuid}",
                 image=rec.reference, driver=driver, uuid=rec.uuid)
        return rec

    async def _do_pull(self, uuid: str) -> None:
        rec = await self._store.get_image(uuid)
        if rec is None:
            return
        try:
            if rec.driver == "glance":
                # Zun's glance driver names images by their Glance name: the repo
                await self.glance.fetch(rec.repo if rec.tag == "latest" else rec.reference,
                                        rec.reference)
            else:
                await self.engine.pull(rec.reference)
            local = await self.engine.inspect(rec.reference)
        except errors.ZundError as e:
            rec = await self._store.get_image(uuid)
            if rec is None:
                return
            rec.status, rec.status_reason = records.ERROR, str(e)
            rec.updated_at = self._now()
            await self._store.put_image(rec)
            log.warn("images.pull.failed image={image} reason={reason}",
                     image=rec.reference, reason=str(e))
            return
        rec = await self._store.get_image(uuid)
        if rec is None:  # deleted meanwhile
            return
        rec.image_id, rec.size = local.id, local.size
        rec.status, rec.status_reason = records.READY, None
        rec.updated_at = self._now()
        await self._store.put_image(rec)
        log.info("images.pull.done image={image} image_id={image_id}", image=rec.reference,
                 image_id=local.id)

    async def list(self, ctx):
        return ImageListing(await self._store.list_images())

    async def show(self, ctx, ident):
        rec = await self._store.get_image(ident)
        if rec is None:
            raise errors.ImageRecordNotFound(image=ident)
        return rec

    async def delete(self, ctx, ident):
        rec = await self.show(ctx, ident)
        for c in await self._store.list_containers():
            if c.status not in _GONE and same_image(c.image, rec.reference):
                raise errors.ImageInUse(image=rec.reference, container=c.uuid,
                                        host=self.node)
        if rec.status == records.READY:
            await self.engine.remove(rec.reference)
        await self._store.delete_image(rec.uuid)
        log.info("images.deleted image={image} uuid={uuid}", image=rec.reference,
                 uuid=rec.uuid)

    async def search(self, ctx, term, image_driver=None, exact_match=False):
        driver = self._driver(image_driver)
        if driver == "glance":
            return [i.search_view() for i in await self.glance.search(term, exact_match)]
        out = []
        for image in await self.engine.images():
            names = [t for t in image.tags
                     if (split_reference(t)[0] == term if exact_match else term in t)]
            if names:
                out.append({"id": image.id, "name": names[0], "tags": list(names),
                            "status": "active", "size": image.size, "metadata": {}})
        return out
