"""Background tasks of the compute manager on a task.Clock: tracked until done,
drained on stop with a bound, failures logged instead of raised."""

from twisted.internet import defer, task
from twisted.logger import capturedLogs

from zund.compute.tasks import BackgroundTasks, ContainerLocks


async def _wait(d):
    return await d


def _fired(d) -> list:
    out = []
    d.addBoth(out.append)
    return out


def test_drain_waits_for_tasks_in_flight():
    """drain completes when the spawned work completes, not before."""
    clock = task.Clock()
    tasks = BackgroundTasks(clock)
    gate = defer.Deferred()
    tasks.spawn(_wait(gate), "slow")
    drained = _fired(defer.Deferred.fromCoroutine(tasks.drain(10)))
    assert drained == [] and len(tasks) == 1
    gate.callback("ok")
    assert drained == [None] and len(tasks) == 0


def test_drain_gives_up_after_its_timeout():
    """Work that never ends holds stop for timeout_s at most."""
    clock = task.Clock()
    tasks = BackgroundTasks(clock)
    tasks.spawn(_wait(defer.Deferred()), "stuck")
    drained = _fired(defer.Deferred.fromCoroutine(tasks.drain(10)))
    clock.advance(9.9)
    assert drained == []
    clock.advance(0.2)
    assert drained == [None]


def test_failed_task_is_logged_not_raised():
    """A task that raises ends (its Deferred fires) and leaves nothing in flight."""
    tasks = BackgroundTasks(task.Clock())

    async def boom():
        raise RuntimeError("boom")

    with capturedLogs() as events:
        out = _fired(tasks.spawn(boom(), "boom"))
    assert out == [None] and len(tasks) == 0
    failed = [e for e in events if e.get("log_format") == "compute.task_failed"]
    assert [e["task"] for e in failed] == ["boom"]


def test_locks_serialise_one_container_only():
    """The lock of one uuid is held; another uuid's lock is free."""
    locks = ContainerLocks()
    assert _fired(locks["a"].acquire())
    second = _fired(locks["a"].acquire())
    assert second == [] and _fired(locks["b"].acquire())
    locks["a"].release()
    assert len(second) == 1
