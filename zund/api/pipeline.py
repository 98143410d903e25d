"""The request pipeline of the Zun API: routing, versions, body, auth, errors.

One Klein app (``APP``) holds every route; resources register their handlers with
:func:`route` (``zund/api/resources/``). Each handler is an ``async def
handler(self, req: ApiRequest, **url_args)``; :meth:`ApiBase._dispatch` runs the
shared pipeline (request id → microversion → body size and JSON → authentication →
handler → view or error), so every answer — 404s for unknown routes included — has
the version headers, the request id and, for 4xx/5xx, Zun's ``errors`` body.
Paths work with and without ``/v1`` and with a trailing slash.
"""

from __future__ import annotations

import datetime
import json
import random
import time
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

import attrs
from klein import Klein
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from werkzeug.exceptions import HTTPException

from zund.api import auth as api_auth
from zund.api import errors as api_errors
from zund.api import microversions, schemas, views
from zund.api.microversions import APIVersion, v
from zund.api.policy import PolicyEnforcer
from zund.common import errors
from zund.common.context import GLOBAL_REQUEST_ID_HEADER, new_request_id, valid_request_id
from zund.common.http import Refusal
from zund.compute.interface import ContainerRef, IContainers

log = Logger()

JSON = "application/json"


@attrs.frozen
class ApiConfig:
    """Plain values the API needs (built from ConfigOpts by ``from_conf``)."""

    node: str = "localhost"
    availability_zone: str = "nova"
    max_limit: int = 1000
    max_request_body_bytes: int = 114688
    #: the one route with a large body: POST …/put_archive (a base64 tar)
    max_archive_body_bytes: int = 1024 * 1024
    auth_strategy: str = "noauth"
    noauth_user_id: str = "admin"
    noauth_project_id: str = "demo"
    #: base of every link; None = scheme and Host header of the request
    public_url: str | None = None
    min_cpu: float = 0.1
    max_cpu: float = 16.0
    min_memory_mb: int = 4
    max_memory_mb: int = 8192
    min_disk_gb: int = 1
    max_disk_gb: int = 160
    default_cpu: float = 1.0
    default_memory_mb: int = 512
    #: image driver of a create that names none ([glance] default_image_driver)
    default_image_driver: str = "docker"
    #: ``debug``: emit the per-request ``api.request`` debug event (otherwise the
    #: event is not even built: the access log already has a line per request)
    debug: bool = False

    def limits(self) -> schemas.Limits:
        return schemas.Limits(
            min_cpu=self.min_cpu, max_cpu=self.max_cpu, min_memory_mb=self.min_memory_mb,
            max_memory_mb=self.max_memory_mb, min_disk_gb=self.min_disk_gb,
            max_disk_gb=self.max_disk_gb, default_cpu=self.default_cpu,
            default_memory_mb=self.default_memory_mb)

    @classmethod
    def from_conf(cls, conf) -> "ApiConfig":
        """From a ConfigOpts with ``zund.conf`` options registered."""
        return cls(
            node=conf.host, availability_zone=conf.default_availability_zone,
            max_limit=conf.api.max_limit, max_request_body_bytes=conf.api.max_request_body_bytes,
            max_archive_body_bytes=conf.api.max_archive_body_bytes,
            auth_strategy=conf.auth_strategy, noauth_user_id=conf.noauth.user_id,
            noauth_project_id=conf.noauth.project_id, public_url=conf.api.public_url,
            min_cpu=conf.minimum_cpus, max_cpu=conf.maximum_cpus,
            min_memory_mb=conf.minimum_memory, max_memory_mb=conf.maximum_memory,
            min_disk_gb=conf.minimum_disk, max_disk_gb=conf.maximum_disk,
            default_cpu=conf.default_cpu, default_memory_mb=conf.default_memory,
            default_image_driver=conf.glance.default_image_driver,
            # ``debug`` is a CLI option of ``zund serve`` (zund.conf.load_conf): absent
            # from a ConfigOpts built without it (NoSuchOptError is an AttributeError)
            debug=bool(getattr(conf, "debug", False)))


@attrs.frozen
class ApiRequest:
    """What a route handler gets: the parsed, authenticated request."""

    request_id: str
    version: APIVersion | None
    ctx: Any  # RequestContext; None on public routes
    #: query string merged with a JSON-object body (body wins), values are str/JSON
    params: dict
    #: decoded JSON body, or None when empty
    body: Any
    base_url: str
    header: Callable[[str], "str | None"]
    raw: Any  # the twisted.web request, for the rare handler that needs it


_NO_BODY = object()


@attrs.frozen
class Reply:
    status: int = 200
    body: Any = _NO_BODY  # JSON-able; _NO_BODY = empty body (204)
    headers: dict = attrs.field(factory=dict)


@attrs.frozen
class _RouteSpec:
    versioned: bool = True
    public: bool = False
    min_version: APIVersion | None = None
    max_version: APIVersion | None = None
    #: which body limit applies: "request" (max_request_body_bytes) or "archive"
    body: str = "request"


APP = Klein()
#: Klein endpoint name -> its route's spec (the listener asks it for body limits)
_SPECS: dict[str, _RouteSpec] = {}
#: the last path segment of every route with a body limit of its own (all literals:
#: a request whose target names none of them has the ordinary limit, and the
#: listener need not run the URL map to know it)
_OWN_LIMIT_TAILS: set[bytes] = set()


#: the direct dispatch table (see :func:`_fast_match`): (method, segment count) ->
#: [(segments, url-argument names, handler, spec)], a segment being a literal str
#: or None for a ``<name>`` argument (werkzeug's default converter: ``[^/]+``)
_FAST: dict[tuple[bytes, int], list] = {}
#: literal leading segments of every route the table cannot express (other
#: converters, e.g. ``<path:image>``): a path under one of them takes Klein
_SLOW_PREFIXES: list[tuple[str, ...]] = []


def _add_fast(url: str, methods: list[str], handler, spec: "_RouteSpec") -> None:
    segments: list = []
    names: list[str] = []
    for part in url.split("/")[1:]:
        if part.startswith("<") and part.endswith(">") and ":" not in part:
            segments.append(None)
            names.append(part[1:-1])
        elif "<" in part or ">" in part:
            prefix = []
            for known in segments:
                if known is None:
                    break
                prefix.append(known)
            _SLOW_PREFIXES.append(tuple(prefix))
            return
        else:
            segments.append(part)
    for m in methods:
        _FAST.setdefault((m.encode("ascii"), len(segments)), []).append(
            (tuple(segments), tuple(names), handler, spec))


def _fast_match(method: bytes, parts: list[str]):
    """(handler, spec, url_args) when exactly one route of the table matches
    ``method`` and the path segments ``parts`` and no route outside the table
    could, else None (Klein's werkzeug map then decides, 404s and 405s included).
    With a single candidate werkzeug's rule ordering cannot pick another."""
    found = None
    for segments, names, handler, spec in _FAST.get((method, len(parts)), ()):
        args = []
        for want, got in zip(segments, parts):
            if want is None:
                if not got:
                    break
                args.append(got)
            elif want != got:
                break
        else:
            if found is not None:
                return None
            found = (handler, spec, dict(zip(names, args)))
    if found is None:
        return None
    for prefix in _SLOW_PREFIXES:
        if tuple(parts[:len(prefix)]) == prefix:
            return None
    return found


def _may_have_own_limit(target: bytes) -> bool:
    path = target.partition(b"?")[0].partition(b"#")[0].rstrip(b"/")
    tail = path.rpartition(b"/")[2]
    # percent-encoded spellings take the full match
    return b"%" in tail or tail in _OWN_LIMIT_TAILS


# Every spelling is registered explicitly (see _variants); werkzeug must not answer
# with redirects of its own, which zunclient would not follow.
APP.url_map.merge_slashes = False
APP.url_map.redirect_defaults = False

def _variants(path: str, versioned: bool) -> list[str]:
    """Every spelling of a path the API answers: with and without ``/v1`` (for
    versioned resources) and with and without a trailing slash."""
    if path == "/":
        return ["/"]
    bases = [f"/v1{path}", path] if versioned and path != "/v1" else [path]
    return [u for b in bases for u in (b, b + "/")]


def route(path: str, methods: list[str], *, versioned: bool = True, public: bool = False,
          min_version: str | None = None, max_version: str | None = None,
          body: str = "request"):
    """Register an ``async def handler(self, req: ApiRequest, **url_args)``.
    ``body="archive"`` gives the route the large body limit."""
    if body not in ("request", "archive"):
        raise ValueError(f"unknown body limit {body!r}")
    spec = _RouteSpec(versioned=versioned, public=public,
                      min_version=v(min_version) if min_version else None,
                      max_version=v(max_version) if max_version else None, body=body)
    if body != "request":
        tail = path.rstrip("/").rpartition("/")[2]
        if not tail or "<" in tail:
            raise ValueError(f"a route with its own body limit must end in a literal: {path}")
        _OWN_LIMIT_TAILS.add(tail.encode("ascii"))

    def deco(handler):
        async def endpoint(self, request, **kwargs):
            return await self._dispatch(request, handler, spec, kwargs)

        endpoint.__name__ = handler.__name__
        for i, url in enumerate(_variants(path, versioned)):
            APP.route(url, methods=methods, endpoint=f"{handler.__name__}_{i}")(endpoint)
            _SPECS[f"{handler.__name__}_{i}"] = spec
            _add_fast(url, methods, handler, spec)
        return handler

    return deco


def _refuse_constant(name: str):
    """JSON has no NaN or Infinity (Python's json module accepts them)."""
    raise ValueError(f"{name} is not a JSON number")


def sort_value(value: Any) -> tuple:
    # SQL-like: NULLs sort first in ascending order
    return (0, "") if value is None else (1, value)


def paginate(items: list, query: schemas.ListQuery, key: Callable[[Any, str], Any],
              ident: Callable[[Any], str]) -> list:
    items = sorted(items, key=lambda it: sort_value(key(it, query.sort_key)),
                   reverse=query.sort_dir == "desc")
    start = 0
    if query.marker is not None:
        for i, it in enumerate(items):
            if ident(it) == query.marker:
                start = i + 1
                break
        else:
            raise errors.InvalidInput(message=f"Marker {query.marker} could not be found.",
                                      field="marker")
    return items[start:start + query.limit]


def policy_target(rec) -> dict:
    return {"project_id": rec.project_id, "user_id": rec.user_id}


class _Utf8Guard(Resource):
    """In front of Klein's resource: only URLs Klein can decode reach it."""

    isLeaf = True

    def __init__(self, api: "ApiBase", inner, direct: bool = False):
        super().__init__()
        self._api = api
        self._inner = inner
        #: the API's routes are APP's, so the direct table (built from them) applies
        self._direct = direct

    def render(self, request):
        try:
            path = b"/".join(request.prepath + request.postpath).decode("utf-8")
            request.getRequestHostname().decode("utf-8")
        except UnicodeDecodeError:
            return self._api._refuse_undecodable(request)
        if self._direct and not request.prepath:
            # the path werkzeug would see (Klein's PATH_INFO), split into segments
            found = _fast_match(request.method, path[1:].split("/")
                                if path.startswith("/") else path.split("/"))
            if found is not None:
                return self._api._render_direct(request, *found)
        return self._inner.render(request)


class ApiBase:
    """The pipeline and the helpers every resource shares (see ``zund.api.app.ZunAPI``
    for the constructor's arguments)."""

    app = APP

    def __init__(self, containers, config: ApiConfig, policy_enforcer: PolicyEnforcer,
                 clock=None, rng: random.Random | None = None, authenticator=None,
                 quotas=None, images=None, registries=None, console=None,
                 services=None):
        if not IContainers.providedBy(containers):
            raise TypeError(f"{type(containers).__name__} does not provide IContainers")
        self._containers = containers
        self._config = config
        self._policy = policy_enforcer
        self._clock = clock
        self._rng = rng or random.Random()
        self._limits = config.limits()
        # authenticator: a zund.api.auth.Authenticator (from_conf builds keystone's)
        self._auth = authenticator if authenticator is not None else api_auth.make_authenticator(
            config.auth_strategy, config.noauth_user_id, config.noauth_project_id)
        self._started_at = self._now()
        self._node_header = config.node.encode()
        self._admin_keys_cache: dict = {}
        self._admin_keys_ctx = None
        # quotas: a zund.cluster.quota.QuotaService (None: /v1/quotas answers 501)
        self._quotas = quotas
        # images: a zund.images.interface.IImages (None: /v1/images is empty and
        # the other image routes answer 501)
        self._images = images
        # registries: a zund.cluster.registries.RegistryService (None: 501)
        self._registries = registries
        # console: a zund.console.service.ConsoleService (None: interactive exec and
        # attach answer 400 "not supported", as before issue 14)
        self._console = console
        # services: a zund.cluster.healer.Healer (enable/disable/force_down of
        # zun-compute services; None: those routes answer 501)
        self._service_admin = services
        #: callable(route, method, status, seconds) told of every answered request
        #: (zund.metrics.NodeMetrics.observe_api); set by the composition root
        self.request_observer = None

    def resource(self):
        """The twisted.web resource serving this API."""
        return _Utf8Guard(self, self.app.resource(), direct=type(self).app is APP)

    def _render_direct(self, request, handler, spec: _RouteSpec, url_args: dict):
        """Serve a request the direct table matched, as Klein would (same
        pipeline, a lost connection cancels the handler, an unexpected error is
        Twisted's 500) without Klein's per-request URL map binding and matching."""
        request.prepath.extend(request.postpath)
        request.postpath = []
        finished = []
        request.notifyFinish().addBoth(finished.append)
        d = Deferred.fromCoroutine(self._dispatch(request, handler, spec, url_args))
        request.notifyFinish().addErrback(lambda _: d.cancel())

        def write(body: bytes) -> None:
            if not finished:
                request.write(body)
                request.finish()

        def failed(failure: Failure) -> None:
            if finished:
                if not failure.check(CancelledError):
                    log.failure("api.unhandled_error", failure)
                return
            request.processingFailed(failure)

        d.addCallbacks(write, failed)
        d.addErrback(lambda f: log.failure("api.write_failed", f))
        return NOT_DONE_YET

    def _refuse_undecodable(self, request) -> bytes:
        """A URL or Host that is not UTF-8: 400 in Zun's format (Klein would answer
        plain text and log an error)."""
        request_id = new_request_id()
        reply = self._error_reply(Failure(errors.InvalidInput(
            field="url", reason="the path or Host header is not valid UTF-8.")), request_id)
        return self._finish(request, request_id, None, None, reply)

    # -- body limits (zund.common.http.BodyPolicy, asked by the listener) --------------

    def _body_limit(self, spec: _RouteSpec | None) -> int:
        if spec is not None and spec.body == "archive":
            return self._config.max_archive_body_bytes
        return self._config.max_request_body_bytes

    def limit_for(self, method: bytes, target: bytes) -> int:
        """Largest body of the route a request line names, asked before the body
        is read; an unknown route gets the ordinary limit (it will be a 404)."""
        if not _may_have_own_limit(target):
            return self._body_limit(None)
        try:
            path = unquote(urlsplit(target.decode("latin-1")).path, errors="replace")
            endpoint, _ = APP.url_map.bind("localhost").match(
                path or "/", method=method.decode("ascii"))
        except Exception:  # not found, not allowed, undecodable: the default
            return self._body_limit(None)
        return self._body_limit(_SPECS.get(endpoint))

    def refusal(self, limit: int) -> Refusal:
        """413 in Zun's errors format, sent by the listener for an oversized body."""
        status, body = api_errors.to_response(errors.RequestEntityTooLarge(limit=limit),
                                              new_request_id())
        return Refusal(status, JSON, json.dumps(body).encode("utf-8"))

    # -- pipeline ----------------------------------------------------------------

    def _now(self) -> datetime.datetime:
        seconds = self._clock.seconds() if self._clock is not None else time.time()
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).replace(
            tzinfo=None)

    @staticmethod
    def _header_getter(request) -> Callable[[str], "str | None"]:
        def header(name: str) -> str | None:
            value = request.getHeader(name.lower().encode("ascii"))
            return value.decode("latin-1") if value is not None else None
        return header

    def _base_url(self, request) -> str:
        if self._config.public_url:
            return self._config.public_url.rstrip("/")
        host = request.getHeader(b"host")
        if host:
            host = host.decode("latin-1")
        else:
            addr = request.getHost()
            host = f"{getattr(addr, 'host', 'localhost')}:{getattr(addr, 'port', 9517)}"
        scheme = "https" if request.isSecure() else "http"
        return f"{scheme}://{host}"

    @staticmethod
    def _query(request) -> dict:
        out = {}
        for k, values in (request.args or {}).items():
            if values:
                out[k.decode("utf-8", "replace")] = values[-1].decode("utf-8", "replace")
        return out

    def _read_body(self, request, header, limit: int) -> Any:
        """Decoded JSON body or None. Size is checked before reading (the listener
        refused larger bodies before buffering them; this covers other transports).
        Nothing a store or peer cannot carry gets past (``schemas.check_storable``)."""
        length = (header("Content-Length") or "").strip()
        if length.isascii() and length.isdigit() and (len(length) > 18 or int(length) > limit):
            raise errors.RequestEntityTooLarge(limit=limit)
        content = request.content
        if content is None:
            return None
        content.seek(0, 2)
        if content.tell() > limit:
            raise errors.RequestEntityTooLarge(limit=limit)
        content.seek(0)
        raw = content.read(limit + 1)
        if not raw.strip():
            return None
        ctype = (header("Content-Type") or JSON).split(";")[0].strip().lower()
        if ctype != JSON and not ctype.endswith("+json"):
            return None  # e.g. DELETE with application/octet-stream: nothing for us
        try:
            body = json.loads(raw, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError) as e:
            raise errors.InvalidInput(field="body", reason=f"malformed JSON: {e}") from e
        except RecursionError as e:
            raise errors.InvalidInput(field="body", reason="malformed JSON: nested too "
                                                           "deeply.") from e
        schemas.check_storable(body)
        return body

    def _finish(self, request, request_id: str, spec: _RouteSpec | None,
                version: APIVersion | None, reply: Reply) -> bytes:
        request.setResponseCode(reply.status)
        if self._config.debug:
            log.debug("api.request", method=request.method.decode("ascii", "replace"),
                      path=request.path.decode("utf-8", "replace"), status=reply.status,
                      request_id=request_id)
        rid = request_id.encode()
        headers = request.responseHeaders
        headers.setRawHeaders(b"X-OpenStack-Request-ID", [rid])
        # zund extra: which node answered (any node serves the whole cloud)
        headers.setRawHeaders(b"Zund-Node", [self._node_header])
        headers.setRawHeaders(b"X-Compute-Request-Id", [rid])
        if spec is None or spec.versioned:
            for name, value in microversions.encoded_response_headers(version):
                headers.setRawHeaders(name, [value])
        for name, value in reply.headers.items():
            request.setHeader(name.encode(), value.encode())
        if reply.body is _NO_BODY:
            return b""
        if isinstance(reply.body, bytes):
            return reply.body
        request.setHeader(b"Content-Type", JSON.encode())
        return json.dumps(reply.body).encode("utf-8")

    def _error_reply(self, failure: Failure, request_id: str) -> Reply:
        status, body = api_errors.to_response(failure, request_id)
        return Reply(status, body, api_auth.challenge_headers(failure.value))

    async def _dispatch(self, request, handler, spec: _RouteSpec, url_args: dict) -> bytes:
        started = self._clock.seconds() if self._clock is not None else None
        request_id = new_request_id()
        header = self._header_getter(request)
        version = None
        try:
            if spec.versioned:
                version = microversions.from_header(header(microversions.HEADER))
                if not version.matches(spec.min_version, spec.max_version):
                    raise errors.VersionNotAllowed(version=str(version))
            body = self._read_body(request, header, self._body_limit(spec))
            params = self._query(request)
            if request.method != b"GET" and isinstance(body, dict):
                params.update(body)
            ctx = None if spec.public else await self._auth.authenticate(request, request_id)
            if ctx is not None:  # oslo.middleware: an inbound req-<uuid> is the global id
                global_id = valid_request_id(header(GLOBAL_REQUEST_ID_HEADER))
                if global_id != ctx.global_request_id:
                    ctx = attrs.evolve(ctx, global_request_id=global_id)
            req = ApiRequest(request_id=request_id, version=version, ctx=ctx, params=params,
                             body=body, base_url=self._base_url(request), header=header,
                             raw=request)
            result = await handler(self, req, **url_args)
            reply = result if isinstance(result, Reply) else Reply(200, result)
        except Exception:
            reply = self._error_reply(Failure(), request_id)
        out = self._finish(request, request_id, spec, version, reply)
        if self.request_observer is not None:
            elapsed = 0.0 if started is None else self._clock.seconds() - started
            self.request_observer(handler.__name__, request.method.decode("ascii", "replace"),
                                  reply.status, elapsed)
        return out

    @APP.handle_errors(HTTPException)
    def _routing_error(self, request, failure):
        """Unknown path (404) or method (405): still Zun's errors body and headers."""
        request_id = new_request_id()
        exc = failure.value
        status = getattr(exc, "code", 404) or 404
        if status < 400:  # a routing redirect: zund has no such spelling
            status = 404
        title = ("The resource could not be found." if status == 404
                 else api_errors.reason_phrase(status))
        try:
            version = microversions.from_header(
                self._header_getter(request)(microversions.HEADER))
        except errors.ZundError:
            version = None
        headers = {}
        if status == 405 and getattr(exc, "valid_methods", None):
            headers["Allow"] = ", ".join(exc.valid_methods)
        reply = Reply(status, api_errors.error_body(status, title, request_id=request_id),
                      headers)
        return self._finish(request, request_id, None, version, reply)

    # -- helpers -----------------------------------------------------------------

    def _visible_admin_keys(self, ctx, rec) -> tuple[str, ...]:
        # Evaluated once per (request, owner): a list view of 1000 containers would
        # otherwise run 4000 oslo.policy checks. Only the latest request's answers
        # are kept (a view is built without yielding), so no answer outlives its
        # request and no past request's context stays in memory (policy file reloads
        # still apply).
        if self._admin_keys_ctx is not ctx:
            self._admin_keys_cache.clear()
            self._admin_keys_ctx = ctx
        key = (rec.project_id, rec.user_id)
        keys = self._admin_keys_cache.get(key)
        if keys is None:
            keys = tuple(k for k in views.ADMIN_ONLY_CONTAINER_KEYS
                         if self._policy.check(ctx, f"container:get_one:{k}", policy_target(rec)))
            if len(self._admin_keys_cache) >= 4096:
                self._admin_keys_cache.clear()
            self._admin_keys_cache[key] = keys
        return keys

    def _container_view(self, req: ApiRequest, rec) -> dict:
        return views.container(rec, req.base_url, self._visible_admin_keys(req.ctx, rec))

    def _ref(self, req: ApiRequest, ident: str, rule: str,
             all_projects_rule: str | None = None, extra_rules: tuple = ()) -> ContainerRef:
        """Authorize ``rule`` (and ``extra_rules``) with the caller's own project as
        target — before any lookup, so a forbidden caller costs nothing — and name
        the container for the owner, which checks the same rules against the real
        record (another project's container is then 404 via the scoped lookup, or
        403 there)."""
        own = {"project_id": req.ctx.project_id, "user_id": req.ctx.user_id}
        for r in (rule,) + tuple(extra_rules):
            self._policy.authorize(req.ctx, r, own)
        all_projects = False
        if all_projects_rule is not None:
            all_projects = schemas.optional_bool(req.params, "all_projects", False)
            if all_projects:
                self._policy.authorize(req.ctx, all_projects_rule)
        return ContainerRef(ident=ident, rule=rule, all_projects=all_projects,
                            extra_rules=tuple(extra_rules))
