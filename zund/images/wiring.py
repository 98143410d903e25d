"""How a node's image parts are built from config (called by
``zund.service.build_node``): the engine, Glance, ``LocalImages``,
``ClusterImages`` and the service that opens and closes them."""

from __future__ import annotations

import os

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from zund.common import errors
from zund.conf import _service_client
from zund.conf.glance import GROUP as GLANCE_GROUP
from zund.images.cluster import ClusterImages
from zund.images.engine import DockerImageEngine, FakeImageEngine
from zund.images.local import LocalImages

log = Logger()


class ImagesService(service.Service):
    """Starts the blocking pools and opens the engine (a missing engine is logged,
    not fatal: the images API then reports it per call); stops in reverse."""

    name = "images"

    def __init__(self, engine, pools):
        self._engine = engine
        self._pools = list(pools)

    def startService(self):
        super().startService()
        for pool in self._pools:
            pool.start()
        return defer.Deferred.fromCoroutine(self._open())

    async def _open(self):
        try:
            await self._engine.open()
        except errors.ZundError as e:
            log.warn("images.engine.unavailable reason={reason}", reason=str(e))

    def stopService(self):
        super().stopService()
        return defer.Deferred.fromCoroutine(self._close())

    async def _close(self):
        try:
            await self._engine.close()
        finally:
            for pool in self._pools:
                pool.stop()


@attrs.frozen
class ImageParts:
    local: LocalImages
    cluster: ClusterImages
    service: ImagesService


def _fake_runtime(runtimes: dict):
    from zund.runtimes.fake import FakeRuntime

    for rt in runtimes.values():
        if isinstance(rt, FakeRuntime):
            return rt
    return None


def build_images(conf, reactor, node: str, store, runtimes: dict, tasks, peer_client,
                 view, state_path: str | None, new_uuid=None) -> ImageParts:
    """No I/O here (pools start in ``ImagesService``)."""
    from zund.runtimes.executor import make_run_blocking

    pools = []
    fake = _fake_runtime(runtimes)
    if fake is not None:
        engine = FakeImageEngine(fake)
    else:
        d = conf.docker
        run_blocking, pool = make_run_blocking(reactor, 4, name="zund-images")
        pools.append(pool)
        engine = DockerImageEngine(d.api_url, d.docker_remote_api_version,
                                   float(d.default_timeout), run_blocking)
    g = conf.glance
    glance = None
    if _service_client.configured(conf, GLANCE_GROUP):  # imports keystoneauth only if so
        from zund.images.glance import GlanceClient, GlanceImages, make_adapter

        run_blocking, pool = make_run_blocking(reactor, g.max_workers, name="zund-glance")
        pools.append(pool)
        cache_dir = g.cache_dir or os.path.join(state_path or conf.state_path, "glance-cache")
        glance = GlanceImages(GlanceClient(make_adapter(conf)), engine, cache_dir,
                              run_blocking)
    kwargs = {} if new_uuid is None else {"new_uuid": new_uuid}
    local = LocalImages(node, store, engine, tasks, reactor, glance=glance,
                        default_driver=g.default_image_driver, **kwargs)
    cluster = ClusterImages(node, local, peer_client, view)
    return ImageParts(local, cluster, ImagesService(engine, pools))
