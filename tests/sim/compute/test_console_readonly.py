"""A runtime with only a console log (the micro-VM) gets a read-only attach and a
clear 409 for interactive exec."""

import pytest
from twisted.internet.task import Clock

from zund.common import context, errors
from zund.console.service import ConsoleConfig, ConsoleService
from zund.records import ContainerRecord

CTX = context.RequestContext(user_id="alice", project_id="proj")


class LogOnlyRuntime:
    name = "microvm"
    capabilities = frozenset({"pause"})
    console_capabilities = frozenset({"console_log"})

    def __init__(self, path):
        self.path = path

    def console_log_path(self, uuid):
        return self.path


class Lifecycle:
    def __init__(self, rt):
        self.rt = rt

    def runtime(self, rec):
        return self.rt

    def require(self, rec, capability, action):
        if capability not in self.rt.capabilities:
            raise errors.NotSupportedByRuntime(action=action, runtime=self.rt.name)
        return self.rt


class Manager:
    def __init__(self, rt):
        self.runtimes = {rt.name: rt}
        self.lifecycle = Lifecycle(rt)


class Client:
    def __init__(self):
        self.sent, self.closed = [], None

    def send(self, data):
        self.sent.append(data)

    def close(self, code, reason):
        self.closed = (code, reason)


def run(coro):
    """Drive a coroutine that awaits nothing asynchronous (the fakes answer at once)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine waited")


def make(tmp_path):
    log = tmp_path / "console.log"
    log.write_bytes(b"booted\n")
    clock = Clock()
    console = ConsoleService("n1", ConsoleConfig(), clock, Manager(LogOnlyRuntime(str(log))))
    console.public_base = "ws://127.0.0.1:6784"
    rec = ContainerRecord(uuid="u1", project_id="proj", user_id="alice", image="img",
                          status="Running", runtime="microvm")
    return clock, console, rec, log


def test_attach_to_a_micro_vm_follows_its_serial_console(tmp_path):
    """The console log's recent and new output reach the client; typing is ignored."""
    clock, console, rec, log = make(tmp_path)
    opened = run(console.open_on_owner(CTX, rec, "attach", None))
    grant = console.redeem(opened["url"].split("token=")[1].split("&")[0], "u1")
    client = Client()
    session = console.start_session(grant, client)
    clock.advance(0.2)
    with open(log, "ab") as f:
        f.write(b"hello from the guest\n")
    session.from_client(b"ignored\r")
    clock.advance(0.2)
    assert b"".join(client.sent) == b"booted\nhello from the guest\n"
    session.client_ended()
    assert not console.sessions


def test_interactive_exec_on_a_micro_vm_is_a_clear_conflict(tmp_path):
    """exec --interactive on a runtime without a TTY channel is 409, naming it."""
    _, console, rec, _ = make(tmp_path)
    with pytest.raises(errors.NotSupportedByRuntime, match="microvm"):
        run(console.open_on_owner(CTX, rec, "exec", ["sh"]))
