"""The Glance image driver: container images kept in Glance as ``docker save``
archives (``container_format=docker``), as Zun keeps them.

- :class:`GlanceClient`: the blocking Glance v2 calls zund needs (find by id or
  name, list for search, download), over a keystoneauth ``Adapter``: Glance is
  found in the Keystone catalog (service type ``image``) or at ``[glance]
  endpoint_override`` (a noauth Glance for development). Transport and HTTP
  failures are translated here by type.
- :class:`GlanceImages`: what a node does with it, off the reactor: find the
  image, download it into the node's cache directory while hashing it, refuse it
  unless Glance's ``os_hash_value`` (else its md5 ``checksum``) matches, ``docker
  load`` it into the node's engine (``zund.images.engine.IImageEngine``) and name
  it as the user did. A second use finds it by its cache reference
  ``zund-glance/<glance id>:latest`` and downloads nothing.

The Docker runtime and the micro-VM runtime both take images from the local
engine, so a Glance image loaded here serves both.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Awaitable, Callable

import attrs
from keystoneauth1 import exceptions as ks_exc
from twisted.logger import Logger

from zund.common import errors

log = Logger()

#: repository under which a loaded Glance image is cached in the engine
CACHE_REPO = "zund-glance"

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
_CHUNK = 1 << 20


@attrs.frozen
class GlanceImage:
    id: str
    name: str | None
    status: str
    container_format: str | None
    disk_format: str | None
    size: int | None
    checksum: str | None
    os_hash_algo: str | None
    os_hash_value: str | None
    tags: tuple = ()
    metadata: dict = attrs.field(factory=dict)

    @classmethod
    def from_api(cls, d: dict) -> "GlanceImage":
        known = {"id", "name", "status", "container_format", "disk_format", "size",
                 "checksum", "os_hash_algo", "os_hash_value", "tags"}
        return cls(id=str(d["id"]), name=d.get("name"), status=str(d.get("status")),
                   container_format=d.get("container_format"),
                   disk_format=d.get("disk_format"), size=d.get("size"),
                   checksum=d.get("checksum"), os_hash_algo=d.get("os_hash_algo"),
                   os_hash_value=d.get("os_hash_value"), tags=tuple(d.get("tags") or ()),
                   metadata={k: v for k, v in d.items() if k not in known
                             and isinstance(v, (str, int, float, bool))})

    def search_view(self) -> dict:
        """One ``image search`` result (python-zunclient shows ID, Name, Tags,
        Status, Size, Metadata)."""
        return {"id": self.id, "name": self.name, "tags": list(self.tags),
                "status": self.status, "size": self.size, "metadata": dict(self.metadata)}


def _translate(e: Exception, image: str) -> errors.ZundError:
    if isinstance(e, ks_exc.NotFound):
        return errors.ImageNotFound(image=image)
    if isinstance(e, (ks_exc.ConnectFailure, ks_exc.ConnectionError,
                      ks_exc.EndpointNotFound, ks_exc.DiscoveryFailure)):
        return errors.ImagePullFailed(image=image, reason=f"Glance is unreachable: {e}")
    if isinstance(e, ks_exc.ClientException):
        return errors.ImagePullFailed(image=image, reason=f"Glance refused: {e}")
    if isinstance(e, OSError):
        return errors.ImagePullFailed(image=image, reason=f"download failed: {e}")
    return errors.ImagePullFailed(image=image, reason=f"{type(e).__name__}: {e}")


class GlanceClient:
    """Blocking Glance v2 calls over a keystoneauth adapter (``adapter``:
    ``keystoneauth1.adapter.Adapter`` for service type ``image``). Call only off
    the reactor."""

    def __init__(self, adapter):
        self._adapter = adapter

    def get(self, image_id: str) -> GlanceImage:
        return GlanceImage.from_api(self._adapter.get(f"/v2/images/{image_id}").json())

    def list(self, **filters) -> list[GlanceImage]:
        """Every image matching ``filters`` (Glance's query parameters), following
        Glance's ``next`` links (at most 20 pages)."""
        params = dict(filters, limit=200)
        url = "/v2/images"
        out: list[GlanceImage] = []
        for _ in range(20):
            body = self._adapter.get(url, params=params).json()
            out.extend(GlanceImage.from_api(d) for d in body.get("images") or [])
            nxt = body.get("next")
            if not nxt:
                break
            url, params = nxt, None
        return out

    def download(self, image_id: str, dest_path: str, algo: str | None) -> tuple[str, str]:
        """Write the image's data to ``dest_path``; -> (md5 hex, ``algo`` hex)."""
        resp = self._adapter.get(f"/v2/images/{image_id}/file", stream=True)
        md5 = hashlib.new("md5", usedforsecurity=False)
        strong = hashlib.new(algo) if algo else None
        try:
            with open(dest_path, "wb") as f:
                for chunk in resp.iter_content(_CHUNK):
                    f.write(chunk)
                    md5.update(chunk)
                    if strong is not None:
                        strong.update(chunk)
        finally:
            resp.close()
        return md5.hexdigest(), (strong.hexdigest() if strong is not None else "")


def make_adapter(conf) -> Any:
    """The keystoneauth adapter of ``[glance]``: session and auth options (a
    service user; none for a noauth Glance) and adapter options (service type
    ``image``, ``endpoint_override``, interface, region)."""
    from zund.conf._service_client import load_adapter
    from zund.conf.glance import GROUP

    return load_adapter(conf, GROUP)


class GlanceImages:
    """This node's use of Glance (see the module docstring).

    ``client``: a :class:`GlanceClient`; ``engine``: the node's ``IImageEngine``;
    ``cache_dir``: where archives are downloaded (removed once loaded);
    ``run_blocking(fn) -> Deferred``: the bounded pool for the blocking calls."""

    def __init__(self, client: GlanceClient, engine, cache_dir: str,
                 run_blocking: Callable[..., Awaitable[Any]]):
        self._client = client
        self._engine = engine
        self._cache_dir = cache_dir
        self._run_blocking = run_blocking

    async def _blocking(self, fn, image: str):
        try:
            return await self._run_blocking(fn)
        except errors.ZundError:
            raise
        except Exception as e:
            raise _translate(e, image) from e

    async def find(self, ident: str) -> GlanceImage:
        """The Glance image with id ``ident``, else the one named ``ident`` (a
        ``:latest`` suffix is ignored); ImageNotFound, or Conflicts-like
        ImagePullFailed when several share the name."""
        if _UUID.match(ident):
            try:
                return await self._blocking(lambda: self._client.get(ident), ident)
            except errors.ImageNotFound:
                pass
        name = ident[:-len(":latest")] if ident.endswith(":latest") else ident
        found = await self._blocking(lambda: self._client.list(name=name), ident)
        if not found and name != ident:
            found = await self._blocking(lambda: self._client.list(name=ident), ident)
        if not found:
            raise errors.ImageNotFound(image=ident)
        if len(found) > 1:
            raise errors.ImagePullFailed(
                image=ident, reason=f"{len(found)} Glance images are named {name}: "
                                    "use the image id")
        return found[0]

    async def search(self, term: str, exact: bool = False) -> list[GlanceImage]:
        """Glance images whose name is ``term`` (``exact``) or contains it."""
        if exact:
            return await self._blocking(lambda: self._client.list(name=term), term)
        every = await self._blocking(lambda: self._client.list(), term)
        return [i for i in every if i.name and term in i.name]

    async def fetch(self, ident: str, local_ref: str | None = None) -> tuple[GlanceImage, bool]:
        """Make the Glance image ``ident`` present in the engine as ``local_ref``
        (default: ``ident``); -> (the Glance image, True when it was downloaded,
        False when the cached copy served)."""
        image = await self.find(ident)
        if image.container_format not in (None, "docker"):
            raise errors.ImagePullFailed(
                image=ident, reason=f"Glance image {image.id} has container_format "
                                    f"{image.container_format}, not docker")
        if image.status != "active":
            raise errors.ImagePullFailed(
                image=ident, reason=f"Glance image {image.id} is {image.status}, not active")
        cache_ref = f"{CACHE_REPO}/{image.id}:latest"
        target = local_ref or ident
        try:
            await self._engine.inspect(cache_ref)
            downloaded = False
        except errors.ImageNotFound:
            await self._download_and_load(image, ident, cache_ref)
            downloaded = True
        await self._engine.tag(cache_ref, target)
        return image, downloaded

    async def _download_and_load(self, image: GlanceImage, ident: str, cache_ref: str):
        os.makedirs(self._cache_dir, exist_ok=True)
        path = os.path.join(self._cache_dir, f"{image.id}.tar")
        algo = image.os_hash_algo if image.os_hash_value else None
        if algo and algo not in hashlib.algorithms_available:
            raise errors.ImagePullFailed(image=ident,
                                         reason=f"unknown hash algorithm {algo}")
        try:
            md5, strong = await self._blocking(
                lambda: self._client.download(image.id, path, algo), ident)
            if algo:
                if strong != image.os_hash_value:
                    raise errors.ImagePullFailed(
                        image=ident, reason=f"{algo} of the downloaded data does not match "
                                            f"Glance's os_hash_value")
            elif image.checksum:
                if md5 != image.checksum:
                    raise errors.ImagePullFailed(
                        image=ident, reason="md5 of the downloaded data does not match "
                                            "Glance's checksum")
            else:
                raise errors.ImagePullFailed(
                    image=ident, reason=f"Glance image {image.id} has no checksum to verify")
            tags = await self._engine.load(path)
        finally:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        if not tags:
            raise errors.ImagePullFailed(image=ident,
                                         reason="the archive names no image (RepoTags)")
        await self._engine.tag(tags[0], cache_ref)
        log.info("images.glance.loaded image={image} glance_id={id} size={size}",
                 image=ident, id=image.id, size=image.size)
