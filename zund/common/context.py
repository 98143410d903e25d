"""The request context: who is calling, on whose behalf, with which request id."""

from __future__ import annotations

import uuid as _uuid

import attrs


def new_request_id() -> str:
    return "req-" + str(_uuid.uuid4())


@attrs.frozen
class RequestContext:
    """Authenticated caller. Built by ``zund/api/auth.py`` and passed down by value."""

    user_id: str
    project_id: str
    roles: tuple[str, ...] = ()
    is_admin: bool = False
    request_id: str = attrs.field(factory=new_request_id)
    user_name: str | None = None
    project_name: str | None = None
    auth_token: str | None = None

    def to_policy_values(self) -> dict:
        """The credentials dict oslo.policy expects."""
        return {
            "user_id": self.user_id,
            "project_id": self.project_id,
            "roles": list(self.roles),
            "is_admin": self.is_admin,
        }

    def to_dict(self) -> dict:
        return attrs.asdict(self, recurse=False) | {"roles": list(self.roles)}

    @classmethod
    def from_dict(cls, d: dict) -> "RequestContext":
        d = dict(d)
        d["roles"] = tuple(d.get("roles") or ())
        return cls(**d)

    @classmethod
    def admin(cls, project_id: str = "admin") -> "RequestContext":
        return cls(user_id="admin", project_id=project_id, roles=("admin",), is_admin=True)
