"""Store group commit and point reads (issue 13): writes queued while the store
thread is busy share one COMMIT, each keeps its own outcome; point reads answer on
the caller's thread and see every write the caller awaited; records decode back
whole, from old and new blobs alike."""

import json
import sqlite3
from collections import deque

import pytest
from twisted.internet import defer

from zund.common import errors
from zund.records import ContainerRecord
from zund.store import Store, _from_data, _to_row


class SteppedThread:
    """The store thread as a queue the test runs: a call waits until ``run_all``."""

    def __init__(self):
        self.queue = deque()

    def __call__(self, fn, *a, **kw):
        d = defer.Deferred()
        self.queue.append((fn, a, kw, d))
        return d

    def run_one(self):
        fn, a, kw, d = self.queue.popleft()
        try:
            result = fn(*a, **kw)
        except Exception:
            d.errback()
        else:
            d.callback(result)

    def run_all(self):
        while self.queue:
            self.run_one()


class FlakyCommit(sqlite3.Connection):
    """A connection whose next ``fail_commits`` COMMITs fail like a full disk."""

    fail_commits = 0

    def execute(self, sql, *args):
        if sql == "COMMIT" and self.fail_commits:
            self.fail_commits -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, *args)


def _rec(n: int, **kw) -> ContainerRecord:
    base = dict(uuid="5b8e5a59-3c51-4d8e-9e43-6f6c1e1b%04d" % n, project_id="p1",
                user_id="u1", image="busybox", name=f"c{n}")
    base.update(kw)
    return ContainerRecord(**base)


def _outcomes(ds):
    """Each Deferred's result or exception (consumes the failures)."""
    out = []
    for d in ds:
        got = []
        d.addBoth(got.append)
        assert got, "not answered"
        r = got[0]
        out.append(r.value if hasattr(r, "value") and hasattr(r, "raiseException") else r)
    return out


def _open(path, thread, **kw) -> Store:
    store = Store(path, run_blocking=thread, **kw)
    d = defer.Deferred.fromCoroutine(store.open())
    thread.run_all()
    _outcomes([d])
    return store


def _create(store, rec, **kw):
    return defer.Deferred.fromCoroutine(store.create_container(rec, **kw))


def _get(store, thread, uuid):
    d = defer.Deferred.fromCoroutine(store.get_container(uuid))
    thread.run_all()
    return _outcomes([d])[0]


@pytest.fixture
def thread():
    return SteppedThread()


def test_writes_queued_behind_a_busy_store_thread_share_one_commit(thread):
    """One write in flight, three queued behind it: two COMMITs for four durable
    transactions, and every caller is answered with its own result."""
    store = _open(":memory:", thread)
    base = store.commits
    ds = [_create(store, _rec(i)) for i in range(4)]
    assert not any(d.called for d in ds)
    thread.run_all()
    assert _outcomes(ds) == [None] * 4
    assert store.commits - base == 2 and store.largest_group == 3
    assert [_get(store, thread, _rec(i).uuid).name for i in range(4)] == ["c0", "c1", "c2", "c3"]


def test_a_failing_member_rolls_back_only_itself(thread):
    """A member that wrote rows and then failed leaves nothing behind and alone gets
    its exception; the members before and after it in the group are committed."""
    store = _open(":memory:", thread)
    first = _create(store, _rec(0))
    ok1 = _create(store, _rec(1))
    bad = _create(store, _rec(2), action=("create", "req-2", "u1", "p1", None),
                  events=(("ev", "Success", object()),))  # details not JSON: fails late
    ok2 = _create(store, _rec(3))
    thread.run_all()
    results = _outcomes([first, ok1, bad, ok2])
    assert results[0] is None and results[1] is None and results[3] is None
    assert isinstance(results[2], TypeError)
    assert isinstance(_get(store, thread, _rec(2).uuid), errors.ContainerNotFound)
    assert _get(store, thread, _rec(3).uuid).name == "c3"
    d = defer.Deferred.fromCoroutine(store.list_actions(_rec(2).uuid))
    thread.run_all()
    assert _outcomes([d]) == [[]]


def test_a_failed_commit_fails_every_member_and_keeps_nothing(thread):
    """When the shared COMMIT fails, each member's caller gets the error, no record
    of the group is kept and listeners hear nothing of it."""
    conns = []

    def connect(path, **kw):
        conns.append(sqlite3.connect(path, factory=FlakyCommit, **kw))
        return conns[-1]

    store = _open(":memory:", thread, connect=connect)
    heard = []
    store.add_listener(lambda change: heard.append(change.uuid))
    first = _create(store, _rec(0))
    group = [_create(store, _rec(i)) for i in (1, 2, 3)]
    thread.run_one()  # the first write commits alone; the group is queued behind it
    assert _outcomes([first]) == [None] and len(thread.queue) == 1
    conns[0].fail_commits = 1
    thread.run_all()
    assert all(isinstance(r, sqlite3.OperationalError) for r in _outcomes(group))
    for i in (1, 2, 3):
        assert isinstance(_get(store, thread, _rec(i).uuid), errors.ContainerNotFound)
    assert heard == [_rec(0).uuid]
    # the store goes on: the next write commits
    later = _create(store, _rec(4))
    thread.run_all()
    assert _outcomes([later]) == [None] and heard[-1] == _rec(4).uuid


def test_listeners_hear_a_group_after_its_commit_in_queue_order(thread, tmp_path):
    """Listeners hear every member of a group in the order the writes were queued,
    and only once the group is committed (another connection already sees it)."""
    path = str(tmp_path / "z.sqlite")
    store = _open(path, thread)
    other = sqlite3.connect(path)
    heard = []

    def listener(change):
        committed = other.execute("SELECT count(*) FROM containers WHERE uuid=?",
                                  (change.uuid,)).fetchall()[0][0]
        heard.append((change.uuid, committed))

    store.add_listener(listener)
    ds = [_create(store, _rec(i)) for i in range(5)]
    assert heard == []
    thread.run_all()
    _outcomes(ds)
    assert heard == [(_rec(i).uuid, 1) for i in range(5)]
    other.close()


def test_a_group_holds_at_most_max_group_members(thread):
    """Writes queued beyond the cap wait for the next COMMIT."""
    store = _open(":memory:", thread)
    base = store.commits
    ds = [_create(store, _rec(i)) for i in range(1 + Store.MAX_GROUP + 6)]
    thread.run_all()
    assert _outcomes(ds) == [None] * len(ds)
    assert store.commits - base == 3 and store.largest_group == Store.MAX_GROUP


def test_point_reads_answer_without_the_store_thread_and_see_awaited_writes(thread, tmp_path):
    """With the store thread busy on an uncommitted group, a point read answers at
    once: it sees every committed write (those whose callers were answered) and
    none of the group still in flight."""
    store = _open(str(tmp_path / "z.sqlite"), thread)
    done = _create(store, _rec(0))
    thread.run_all()
    assert _outcomes([done]) == [None]
    in_flight = _create(store, _rec(1))
    got = defer.Deferred.fromCoroutine(store.get_container(_rec(0).uuid))
    missing = defer.Deferred.fromCoroutine(store.get_container(_rec(1).uuid))
    assert got.called and missing.called  # no store-thread call was needed
    assert _outcomes([got])[0].name == "c0"
    assert isinstance(_outcomes([missing])[0], errors.ContainerNotFound)
    thread.run_all()
    assert _outcomes([in_flight]) == [None]
    after = defer.Deferred.fromCoroutine(store.get_container(_rec(1).uuid))
    assert _outcomes([after])[0].name == "c1"


def test_close_writes_what_was_queued_before_it(thread):
    """Writes queued behind a busy store thread when close is called are committed
    and answered before the connection closes."""
    store = _open(":memory:", thread)
    ds = [_create(store, _rec(i)) for i in range(3)]
    closed = defer.Deferred.fromCoroutine(store.close())
    thread.run_all()
    assert _outcomes(ds) == [None] * 3
    assert _outcomes([closed]) == [None]
    assert store.commits >= 2 and store.transactions >= 3


def test_records_decode_whole_from_this_older_and_newer_blobs():
    """A record reads back equal to what was written, and a blob from an older zund
    (fields missing) or a newer one (unknown fields) decodes with defaults."""
    rec = _rec(7, command=["sh", "-c", "true"], environment={"A": "1"}, cpu=0.5,
               labels={"app": "web"}, generation=3)
    assert _from_data(_to_row(rec)["data"]) == rec
    blob = json.loads(_to_row(rec)["data"])
    del blob["mounts"], blob["run_on_create"]
    blob["added_later"] = 1
    old = _from_data(json.dumps(blob))
    assert old.mounts == [] and old.run_on_create is False and old.uuid == rec.uuid


def test_a_cancelled_wait_does_not_stop_the_group_answering_the_others(thread):
    """A caller that stops waiting (cancels) does not keep the other members of its
    group from being answered; its write is still committed."""
    store = _open(":memory:", thread)
    first = _create(store, _rec(0))
    ds = [_create(store, _rec(i)) for i in (1, 2, 3)]
    ds[0].cancel()
    thread.run_all()
    assert _outcomes([first]) == [None]
    results = _outcomes(ds)
    assert isinstance(results[0], defer.CancelledError) and results[1:] == [None, None]
    assert _get(store, thread, _rec(1).uuid).name == "c1"
