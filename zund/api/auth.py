"""Who is calling: turns request headers into a RequestContext.

Strategies (``[DEFAULT] auth_strategy``):

* ``noauth`` — ``X-Auth-Token: user:project`` names the caller (user ``admin`` is
  admin). Any other token (OSC's "none" auth type sends ``notused``) or none at
  all is the configured ``[noauth] user_id``/``project_id`` with admin rights.
* ``keystone`` — keystonemiddleware in front of zund has validated the token and
  set ``X-User-Id``/``X-Project-Id``/``X-Roles`` (``X-Identity-Status: Invalid``
  or a missing user/project means 401). The ``admin`` role makes the caller admin.

``/``, ``/v1`` and ``/healthcheck`` are public; the app does not call the
authenticator for them.
"""

from __future__ import annotations

from typing import Callable, Protocol

from zund.common import errors
from zund.common.context import RequestContext

#: header name -> value or None. Lookups are case-insensitive.
HeaderGetter = Callable[[str], "str | None"]


class Authenticator(Protocol):
    def authenticate(self, header: HeaderGetter, request_id: str) -> RequestContext: ...


class NoAuth:
    def __init__(self, user_id: str = "admin", project_id: str = "demo"):
        self.user_id = user_id
        self.project_id = project_id

    def authenticate(self, header: HeaderGetter, request_id: str) -> RequestContext:
        token = (header("X-Auth-Token") or "").strip()
        user, sep, project = token.partition(":")
        if sep and user and project:
            is_admin = user == "admin"
            return RequestContext(
                user_id=user, project_id=project, roles=("admin",) if is_admin else (),
                is_admin=is_admin, request_id=request_id, user_name=user,
                project_name=project, auth_token=token)
        return RequestContext(
            user_id=self.user_id, project_id=self.project_id, roles=("admin",),
            is_admin=True, request_id=request_id, user_name=self.user_id,
            project_name=self.project_id, auth_token=token or None)


class KeystoneHeaders:
    """Reads the identity headers keystonemiddleware's auth_token filter sets."""

    admin_roles = frozenset({"admin"})

    def authenticate(self, header: HeaderGetter, request_id: str) -> RequestContext:
        if (header("X-Identity-Status") or "Confirmed").lower() == "invalid":
            raise errors.NotAuthenticated()
        user_id = header("X-User-Id") or header("X-User")
        project_id = header("X-Project-Id") or header("X-Tenant-Id") or header("X-Tenant")
        if not user_id or not project_id:
            raise errors.NotAuthenticated()
        roles = tuple(r.strip() for r in (header("X-Roles") or "").split(",") if r.strip())
        return RequestContext(
            user_id=user_id, project_id=project_id, roles=roles,
            is_admin=bool(self.admin_roles.intersection(r.lower() for r in roles)),
            request_id=request_id, user_name=header("X-User-Name"),
            project_name=header("X-Project-Name"), auth_token=header("X-Auth-Token"))


def make_authenticator(strategy: str, noauth_user_id: str = "admin",
                       noauth_project_id: str = "demo") -> Authenticator:
    if strategy == "noauth":
        return NoAuth(noauth_user_id, noauth_project_id)
    if strategy == "keystone":
        return KeystoneHeaders()
    raise ValueError(f"unknown auth_strategy {strategy!r}")
