"""ContainerManager over the fake runtime on one task.Clock: status vs
task_state, serialisation, background progress, sync, start-up recovery."""

import datetime
import itertools

import pytest
from twisted.internet import defer, task

from zund.common import errors
from zund.common.context import RequestContext
from zund.compute import lifecycle
from zund.compute.manager import ContainerManager, ManagerConfig
from zund.compute.reconcile import STALE
from zund.records import CreateRequest
from zund.runtimes.fake import FakeRuntime
from zund.store import Store

from .conftest import sync_blocking

IMAGE = "zund-test/busybox:latest"
RUNNER = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done']
CTX = RequestContext(user_id="u1", project_id="p1")
UUID = "5b8e5a59-3c51-4d8e-9e43-6f6c1e1b0a01"
ADMIN = RequestContext.admin("p1")


class Harness:
    def __init__(self, tmp_path, runtime=None, **cfg):
        self.clock = task.Clock()
        self.path = str(tmp_path / "zund.sqlite")
        self.runtime = runtime or FakeRuntime("n1", clock=self.clock)
        self.cfg = ManagerConfig(node="n1", sync_interval_s=5.0, **cfg)
        self.new_manager()

    def new_manager(self):
        self.store = Store(self.path, run_blocking=sync_blocking)
        self.run(self.store.open())
        self.manager = ContainerManager(self.cfg, self.store, {"runc": self.runtime}, self.clock)

    def run(self, coro_or_d, max_steps=2000):
        """Drive a coroutine/Deferred to completion, advancing the clock."""
        d = coro_or_d if isinstance(coro_or_d, defer.Deferred) else defer.Deferred.fromCoroutine(coro_or_d)
        out = []
        d.addBoth(out.append)
        steps = 0
        while not out:
            self.clock.advance(0.1)
            steps += 1
            assert steps < max_steps, "operation did not finish"
        if hasattr(out[0], "raiseException"):
            out[0].raiseException()
        return out[0]

    def settle(self):
        self.run(self.manager.drain(60))

    def start(self):
        self.run(self.manager.startService())

    def stop(self):
        self.run(self.manager.stopService())
        self.run(self.store.close())

    def get(self, uuid):
        return self.run(self.store.get_container(uuid))


@pytest.fixture
def h(tmp_path):
    h = Harness(tmp_path)
    h.start()
    yield h
    h.stop()


def request(run=True, **fields) -> CreateRequest:
    """A complete create request, as the API builds it (defaults applied, named)."""
    fields.setdefault("image", IMAGE)
    fields.setdefault("command", RUNNER)
    fields.setdefault("name", f"container-{next(_names)}")
    fields.setdefault("cpu", 1.0)
    fields.setdefault("memory", 512)
    return CreateRequest.from_dict(dict(fields, run=run))


_names = itertools.count(1)


def create(h, run=True, ctx=CTX, uuid=None, placement=None, **fields):
    return h.run(h.manager.create(ctx, request(run, **fields), uuid=uuid, placement=placement))


def test_create_returns_creating_then_runs_in_background(h):
    """create answers at once with Creating; the background task reaches Running."""
    rec = create(h, name="web", cpu=0.5, memory=64)
    assert rec.status == "Creating" and rec.task_state == "container_creating"
    assert rec.host == "n1" and rec.project_id == "p1" and rec.user_id == "u1"
    h.settle()
    got = h.get(rec.uuid)
    assert got.status == "Running" and got.task_state is None
    assert got.status_detail.startswith("Up")
    assert got.container_id


def test_create_without_run_stops_at_created(h):
    """create without run=true ends in Created."""
    rec = create(h, run=False)
    h.settle()
    assert h.get(rec.uuid).status == "Created"


def test_failed_pull_ends_in_error_with_reason(h):
    """A missing image that cannot be pulled ends in Error naming the image."""
    rec = create(h, image="nosuch/image:1")
    h.settle()
    got = h.get(rec.uuid)
    assert got.status == "Error" and got.task_state is None
    assert "nosuch/image" in got.status_reason


def test_action_in_wrong_state_is_invalid_state(h):
    """start on a Running container raises Zun's 409 message."""
    rec = create(h)
    h.settle()
    with pytest.raises(errors.InvalidStateException,
                       match=f"Cannot start container {rec.uuid} in Running state"):
        h.run(h.manager.start(CTX, h.get(rec.uuid)))


def test_second_action_while_task_in_flight_is_busy(h):
    """Only one task at a time: a second action meanwhile is refused."""
    # no TERM trap: as PID 1 the shell ignores SIGTERM, so stop waits its timeout
    rec = create(h, command=["sh", "-c", "while true; do sleep 1; done"])
    h.settle()
    cur = h.get(rec.uuid)
    d = defer.Deferred.fromCoroutine(h.manager.stop(CTX, cur, 5))
    assert h.get(rec.uuid).task_state == "container_stopping"
    with pytest.raises(errors.ContainerBusy):
        h.run(h.manager.pause(CTX, h.get(rec.uuid)))
    h.run(d)
    h.settle()
    assert h.get(rec.uuid).status == "Stopped"


def test_lifecycle_stop_start_pause_unpause_kill_reboot(h):
    """Each action moves the status as Zun's state machine says."""
    rec = create(h)
    h.settle()

    def act(fn, *a):
        h.run(fn(CTX, h.get(rec.uuid), *a))
        h.settle()
        return h.get(rec.uuid)

    assert act(h.manager.stop, 5).status == "Stopped"
    assert act(h.manager.start).status == "Running"
    assert act(h.manager.pause).status == "Paused"
    assert act(h.manager.unpause).status == "Running"
    assert act(h.manager.reboot, 5).status == "Running"
    killed = act(h.manager.kill, "SIGKILL")
    assert killed.status == "Stopped" and killed.exit_code == 137
    actions = [a.action for a in h.run(h.store.list_actions(rec.uuid))]
    assert actions == ["kill", "reboot", "unpause", "pause", "start", "stop", "create"]


def test_delete_removes_record_and_runtime_object(h):
    """delete: Deleting at once, then the record and the runtime object are gone."""
    rec = create(h)
    h.settle()
    with pytest.raises(errors.InvalidStateException):
        h.run(h.manager.delete(CTX, h.get(rec.uuid)))
    h.run(h.manager.delete(CTX, h.get(rec.uuid), stop=True))
    h.settle()
    with pytest.raises(errors.ContainerNotFound):
        h.get(rec.uuid)
    assert h.run(h.runtime.list("n1")) == []


def test_stop_then_delete_with_a_copy_read_before_running_does_not_refuse_itself(h):
    """DELETE ?stop=true with the record read while the create was still starting
    (Created) deletes the container that is Running by now (issue 10: a stale-status
    409 "in Running state")."""
    rec = create(h)
    stale = h.get(rec.uuid)
    stale.status, stale.task_state = "Created", None  # what a reader saw mid-create
    h.settle()
    assert h.get(rec.uuid).status == "Running"
    h.run(h.manager.delete(CTX, stale, stop=True))
    h.settle()
    with pytest.raises(errors.ContainerNotFound):
        h.get(rec.uuid)
    assert h.run(h.runtime.list("n1")) == []


def test_stop_then_delete_of_a_container_stopped_meanwhile_deletes_it(h):
    """DELETE ?stop=true with a copy that said Running, of a container that stopped
    meanwhile, deletes it too (the stop is then a no-op)."""
    rec = create(h)
    h.settle()
    stale = h.get(rec.uuid)
    h.runtime.exit_process(rec.uuid, 0)
    h.run(h.manager.sync_all())
    assert h.get(rec.uuid).status == "Stopped"
    h.run(h.manager.delete(CTX, stale, stop=True))
    h.settle()
    with pytest.raises(errors.ContainerNotFound):
        h.get(rec.uuid)


def test_plain_delete_still_refuses_a_running_container_read_stale(h):
    """Without stop, a Running container (by the store, whatever the copy says) is
    refused with Zun's 409 naming its real status."""
    rec = create(h)
    stale = h.get(rec.uuid)
    stale.status, stale.task_state = "Stopped", None
    h.settle()
    with pytest.raises(errors.InvalidStateException) as info:
        h.run(h.manager.delete(CTX, stale))
    assert "Running" in str(info.value)


def test_sync_marks_exited_container_stopped_with_exit_code(h):
    """A process that exits on its own shows up as Stopped with its exit code."""
    rec = create(h)
    h.settle()
    h.runtime.exit_process(rec.uuid, 3)
    h.run(h.manager.sync_all())
    got = h.get(rec.uuid)
    assert got.status == "Stopped" and got.exit_code == 3
    assert got.status_detail.startswith("Exited(3)")


def test_sync_marks_vanished_container_error(h):
    """A container removed behind our back becomes Error 'No such container'."""
    rec = create(h)
    h.settle()
    h.runtime.vanish(rec.uuid)
    h.run(h.manager.sync_all())
    got = h.get(rec.uuid)
    assert got.status == "Error" and "No such container" in got.status_reason


def test_auto_remove_container_record_goes_when_runtime_removes_it(h):
    """auto_remove: once the engine removed the exited container, the record goes."""
    rec = create(h, auto_remove=True)
    h.settle()
    h.runtime.exit_process(rec.uuid, 0)
    h.runtime.vanish(rec.uuid)
    h.run(h.manager.sync_all())
    with pytest.raises(errors.ContainerNotFound):
        h.get(rec.uuid)


def test_periodic_sync_runs_on_the_clock(h):
    """The sync loop reconciles without anyone asking."""
    rec = create(h)
    h.settle()
    h.runtime.exit_process(rec.uuid, 0)
    h.clock.advance(5.1)
    h.settle()
    assert h.get(rec.uuid).status == "Stopped"


def test_lookup_scoping_and_names(h):
    """Non-admins see only their project; names resolve; duplicates conflict."""
    rec = create(h, name="web")
    other = RequestContext(user_id="u2", project_id="p2")
    assert h.run(h.manager.lookup(CTX, "web")).uuid == rec.uuid
    with pytest.raises(errors.ContainerNotFound):
        h.run(h.manager.lookup(other, rec.uuid))
    with pytest.raises(errors.ContainerNotFound):
        h.run(h.manager.lookup(other, "web"))
    assert h.run(h.manager.lookup(ADMIN, rec.uuid)).uuid == rec.uuid
    create(h, name="web")
    with pytest.raises(errors.Conflicts):
        h.run(h.manager.lookup(CTX, "web"))


def test_unique_name_scope_project(tmp_path):
    """With a project scope, a duplicate name in the project is refused."""
    h = Harness(tmp_path, unique_name_scope="project")
    h.start()
    create(h, name="web")
    with pytest.raises(errors.ContainerAlreadyExists):
        create(h, name="WEB")
    h.stop()


def test_update_renames_and_resizes(h):
    """PATCH renames and changes cpu/memory, also in the runtime."""
    rec = create(h, name="web")
    h.settle()
    got = h.run(h.manager.update(CTX, h.get(rec.uuid), {"name": "web2", "memory": 128, "cpu": 2}))
    assert (got.name, got.memory, got.cpu) == ("web2", 128, 2.0)
    assert h.get(rec.uuid).name == "web2"


def _acknowledged_create(h, run=True, runtime="runc", uuid=None):
    """What a create leaves when its node dies right after answering: the record
    (Creating) and its open create action, nothing done on the runtime yet."""
    from zund.records import new_record

    rec = new_record(uuid or "7c0e1d2a-4b5f-4c6d-8e9f-0a1b2c3d4e5f", "p1", "u1", request(run),
                     host="n1", runtime=runtime, availability_zone=None, status="Creating",
                     task_state="container_creating")
    h.run(h.store.create_container(rec, action=("create", "req-crash", "u1", "p1",
                                                "compute__do_container_create")))
    return rec


def _create_action(h, uuid):
    return [a for a in h.run(h.store.list_actions(uuid)) if a.action == "create"][0]


def test_recovery_resumes_an_acknowledged_create_that_never_reached_the_runtime(tmp_path):
    """Start-up: a create acknowledged before a crash is done after the restart
    (Running, one runtime object, its create action finished), never Error."""
    h = Harness(tmp_path)
    rec = _acknowledged_create(h)
    h.start()
    h.settle()
    got = h.get(rec.uuid)
    assert (got.status, got.task_state, got.status_reason) == ("Running", None, None)
    assert [s.uuid for s in h.run(h.runtime.list("n1"))] == [rec.uuid]
    assert _create_action(h, rec.uuid).finish_time is not None
    h.stop()


def test_recovery_adopts_the_object_an_interrupted_create_made(tmp_path):
    """Start-up: the runtime object made before the crash (found by the container's
    uuid) is adopted and started, not made a second time."""
    from zund.compute.lifecycle import spec_of

    h = Harness(tmp_path)
    rec = _acknowledged_create(h)
    made = h.run(h.runtime.create(spec_of(rec, "n1", "ifnotpresent")))
    h.start()
    h.settle()
    got = h.get(rec.uuid)
    assert (got.status, got.task_state) == ("Running", None)
    assert got.container_id == made.runtime_id
    assert [s.uuid for s in h.run(h.runtime.list("n1"))] == [rec.uuid]
    h.stop()


def test_recovery_resumes_a_create_without_run_to_created(tmp_path):
    """Start-up: an interrupted create that did not ask to run ends Created."""
    h = Harness(tmp_path)
    rec = _acknowledged_create(h, run=False)
    h.start()
    h.settle()
    assert (h.get(rec.uuid).status, h.get(rec.uuid).task_state) == ("Created", None)
    h.stop()


def test_recovery_interrupted_create_of_a_runtime_gone_becomes_error(tmp_path):
    """Start-up: an interrupted create whose runtime this node no longer offers
    cannot resume: Error, "Container failed to create correctly."."""
    h = Harness(tmp_path)
    rec = _acknowledged_create(h, runtime="microvm")
    h.start()
    h.settle()
    got = h.get(rec.uuid)
    assert got.status == "Error" and got.status_reason == "Container failed to create correctly."
    h.stop()


def test_recovery_finishes_interrupted_delete_and_reaps_orphans(tmp_path):
    """Start-up: Deleting records are finished; objects without records are removed."""
    h = Harness(tmp_path)
    h.start()
    a = create(h)
    b = create(h)
    h.settle()
    cur = h.get(a.uuid)
    cur.status, cur.task_state = "Deleting", "container_deleting"
    h.run(h.store.save_container(cur))
    h.run(h.store.delete_container(b.uuid))  # b's object is now an orphan
    h.stop()
    h.new_manager()
    h.start()
    h.settle()
    assert h.run(h.store.list_containers()) == []
    assert h.run(h.runtime.list("n1")) == []
    h.stop()


def test_recovery_redoes_interrupted_start_and_stop(tmp_path):
    """Start-up: an interrupted start is redone (an accepted run ends Running), an
    interrupted stop too (Zun's compute init)."""
    h = Harness(tmp_path)
    h.start()
    a = create(h, run=False)
    b = create(h)
    h.settle()
    cur = h.get(a.uuid)
    cur.task_state = "container_starting"
    h.run(h.store.save_container(cur))
    cur = h.get(b.uuid)
    cur.task_state = "container_stopping"
    h.run(h.store.save_container(cur))
    h.stop()
    h.new_manager()
    h.start()
    h.settle()
    assert (h.get(a.uuid).status, h.get(a.uuid).task_state) == ("Running", None)
    assert (h.get(b.uuid).status, h.get(b.uuid).task_state) == ("Stopped", None)
    h.stop()


def test_recovery_clears_other_interrupted_task_and_resyncs(tmp_path):
    """Start-up: an interrupted kill is cleared and the status re-read."""
    h = Harness(tmp_path)
    h.start()
    rec = create(h)
    h.settle()
    cur = h.get(rec.uuid)
    cur.task_state = "container_killing"
    h.run(h.store.save_container(cur))
    h.stop()
    h.new_manager()
    h.start()
    got = h.get(rec.uuid)
    assert got.task_state is None and got.status == "Running"
    h.stop()


def test_recovery_syncs_idle_records_before_serving(tmp_path):
    """Start-up: a container that stopped while the node was down reads Stopped in
    the store (what list serves) as soon as start-up is done, before any show."""
    h = Harness(tmp_path)
    h.start()
    rec = create(h)
    h.settle()
    h.stop()
    h.runtime.exit_process(rec.uuid, 137)  # changed behind zund's back
    h.new_manager()
    h.start()
    got = h.get(rec.uuid)
    assert (got.status, got.exit_code) == ("Stopped", 137)
    assert got.status_detail.startswith("Exited(137)")
    h.stop()


def test_recovery_marks_records_stale_when_the_runtime_cannot_answer(tmp_path):
    """Start-up with the engine not answering: records keep their last status but
    list and show both say it is unconfirmed; the next sync that reaches the engine
    clears the mark."""
    h = Harness(tmp_path)
    h.start()
    rec = create(h)
    h.settle()
    h.stop()
    h.runtime.fail_next("list", errors.RuntimeUnavailable(runtime="runc",
                                                             reason="engine down"))
    h.new_manager()
    h.start()
    got = h.get(rec.uuid)
    assert got.status == "Running" and got.status_reason == STALE
    shown = h.run(h.manager.refresh(h.get(rec.uuid)))
    assert shown.status == "Running" and shown.status_reason is None
    assert h.get(rec.uuid).status_reason is None
    h.stop()


def test_unsupported_capability_is_refused(tmp_path):
    """A runtime without exec answers execute with NotSupportedByRuntime."""
    clock = task.Clock()
    rt = FakeRuntime("n1", clock=clock, capabilities=frozenset({"pause"}))
    h = Harness(tmp_path, runtime=rt)
    h.clock = clock
    h.start()
    rec = create(h)
    h.settle()
    with pytest.raises(errors.NotSupportedByRuntime, match="not supported by runtime runc"):
        h.run(h.manager.execute(CTX, h.get(rec.uuid), ["echo", "hi"]))
    h.stop()


def test_host_info_is_allocation_based(h):
    """/v1/hosts numbers are sums of allocations."""
    create(h, cpu=0.5, memory=64)
    create(h, cpu=1.5, memory=128)
    info = h.run(h.manager.host_info())
    assert info["cpu_used"] == 2.0 and info["mem_used"] == 192
    assert info["total_containers"] == 2 and info["runtimes"] == ["runc"]
    assert info["hostname"] == "n1"


def test_unplaceable_record_holds_no_capacity(h):
    """A record nobody hosts (NoValidHost keeps it on the entry node) allocates nothing."""
    create(h, cpu=0.5, memory=64)
    h.run(h.manager.record_unplaceable(CTX, request(cpu=4, memory=4096), UUID, "No valid host"))
    info = h.run(h.manager.host_info())
    assert info["cpu_used"] == 0.5 and info["mem_used"] == 64
    assert info["total_containers"] == 1


def test_create_does_not_apply_defaults(h):
    """The record carries exactly what the request says (the API applied defaults)."""
    rec = create(h, name="exact", cpu=0.25, memory=32, environment={"A": "1"},
                 labels={"k": "v"}, hints={"h": "1"})
    got = h.get(rec.uuid)
    assert (got.name, got.cpu, got.memory) == ("exact", 0.25, 32)
    assert (got.environment, got.labels, got.hints) == ({"A": "1"}, {"k": "v"}, {"h": "1"})
    assert (got.runtime, got.availability_zone) == ("runc", "nova")


def test_create_with_uuid_records_placement_and_a_repeat_returns_the_record(h):
    """An entry node's uuid is used; its decision is the create action's schedule
    event; a retried commit of that uuid returns the record instead of a twin."""
    decision = {"winner": "n1", "why": "spread", "candidates": ["n1", "n2"]}
    rec = create(h, uuid=UUID, placement=decision, name="web")
    assert rec.uuid == UUID
    again = create(h, uuid=UUID, placement=decision, name="web")
    assert again.uuid == UUID and len(h.run(h.store.list_containers())) == 1
    h.settle()
    action = h.run(h.store.get_action(UUID, CTX.request_id))
    events = {e.event: e for e in action.events}
    assert events["compute__schedule_container"].result == "Success"
    assert events["compute__schedule_container"].details == decision
    assert events["compute__do_container_create"].result == "Success"


def test_create_with_another_projects_uuid_is_a_conflict(h):
    """A uuid already used by another project is refused, not returned."""
    create(h, uuid=UUID)
    other = RequestContext(user_id="u2", project_id="p2")
    with pytest.raises(errors.ContainerAlreadyExists):
        create(h, ctx=other, uuid=UUID)


def test_create_on_a_runtime_this_node_lacks_is_invalid_input(h):
    """A runtime not enabled here is refused naming the available ones."""
    with pytest.raises(errors.InvalidInput, match="available: runc"):
        create(h, runtime="microvm")
    assert h.run(h.store.list_containers()) == []


def test_record_unplaceable_keeps_an_error_record_with_the_decision(h):
    """Zun's NoValidHost: the record ends in Error with the reason, no host, and a
    create action whose schedule event failed with the decision as details."""
    decision = {"why": "no node has 64 cpus", "candidates": []}
    rec = h.run(h.manager.record_unplaceable(CTX, request(cpu=64, name="big"), UUID,
                                             "No valid host was found.", decision))
    got = h.get(UUID)
    assert got == rec
    assert (got.status, got.status_reason, got.host, got.task_state) == (
        "Error", "No valid host was found.", None, None)
    assert (got.name, got.cpu, got.project_id) == ("big", 64.0, "p1")
    action = h.run(h.manager.get_action(CTX, got, CTX.request_id))
    assert action.action == "create" and action.message == "No valid host was found."
    assert [(e.event, e.result, e.details) for e in action.events] == [
        ("compute__schedule_container", "Error", decision)]
    assert h.run(h.manager.lookup(CTX, "big")).uuid == UUID


def test_unplaceable_record_is_left_alone_by_sync_and_recovery(tmp_path):
    """Sync and start-up recovery keep the unplaceable record exactly as it was."""
    h = Harness(tmp_path)
    h.start()
    h.run(h.manager.record_unplaceable(CTX, request(), UUID, "No valid host"))
    h.run(h.manager.sync_all())
    h.stop()
    h.new_manager()
    h.start()
    got = h.get(UUID)
    assert (got.status, got.status_reason, got.task_state) == ("Error", "No valid host", None)
    h.stop()


def test_unplaceable_record_of_a_runtime_not_here_can_be_deleted(h):
    """Deleting a record that never reached a runtime needs no runtime."""
    rec = h.run(h.manager.record_unplaceable(CTX, request(runtime="microvm"), UUID,
                                             "No valid host"))
    h.run(h.manager.delete(CTX, rec))
    h.settle()
    with pytest.raises(errors.ContainerNotFound):
        h.get(UUID)


def test_record_unplaceable_repeat_returns_the_record(h):
    """A repeated unplaceable answer for one uuid keeps one record."""
    first = h.run(h.manager.record_unplaceable(CTX, request(), UUID, "No valid host"))
    again = h.run(h.manager.record_unplaceable(CTX, request(), UUID, "No valid host"))
    assert again.uuid == first.uuid and len(h.run(h.store.list_containers())) == 1


def test_lookup_accepts_any_uuid_spelling(h):
    """A uuid in upper case (Zun accepts any spelling oslo.utils does) is found."""
    rec = create(h, uuid=UUID)
    assert h.run(h.manager.lookup(CTX, UUID.upper())).uuid == rec.uuid


def test_sync_rewrites_no_record_the_runtime_listing_agrees_with(h, monkeypatch):
    """A periodic sync over containers whose listed state matches their records
    commits nothing (one listing, no write per container), also when the minutes
    since they started have moved on (the "Up N minutes" text is derived when
    the API answers, not stored by each sync)."""
    recs = [create(h) for _ in range(5)]
    h.settle()
    before = h.store.commits
    h.run(h.manager.sync_all())
    real_now = lifecycle.utcnow
    monkeypatch.setattr(lifecycle, "utcnow",
                        lambda: real_now() + datetime.timedelta(minutes=7))
    h.run(h.manager.sync_all())
    assert h.store.commits == before
    assert {h.get(r.uuid).status for r in recs} == {"Running"}


def test_sync_does_not_apply_a_listing_older_than_a_start(h):
    """The runtime is listed (the container exited with 0; the record says 3, so
    the listing disagrees with it), then a start brings the container back before
    the sync takes its lock: the sync must not record the listing's Stopped over
    the new Running."""
    rec = create(h)
    h.settle()
    h.runtime.exit_process(rec.uuid, 0)
    h.run(h.manager.sync_all())
    outdated = h.get(rec.uuid)
    assert outdated.status == "Stopped"
    outdated.exit_code = 3
    h.run(h.store.save_container(outdated))
    original = h.runtime.list

    async def list_then_start(node):
        listing = await original(node)  # says exited
        await h.manager.start(CTX, await h.store.get_container(rec.uuid))
        await h.manager.drain(60)  # the start is done: the record is idle again
        assert (await h.store.get_container(rec.uuid)).status == "Running"
        return listing

    h.runtime.list = list_then_start
    try:
        h.run(h.manager.sync_all())
    finally:
        h.runtime.list = original
    h.settle()
    got = h.get(rec.uuid)
    assert got.status == "Running" and got.task_state is None
