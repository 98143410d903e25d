"""The console session bridge: ordering, idle timeout, ends, UTF-8 boundaries."""

from twisted.internet.task import Clock

from zund.console import session as sess
from zund.console.tokens import Grant

GRANT = Grant(container="c1", kind="exec", user_id="u", project_id="p", exec_id="e1")


class Client:
    def __init__(self):
        self.sent, self.closed = [], None

    def send(self, data):
        self.sent.append(data)

    def close(self, code, reason):
        self.closed = (code, reason)


class Backend:
    def __init__(self):
        self.written, self.closed = [], False

    def write(self, data):
        self.written.append(data)

    def close(self):
        self.closed = True


def make(idle_s=60.0, max_pending=64 * 1024):
    clock, client, ended = Clock(), Client(), []
    s = sess.ConsoleSession(GRANT, client, clock, idle_s, on_end=ended.append,
                            max_pending=max_pending)
    return clock, client, s, ended


def test_keystrokes_typed_while_opening_reach_the_backend_in_order():
    """Input before the backend opens is held, then delivered first, in order."""
    _, _, s, _ = make()
    s.from_client(b"l")
    s.from_client(b"s")
    backend = Backend()
    s.backend_ready(backend)
    s.from_client(b"\r")
    assert b"".join(backend.written) == b"ls\r"


def test_output_is_sent_in_whole_utf8_characters():
    """A character split across two reads reaches the client whole."""
    _, client, s, _ = make()
    s.backend_ready(Backend())
    e_acute = "é".encode()
    s.from_backend(b"caf" + e_acute[:1])
    s.from_backend(e_acute[1:] + b"\n")
    assert b"".join(client.sent).decode("utf-8") == "café\n"
    assert all(chunk.decode("utf-8") for chunk in client.sent)


def test_an_idle_session_ends_with_the_idle_code():
    """No byte either way for idle_timeout_s closes client and backend with 4000."""
    clock, client, s, ended = make(idle_s=10.0)
    backend = Backend()
    s.backend_ready(backend)
    clock.advance(9.0)
    s.from_client(b"x")  # activity pushes the deadline
    clock.advance(9.0)
    assert not s.ended
    clock.advance(1.0)
    assert client.closed[0] == sess.CLOSE_IDLE and "idle" in client.closed[1]
    assert backend.closed and ended == [s]


def test_a_closed_client_closes_the_backend_once():
    """The client leaving closes the backend (which ends the exec) and ends once."""
    _, client, s, ended = make()
    backend = Backend()
    s.backend_ready(backend)
    s.client_ended()
    s.client_ended()
    assert backend.closed and ended == [s] and client.closed is None


def test_the_backend_ending_closes_the_client_with_its_reason():
    """When the owner goes away the client gets that code and reason."""
    _, client, s, _ = make()
    s.backend_ready(Backend())
    s.backend_ended(sess.CLOSE_OWNER_LOST, "owner node n2 went away (connection lost)")
    assert client.closed == (sess.CLOSE_OWNER_LOST, "owner node n2 went away (connection lost)")


def test_too_much_input_before_the_console_opens_ends_the_session():
    """Held input is bounded: beyond max_pending the session ends."""
    _, client, s, _ = make(max_pending=4)
    s.from_client(b"12345")
    assert client.closed[0] == sess.CLOSE_TOO_MUCH_INPUT


def test_a_backend_that_opens_after_the_end_is_closed():
    """A backend arriving for an ended session is closed at once."""
    _, _, s, _ = make()
    s.client_ended()
    late = Backend()
    s.backend_ready(late)
    assert late.closed
