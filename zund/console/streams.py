"""Backends of a console session.

- :class:`EngineStream`: the engine's hijacked TTY stream (a Docker exec or
  attach), its descriptor adopted into the reactor, so a session costs no thread;
- :class:`LogTailStream`: a read-only console file (a micro-VM's serial console),
  followed on the clock;
- :class:`RelayStream`: a websocket to the owner node's console listener, for a
  session whose container lives elsewhere (``zund.console.ws.RelayClientProtocol``).

Both call ``session.from_backend(bytes)`` for output and
``session.backend_ended(code, reason)`` once at the end, and offer ``write`` and
``close`` to the session.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import protocol, task

from zund.console import session as sess


class _EngineProtocol(protocol.Protocol):
    def __init__(self, stream: "EngineStream"):
        self._stream = stream

    def dataReceived(self, data: bytes) -> None:
        self._stream.session.from_backend(data)

    def connectionLost(self, reason=protocol.connectionDone) -> None:
        self._stream._lost()


class _OneProtocol(protocol.Factory):
    def __init__(self, proto):
        self._proto = proto

    def buildProtocol(self, addr):
        return self._proto


class EngineStream:
    """``session``: the ConsoleSession; ``on_closed()``: called once when the stream
    is gone (the owner ends the exec process there)."""

    def __init__(self, session, on_closed: Callable[[], None] | None = None,
                 ended_reason: str = "the console ended"):
        self.session = session
        self._on_closed = on_closed
        self._ended_reason = ended_reason
        self._proto = _EngineProtocol(self)
        self._closing = False

    def adopt(self, reactor, engine_socket) -> None:
        """Take over ``engine_socket`` (the object the runtime returned; closed here,
        the reactor keeps a duplicate of its descriptor)."""
        raw = getattr(engine_socket, "_sock", engine_socket)
        try:
            reactor.adoptStreamConnection(raw.fileno(), raw.family, _OneProtocol(self._proto))
        finally:
            for obj in (getattr(engine_socket, "_response", None), engine_socket, raw):
                try:
                    if obj is not None:
                        obj.close()
                except Exception:  # discarding our copy; the reactor owns the stream
                    pass
        self.session.backend_ready(self)

    def write(self, data: bytes) -> None:
        if self._proto.transport is not None:
            self._proto.transport.write(data)

    def close(self) -> None:
        self._closing = True
        if self._proto.transport is not None:
            self._proto.transport.loseConnection()

    def _lost(self) -> None:
        if not self._closing:
            self.session.backend_ended(sess.CLOSE_NORMAL, self._ended_reason)
        on_closed, self._on_closed = self._on_closed, None
        if on_closed is not None:
            on_closed()


class RelayStream:
    """The owner side of a relayed session, seen from the entry node."""

    def __init__(self, session, owner: str):
        self.session = session
        self.owner = owner
        self.proto = None
        self._closing = False

    # called by RelayClientProtocol
    def opened(self, proto) -> None:
        self.proto = proto
        self.session.backend_ready(self)

    def received(self, data: bytes) -> None:
        self.session.from_backend(data)

    def closed(self, was_clean: bool, code: int | None, reason: str | None) -> None:
        if self._closing:
            return
        self._closing = True
        if self.proto is None:
            self.session.backend_ended(
                sess.CLOSE_OWNER_LOST,
                f"owner node {self.owner} refused the console ({reason or 'no reason'})")
        elif was_clean and code is not None and code != 1006:
            # the owner ended it: pass its code and reason on
            self.session.backend_ended(code, reason or "closed by the owner")
        else:
            self.session.backend_ended(
                sess.CLOSE_OWNER_LOST,
                f"owner node {self.owner} went away ({reason or 'connection lost'})")

    def connect_failed(self, why: str) -> None:
        self._closing = True
        self.session.backend_ended(sess.CLOSE_OWNER_LOST,
                                   f"owner node {self.owner} unreachable: {why}")

    # called by the session
    def write(self, data: bytes) -> None:
        if self.proto is not None:
            self.proto.sendMessage(bytes(data), isBinary=True)

    def close(self) -> None:
        self._closing = True
        if self.proto is not None:
            self.proto.sendClose(sess.CLOSE_NORMAL, "client closed")


class LogTailStream:
    """A read-only console: the file a guest's serial console writes to, read on
    the clock every ``interval_s`` (a local file; each read is small and does not
    block for long). Starts ``backlog`` bytes before the end, so the client sees the
    recent output. Input is dropped: the guest has no console input."""

    def __init__(self, session, path: str, clock, interval_s: float = 0.2,
                 backlog: int = 16 * 1024):
        self.session = session
        self.path = path
        self._clock = clock
        self.interval_s = interval_s
        self.backlog = backlog
        self._file = None
        self._loop = None

    def start(self) -> None:
        """Raises OSError when the file cannot be opened."""
        f = open(self.path, "rb")
        try:
            size = f.seek(0, 2)
            f.seek(max(0, size - self.backlog))
        except OSError:
            f.close()
            raise
        self._file = f
        self._loop = task.LoopingCall(self._poll)
        self._loop.clock = self._clock
        self.session.backend_ready(self)
        if not self.session.ended:
            self._loop.start(self.interval_s, now=True)

    def _poll(self) -> None:
        if self._file is None:
            return
        try:
            data = self._file.read(65536)
        except OSError as e:
            self.close()
            self.session.backend_ended(sess.CLOSE_BACKEND_FAILED, f"console log: {e}")
            return
        if data:
            self.session.from_backend(data)

    def write(self, data: bytes) -> None:
        pass  # read-only console

    def close(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        f, self._file = self._file, None
        if f is not None:
            f.close()
