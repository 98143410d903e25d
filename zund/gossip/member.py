"""Members and their states (memberlist state.go nodeState / NodeStateType)."""

from __future__ import annotations

import enum

import attrs

Address = tuple  # (host: str, port: int)


class MemberState(enum.IntEnum):
    """Wire values are append-only, like memberlist's StateAlive..StateLeft."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3

    @property
    def label(self) -> str:
        return self.name.lower()


def format_addr(addr: Address) -> str:
    host, port = addr
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def parse_addr(text: str, default_port: int | None = None) -> Address:
    """Parse ``host:port`` (``[v6]:port``); raises ValueError on junk."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"bad address {text!r}")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, ""
    if not port_text:
        if default_port is None:
            raise ValueError(f"address {text!r} has no port")
        return (host, default_port)
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"bad port in {text!r}")
    return (host, port)


@attrs.define
class Member:
    """Mutable record owned by ``Membership``; never handed out (see MemberView)."""

    name: str
    addr: Address
    incarnation: int
    state: MemberState
    meta: bytes = b""
    meta_version: int = 0
    state_changed_at: float = 0.0

    def view(self) -> "MemberView":
        return MemberView(
            name=self.name,
            addr=format_addr(self.addr),
            state=self.state.label,
            incarnation=self.incarnation,
            meta=self.meta,
            meta_version=self.meta_version,
            state_changed_at=self.state_changed_at,
        )


@attrs.frozen
class MemberView:
    """Read-only snapshot of a member, what the rest of zund sees.

    ``state`` is one of ``alive|suspect|dead|left``; ``state_changed_at`` is the
    clock's ``seconds()`` at the last state change (wall-clock time on the
    real reactor).
    """

    name: str
    addr: str
    state: str
    incarnation: int
    meta: bytes
    meta_version: int
    state_changed_at: float

    def to_json(self) -> dict:
        import base64

        return {
            "name": self.name,
            "addr": self.addr,
            "state": self.state,
            "incarnation": self.incarnation,
            "meta": base64.b64encode(self.meta).decode("ascii"),
            "meta_version": self.meta_version,
            "state_changed_at": self.state_changed_at,
        }
