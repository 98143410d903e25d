"""``ConsoleService``: interactive exec and attach on every node.

Flow (docs/design.md "Interactive consoles"):

1. ``POST /containers/web/execute?interactive=true&run=false`` (or ``GET .../attach``)
   on any node A: the API asks the owner ``console_open`` (an owner call: forwarded
   as one signed, sealed OWNER_CALL with the caller's context; the owner checks the
   policy rule against the record). The owner prepares the console (a TTY exec, or
   checks the container is interactive), issues its own one-time token bound to the
   container and the caller, and answers its console URL.
2. If A is the owner, the client gets that URL. Otherwise A issues a second one-time
   token whose grant says "relay to the owner's URL" and answers its own URL: the
   client always talks to the node it asked.
3. The client opens the websocket: the token is spent; on the owner the session is
   bridged to the engine's TTY stream (``EngineStream``), on A to a websocket to
   the owner (``RelayStream``).

Bounds: at most ``max_sessions`` sessions per node (the API answers 503 with the
reason before issuing a URL; the handshake refuses with 503 too); a session with
no byte either way for ``idle_timeout_s`` ends; a client that goes away ends the
exec process on the owner (``IConsoleRuntime.console_end``); the owner going away
ends a relayed session with close code 4001 and the reason.
"""

from __future__ import annotations

import collections
from typing import Callable
from urllib.parse import urlencode

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from zund.common import errors
from zund.compute.lifecycle import check_state
from zund.console import session as sess
from zund.console.streams import EngineStream, LogTailStream, RelayStream
from zund.console.tokens import TokenStore

log = Logger(namespace="zund.console")

KINDS = ("exec", "attach")


def console_capabilities(rt) -> frozenset:
    """What a runtime offers consoles: "console" (TTY exec and attach streams:
    ``console_exec``, ``console_socket``, ``console_resize``, ``console_end``) and/or
    "console_log" (``console_log_path``: a read-only attach). Kept apart from
    ``IRuntime.capabilities`` (the runtime contract's set); none by default."""
    return frozenset(getattr(rt, "console_capabilities", ()))


class ConsoleSessionsExhausted(errors.ServiceUnavailable):
    message = ("node {node} already serves {active} console sessions (the limit, "
               "[console] max_sessions, is {limit}); try again later")


@attrs.frozen
class ConsoleConfig:
    """``port``: the console websocket listener (Zun's wsproxy port by default);
    ``max_sessions``: open sessions per node; ``token_ttl_s``: how long a console
    URL stays valid; ``idle_timeout_s``: no byte either way ends a session;
    ``relay_timeout_s``: connecting to the owner's console listener."""

    port: int = 6784
    max_sessions: int = 32
    token_ttl_s: float = 30.0
    idle_timeout_s: float = 900.0
    relay_timeout_s: float = 5.0


class ConsoleService(service.Service):
    """The console part of one node. ``manager``: the node's ContainerManager (its
    ``lifecycle.require`` finds a record's runtime); ``reactor``: clock and
    ``IReactorSocket`` (adopts engine streams) and ``IReactorTCP`` (relay);
    ``metrics``: a ``zund.metrics.NodeMetrics`` or None; ``journal``: a
    ``zund.events.EventJournal`` or None."""

    name = "console"

    def __init__(self, node: str, config: ConsoleConfig, reactor, manager,
                 metrics=None, journal=None, token_source: Callable[[], str] | None = None):
        self.node = node
        self.config = config
        self._reactor = reactor
        self._manager = manager
        self._metrics = metrics
        self._journal = journal
        kwargs = {} if token_source is None else {"token_source": token_source}
        self.tokens = TokenStore(reactor, config.token_ttl_s, **kwargs)
        #: ws://host:port of this node's console listener (set when it listens)
        self.public_base: str | None = None
        self.sessions: set = set()
        #: handshakes accepted whose session has not started yet (count toward the cap)
        self._opening = 0
        #: exec ids opened here -> container uuid (resize checks the pairing)
        self._execs: collections.OrderedDict = collections.OrderedDict()

    # -- the cap -----------------------------------------------------------------------

    @property
    def active(self) -> int:
        return len(self.sessions) + self._opening

    def check_capacity(self) -> None:
        if self.active >= self.config.max_sessions:
            raise ConsoleSessionsExhausted(node=self.node, active=self.active,
                                           limit=self.config.max_sessions)

    # -- the owner's side (LocalContainers.console_*) ------------------------------------

    async def open_on_owner(self, ctx, rec, kind: str, argv) -> dict:
        if kind not in KINDS:
            raise errors.InvalidInput(field="kind", reason=f"must be one of {KINDS}")
        if self.public_base is None:
            raise errors.ServiceUnavailable(reason=f"node {self.node} has no console "
                                                   "listener")
        self.check_capacity()
        action = "execute" if kind == "exec" else "attach"
        rt = self._manager.lifecycle.runtime(rec)
        caps = console_capabilities(rt)
        read_only = kind == "attach" and "console" not in caps and "console_log" in caps
        if not read_only and "console" not in caps:
            raise errors.NotSupportedByRuntime(
                action="interactive exec" if kind == "exec" else "attach", runtime=rt.name)
        check_state(rec, action)
        exec_id = None
        if read_only:
            pass  # the guest's serial console, output only (micro-VM)
        elif kind == "exec":
            if not argv:
                raise errors.InvalidInput(field="command", reason="a command is required.")
            exec_id = await rt.console_exec(rec.uuid, list(argv))
            self._remember_exec(exec_id, rec.uuid)
        elif not (rec.interactive and rec.tty):
            raise errors.Conflict(message=f"Container {rec.uuid} was not created with "
                                          "--interactive: it has no console to attach to.")
        token = self.tokens.issue(container=rec.uuid, kind=kind, user_id=ctx.user_id,
                                  project_id=ctx.project_id, exec_id=exec_id, owner=self.node,
                                  runtime=rt.name)
        return {"node": self.node, "container": rec.uuid, "kind": kind, "exec_id": exec_id,
                "url": self._url(token, rec.uuid)}

    async def resize_on_owner(self, rec, width: int, height: int,
                              exec_id: str | None) -> None:
        if not (0 < width <= 10000 and 0 < height <= 10000):
            raise errors.InvalidInput(field="w", reason="width and height must be 1-10000.")
        rt = self._manager.lifecycle.runtime(rec)
        if "console" not in console_capabilities(rt):
            raise errors.NotSupportedByRuntime(action="resize", runtime=rt.name)
        if exec_id is not None and self._execs.get(exec_id) != rec.uuid:
            raise errors.InvalidInput(field="exec_id",
                                      reason=f"no console exec {exec_id} in this container.")
        if exec_id is None and not rec.tty:
            raise errors.Conflict(message=f"Container {rec.uuid} has no TTY to resize (it "
                                          "was not created with --interactive/--tty).")
        check_state(rec, "resize")
        await rt.console_resize(rec.uuid, exec_id, height, width)

    def _remember_exec(self, exec_id: str, uuid: str) -> None:
        self._execs[exec_id] = uuid
        while len(self._execs) > 4096:
            self._execs.popitem(last=False)

    # -- the entry node's side (the API) -------------------------------------------------

    def client_url(self, ctx, opened: dict) -> str:
        """The URL the client gets for ``opened`` (the owner's ``console_open``)."""
        if opened["node"] == self.node:
            return opened["url"]
        if self.public_base is None:
            raise errors.ServiceUnavailable(reason=f"node {self.node} has no console "
                                                   "listener")
        token = self.tokens.issue(container=opened["container"], kind=opened["kind"],
                                  user_id=ctx.user_id, project_id=ctx.project_id,
                                  exec_id=opened.get("exec_id"), relay_url=opened["url"],
                                  owner=opened["node"])
        return self._url(token, opened["container"])

    def _url(self, token: str, uuid: str) -> str:
        return f"{self.public_base}/?{urlencode({'token': token, 'uuid': uuid})}"

    # -- the websocket side (zund.console.ws) ---------------------------------------------

    def redeem(self, token, uuid):
        grant = self.tokens.redeem(token, uuid)  # spent even if the cap refuses below
        self.check_capacity()
        self._opening += 1
        return grant

    def release_unopened(self, grant) -> None:
        self._opening = max(0, self._opening - 1)

    def start_session(self, grant, client) -> sess.ConsoleSession:
        self._opening = max(0, self._opening - 1)
        session = sess.ConsoleSession(grant, client, self._reactor,
                                      self.config.idle_timeout_s, on_end=self._ended)
        self.sessions.add(session)
        if self._metrics is not None:
            self._metrics.console_active.set(len(self.sessions))
        if self._journal is not None:
            self._journal.record("console_opened", container=grant.container, kind=grant.kind,
                                 user=grant.user_id, via=grant.owner if grant.relay_url
                                 else None)
        if grant.relay_url is not None:
            self._open_relay(grant, session)
        else:
            defer.Deferred.fromCoroutine(self._open_engine(grant, session)).addErrback(
                lambda f: session.backend_ended(
                    sess.CLOSE_BACKEND_FAILED, f"console failed: {f.getErrorMessage()}"))
        return session

    def _open_relay(self, grant, session) -> None:
        from zund.console.ws import connect_relay  # autobahn only where it is used

        relay = RelayStream(session, grant.owner or "?")
        connect_relay(self._reactor, relay, grant.relay_url, self.config.relay_timeout_s)

    async def _open_engine(self, grant, session) -> None:
        rt = self._manager.runtimes.get(grant.runtime)
        if rt is None:
            raise errors.RuntimeUnavailable(runtime=grant.runtime, reason="not loaded")
        if "console" not in console_capabilities(rt):
            LogTailStream(session, rt.console_log_path(grant.container), self._reactor).start()
            return
        engine_socket = await rt.console_socket(grant.container, grant.exec_id)
        on_closed = None
        if grant.exec_id is not None:
            def on_closed():
                d = defer.Deferred.fromCoroutine(rt.console_end(grant.exec_id))
                d.addErrback(lambda f: log.failure("console.exec_end_failed", f))
        stream = EngineStream(session, on_closed,
                              "the command exited" if grant.kind == "exec"
                              else "the container's console closed")
        if session.ended:  # the client left while the engine stream opened
            stream.adopt(self._reactor, engine_socket)
            stream.close()
            return
        stream.adopt(self._reactor, engine_socket)

    def _ended(self, session) -> None:
        self.sessions.discard(session)
        code, reason = session.end_reason
        outcome = {sess.CLOSE_NORMAL: "closed", sess.CLOSE_IDLE: "idle",
                   sess.CLOSE_OWNER_LOST: "owner_lost", sess.CLOSE_SHUTDOWN: "shutdown",
                   }.get(code, "failed")
        if self._metrics is not None:
            self._metrics.console_active.set(len(self.sessions))
            self._metrics.console_sessions.labels(session.grant.kind, outcome).inc()
        if self._journal is not None:
            self._journal.record("console_closed", container=session.grant.container,
                                 kind=session.grant.kind, code=code, reason=reason)

    # -- service -----------------------------------------------------------------------------

    def stopService(self):
        super().stopService()
        for session in list(self.sessions):
            session.end(sess.CLOSE_SHUTDOWN, f"node {self.node} is shutting down")
