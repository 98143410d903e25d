"""Routing and the request pipeline of the compute API.

Its own Klein app (``NOVA_APP``), the same steps as the Zun API's
(``zund.api.pipeline.ApiBase``, whose body reading, authentication, base URL and
helpers it reuses): request id → compute microversion → body size and JSON →
authentication → handler → view or Nova fault. Every route answers under
``/v2.1`` and under Nova's legacy ``/v2.1/{project_id}``, with or without a
trailing slash; a project id in the URL must be the caller's (Nova's 400).
"""

from __future__ import annotations

import json

import attrs
from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from werkzeug.exceptions import HTTPException

from zund.api import auth as api_auth
from zund.api.microversions import APIVersion, v
from zund.api.nova import faults
from zund.api.nova import microversions as nova_versions
from zund.api.pipeline import JSON, ApiBase, ApiRequest, Reply, _NO_BODY, _RouteSpec
from zund.common import errors
from zund.common.context import GLOBAL_REQUEST_ID_HEADER, new_request_id, valid_request_id
from zund.common.http import Refusal

log = Logger()

NOVA_APP = Klein()
NOVA_APP.url_map.merge_slashes = False
NOVA_APP.url_map.redirect_defaults = False
PREFIX = "/v2.1"


def _variants(path: str, versioned: bool) -> list[str]:
    if not versioned:
        return [path] if path == "/" else [path, path + "/"]
    bases = [PREFIX + path, PREFIX + "/<project_id>" + path]
    return [u for b in bases for u in (b, b + "/")]


def route(path: str, methods: list[str], *, versioned: bool = True, public: bool = False,
          min_version: str | None = None):
    """Register ``async def handler(self, req: ApiRequest, **url_args)`` under
    ``/v2.1`` (``versioned``) or as is (discovery)."""
    spec = _RouteSpec(versioned=versioned, public=public,
                      min_version=v(min_version) if min_version else None)

    def deco(handler):
        async def endpoint(self, request, **kwargs):
            return await self._dispatch(request, handler, spec, kwargs)

        endpoint.__name__ = handler.__name__
        for i, url in enumerate(_variants(path, versioned)):
            NOVA_APP.route(url, methods=methods, endpoint=f"nova_{handler.__name__}_{i}")(
                endpoint)
        return handler

    return deco


class NovaBase(ApiBase):
    """ApiBase with Nova's versions, faults and routes (constructor: ApiBase's)."""

    app = NOVA_APP

    def _version(self, header) -> APIVersion:
        return nova_versions.from_headers(header(nova_versions.HEADER),
                                          header(nova_versions.LEGACY_HEADER))

    # -- body limits (the listener asks before reading a body) ---------------------------

    def limit_for(self, method: bytes, target: bytes) -> int:
        return self._config.max_request_body_bytes

    def refusal(self, limit: int) -> Refusal:
        status, body = faults.to_response(errors.RequestEntityTooLarge(limit=limit))
        return Refusal(status, JSON, json.dumps(body).encode("utf-8"))

    # -- pipeline --------------------------------------------------------------------------

    def _error_reply(self, failure: Failure, request_id: str) -> Reply:
        status, body = faults.to_response(failure, request_id)
        return Reply(status, body, api_auth.challenge_headers(failure.value))

    def _finish(self, request, request_id: str, spec, version, reply: Reply) -> bytes:
        request.setResponseCode(reply.status)
        log.debug("nova_api.request", method=request.method.decode("ascii", "replace"),
                  path=request.path.decode("utf-8", "replace"), status=reply.status,
                  request_id=request_id)
        request.setHeader(b"X-OpenStack-Request-ID", request_id.encode())
        request.setHeader(b"X-Compute-Request-Id", request_id.encode())
        request.setHeader(b"Zund-Node", self._config.node.encode())
        if spec is None or spec.versioned:
            for name, value in nova_versions.response_headers(version).items():
                request.setHeader(name.encode(), value.encode())
        for name, value in reply.headers.items():
            request.setHeader(name.encode(), value.encode())
        if reply.body is _NO_BODY:
            return b""
        request.setHeader(b"Content-Type", JSON.encode())
        return json.dumps(reply.body).encode("utf-8")

    async def _dispatch(self, request, handler, spec: _RouteSpec, url_args: dict) -> bytes:
        request_id = new_request_id()
        header = self._header_getter(request)
        version = None
        try:
            if spec.versioned:
                version = self._version(header)
                if not version.matches(spec.min_version, None):
                    raise errors.ResourceNotFound()
            url_project = url_args.pop("project_id", None)
            body = self._read_body(request, header, self._config.max_request_body_bytes)
            params = self._query(request)
            ctx = None if spec.public else await self._auth.authenticate(request, request_id)
            if ctx is not None:
                ctx = attrs.evolve(ctx, global_request_id=valid_request_id(
                    header(GLOBAL_REQUEST_ID_HEADER)))
                if url_project is not None and url_project != ctx.project_id:
                    raise errors.InvalidInput(
                        f"Malformed request URL: URL's project_id '{url_project}' doesn't "
                        f"match Context's project_id '{ctx.project_id}'")
            req = ApiRequest(request_id=request_id, version=version, ctx=ctx, params=params,
                             body=body, base_url=self._base_url(request), header=header,
                             raw=request)
            result = await handler(self, req, **url_args)
            reply = result if isinstance(result, Reply) else Reply(200, result)
        except Exception:
            reply = self._error_reply(Failure(), request_id)
        return self._finish(request, request_id, spec, version, reply)

    @NOVA_APP.handle_errors(HTTPException)
    def _routing_error(self, request, failure):
        """Unknown path (404) or method (405): a Nova fault with the usual headers."""
        request_id = new_request_id()
        exc = failure.value
        status = getattr(exc, "code", 404) or 404
        if status < 400:
            status = 404
        message = ("The resource could not be found." if status == 404
                   else "The method is not allowed for this resource.")
        headers = {}
        if status == 405 and getattr(exc, "valid_methods", None):
            headers["Allow"] = ", ".join(exc.valid_methods)
        try:
            version = self._version(self._header_getter(request))
        except errors.ZundError:
            version = None
        return self._finish(request, request_id, None, version,
                            Reply(status, faults.fault_body(status, message), headers))
