"""One console session: the bridge between a client websocket and a backend
(the engine's TTY stream on the owner, or a relay websocket to the owner).

No sockets here: the websocket side is any object with ``send(bytes)`` and
``close(code, reason)``, the backend any object with ``write(bytes)`` and
``close()``. Time is the injected clock (idle timeout). The adapters in
``zund.console.ws`` and ``zund.console.streams`` feed it events.

Invariants: bytes from the client reach the backend in order (held, up to
``max_pending`` bytes, while the backend opens); the session ends once, with one
close code and reason the client sees; ending it closes the backend (which ends
the exec on the owner) and the client.
"""

from __future__ import annotations

import codecs
from typing import Callable

from twisted.logger import Logger

log = Logger(namespace="zund.console")

#: websocket close codes the client sees (RFC 6455 §7.4: 4000-4999 are private)
CLOSE_NORMAL = 1000
CLOSE_IDLE = 4000
CLOSE_OWNER_LOST = 4001
CLOSE_BACKEND_FAILED = 4002
CLOSE_TOO_MUCH_INPUT = 4003
CLOSE_SHUTDOWN = 4004


class ConsoleSession:
    """``grant``: the ``zund.console.tokens.Grant`` redeemed; ``client``: the
    websocket side; ``clock``: IReactorTime; ``idle_timeout_s``: no byte either way
    for this long ends the session; ``on_end(session)``: called once at the end
    (metrics, journal, the session cap)."""

    def __init__(self, grant, client, clock, idle_timeout_s: float,
                 on_end: Callable[["ConsoleSession"], None] | None = None,
                 max_pending: int = 64 * 1024):
        self.grant = grant
        self._client = client
        self._clock = clock
        self.idle_timeout_s = idle_timeout_s
        self._on_end = on_end
        self.max_pending = max_pending
        self._backend = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._idle = None
        self.ended = False
        #: (code, reason) the session ended with
        self.end_reason: tuple[int, str] | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self._touch()

    # -- events -------------------------------------------------------------------------

    def backend_ready(self, backend) -> None:
        """The backend is open: send what the client typed meanwhile."""
        if self.ended:
            backend.close()
            return
        self._backend = backend
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        for chunk in pending:
            backend.write(chunk)

    def from_client(self, data: bytes) -> None:
        if self.ended or not data:
            return
        self.bytes_in += len(data)
        self._touch()
        if self._backend is not None:
            self._backend.write(data)
            return
        self._pending_bytes += len(data)
        if self._pending_bytes > self.max_pending:
            self.end(CLOSE_TOO_MUCH_INPUT, "too much input before the console opened")
            return
        self._pending.append(bytes(data))

    def from_backend(self, data: bytes) -> None:
        """Output; split at UTF-8 character boundaries (the zunclient decodes every
        message as UTF-8, so a character must not straddle two messages)."""
        if self.ended or not data:
            return
        self.bytes_out += len(data)
        self._touch()
        text = self._decoder.decode(bytes(data))
        if text:
            self._client.send(text.encode("utf-8"))

    def backend_ended(self, code: int, reason: str) -> None:
        """The exec ended, the console closed, or the owner went away."""
        self._backend = None  # nothing left to close
        self.end(code, reason)

    def client_ended(self) -> None:
        """The client closed or dropped the websocket."""
        if not self.ended:
            self._client = None
            self.end(CLOSE_NORMAL, "client closed")

    # -- ending ---------------------------------------------------------------------------

    def end(self, code: int, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        self.end_reason = (code, reason)
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        backend, self._backend = self._backend, None
        if backend is not None:
            try:
                backend.close()
            except Exception:
                log.failure("console.backend_close_failed")
        client, self._client = self._client, None
        if client is not None:
            client.close(code, reason)
        log.info("console.session.end container={container} kind={kind} user={user} "
                 "code={code} reason={reason} bytes_in={bytes_in} bytes_out={bytes_out}",
                 container=self.grant.container, kind=self.grant.kind,
                 user=self.grant.user_id, code=code, reason=reason,
                 bytes_in=self.bytes_in, bytes_out=self.bytes_out)
        if self._on_end is not None:
            on_end, self._on_end = self._on_end, None
            on_end(self)

    def _touch(self) -> None:
        if self.ended:
            return
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.idle_timeout_s)
        else:
            self._idle = self._clock.callLater(self.idle_timeout_s, self._idle_out)

    def _idle_out(self) -> None:
        self._idle = None
        self.end(CLOSE_IDLE, f"idle for {self.idle_timeout_s:g}s")
