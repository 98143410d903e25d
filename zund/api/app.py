"""The Zun v1 REST API as a Klein app (zun-api.md).

``ZunAPI`` is the whole HTTP surface of one node: discovery, containers and their
actions, hosts, services, availability zones. Each route is an ``async def``
taking an :class:`ApiRequest`; the shared request pipeline (request id →
microversion → body size and JSON → authentication → handler → view or error)
lives in :meth:`ZunAPI._dispatch`, so every answer — 404s for unknown routes
included — has the version headers, the request id and, for 4xx/5xx, Zun's
``errors`` body. Paths work with and without ``/v1`` and with a trailing slash.

Controllers only check policy, validate input and render views; the
ContainerManager owns state rules and raises domain errors, which
``zund.api.errors`` maps to HTTP.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import random
import time
from typing import Any, Callable

import attrs
from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from werkzeug.exceptions import HTTPException

from zund.api import auth as api_auth
from zund.api import errors as api_errors
from zund.api import microversions, schemas, views
from zund.api.microversions import APIVersion, v
from zund.api.policy import PolicyEnforcer
from zund.common import errors
from zund.common.context import new_request_id

log = Logger()

JSON = "application/json"


@attrs.frozen
class ApiConfig:
    """Plain values the API needs (built from ConfigOpts by ``from_conf``)."""

    node: str = "localhost"
    availability_zone: str = "nova"
    max_limit: int = 1000
    max_request_body_bytes: int = 114688
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
            auth_strategy=conf.auth_strategy, noauth_user_id=conf.noauth.user_id,
            noauth_project_id=conf.noauth.project_id, public_url=conf.api.public_url,
            min_cpu=conf.minimum_cpus, max_cpu=conf.maximum_cpus,
            min_memory_mb=conf.minimum_memory, max_memory_mb=conf.maximum_memory,
            min_disk_gb=conf.minimum_disk, max_disk_gb=conf.maximum_disk,
            default_cpu=conf.default_cpu, default_memory_mb=conf.default_memory)


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


_app = Klein()
# Every spelling is registered explicitly (see _variants); werkzeug must not answer
# with redirects of its own, which zunclient would not follow.
_app.url_map.merge_slashes = False
_app.url_map.redirect_defaults = False

_GREEK = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
          "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau",
          "upsilon", "phi", "chi", "psi", "omega")


def _variants(path: str, versioned: bool) -> list[str]:
    """Every spelling of a path the API answers: with and without ``/v1`` (for
    versioned resources) and with and without a trailing slash."""
    if path == "/":
        return ["/"]
    bases = [f"/v1{path}", path] if versioned and path != "/v1" else [path]
    return [u for b in bases for u in (b, b + "/")]


def route(path: str, methods: list[str], *, versioned: bool = True, public: bool = False,
          min_version: str | None = None, max_version: str | None = None):
    """Register an ``async def handler(self, req: ApiRequest, **url_args)``."""
    spec = _RouteSpec(versioned=versioned, public=public,
                      min_version=v(min_version) if min_version else None,
                      max_version=v(max_version) if max_version else None)

    def deco(handler):
        async def endpoint(self, request, **kwargs):
            return await self._dispatch(request, handler, spec, kwargs)

        endpoint.__name__ = handler.__name__
        for i, url in enumerate(_variants(path, versioned)):
            _app.route(url, methods=methods, endpoint=f"{handler.__name__}_{i}")(endpoint)
        return handler

    return deco


def _sort_value(value: Any) -> tuple:
    # SQL-like: NULLs sort first in ascending order
    return (0, "") if value is None else (1, value)


def _paginate(items: list, query: schemas.ListQuery, key: Callable[[Any, str], Any],
              ident: Callable[[Any], str]) -> list:
    items = sorted(items, key=lambda it: _sort_value(key(it, query.sort_key)),
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


def _target(rec) -> dict:
    return {"project_id": rec.project_id, "user_id": rec.user_id}


class ZunAPI:
    """The Zun v1 API of one node.

    ``manager``: a ContainerManager (``zund/compute/manager.py`` interface);
    ``policy_enforcer``: a ``zund.api.policy.PolicyEnforcer``;
    ``clock``: IReactorTime for service timestamps (wall clock when None);
    ``rng``: random.Random for generated container names.
    """

    app = _app

    def __init__(self, manager, config: ApiConfig, policy_enforcer: PolicyEnforcer,
                 clock=None, rng: random.Random | None = None):
        self._manager = manager
        self._config = config
        self._policy = policy_enforcer
        self._clock = clock
        self._rng = rng or random.Random()
        self._limits = config.limits()
        self._auth = api_auth.make_authenticator(
            config.auth_strategy, config.noauth_user_id, config.noauth_project_id)
        self._started_at = self._now()
        self._admin_keys_cache: dict = {}

    def resource(self):
        """The twisted.web resource serving this API."""
        return self.app.resource()

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

    def _read_body(self, request, header) -> Any:
        """Decoded JSON body or None. Size is checked before reading."""
        limit = self._config.max_request_body_bytes
        length = header("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
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
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise errors.InvalidInput(field="body", reason=f"malformed JSON: {e}") from e

    def _finish(self, request, request_id: str, spec: _RouteSpec | None,
                version: APIVersion | None, reply: Reply) -> bytes:
        request.setResponseCode(reply.status)
        log.debug("api.request", method=request.method.decode("ascii", "replace"),
                  path=request.path.decode("utf-8", "replace"), status=reply.status,
                  request_id=request_id)
        request.setHeader(b"X-OpenStack-Request-ID", request_id.encode())
        # zund extra: which node answered (any node serves the whole cloud)
        request.setHeader(b"Zund-Node", self._config.node.encode())
        request.setHeader(b"X-Compute-Request-Id", request_id.encode())
        if spec is None or spec.versioned:
            for name, value in microversions.response_headers(version).items():
                request.setHeader(name.encode(), value.encode())
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
        return Reply(status, body)

    async def _dispatch(self, request, handler, spec: _RouteSpec, url_args: dict) -> bytes:
        request_id = new_request_id()
        header = self._header_getter(request)
        version = None
        try:
            if spec.versioned:
                version = microversions.from_header(header(microversions.HEADER))
                if not version.matches(spec.min_version, spec.max_version):
                    raise errors.VersionNotAllowed(version=str(version))
            body = self._read_body(request, header)
            params = self._query(request)
            if request.method != b"GET" and isinstance(body, dict):
                params.update(body)
            ctx = None if spec.public else self._auth.authenticate(header, request_id)
            req = ApiRequest(request_id=request_id, version=version, ctx=ctx, params=params,
                             body=body, base_url=self._base_url(request), header=header,
                             raw=request)
            result = await handler(self, req, **url_args)
            reply = result if isinstance(result, Reply) else Reply(200, result)
        except Exception:
            reply = self._error_reply(Failure(), request_id)
        return self._finish(request, request_id, spec, version, reply)

    @_app.handle_errors(HTTPException)
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
        # otherwise run 4000 oslo.policy checks. ctx carries the request id, so a
        # cached answer never outlives its request (policy file reloads still apply).
        key = (ctx, rec.project_id, rec.user_id)
        keys = self._admin_keys_cache.get(key)
        if keys is None:
            keys = tuple(k for k in views.ADMIN_ONLY_CONTAINER_KEYS
                         if self._policy.check(ctx, f"container:get_one:{k}", _target(rec)))
            if len(self._admin_keys_cache) >= 4096:
                self._admin_keys_cache.clear()
            self._admin_keys_cache[key] = keys
        return keys

    def _container_view(self, req: ApiRequest, rec) -> dict:
        return views.container(rec, req.base_url, self._visible_admin_keys(req.ctx, rec))

    async def _lookup(self, req: ApiRequest, ident: str, action: str,
                      all_projects_rule: str | None = None):
        """Find the container and authorize ``action`` on it (policy target = the
        container's project, so another project's container is 404 via lookup or
        403 here)."""
        all_projects = False
        if all_projects_rule is not None:
            all_projects = schemas.optional_bool(req.params, "all_projects", False)
            if all_projects:
                self._policy.authorize(req.ctx, all_projects_rule)
        rec = await self._manager.lookup(req.ctx, ident, all_projects=all_projects)
        self._policy.authorize(req.ctx, action, _target(rec))
        return rec

    def _generate_name(self) -> str:
        return f"{self._rng.choice(_GREEK)}-{self._rng.randint(1, 24)}-container"

    async def _hosts(self) -> list[dict]:
        many = getattr(self._manager, "list_hosts", None)
        if many is not None:
            return list(await many())
        return [await self._manager.host_info()]

    # -- discovery -----------------------------------------------------------------

    @route("/", ["GET"], versioned=False, public=True)
    async def root(self, req: ApiRequest):
        return views.discovery(req.base_url, str(microversions.MIN_VERSION),
                               str(microversions.MAX_VERSION))

    @route("/v1", ["GET"], public=True)
    async def v1(self, req: ApiRequest):
        return views.v1_root(req.base_url)

    @route("/healthcheck", ["GET", "HEAD"], versioned=False, public=True)
    async def healthcheck(self, req: ApiRequest):
        return Reply(200, b"OK", {"Content-Type": "text/plain"})

    # -- containers: CRUD ------------------------------------------------------------

    @route("/containers", ["POST"])
    async def container_create(self, req: ApiRequest):
        ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != JSON:
            raise errors.UnsupportedMediaType(content_type=ctype or "(none)")
        ctx = req.ctx
        self._policy.authorize(ctx, "container:create")
        body = req.body if req.body is not None else {}
        request = schemas.validate_create(body, req.version, self._limits)
        if request.get("runtime") is not None:
            self._policy.authorize(ctx, "container:create:runtime")
        if request.get("privileged"):
            self._policy.authorize(ctx, "container:create:privileged")
        if request.get("host") is not None:
            self._policy.authorize(ctx, "container:create:requested_destination")
        if request.get("image_pull_policy") is not None:
            self._policy.authorize(ctx, "container:create:image_pull_policy")
        request.setdefault("name", self._generate_name())
        run = schemas.optional_bool(self._query(req.raw), "run", False)
        rec = await self._manager.create(ctx, request, run)
        location = f"{req.base_url}/v1/containers/{rec.uuid}"
        return Reply(202, self._container_view(req, rec), {"Location": location})

    @route("/containers", ["GET"])
    async def container_list(self, req: ApiRequest):
        query = schemas.parse_list_query(
            req.params, max_limit=self._config.max_limit,
            sort_keys=schemas.CONTAINER_SORT_KEYS, default_sort_key="id",
            filters=schemas.CONTAINER_FILTERS, extra=("all_projects",))
        ctx = req.ctx
        self._policy.authorize(ctx, "container:get_all")
        if query.all_projects:
            self._policy.authorize(ctx, "container:get_all_all_projects")
        listed = await self._manager.list(ctx, all_projects=query.all_projects)
        # a cluster-wide list may name the nodes that did not answer in time
        partial = getattr(listed, "partial_nodes", None)
        recs = [r for r in listed if _matches(r, query.filters)]
        page = _paginate(recs, query, lambda r, k: getattr(r, k, None), lambda r: r.uuid)
        items = [self._container_view(req, r) for r in page]
        next_url = views.next_link(req.base_url, "containers", items, query.limit,
                                   query.sort_key, query.sort_dir)
        body = views.collection("containers", items, next_url)
        if partial:
            return Reply(200, body, {"Zund-Partial-Nodes": ",".join(sorted(partial))})
        return body

    @route("/containers/<ident>", ["GET"])
    async def container_show(self, req: ApiRequest, ident: str):
        rec = await self._lookup(req, ident, "container:get_one",
                                 "container:get_one_all_projects")
        rec = await self._manager.refresh(rec) or rec
        return self._container_view(req, rec)

    @route("/containers/<ident>", ["DELETE"])
    async def container_delete(self, req: ApiRequest, ident: str):
        force = schemas.optional_bool(req.params, "force", False)
        stop = schemas.optional_bool(req.params, "stop", False)
        if req.version < v("1.12"):
            stop = False  # `stop` exists from 1.12; older clients never mean it
        rec = await self._lookup(req, ident, "container:delete",
                                 "container:delete_all_projects")
        if force and req.version >= v("1.7"):
            self._policy.authorize(req.ctx, "container:delete_force", _target(rec))
        await self._manager.delete(req.ctx, rec, force=force, stop=stop)
        return Reply(204)

    @route("/containers/<ident>", ["PATCH"])
    async def container_update(self, req: ApiRequest, ident: str):
        patch = schemas.validate_update(req.body if req.body is not None else {}, self._limits)
        rec = await self._lookup(req, ident, "container:update")
        rec = await self._manager.update(req.ctx, rec, patch)
        return self._container_view(req, rec)

    # -- containers: asynchronous actions (202, body null) ----------------------------------

    @route("/containers/<ident>/start", ["POST"])
    async def container_start(self, req: ApiRequest, ident: str):
        rec = await self._lookup(req, ident, "container:start")
        await self._manager.start(req.ctx, rec)
        return Reply(202, None)

    @route("/containers/<ident>/stop", ["POST"])
    async def container_stop(self, req: ApiRequest, ident: str):
        timeout = _timeout(req.params)
        rec = await self._lookup(req, ident, "container:stop")
        await self._manager.stop(req.ctx, rec, timeout_s=timeout)
        return Reply(202, None)

    @route("/containers/<ident>/reboot", ["POST"])
    async def container_reboot(self, req: ApiRequest, ident: str):
        timeout = _timeout(req.params)
        rec = await self._lookup(req, ident, "container:reboot")
        await self._manager.reboot(req.ctx, rec, timeout_s=timeout)
        return Reply(202, None)

    @route("/containers/<ident>/pause", ["POST"])
    async def container_pause(self, req: ApiRequest, ident: str):
        rec = await self._lookup(req, ident, "container:pause")
        await self._manager.pause(req.ctx, rec)
        return Reply(202, None)

    @route("/containers/<ident>/unpause", ["POST"])
    async def container_unpause(self, req: ApiRequest, ident: str):
        rec = await self._lookup(req, ident, "container:unpause")
        await self._manager.unpause(req.ctx, rec)
        return Reply(202, None)

    @route("/containers/<ident>/kill", ["POST"])
    async def container_kill(self, req: ApiRequest, ident: str):
        signal = schemas.not_none(req.params.get("signal"))
        if signal is not None:
            signal = str(signal)
        rec = await self._lookup(req, ident, "container:kill")
        await self._manager.kill(req.ctx, rec, signal=signal)
        return Reply(202, None)

    @route("/containers/<ident>/rebuild", ["POST"])
    async def container_rebuild(self, req: ApiRequest, ident: str):
        image = schemas.not_none(req.params.get("image"))
        image_driver = schemas.not_none(req.params.get("image_driver"))
        if image_driver not in (None, "docker"):
            raise errors.InvalidInput(field="image_driver",
                                      reason=f"{image_driver!r} is not supported; use docker.")
        if image is not None and (not isinstance(image, str) or len(image) < 2):
            raise errors.InvalidInput(field="image", reason=f"{image!r} is not an image name.")
        rec = await self._lookup(req, ident, "container:rebuild")
        rebuild = getattr(self._manager, "rebuild", None)
        if rebuild is None:
            raise errors.NotImplementedYet(what="Container rebuild")
        await rebuild(req.ctx, rec, image=image, image_driver=image_driver)
        return Reply(202, None)

    @route("/containers/<ident>/commit", ["POST"])
    async def container_commit(self, req: ApiRequest, ident: str):
        repository = schemas.not_none(req.params.get("repository"))
        tag = schemas.not_none(req.params.get("tag"))
        if not repository or not isinstance(repository, str):
            raise errors.InvalidInput(field="repository", reason="a repository is required.")
        if tag is None and ":" in repository.rsplit("/", 1)[-1]:
            repository, tag = repository.rsplit(":", 1)
        rec = await self._lookup(req, ident, "container:commit")
        image_id = await self._manager.commit(req.ctx, rec, repository, tag)
        return Reply(202, {"uuid": image_id})

    @route("/containers/<ident>/resize_container", ["POST"], min_version="1.19")
    async def container_resize_container(self, req: ApiRequest, ident: str):
        cpu = schemas.not_none(req.params.get("cpu"))
        memory = schemas.not_none(req.params.get("memory"))
        if cpu is None and memory is None:
            raise errors.InvalidInput(field="cpu", reason="give cpu and/or memory.")
        cpu = None if cpu is None else schemas.parse_cpu(cpu, self._limits)
        memory = None if memory is None else schemas.parse_memory(memory, self._limits)
        rec = await self._lookup(req, ident, "container:resize_container")
        result = await self._manager.resize_container(req.ctx, rec, cpu=cpu, memory=memory)
        if result is not None and hasattr(result, "uuid"):
            rec = result
        return Reply(202, self._container_view(req, rec))

    # -- containers: synchronous actions ------------------------------------------------------

    @route("/containers/<ident>/logs", ["GET"])
    async def container_logs(self, req: ApiRequest, ident: str):
        p = req.params
        stdout = schemas.optional_bool(p, "stdout", True)
        stderr = schemas.optional_bool(p, "stderr", True)
        if not stdout and not stderr:
            stdout = stderr = True  # Zun: asking for neither means both
        timestamps = schemas.optional_bool(p, "timestamps", False)
        tail = schemas.parse_tail(p.get("tail"))
        since = schemas.parse_since(p.get("since"))
        rec = await self._lookup(req, ident, "container:logs")
        text = await self._manager.logs(req.ctx, rec, stdout=stdout, stderr=stderr,
                                        timestamps=timestamps, tail=tail, since=since)
        return text

    @route("/containers/<ident>/execute", ["POST"])
    async def container_execute(self, req: ApiRequest, ident: str):
        p = req.params
        run = schemas.optional_bool(p, "run", True)
        interactive = schemas.optional_bool(p, "interactive", False)
        if "command" not in p or schemas.not_none(p.get("command")) is None:
            raise errors.InvalidInput(field="command", reason="a command is required.")
        argv = schemas.split_command(p["command"])
        rec = await self._lookup(req, ident, "container:execute")
        if interactive or not run:
            raise errors.InteractiveNotSupported(what="Interactive exec (interactive=true or "
                                                      "run=false)")
        result = await self._manager.execute(req.ctx, rec, argv)
        return {"output": result.output, "exit_code": result.exit_code, "exec_id": None,
                "proxy_url": None}

    @route("/containers/<ident>/execute_resize", ["POST"])
    async def container_execute_resize(self, req: ApiRequest, ident: str):
        await self._lookup(req, ident, "container:execute_resize")
        raise errors.InteractiveNotSupported(what="Resizing an exec TTY")

    @route("/containers/<ident>/resize", ["POST"])
    async def container_resize(self, req: ApiRequest, ident: str):
        await self._lookup(req, ident, "container:resize")
        raise errors.InteractiveNotSupported(what="Resizing a container TTY")

    @route("/containers/<ident>/attach", ["GET"])
    async def container_attach(self, req: ApiRequest, ident: str):
        await self._lookup(req, ident, "container:attach")
        raise errors.InteractiveNotSupported(what="Attaching to a container")

    @route("/containers/<ident>/top", ["GET"])
    async def container_top(self, req: ApiRequest, ident: str):
        ps_args = schemas.not_none(req.params.get("ps_args"))
        rec = await self._lookup(req, ident, "container:top")
        return await self._manager.top(req.ctx, rec, ps_args=ps_args)

    @route("/containers/<ident>/stats", ["GET"])
    async def container_stats(self, req: ApiRequest, ident: str):
        rec = await self._lookup(req, ident, "container:stats")
        return await self._manager.stats(req.ctx, rec)

    @route("/containers/<ident>/get_archive", ["GET"])
    async def container_get_archive(self, req: ApiRequest, ident: str):
        path = schemas.not_none(req.params.get("path"))
        if not path:
            raise errors.InvalidInput(field="path", reason="a path is required.")
        rec = await self._lookup(req, ident, "container:get_archive")
        data, stat = await self._manager.get_archive(req.ctx, rec, path)
        if req.version >= v("1.25"):
            encoded = base64.b64encode(data).decode("ascii")
        else:
            encoded = data.decode("latin-1")
        return {"data": encoded, "stat": stat}

    @route("/containers/<ident>/put_archive", ["POST"])
    async def container_put_archive(self, req: ApiRequest, ident: str):
        path = schemas.not_none(req.params.get("path"))
        data = req.params.get("data")
        if not path:
            raise errors.InvalidInput(field="path", reason="a path is required.")
        if not isinstance(data, str):
            raise errors.InvalidInput(field="data", reason="a tar archive is required.")
        if req.version >= v("1.25"):
            try:
                raw = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError) as e:
                raise errors.InvalidInput(field="data", reason=f"not base64: {e}.") from e
        else:
            raw = data.encode("latin-1")
        rec = await self._lookup(req, ident, "container:put_archive")
        await self._manager.put_archive(req.ctx, rec, path, raw)
        return Reply(200, None)

    @route("/containers/<ident>/rename", ["POST"], max_version="1.13")
    async def container_rename(self, req: ApiRequest, ident: str):
        name = schemas.validate_name(req.params.get("name"))
        rec = await self._lookup(req, ident, "container:rename")
        rec = await self._manager.update(req.ctx, rec, {"name": name})
        return self._container_view(req, rec)

    @route("/containers/<ident>/network_list", ["GET"], min_version="1.13")
    async def container_network_list(self, req: ApiRequest, ident: str):
        rec = await self._lookup(req, ident, "container:network_list")
        return {"networks": _networks(rec.addresses or {}, req.version >= v("1.18"))}

    @route("/containers/<ident>/network_attach", ["POST"], min_version="1.8")
    async def container_network_attach(self, req: ApiRequest, ident: str):
        await self._lookup(req, ident, "container:network_attach")
        raise errors.InvalidInput(message="network_attach is not supported: zund has no "
                                          "Neutron networks.", field="network")

    @route("/containers/<ident>/network_detach", ["POST"], min_version="1.6")
    async def container_network_detach(self, req: ApiRequest, ident: str):
        await self._lookup(req, ident, "container:network_detach")
        raise errors.InvalidInput(message="network_detach is not supported: zund has no "
                                          "Neutron networks.", field="network")

    @route("/containers/<ident>/add_security_group", ["POST"], max_version="1.14")
    async def container_add_security_group(self, req: ApiRequest, ident: str):
        await self._lookup(req, ident, "container:add_security_group")
        raise errors.InvalidInput(message="Security groups are not supported: zund has no "
                                          "Neutron.", field="name")

    @route("/containers/<ident>/remove_security_group", ["POST"], max_version="1.14")
    async def container_remove_security_group(self, req: ApiRequest, ident: str):
        await self._lookup(req, ident, "container:remove_security_group")
        raise errors.InvalidInput(message="Security groups are not supported: zund has no "
                                          "Neutron.", field="name")

    @route("/containers/<ident>/container_actions", ["GET"])
    async def container_actions(self, req: ApiRequest, ident: str):
        rec = await self._lookup(req, ident, "container:actions")
        acts = await self._manager.list_actions(req.ctx, rec)
        return {"containerActions": [views.action(a, req.version) for a in acts]}

    @route("/containers/<ident>/container_actions/<request_id>", ["GET"])
    async def container_action_show(self, req: ApiRequest, ident: str, request_id: str):
        rec = await self._lookup(req, ident, "container:actions")
        act = await self._manager.get_action(req.ctx, rec, request_id)
        show_tb = self._policy.check(req.ctx, "container:action:events", _target(rec))
        return views.action_with_events(act, req.version, show_tb)

    # -- hosts, services, availability zones, images --------------------------------------------

    @route("/hosts", ["GET"], min_version="1.4")
    async def host_list(self, req: ApiRequest):
        query = schemas.parse_list_query(
            req.params, max_limit=self._config.max_limit, sort_keys=schemas.HOST_SORT_KEYS,
            default_sort_key="hostname")
        self._policy.authorize(req.ctx, "host:get_all")
        hosts = await self._hosts()
        page = _paginate(hosts, query, lambda h, k: h.get(k), lambda h: h["uuid"])
        items = [views.host(h, req.base_url) for h in page]
        next_url = views.next_link(req.base_url, "hosts", items, query.limit,
                                   query.sort_key, query.sort_dir)
        return views.collection("hosts", items, next_url)

    @route("/hosts/<ident>", ["GET"], min_version="1.4")
    async def host_show(self, req: ApiRequest, ident: str):
        self._policy.authorize(req.ctx, "host:get")
        for h in await self._hosts():
            if ident in (h.get("uuid"), h.get("hostname")):
                return views.host(h, req.base_url)
        raise errors.HostNotFound(ident=ident)

    @route("/services", ["GET"])
    async def service_list(self, req: ApiRequest):
        self._policy.authorize(req.ctx, "zun-service:get_all")
        now = self._now()
        reports = int((now - self._started_at).total_seconds() // 10)
        many = getattr(self._manager, "list_services", None)
        if many is None:
            return {"services": [views.service(self._config.node,
                                               self._config.availability_zone,
                                               now, self._started_at, report_count=reports)]}
        services = []
        for i, svc in enumerate(sorted(await many(), key=lambda x: x["host"]), start=1):
            local = svc["host"] == self._config.node
            services.append(views.service(
                svc["host"], svc["availability_zone"],
                now if svc["state"] == "up" else svc["changed_at"],
                self._started_at if local else svc["changed_at"],
                report_count=reports if local else 0, service_id=i, state=svc["state"]))
        return {"services": services}

    @route("/availability_zones", ["GET"])
    async def availability_zone_list(self, req: ApiRequest):
        query = schemas.parse_list_query(
            req.params, max_limit=self._config.max_limit,
            sort_keys=("availability_zone",), default_sort_key="availability_zone")
        self._policy.authorize(req.ctx, "availability_zones:get_all")
        many = getattr(self._manager, "list_services", None)
        names = sorted({svc["availability_zone"] for svc in await many()}) if many else [
            self._config.availability_zone]
        zones = [{"availability_zone": z} for z in names]
        page = _paginate(zones, query, lambda z, k: z.get(k), lambda z: z["availability_zone"])
        return views.collection("availability_zones", page, None)

    @route("/images", ["GET"])
    async def image_list(self, req: ApiRequest):
        schemas.parse_list_query(req.params, max_limit=self._config.max_limit,
                                 sort_keys=("id", "repo", "tag"), default_sort_key="id")
        self._policy.authorize(req.ctx, "image:get_all")
        # zund keeps no image records: images live in each node's runtime
        return views.collection("images", [], None)


def _matches(rec, filters: dict) -> bool:
    for key, wanted in filters.items():
        value = getattr(rec, key, None)
        if key == "memory":
            if value is None or str(value) != str(wanted):
                return False
        elif key == "auto_remove":
            if bool(value) != wanted:
                return False
        elif value != wanted:
            return False
    return True


def _timeout(params: dict) -> float | None:
    value = schemas.not_none(params.get("timeout"))
    if value is None:
        return None
    return float(schemas.parse_int(value, "timeout", minimum=0))


def _networks(addresses: dict, nested: bool) -> list[dict]:
    out = []
    for net_id, addrs in addresses.items():
        if nested:
            out.append({"net_id": net_id,
                        "port_id": addrs[0].get("port") if addrs else None,
                        "fixed_ips": [{"subnet_id": a.get("subnet_id"),
                                       "version": a.get("version"),
                                       "ip_address": a.get("addr")} for a in addrs]})
        else:
            for a in addrs:
                out.append({"net_id": net_id, "subnet_id": a.get("subnet_id"),
                            "port_id": a.get("port"), "version": a.get("version"),
                            "ip_address": a.get("addr")})
    return out
