"""The periodic sync's comparison (``Reconciler._differs``) reads what
``Lifecycle.apply_state`` would write without copying the record: the two must never
disagree, or a sync would skip a record the runtime contradicts (or rewrite one it
agrees with)."""

import datetime

from hypothesis import given, strategies as st
from twisted.internet.task import Clock

from zund.compute import states
from zund.compute.lifecycle import Lifecycle
from zund.compute.reconcile import Reconciler, sync_key
from zund.records import ContainerRecord
from zund.runtimes.base import RuntimeState, RuntimeStatus

STATUSES = [states.CREATING, states.CREATED, states.RUNNING, states.STOPPED, states.PAUSED,
            states.RESTARTING, states.ERROR, states.UNKNOWN, states.DEAD]
#: naive UTC, as records and runtimes keep them
TIMES = st.none() | st.sampled_from([datetime.datetime(2026, 1, 1, 10, 0, s) for s in (0, 1, 2)])


def lifecycle(clock) -> Lifecycle:
    return Lifecycle(config=None, store=None, runtimes={}, clock=clock, tasks=None,
                     locks=None, notify=lambda *a, **k: None, new_uuid=lambda: "u")


records = st.builds(
    lambda status, reason, code, started, finished, hostname, ports: ContainerRecord(
        uuid="c1", project_id="p", user_id="u", image="busybox", name="c",
        status=status, status_reason=reason, exit_code=code, started_at=started,
        finished_at=finished, hostname=hostname, ports=ports),
    st.sampled_from(STATUSES), st.none() | st.just("boom"), st.none() | st.sampled_from([0, 1]),
    TIMES, TIMES, st.none() | st.just("h1"), st.sampled_from([[], [80]]))
runtime_states = st.builds(
    lambda status, code, started, finished, hostname, ports: RuntimeState(
        uuid="c1", runtime_id="r1", status=status, exit_code=code, started_at=started,
        finished_at=finished, hostname=hostname, ports=ports),
    st.sampled_from(list(RuntimeStatus)), st.none() | st.sampled_from([0, 1]), TIMES, TIMES,
    st.none() | st.just("h2"), st.sampled_from([(), (80,), (443, 80)]))


@given(records, runtime_states)
def test_the_sync_compares_exactly_what_apply_state_would_change(rec, state):
    """For any record and runtime answer, ``_differs`` is True exactly when
    ``apply_state`` changes the record's sync key, and it leaves the record as it
    was."""
    clock = Clock()
    lc = lifecycle(clock)
    before = rec.copy()
    differs = Reconciler(lc, 60, 1)._differs(rec, state)
    assert rec == before  # compared, not written
    applied = rec.copy()
    lc.apply_state(applied, state)
    assert differs == (sync_key(applied) != sync_key(rec))
    # and every field apply_state writes is one synced_fields names, with that value
    for name, value in Lifecycle.synced_fields(rec, state).items():
        assert getattr(applied, name) == value


def test_an_agreeing_record_is_stamped_synced_and_a_stopped_one_is_not_agreeing():
    """A running container the runtime still reports running agrees (nothing to
    write); the same record against an exited container does not."""
    t0 = datetime.datetime(2026, 1, 1, 10, 0, 0)
    rec = ContainerRecord(uuid="c1", project_id="p", user_id="u", image="busybox", name="c",
                          status=states.RUNNING, started_at=t0)
    rc = Reconciler(lifecycle(Clock()), 60, 1)
    running = RuntimeState(uuid="c1", runtime_id="r1", status=RuntimeStatus.RUNNING,
                           started_at=t0)
    exited = RuntimeState(uuid="c1", runtime_id="r1", status=RuntimeStatus.EXITED,
                          exit_code=0, started_at=t0, finished_at=t0)
    assert not rc._differs(rec, running)
    assert rc._differs(rec, exited)
