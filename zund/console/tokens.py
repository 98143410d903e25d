"""One-time console tokens: what a websocket URL carries instead of credentials.

python-zunclient opens the URL the API answered with no Keystone token, so the URL
itself is the capability: a random 256-bit token, valid once, for ``ttl_s``
seconds, bound to one container (the URL names it; both must match) and recording
the caller it was issued to (the session acts and is logged as that caller).

Pure: time comes from the injected clock, randomness from ``token_source``.
"""

from __future__ import annotations

import secrets
from typing import Callable

import attrs

from zund.common import errors


@attrs.frozen
class Grant:
    """What one token allows. ``relay_url``: set on an entry node that is not the
    owner — the owner's console URL (with the owner's own one-time token) to relay
    to; None on the owner, which opens ``kind`` on ``container`` itself."""

    container: str
    kind: str  # "exec" | "attach"
    user_id: str
    project_id: str
    exec_id: str | None = None
    relay_url: str | None = None
    owner: str | None = None
    runtime: str | None = None
    expires_at: float = 0.0


class ConsoleTokenInvalid(errors.ZundError):
    message = "console token refused: {reason}"


class TokenStore:
    """Issued, not yet redeemed tokens of one node (at most ``max_tokens``: the
    oldest is dropped first)."""

    def __init__(self, clock, ttl_s: float = 30.0, max_tokens: int = 1024,
                 token_source: Callable[[], str] = lambda: secrets.token_urlsafe(32)):
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self._clock = clock
        self.ttl_s = ttl_s
        self.max_tokens = max_tokens
        self._new_token = token_source
        self._grants: dict[str, Grant] = {}

    def issue(self, **grant) -> str:
        now = self._clock.seconds()
        self._purge(now)
        while len(self._grants) >= self.max_tokens:
            self._grants.pop(next(iter(self._grants)))
        token = self._new_token()
        self._grants[token] = Grant(expires_at=now + self.ttl_s, **grant)
        return token

    def redeem(self, token: str | None, container: str | None) -> Grant:
        """The grant of ``token`` if it is live and names ``container``; the token is
        spent either way (a wrong container burns it: no guessing with retries)."""
        if not token:
            raise ConsoleTokenInvalid(reason="no token")
        grant = self._grants.pop(token, None)
        if grant is None:
            raise ConsoleTokenInvalid(reason="unknown or already used")
        if self._clock.seconds() >= grant.expires_at:
            raise ConsoleTokenInvalid(reason="expired")
        if container != grant.container:
            raise ConsoleTokenInvalid(reason="issued for another container")
        return grant

    def __len__(self) -> int:
        return len(self._grants)

    def _purge(self, now: float) -> None:
        for token in [t for t, g in self._grants.items() if g.expires_at <= now]:
            del self._grants[token]
