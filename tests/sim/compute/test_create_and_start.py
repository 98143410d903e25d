"""The create path through a runtime that makes and starts a container in one engine
job (``create_and_start``, as Docker's runtime has; issue 13 §2), over the fake
runtime on one task.Clock: the record ends as the engine reports it after the start."""

import pytest

from zund.runtimes.fake import FakeRuntime

from .test_manager import Harness, create


class OneJobRuntime(FakeRuntime):
    """The fake runtime with Docker's ``create_and_start``: create, start, then the
    state inspected after the start (the verified fake's own three calls)."""

    async def create_and_start(self, spec, steps=None):
        await self.create(spec)
        await self.start(spec.uuid)
        return await self.inspect(spec.uuid)


@pytest.fixture
def h(tmp_path):
    h = Harness(tmp_path)
    h.runtime = OneJobRuntime("n1", clock=h.clock)
    h.new_manager()
    h.start()
    yield h
    h.stop()


def test_run_in_one_engine_job_reaches_running_with_the_engines_state(h):
    """A create with run goes Running through create_and_start, with the object's id,
    its start time and the create action finished."""
    rec = create(h)
    h.settle()
    got = h.get(rec.uuid)
    state = h.run(h.runtime.inspect(rec.uuid))
    assert got.status == "Running" and got.task_state is None
    assert got.container_id == state.runtime_id and got.started_at == state.started_at
    (action,) = h.run(h.store.list_actions(rec.uuid))
    assert action.finish_time is not None and action.message is None


def test_process_that_exits_at_once_is_recorded_stopped_not_running(h):
    """The state committed is the one inspected after the start: a command that
    ends at once is Stopped with its exit code."""
    rec = create(h, command=["sh", "-c", "exit 3"])
    h.settle()
    got = h.get(rec.uuid)
    assert got.status == "Stopped" and got.exit_code == 3


def test_failed_start_in_the_job_is_an_error_that_keeps_the_object_id(h):
    """A start that fails inside the job leaves the record in Error with the
    engine's reason and the id of the object that was made (so sync and delete
    know it reached the runtime)."""
    rec = create(h, command=["no-such-executable"])
    h.settle()
    got = h.get(rec.uuid)
    assert got.status == "Error" and "executable file not found" in got.status_reason
    assert got.container_id == h.run(h.runtime.inspect(rec.uuid)).runtime_id


def test_create_without_run_only_creates(h):
    """Without run the object is created, not started: status Created."""
    rec = create(h, run=False)
    h.settle()
    assert h.get(rec.uuid).status == "Created"
    assert h.run(h.runtime.inspect(rec.uuid)).status.value == "created"
