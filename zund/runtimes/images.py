"""Images from the local Docker engine: the one image source of the Docker runtime
and of the micro-VM runtime.

:class:`DockerImageSource` makes an image present following a pull policy,
reads an image's id and config, and exports its flattened root filesystem. It
owns no connection: its owner opens the engine client and hands a getter in
(``api``), and its blocking SDK calls go through the owner's ``call_blocking``
(the runtime's tracked pool calls, so ``close`` waits for them too).

Errors are translated here, by type (house rule 7): a missing image is
``ImageNotFound``; a failed pull ``ImagePullFailed`` (the engine reports most
pull failures as an ``error`` record inside a 200 stream, which is read here);
an engine that does not answer ``RuntimeUnavailable``; anything else the
engine refuses ``RuntimeFailure`` with its explanation.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import attrs
import docker
import docker.errors
import requests.exceptions
from docker.utils import parse_repository_tag
from twisted.logger import Logger

from zund.common import errors
from zund.runtimes.base import image_missing, image_pull_failed, pull_policy

log = Logger()

#: Label on the throw-away container used to export an image's filesystem.
EXPORT_LABEL = "zund.microvm.export"


def image_reference(image: str) -> tuple[str, str]:
    """``repo[:tag|@digest]`` -> ``(repo, tag_or_digest)``, tag defaulting to latest."""
    repo, tag = parse_repository_tag(image)
    return repo, tag or "latest"


def explain(e: BaseException) -> str:
    """The engine's explanation of an SDK error, else its text."""
    explanation = getattr(e, "explanation", None)
    if explanation:
        return str(explanation)
    return str(e) or type(e).__name__


def connect_api(url: str, version: str, timeout_s: float) -> docker.APIClient:
    """Blocking: a low-level client to the engine at ``url``, checked with a ping."""
    api = docker.APIClient(base_url=url, version=version or "auto", timeout=timeout_s)
    try:
        api.ping()
    except BaseException:
        api.close()
        raise
    return api


@attrs.frozen
class ImageInfo:
    """What a runtime needs to know about a local image."""

    id: str
    #: docker's image ``Config`` (Cmd, Entrypoint, Env, WorkingDir, ExposedPorts, ...)
    config: dict


class DockerImageSource:
    """Local Docker images for one runtime. See the module docstring.

    ``api()`` returns the open ``docker.APIClient`` (or raises RuntimeUnavailable);
    ``call_blocking(fn)`` (awaitable, e.g. a runtime's ``TrackedCalls``) runs ``fn``
    off the reactor. Construction
    does no I/O.
    """

    def __init__(self, api: Callable[[], docker.APIClient],
                 call_blocking: Callable[[Callable[[], Any]], Awaitable[Any]],
                 runtime_name: str):
        self._api = api
        self._call_blocking = call_blocking
        self._runtime_name = runtime_name

    def translate(self, e: BaseException, image: str) -> errors.ZundError:
        """An SDK/transport exception about ``image`` as a domain error, by type."""
        if isinstance(e, docker.errors.NotFound):  # ImageNotFound is a NotFound
            return errors.ImageNotFound(image=image)
        if isinstance(e, docker.errors.APIError):
            return errors.RuntimeFailure(reason=explain(e))
        if isinstance(e, requests.exceptions.Timeout):
            return errors.RuntimeFailure(reason=f"engine call timed out: {e}")
        if isinstance(e, (requests.exceptions.ConnectionError, ConnectionError,
                          FileNotFoundError)):
            return errors.RuntimeUnavailable(runtime=self._runtime_name, reason=str(e))
        if isinstance(e, docker.errors.DockerException):
            return errors.RuntimeFailure(reason=str(e))
        return errors.RuntimeFailure(reason=f"{type(e).__name__}: {e}")

    async def _call(self, fn: Callable[[], Any], image: str) -> Any:
        try:
            return await self._call_blocking(fn)
        except errors.ZundError:
            raise
        except Exception as e:
            raise self.translate(e, image) from e

    async def ensure(self, image: str, policy: str | None, auth=None) -> None:
        """Make ``image`` local following ``policy`` (``ifnotpresent`` | ``always`` |
        ``never``, any case). ``never`` and a missing image: ImageNotFound; a failed
        pull: ImagePullFailed. Both messages name the image, the policy and the cause."""
        policy = pull_policy(policy)
        if policy != "always":
            try:
                await self.inspect(image)
                return
            except errors.ImageNotFound as e:
                if policy == "never":
                    raise image_missing(image, policy) from e
        await self.pull(image, policy, auth)

    async def pull(self, image: str, policy: str = "always", auth=None) -> None:
        """Pull ``image`` from its registry; any failure is ImagePullFailed.
        ``policy``: the pull policy that asked for the pull (named in errors);
        ``auth``: a ``RegistryAuth`` presented to the registry (not stored)."""
        repo, tag = image_reference(image)
        api = self._api()
        auth_config = None
        if auth is not None and (auth.username or auth.password):
            auth_config = {"username": auth.username or "", "password": auth.password or "",
                           "serveraddress": auth.domain}

        def _pull():
            # Consume the progress stream ourselves: the engine reports a failed
            # pull as an ``error`` record inside a 200 stream, which the
            # high-level ``images.pull`` would swallow.
            for record in api.pull(repo, tag=tag, stream=True, decode=True,
                                   auth_config=auth_config):
                if isinstance(record, dict) and record.get("error"):
                    return str(record.get("error"))
            return None

        try:
            failure = await self._call_blocking(_pull)
        except errors.ZundError:
            raise
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            raise image_pull_failed(image, policy, explain(e)) from e
        except Exception as e:
            raise self.translate(e, image) from e
        if failure:
            raise image_pull_failed(image, policy, failure)
        log.info("runtime.image.pulled image={image} runtime={runtime}", image=image,
                 runtime=self._runtime_name)

    async def inspect(self, image: str) -> ImageInfo:
        """The local image's id and config; ImageNotFound when it is not local."""
        api = self._api()
        info = await self._call(lambda: api.inspect_image(image), image)
        return ImageInfo(id=str(info["Id"]), config=dict(info.get("Config") or {}))

    async def export_rootfs(self, image: str, dest_path: str) -> None:
        """Write ``image``'s flattened filesystem as a tarball to ``dest_path``,
        through a created-and-never-started container that is removed again."""
        api = self._api()

        def _export():
            try:
                dest = open(dest_path, "wb")
            except OSError as e:  # ours, not the engine's: not "engine unavailable"
                raise errors.RuntimeFailure(reason=f"cannot write {dest_path}: {e}") from e
            with dest:
                created = api.create_container(image=image, command=["/.zund-export"],
                                               network_disabled=True,
                                               labels={EXPORT_LABEL: "1"})
                cid = created["Id"]
                try:
                    for chunk in api.export(cid):
                        dest.write(chunk)
                finally:
                    api.remove_container(cid, force=True)

        await self._call(_export, image)
