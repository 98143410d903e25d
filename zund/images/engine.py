"""``IImageEngine``: a node's local image store, as the images API and the Glance
driver need it (inspect, pull, load a ``docker save`` archive, remove, list).

Two implementations (the fake is exercised in tests/unit and tests/api, Docker's
in tests/e2e/test_glance_images.py; a shared contract suite is still to write):

- :class:`DockerImageEngine`: the local Docker engine (the same engine both real
  runtimes take images from: the micro-VM runtime exports its root filesystems
  from it), through its own low-level client opened in :meth:`open`; pulls and
  inspects go through ``zund.runtimes.images.DockerImageSource`` so errors are
  translated in one place.
- :class:`FakeImageEngine`: over a ``zund.runtimes.fake.FakeRuntime``'s images, so
  an image pulled or loaded here is what the fake runtime creates containers from.
"""

from __future__ import annotations

import json
import tarfile
from typing import Any, Awaitable, Callable

import attrs
from zope.interface import Interface, implementer

from zund.common import errors


@attrs.frozen
class LocalImage:
    """An image present in the engine: its id, size in bytes and references."""

    id: str
    size: int
    tags: tuple = ()


class IImageEngine(Interface):

    async def open() -> None:
        """Connect (RuntimeUnavailable when the engine does not answer)."""

    async def close() -> None:
        """Release the connection."""

    async def inspect(ref) -> LocalImage:
        """ImageNotFound when ``ref`` is not local."""

    async def pull(ref) -> None:
        """Pull from its registry; ImagePullFailed."""

    async def load(archive_path) -> list:
        """Load a ``docker save`` archive; -> the references it carried."""

    async def tag(ref, new_ref) -> None:
        """``new_ref`` names the same image as ``ref``."""

    async def remove(ref) -> None:
        """Remove the reference (a missing one is fine)."""

    async def images() -> list:
        """-> list[LocalImage] of every local image."""


def archive_tags(archive_path: str) -> list[str]:
    """The references in a ``docker save`` archive's ``manifest.json``;
    ImagePullFailed when it is not one."""
    try:
        with tarfile.open(archive_path) as tar:
            member = tar.extractfile("manifest.json")
            manifest = json.load(member) if member else None
    except (OSError, KeyError, ValueError, tarfile.TarError) as e:
        raise errors.ImagePullFailed(image=archive_path,
                                     reason=f"not a docker save archive: {e}") from e
    if not isinstance(manifest, list):
        raise errors.ImagePullFailed(image=archive_path,
                                     reason="not a docker save archive: no manifest")
    return [t for entry in manifest if isinstance(entry, dict)
            for t in entry.get("RepoTags") or [] if isinstance(t, str)]


@implementer(IImageEngine)
class FakeImageEngine:
    """Images of a FakeRuntime (see the module docstring); its "registry" is the
    fake runtime's (``add_registry_image``)."""

    def __init__(self, runtime):
        self._runtime = runtime

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _image(self, ref: str):
        from zund.runtimes.fake import normalize_image

        image = self._runtime.images.get(normalize_image(ref))
        if image is None:
            raise errors.ImageNotFound(image=ref)
        return image

    async def inspect(self, ref: str) -> LocalImage:
        image = self._image(ref)
        return LocalImage(image.id, 1_000_000 + len(image.name), (image.name,))

    async def pull(self, ref: str) -> None:
        await self._runtime.ensure_image(ref, "always")

    async def load(self, archive_path: str) -> list:
        tags = archive_tags(archive_path)
        for t in tags:
            self._runtime.add_local_image(t)
        return tags

    async def tag(self, ref: str, new_ref: str) -> None:
        self._image(ref)
        self._runtime.add_local_image(new_ref)

    async def remove(self, ref: str) -> None:
        from zund.runtimes.fake import normalize_image

        self._runtime.images.pop(normalize_image(ref), None)

    async def images(self) -> list:
        return [LocalImage(i.id, 1_000_000 + len(i.name), (i.name,))
                for i in self._runtime.images.values()]


@implementer(IImageEngine)
class DockerImageEngine:
    """The local Docker engine at ``url`` (``[docker] api_url``).

    ``run_blocking(fn) -> Deferred``: a bounded thread pool (the SDK blocks).
    Construction does no I/O."""

    def __init__(self, url: str, version: str, timeout_s: float,
                 run_blocking: Callable[..., Awaitable[Any]], runtime_name: str = "docker"):
        self._url = url
        self._version = version
        self._timeout_s = timeout_s
        self._run_blocking = run_blocking
        self._api = None
        self._runtime_name = runtime_name
        self._source = None

    def _client(self):
        if self._api is None:
            raise errors.RuntimeUnavailable(runtime=self._runtime_name,
                                            reason="image engine is not open")
        return self._api

    async def _blocking(self, fn):
        return await self._run_blocking(fn)

    async def open(self) -> None:
        from zund.runtimes.images import DockerImageSource, connect_api

        try:
            self._api = await self._run_blocking(
                lambda: connect_api(self._url, self._version, self._timeout_s))
        except Exception as e:
            raise errors.RuntimeUnavailable(runtime=self._runtime_name, reason=str(e)) from e
        self._source = DockerImageSource(self._client, self._blocking, self._runtime_name)

    async def close(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            await self._run_blocking(api.close)

    async def _call(self, fn, ref: str):
        if self._source is None:
            raise errors.RuntimeUnavailable(runtime=self._runtime_name,
                                            reason="image engine is not open")
        try:
            return await self._run_blocking(fn)
        except errors.ZundError:
            raise
        except Exception as e:
            raise self._source.translate(e, ref) from e

    async def inspect(self, ref: str) -> LocalImage:
        api = self._client()
        info = await self._call(lambda: api.inspect_image(ref), ref)
        return LocalImage(str(info["Id"]), int(info.get("Size") or 0),
                          tuple(info.get("RepoTags") or ()))

    async def pull(self, ref: str) -> None:
        self._client()
        await self._source.pull(ref, "always")

    async def load(self, archive_path: str) -> list:
        api = self._client()
        tags = archive_tags(archive_path)

        def _load():
            with open(archive_path, "rb") as f:
                for record in api.load_image(f):
                    if isinstance(record, dict) and record.get("error"):
                        raise errors.ImagePullFailed(image=archive_path,
                                                     reason=str(record["error"]))

        await self._call(_load, archive_path)
        return tags

    async def tag(self, ref: str, new_ref: str) -> None:
        from zund.images.records import split_reference

        api = self._client()
        repo, tag = split_reference(new_ref)
        await self._call(lambda: api.tag(ref, repo, tag), ref)

    async def remove(self, ref: str) -> None:
        api = self._client()
        try:
            await self._call(lambda: api.remove_image(ref), ref)
        except errors.ImageNotFound:
            return

    async def images(self) -> list:
        api = self._client()
        found = await self._call(lambda: api.images(), "*")
        return [LocalImage(str(i["Id"]), int(i.get("Size") or 0),
                           tuple(i.get("RepoTags") or ())) for i in found]
