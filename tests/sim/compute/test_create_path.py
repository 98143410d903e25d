"""The create path's store and image work (issue 13 §2): what it commits and when it
pulls, over the fake runtime on one task.Clock."""

import pytest

from zund.compute import lifecycle

from .test_manager import IMAGE, Harness, create


@pytest.fixture
def h(tmp_path):
    h = Harness(tmp_path)
    h.start()
    yield h
    h.stop()


class CountingStore:
    """Counts the store's committed container writes (a view on the real store)."""

    def __init__(self, store):
        self.saves = 0
        self._store = store
        real = store.save_container

        async def save_container(rec, *a, **kw):
            self.saves += 1
            return await real(rec, *a, **kw)

        store.save_container = save_container


def test_run_of_a_local_image_commits_once_after_the_acknowledged_insert(h):
    """A create+run of a local image: one insert (before the answer) and one save
    (Running, with the create action finished in the same transaction)."""
    counting = CountingStore(h.store)
    rec = create(h)
    h.settle()
    got = h.get(rec.uuid)
    assert got.status == "Running" and got.task_state is None
    assert counting.saves == 1
    (action,) = h.run(h.store.list_actions(rec.uuid))
    assert action.action == "create" and action.finish_time is not None


def test_placement_decision_is_an_event_of_the_acknowledged_create(h):
    """The entry node's placement decision is stored with the record, as a finished
    Success event of its create action."""
    rec = create(h, placement={"winner": "n1", "why": "best bid"})
    (action,) = h.run(h.store.list_actions(rec.uuid))
    got = h.run(h.store.get_action(rec.uuid, action.request_id))
    sched = [e for e in got.events if e.event == lifecycle.SCHEDULE_EVENT]
    assert len(sched) == 1 and sched[0].result == "Success"
    assert sched[0].details == {"winner": "n1", "why": "best bid"}


def test_missing_image_with_ifnotpresent_is_pulled_then_created_and_run(h):
    """An image not on the node (but in its registry) is pulled on the create's
    ImageNotFound and the container still ends Running."""
    h.runtime.add_registry_image("example/app:2")
    rec = create(h, image="example/app:2")
    h.settle()
    got = h.get(rec.uuid)
    assert got.status == "Running" and got.task_state is None


def test_missing_image_with_never_ends_in_error_naming_the_policy(h):
    """Pull policy never and an image not on the node: Error naming image and policy."""
    h.runtime.add_registry_image("example/app:3")
    rec = create(h, image="example/app:3", image_pull_policy="never")
    h.settle()
    got = h.get(rec.uuid)
    assert got.status == "Error" and got.task_state is None
    assert "example/app:3" in got.status_reason and "never" in got.status_reason


def test_always_pulls_even_a_local_image(h):
    """Pull policy always pulls first: a local image missing from the registry fails."""
    rec = create(h, image=IMAGE, image_pull_policy="always")
    h.settle()
    got = h.get(rec.uuid)
    assert got.status == "Error" and IMAGE.split(":")[0] in got.status_reason
