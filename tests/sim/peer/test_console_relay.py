"""Console websockets on real loopback sockets: an entry node relays to the owner.

Two ConsoleServices (entry and owner) listen on 127.0.0.1; the owner's "engine"
is a socketpair standing for a container's TTY, so the whole byte path (client
websocket -> entry -> relay websocket -> owner -> engine stream) is real, and the
faults are real too (the owner's listener and sessions vanish).
"""

from __future__ import annotations

import socket
import time

import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, endpoints, protocol, reactor, task

from zund.common import context
from zund.console import session as sess
from zund.console.service import ConsoleConfig, ConsoleService, ConsoleSessionsExhausted
from zund.console.ws import server_factory
from zund.records import ContainerRecord

UUID = "6f1c3b9e-5a3c-4d8e-9b1a-2f0c1d2e3f40"


class _Collect(protocol.Protocol):
    def __init__(self):
        self.data = b""
        self.lost = False

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason=None):
        self.lost = True


class FakeConsoleRuntime:
    """The engine side: each console is a socketpair; the test holds the TTY end."""

    name = "fake"
    capabilities = frozenset()
    console_capabilities = frozenset({"console"})

    def __init__(self):
        self.ttys: list[_Collect] = []
        self.ended: list[str] = []
        self.resized: list[tuple] = []

    async def console_exec(self, uuid, argv):
        return f"exec-{len(self.ttys) + 1}"

    async def console_socket(self, uuid, exec_id=None):
        ours, theirs = socket.socketpair()
        tty = _Collect()
        reactor.adoptStreamConnection(theirs.fileno(), socket.AF_UNIX,
                                      protocol.Factory.forProtocol(lambda: tty))
        theirs.close()
        self.ttys.append(tty)
        return ours

    async def console_resize(self, uuid, exec_id, height, width):
        self.resized.append((exec_id, height, width))

    async def console_end(self, exec_id):
        self.ended.append(exec_id)
        return True


class FakeLifecycle:
    def __init__(self, rt):
        self._rt = rt

    def runtime(self, rec):
        return self._rt

    def require(self, rec, capability, action):
        from zund.common import errors

        if capability not in self._rt.capabilities:
            raise errors.NotSupportedByRuntime(action=action, runtime=self._rt.name)
        return self._rt


class FakeManager:
    def __init__(self, rt):
        self.runtimes = {rt.name: rt}
        self.lifecycle = FakeLifecycle(rt)


async def until(condition, timeout_s=10.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(reactor, 0.01, lambda: None)


class Client(WebSocketClientProtocol):
    def onOpen(self):
        self.factory.opened.callback(self)

    def onMessage(self, payload, isBinary):
        self.factory.received += payload

    def onClose(self, wasClean, code, reason):
        self.factory.close = (code, reason)
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(reason))


async def connect(url: str):
    factory = WebSocketClientFactory(url, protocols=["binary", "base64"])
    factory.protocol = Client
    factory.opened, factory.received, factory.close = defer.Deferred(), b"", None
    host, port = url.split("//")[1].split("/")[0].split(":")
    await endpoints.TCP4ClientEndpoint(reactor, host, int(port)).connect(factory)
    return factory


class Node:
    def __init__(self, name, max_sessions=8):
        self.rt = FakeConsoleRuntime()
        self.console = ConsoleService(name, ConsoleConfig(port=0, max_sessions=max_sessions,
                                                          idle_timeout_s=30.0),
                                      reactor, FakeManager(self.rt))
        self.port = None

    async def listen(self):
        self.port = await endpoints.TCP4ServerEndpoint(
            reactor, 0, interface="127.0.0.1").listen(server_factory(self.console))
        self.console.public_base = f"ws://127.0.0.1:{self.port.getHost().port}"

    async def stop(self):
        if self.port is not None:
            await self.port.stopListening()
        self.console.stopService()


CTX = context.RequestContext(user_id="alice", project_id="proj")
REC = ContainerRecord(uuid=UUID, project_id="proj", user_id="alice", image="busybox",
                      status="Running", interactive=True, tty=True, runtime="fake")


@pytest_twisted.async_yield_fixture
async def nodes():
    """Node factory; at the end every session, connection and timer is gone, so no
    test leaves work on the global reactor for the next one."""
    before = set(reactor.getDelayedCalls())
    made = []

    def make(name, **kw):
        n = Node(name, **kw)
        made.append(n)
        return n

    yield make
    for n in made:
        for s in list(n.console.sessions):
            s.end(sess.CLOSE_SHUTDOWN, "test over")
        if n.port is not None:
            await n.port.stopListening()
    await until(lambda: not [dc for dc in reactor.getDelayedCalls()
                             if dc not in before and dc.active()],
                timeout_s=15, what="the reactor to settle")


@pytest_twisted.ensureDeferred
async def test_keystrokes_through_a_non_owner_reach_the_container_and_output_returns(nodes):
    """Typed bytes cross entry -> owner -> engine; output comes back; closing the
    client ends the exec on the owner."""
    entry, owner = nodes("entry"), nodes("owner")
    await entry.listen()
    await owner.listen()
    opened = await owner.console.open_on_owner(CTX, REC, "exec", ["sh"])
    url = entry.console.client_url(CTX, opened)
    assert url.startswith(entry.console.public_base)
    client = await connect(url)
    proto = await client.opened
    proto.sendMessage(b"echo hi\r", isBinary=True)
    await until(lambda: owner.rt.ttys and owner.rt.ttys[0].data == b"echo hi\r", what="input")
    owner.rt.ttys[0].transport.write("hi ✓\r\n".encode())
    await until(lambda: client.received == "hi ✓\r\n".encode(), what="output")
    proto.sendClose(1000)
    await until(lambda: owner.rt.ended == [opened["exec_id"]], what="exec ended")
    await until(lambda: owner.rt.ttys[0].lost, what="engine stream closed")
    assert not entry.console.sessions and not owner.console.sessions


@pytest_twisted.ensureDeferred
async def test_the_owner_going_away_ends_the_session_with_a_clear_reason(nodes):
    """When the owner's sessions and listener vanish, the client is closed with
    4001 and a reason naming the owner."""
    entry, owner = nodes("entry"), nodes("owner")
    await entry.listen()
    await owner.listen()
    opened = await owner.console.open_on_owner(CTX, REC, "attach", None)
    client = await connect(entry.console.client_url(CTX, opened))
    await client.opened
    await until(lambda: owner.console.sessions, what="owner session")
    # the owner dies: its connections drop without a websocket close
    for s in list(owner.console.sessions):
        s._client.transport.abortConnection()
    await until(lambda: client.close is not None, what="client closed")
    code, reason = client.close
    assert code == sess.CLOSE_OWNER_LOST and "owner" in reason


@pytest_twisted.ensureDeferred
async def test_an_unreachable_owner_is_reported_to_the_client(nodes):
    """A relay whose owner does not listen closes the client with 4001."""
    entry, owner = nodes("entry"), nodes("owner")
    await entry.listen()
    await owner.listen()
    opened = await owner.console.open_on_owner(CTX, REC, "attach", None)
    await owner.port.stopListening()
    owner.port = None
    client = await connect(entry.console.client_url(CTX, opened))
    await client.opened
    await until(lambda: client.close is not None, what="client closed")
    assert client.close[0] == sess.CLOSE_OWNER_LOST and "owner" in client.close[1]


@pytest_twisted.ensureDeferred
async def test_a_spent_token_is_refused_at_the_handshake(nodes):
    """The second use of a console URL is refused (403), the first works."""
    owner = nodes("owner")
    await owner.listen()
    opened = await owner.console.open_on_owner(CTX, REC, "attach", None)
    first = await connect(opened["url"])
    await first.opened
    second = await connect(opened["url"])
    with pytest.raises(ConnectionError):
        await second.opened
    assert second.close is not None and second.close[0] != 1000


@pytest_twisted.ensureDeferred
async def test_the_session_cap_refuses_beyond_max_sessions(nodes):
    """With max_sessions=1 a second console is refused before a URL is issued,
    with the reason; the first session is unaffected."""
    owner = nodes("owner", max_sessions=1)
    await owner.listen()
    opened = await owner.console.open_on_owner(CTX, REC, "attach", None)
    client = await connect(opened["url"])
    await client.opened
    await until(lambda: owner.console.sessions, what="session")
    with pytest.raises(ConsoleSessionsExhausted, match="max_sessions"):
        await owner.console.open_on_owner(CTX, REC, "attach", None)
    assert client.close is None


@pytest_twisted.ensureDeferred
async def test_resize_reaches_only_an_exec_of_that_container(nodes):
    """execute_resize with the exec of this container resizes; another id is refused."""
    from zund.common import errors

    owner = nodes("owner")
    await owner.listen()
    opened = await owner.console.open_on_owner(CTX, REC, "exec", ["sh"])
    await owner.console.resize_on_owner(REC, 120, 40, opened["exec_id"])
    assert owner.rt.resized == [(opened["exec_id"], 40, 120)]
    with pytest.raises(errors.InvalidInput):
        await owner.console.resize_on_owner(REC, 120, 40, "exec-of-someone-else")


@pytest_twisted.ensureDeferred
async def test_attach_needs_an_interactive_container(nodes):
    """Attaching to a container created without --interactive is a conflict."""
    import attrs

    from zund.common import errors

    owner = nodes("owner")
    await owner.listen()
    with pytest.raises(errors.Conflict, match="interactive"):
        await owner.console.open_on_owner(CTX, attrs.evolve(REC, interactive=False,
                                                            tty=False), "attach", None)
