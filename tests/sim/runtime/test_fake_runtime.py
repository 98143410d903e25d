"""FakeRuntime behaviour beyond the shared contract: deterministic time on a
``task.Clock``, the clockless mode, and the hooks higher tiers use."""

from __future__ import annotations

import pytest
from twisted.internet import defer, task

from zund.common import errors
from zund.runtimes.base import ContainerSpec, RuntimeStatus
from zund.runtimes.fake import TEST_IMAGE, FakeRuntime, ShellSyntaxError, parse, tokenize


def _spec(uuid: str, **kwargs) -> ContainerSpec:
    kwargs.setdefault("image", TEST_IMAGE)
    return ContainerSpec(uuid=uuid, node="n1", project_id="p", **kwargs)


def run(coro):
    """Drive a coroutine that must complete synchronously (no real time)."""
    d = defer.ensureDeferred(coro)
    results = []
    d.addBoth(results.append)
    assert results, "coroutine did not complete synchronously"
    if isinstance(results[0], Exception) or hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


def started(fake: FakeRuntime, uuid: str, **kwargs) -> None:
    run(fake.create(_spec(uuid, **kwargs)))
    run(fake.start(uuid))


def test_sleep_takes_clock_time():
    """`sleep 5; echo done` exits only after 5 seconds of the injected clock."""
    clock = task.Clock()
    fake = FakeRuntime("n1", clock)
    started(fake, "a", command=("sh", "-c", "echo start; sleep 5; echo done; exit 2"))
    clock.advance(4.9)
    assert run(fake.inspect("a")).status == RuntimeStatus.RUNNING
    clock.advance(0.2)
    state = run(fake.inspect("a"))
    assert (state.status, state.exit_code) == (RuntimeStatus.EXITED, 2)
    assert run(fake.logs("a", True, True, False, None, None)) == "start\ndone\n"


def test_stop_waits_for_the_timeout_on_the_clock_then_kills():
    """Without a TERM trap, stop kills after exactly timeout_s clock seconds."""
    clock = task.Clock()
    fake = FakeRuntime("n1", clock)
    started(fake, "a", command=("sleep", "100"))
    d = defer.ensureDeferred(fake.stop("a", 10))
    clock.advance(9)
    assert not d.called and run(fake.inspect("a")).status == RuntimeStatus.RUNNING
    clock.advance(1)
    assert d.called
    assert run(fake.inspect("a")).exit_code == 137


def test_without_clock_sleep_blocks_until_signalled():
    """With no clock a main process's sleep never ends by itself; stop kills at once."""
    fake = FakeRuntime("n1")
    started(fake, "a", command=("sleep", "1"))
    assert run(fake.inspect("a")).status == RuntimeStatus.RUNNING
    run(fake.stop("a", 10))
    assert run(fake.inspect("a")).exit_code == 137


def test_exec_timeout_on_the_clock():
    """An exec that never finishes fails after execute_timeout_s."""
    clock = task.Clock()
    fake = FakeRuntime("n1", clock, execute_timeout_s=3)
    started(fake, "a", command=("sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done'))
    d = defer.ensureDeferred(fake.execute("a", ["sh", "-c", "while true; do :; done"]))
    failures = []
    d.addErrback(failures.append)
    clock.advance(3)
    assert failures and failures[0].check(errors.RuntimeFailure)


def test_paused_process_does_not_progress():
    """A sleep that ends while paused only continues after unpause."""
    clock = task.Clock()
    fake = FakeRuntime("n1", clock)
    started(fake, "a", command=("sh", "-c", "sleep 1; echo done"))
    run(fake.pause("a"))
    clock.advance(5)
    assert run(fake.inspect("a")).status == RuntimeStatus.PAUSED
    run(fake.unpause("a"))
    assert run(fake.inspect("a")).exit_code == 0
    assert run(fake.logs("a", True, True, False, None, None)) == "done\n"


def test_registry_images_can_be_pulled():
    """Only images registered in the fake registry can be pulled."""
    fake = FakeRuntime("n1")
    with pytest.raises(errors.ImagePullFailed):
        run(fake.ensure_image("cirros", "ifnotpresent"))
    fake.add_registry_image("cirros")
    run(fake.ensure_image("cirros", "ifnotpresent"))
    run(fake.ensure_image("cirros:latest", "never"))
    run(fake.ensure_image("cirros", "always"))
    with pytest.raises(errors.InvalidInput):
        run(fake.ensure_image("cirros", "sometimes"))


def test_hooks_vanish_exit_and_fail_next():
    """Test hooks: the engine loses a container, a process exits, a call fails once."""
    fake = FakeRuntime("n1")
    started(fake, "a", command=("sleep", "1"))
    fake.exit_process("a", 9)
    assert run(fake.inspect("a")).exit_code == 9
    fake.vanish("a")
    with pytest.raises(errors.RuntimeObjectNotFound):
        run(fake.inspect("a"))
    fake.fail_next("create", errors.RuntimeFailure(reason="disk full"))
    with pytest.raises(errors.RuntimeFailure):
        run(fake.create(_spec("b")))
    run(fake.create(_spec("b")))


def test_shell_redirects_and_connectors():
    """The fake shell handles &&, ||, redirection to files and $VAR expansion."""
    fake = FakeRuntime("n1")
    started(fake, "a", command=("sh", "-c",
                                "echo one > /tmp/f; echo two >> /tmp/f; false && echo no; "
                                "false || echo yes; cat /tmp/f; echo $HOME '$HOME' \"${HOSTNAME}\""),
            hostname="h1")
    assert run(fake.logs("a", True, True, False, None, None)) == \
        "yes\none\ntwo\n/root $HOME h1\n"


def test_tokenizer_rejects_unsupported_syntax():
    """Unsupported shell syntax is reported, not misinterpreted."""
    with pytest.raises(ShellSyntaxError):
        parse(tokenize("echo a | cat", {}))
    with pytest.raises(ShellSyntaxError):
        parse(tokenize("if true; then echo; fi", {}))
    with pytest.raises(ShellSyntaxError):
        tokenize("echo 'unterminated", {})


def test_trap_accepts_every_spelling_of_a_signal():
    """A trap set as `15` runs on kill("SIGTERM"); a trap on a non-signal fails like sh's."""
    fake = FakeRuntime("n1")
    started(fake, "a", command=("sh", "-c",
                                'trap "echo bye; exit 3" 15; trap : NOPE || echo refused; '
                                'while true; do sleep 1; done'))
    run(fake.kill("a", "SIGTERM"))
    state = run(fake.inspect("a"))
    assert (state.status, state.exit_code) == (RuntimeStatus.EXITED, 3)
    assert run(fake.logs("a", True, True, False, None, None)) == \
        "trap: NOPE: invalid signal specification\nrefused\nbye\n"
