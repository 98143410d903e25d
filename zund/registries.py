"""Private registry records (Zun microversions 1.30/1.31): the value, its merge
rule and the node key that encrypts passwords at rest.

A registry belongs to one project. Its record travels between nodes whole
(password included, inside sealed peer bodies: ``zund.cluster.sealing``) and is
kept by each replica in its store with the password encrypted under that node's
own key (:class:`NodeKey`), so a copied store file leaks no credential without
the key file beside it. The password never leaves the API (views mask it).

Copies merge per record by ``version`` (``(seconds, node)``): the newest wins, and
a deletion is a tombstone (``deleted``) of a newer version, so a late copy cannot
bring a deleted registry back. Pure: no I/O except :class:`NodeKey`'s key file.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable

import attrs

from zund.common import errors

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

#: Zun's mask for the password in every output
MASK = "***"


@attrs.frozen
class RegistryEntry:
    """One registry of project ``project_id``; ``version`` orders copies."""

    uuid: str
    project_id: str
    user_id: str
    name: str | None
    domain: str
    username: str | None
    password: str | None
    created_at: str
    updated_at: str | None
    version: tuple
    deleted: bool = False

    def to_wire(self) -> dict:
        d = attrs.asdict(self)
        d["version"] = [float(self.version[0]), str(self.version[1])]
        return d

    @classmethod
    def from_wire(cls, d) -> "RegistryEntry":
        """Refuses anything malformed with ValueError (a peer's bad copy)."""
        if not isinstance(d, dict):
            raise ValueError("registry: expected a map")
        text = ("uuid", "project_id", "user_id", "domain", "created_at")
        for name in text:
            if not isinstance(d.get(name), str):
                raise ValueError(f"registry.{name}: expected a string")
        optional = ("name", "username", "password")
        for name in optional:
            if d.get(name) is not None and not isinstance(d[name], str):
                raise ValueError(f"registry.{name}: expected a string")
        if d.get("updated_at") is not None and not isinstance(d["updated_at"], str):
            raise ValueError("registry.updated_at: expected a string")
        version = d.get("version")
        if (not isinstance(version, (list, tuple)) or len(version) != 2
                or not isinstance(version[0], (int, float)) or isinstance(version[0], bool)
                or not isinstance(version[1], str)):
            raise ValueError("registry.version: expected [seconds, node]")
        if not isinstance(d.get("deleted", False), bool):
            raise ValueError("registry.deleted: expected a bool")
        return cls(**{n: d[n] for n in text}, **{n: d.get(n) for n in optional},
                   updated_at=d.get("updated_at"),
                   version=(float(version[0]), version[1]), deleted=d.get("deleted", False))

    def newer_than(self, other: "RegistryEntry | None") -> bool:
        return other is None or tuple(self.version) > tuple(other.version)


def merge(*copies: Iterable[RegistryEntry]) -> dict:
    """uuid -> the newest copy among ``copies`` (tombstones included)."""
    out: dict[str, RegistryEntry] = {}
    for entries in copies:
        for e in entries:
            if e.newer_than(out.get(e.uuid)):
                out[e.uuid] = e
    return out


def find(entries: Iterable[RegistryEntry], ident: str) -> RegistryEntry:
    """The live registry named or numbered ``ident``; RegistryNotFound, or Conflict
    when a name is ambiguous (two were created concurrently through two nodes)."""
    live = [e for e in entries if not e.deleted]
    for e in live:
        if e.uuid == ident:
            return e
    named = [e for e in live if e.name == ident]
    if len(named) > 1:
        raise errors.Conflicts(message=f"Multiple registries exist with name {ident}; "
                                       "use the uuid.")
    if not named:
        raise errors.RegistryNotFound(registry=ident)
    return named[0]


class NodeKey:
    """This node's Fernet key (AES-128-CBC + HMAC-SHA256) for credentials at rest,
    in ``path`` (0600), created on first use. Only the node that wrote a token can
    read it: tokens are never sent to peers (they get the plaintext, sealed).
    ``path`` None: a key in memory only (a node without a state path: tests)."""

    def __init__(self, path: str | None):
        self.path = path
        self._fernet: Fernet | None = None

    def _load(self) -> Fernet:
        if self._fernet is not None:
            return self._fernet
        from cryptography.fernet import Fernet  # on first use: ~6 MB RSS otherwise

        if self.path is None:
            self._fernet = Fernet(Fernet.generate_key())
            return self._fernet
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            with open(self.path, "rb") as f:
                key = f.read().strip()
        else:
            key = Fernet.generate_key()
            with os.fdopen(fd, "wb") as f:
                f.write(key + b"\n")
                f.flush()
                os.fsync(f.fileno())
        try:
            self._fernet = Fernet(key)
        except ValueError as e:
            raise errors.RuntimeFailure(reason=f"registry key {self.path} is not a "
                                               f"valid key: {e}") from e
        return self._fernet

    def encrypt(self, text: str) -> str:
        return self._load().encrypt(text.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._load().decrypt(token.encode("ascii")).decode()
        except (InvalidToken, ValueError) as e:
            raise errors.RuntimeFailure(
                reason=f"a stored registry password does not open with {self.path} "
                       "(key replaced?)") from e
