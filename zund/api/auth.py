"""Who is calling: the authentication step of the API pipeline.

Strategies (``[DEFAULT] auth_strategy``):

* ``noauth`` (default, development) — ``X-Auth-Token: user:project[:roles]`` names
  the caller (user ``admin`` is admin; roles default to ``member,reader``). Any other token (OSC's "none" auth type sends
  ``notused``) or none at all is the configured ``[noauth] user_id``/``project_id``
  with admin rights.
* ``keystone`` — the step IS keystonemiddleware's ``auth_token``
  (``AuthProtocol``), configured from ``[keystone_authtoken]`` of zund.conf. The
  Klein app is not WSGI, so :class:`KeystoneAuth` puts the middleware in front of
  a tiny WSGI app that only captures the environ it is handed: the twisted request
  becomes a WSGI environ carrying EVERY client header, so the middleware itself
  strips forged ``X-User-Id``/``X-Roles``/… before it sets the validated ones.
  The middleware blocks (HTTP to Keystone, token cache), so it runs on a bounded
  thread pool. Whatever it refuses is a 401 with its ``WWW-Authenticate``
  challenge; whatever it passes becomes a :class:`RequestContext` read from the
  headers it set. The ``admin`` role makes the caller admin.

``/``, ``/v1`` and ``/healthcheck`` are public; the app does not call the
authenticator for them.
"""

from __future__ import annotations

import io
import sys
from typing import Any, Callable, Iterable, Protocol

from twisted.application import service
from twisted.logger import Logger

from zund.common import errors
from zund.common.context import RequestContext

log = Logger()

#: Threads that may block in keystonemiddleware at once (token validation round
#: trips to Keystone); further requests queue in the pool (STYLE §6: bounded).
KEYSTONE_MAX_WORKERS = 8

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class Authenticator(Protocol):
    async def authenticate(self, request, request_id: str) -> RequestContext:
        """``request``: the twisted.web request. Raises ``errors.NotAuthenticated``."""


class TokenRefused(errors.NotAuthenticated):
    """The auth_token middleware refused the request. ``challenge`` is its
    ``WWW-Authenticate`` value (``Keystone uri="…"``), or None."""

    def __init__(self, challenge: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.challenge = challenge


def challenge_headers(exc: BaseException) -> dict[str, str]:
    """Response headers an authentication failure must carry (RFC 7235 §3.1)."""
    if isinstance(exc, TokenRefused) and exc.challenge:
        return {"WWW-Authenticate": exc.challenge}
    return {}


def _header(request, name: str) -> str | None:
    value = request.getHeader(name.lower().encode("ascii"))
    return value.decode("latin-1") if value is not None else None


class NoAuth:
    def __init__(self, user_id: str = "admin", project_id: str = "demo"):
        self.user_id = user_id
        self.project_id = project_id

    async def authenticate(self, request, request_id: str) -> RequestContext:
        token = (_header(request, "X-Auth-Token") or "").strip()
        user, sep, rest = token.partition(":")
        # ``user:project[:role,role]``: without roles, a user is a project member
        # (with Keystone's implied reader), as a Keystone member token would say
        project, _, role_text = rest.partition(":")
        if sep and user and project:
            roles = tuple(r for r in role_text.split(",") if r) or (
                ("admin", "member", "reader") if user == "admin" else ("member", "reader"))
            is_admin = "admin" in roles
            return RequestContext(
                user_id=user, project_id=project, roles=roles,
                is_admin=is_admin, request_id=request_id, user_name=user,
                project_name=project, auth_token=token)
        return RequestContext(
            user_id=self.user_id, project_id=self.project_id, roles=("admin",),
            is_admin=True, request_id=request_id, user_name=self.user_id,
            project_name=self.project_id, auth_token=token or None)


def wsgi_environ(request) -> dict:
    """A WSGI (PEP 3333) environ for a twisted.web request, body excluded.

    Every client header is carried as ``HTTP_*`` — the middleware must see forged
    identity headers to strip them. A header whose name contains ``_`` is dropped
    (as gunicorn and nginx do): ``X_User_Id`` would otherwise reach the same
    ``HTTP_X_USER_ID`` key by another spelling.
    """
    path = request.path.decode("latin-1")
    query = request.uri.partition(b"?")[2].decode("latin-1")
    host = request.getHost()
    peer = request.getClientAddress()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method.decode("latin-1"),
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": str(getattr(host, "host", "localhost")),
        "SERVER_PORT": str(getattr(host, "port", 0)),
        "SERVER_PROTOCOL": (request.clientproto or b"HTTP/1.1").decode("latin-1"),
        "REMOTE_ADDR": str(getattr(peer, "host", "")),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if request.isSecure() else "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for raw_name, values in request.requestHeaders.getAllRawHeaders():
        name = raw_name.decode("latin-1")
        if "_" in name:
            continue
        key = name.upper().replace("-", "_")
        value = ",".join(v.decode("latin-1") for v in values)
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ["HTTP_" + key] = value
    return environ


class _Outcome:
    """What one pass through the middleware produced (one per request)."""

    def __init__(self):
        self.environ: dict | None = None
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []


def _capture_app(environ: dict, start_response: Callable) -> list[bytes]:
    """The WSGI app behind auth_token: remembers what the middleware passed on.

    With ``delay_auth_decision = true`` the middleware passes unauthenticated
    requests too (``X-Identity-Status: Invalid``): answering 401 then makes the
    middleware add its own ``WWW-Authenticate`` challenge, as in front of Zun.
    """
    outcome: _Outcome = environ["zund.auth.outcome"]
    if environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
        start_response("401 Unauthorized", [("Content-Type", "text/plain")])
        return [b""]
    outcome.environ = environ
    start_response("204 No Content", [])
    return [b""]


class KeystoneAuth:
    """The ``keystone`` strategy: keystonemiddleware's auth_token decides.

    ``auth_filter(app) -> WSGI app``: wraps ``app`` in the middleware
    (:func:`keystone_auth_filter` in production). ``run_blocking(fn, *args) ->
    Deferred`` runs the middleware off the reactor thread (a bounded pool).
    Thread-safe: each call has its own environ and outcome.
    """

    admin_roles = frozenset({"admin"})

    def __init__(self, auth_filter: Callable[[WSGIApp], WSGIApp],
                 run_blocking: Callable[..., Any]):
        self._middleware = auth_filter(_capture_app)
        self._run_blocking = run_blocking

    def _call_middleware(self, environ: dict) -> _Outcome:
        outcome = _Outcome()
        environ["zund.auth.outcome"] = outcome

        def start_response(status, headers, exc_info=None):
            outcome.status = status
            outcome.headers = list(headers)

        body = self._middleware(environ, start_response)
        try:
            for _ in body:
                pass
        finally:
            close = getattr(body, "close", None)  # PEP 3333: the server must call it
            if close is not None:
                close()
        return outcome

    async def authenticate(self, request, request_id: str) -> RequestContext:
        outcome = await self._run_blocking(self._call_middleware, wsgi_environ(request))
        if outcome.environ is None:
            status = int((outcome.status or "401").split(" ", 1)[0])
            challenge = next((v for k, v in outcome.headers
                              if k.lower() == "www-authenticate"), None)
            log.info("api.auth.refused", status=status, request_id=request_id)
            if status >= 500:  # Keystone unreachable: the middleware answered 503
                raise errors.ServiceUnavailable()
            raise TokenRefused(challenge)
        return self.context_from_environ(outcome.environ, request_id)

    def context_from_environ(self, environ: dict, request_id: str) -> RequestContext:
        """The caller as the middleware validated it (it replaced any forged
        identity header). A token without a project scope is refused."""
        def get(name: str) -> str | None:
            return environ.get("HTTP_" + name.upper().replace("-", "_")) or None

        user_id = get("X-User-Id")
        project_id = get("X-Project-Id")
        if not user_id or not project_id:
            raise TokenRefused(None)
        roles = tuple(r.strip() for r in (get("X-Roles") or "").split(",") if r.strip())
        return RequestContext(
            user_id=user_id, project_id=project_id, roles=roles,
            is_admin=bool(self.admin_roles.intersection(r.lower() for r in roles)),
            request_id=request_id, user_name=get("X-User-Name"),
            project_name=get("X-Project-Name"), auth_token=get("X-Auth-Token"),
            user_domain_id=get("X-User-Domain-Id"),
            project_domain_id=get("X-Project-Domain-Id"))


def keystone_auth_filter(conf) -> Callable[[WSGIApp], WSGIApp]:
    """``app -> AuthProtocol(app)`` reading ``[keystone_authtoken]`` (and the auth
    plugin section it names) from ``conf``, zund's own ConfigOpts."""
    try:
        from keystonemiddleware import auth_token
    except ImportError as e:
        raise RuntimeError("auth_strategy = keystone needs keystonemiddleware: "
                           "pip install 'zund[keystone]'") from e

    def wrap(app: WSGIApp) -> WSGIApp:
        return auth_token.AuthProtocol(app, {"oslo_config_config": conf})
    return wrap


class _PoolService(service.Service):
    """Starts the authentication thread pool with the node and joins it on stop."""

    name = "auth-pool"

    def __init__(self, pool):
        self._pool = pool

    def startService(self):
        super().startService()
        self._pool.start()

    def stopService(self):
        super().stopService()
        self._pool.stop()


def from_conf(conf, reactor) -> tuple[Authenticator, service.IService | None]:
    """The node's authenticator and the service that must run while it is used
    (None for ``noauth``). Only ``zund/service.py`` calls this."""
    strategy = conf.auth_strategy
    if strategy == "noauth":
        return NoAuth(conf.noauth.user_id, conf.noauth.project_id), None
    if strategy == "keystone":
        from zund.runtimes.executor import make_run_blocking

        run_blocking, pool = make_run_blocking(reactor, KEYSTONE_MAX_WORKERS,
                                               name="zund-auth")
        return KeystoneAuth(keystone_auth_filter(conf), run_blocking), _PoolService(pool)
    raise ValueError(f"unknown auth_strategy {strategy!r}")


def make_authenticator(strategy: str, noauth_user_id: str = "admin",
                       noauth_project_id: str = "demo") -> Authenticator:
    """The authenticator a bare ``ZunAPI`` uses when it is given none: ``noauth``
    only — ``keystone`` needs the node's ConfigOpts and a pool (:func:`from_conf`)."""
    if strategy == "noauth":
        return NoAuth(noauth_user_id, noauth_project_id)
    if strategy == "keystone":
        raise ValueError("auth_strategy keystone: build the authenticator with "
                         "zund.api.auth.from_conf(conf, reactor) and pass it to ZunAPI")
    raise ValueError(f"unknown auth_strategy {strategy!r}")
