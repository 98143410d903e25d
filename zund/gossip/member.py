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
    """Parse ``host:port`` (``[v6]:port``; oslo.utils' parser); raises ValueError on junk."""
    from oslo_utils import netutils  # here: it loads psutil (~1.5 MB RSS); seeds only

    try:
        host, port = netutils.parse_host_port(text.strip(), default_port=default_port)
    except ValueError as e:
        raise ValueError(f"bad address {text!r}") from e
    if not host:
        raise ValueError(f"bad address {text!r}")
    if port is None:
        raise ValueError(f"address {text!r} has no port")
    if not 0 < int(port) < 65536:
        raise ValueError(f"bad port in {text!r}")
    return (host, int(port))


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
    #: the last view and the fields it was made from: readers ask for every
    #: member's view many times per placement, and most of them have not changed
    _view: tuple | None = attrs.field(default=None, init=False, repr=False, eq=False)

    def view(self) -> "MemberView":
        key = (self.addr, self.state, self.incarnation, self.meta, self.meta_version,
               self.state_changed_at)
        cached = self._view
        if cached is not None and cached[0] == key:
            return cached[1]
        view = MemberView(
            name=self.name,
            addr=format_addr(self.addr),
            state=self.state.label,
            incarnation=self.incarnation,
            meta=self.meta,
            meta_version=self.meta_version,
            state_changed_at=self.state_changed_at,
        )
        self._view = (key, view)
        return view


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
