"""Store: generations of this node's records, change listeners, and the replica
table (copies of other nodes' records, ordered by generation, with tombstones)."""

from __future__ import annotations

from zund.records import ContainerRecord
from zund.store import ReplicaCopy, Store

from .conftest import run_sync, sync_blocking

U1 = "5b8e5a59-3c51-4d8e-9e43-6f6c1e1b0a01"
U2 = "5b8e5a59-3c51-4d8e-9e43-6f6c1e1b0a02"


def _rec(uuid=U1, **kw):
    base = dict(uuid=uuid, project_id="p1", user_id="u1", image="busybox", name="web",
                host="node-9")
    base.update(kw)
    return ContainerRecord(**base)


def test_every_write_of_a_record_raises_its_generation_and_is_heard(store):
    """create, each save and the delete are heard in order with rising generations;
    the delete is a tombstone one above the last save."""
    heard = []
    store.add_listener(heard.append)
    rec = _rec()
    run_sync(store.create_container(rec))
    run_sync(store.save_container(rec.copy(status="Running")))
    stale = run_sync(store.get_container(rec.uuid)).copy(generation=0)
    run_sync(store.save_container(stale))  # an old copy saved still counts up
    run_sync(store.delete_container(rec.uuid))
    assert [(c.generation, c.record is None) for c in heard] == \
        [(1, False), (2, False), (3, False), (4, True)]
    assert heard[1].record.status == "Running"


def test_a_failing_listener_does_not_fail_the_write(store):
    """A listener that raises is logged; the record is written."""
    store.add_listener(lambda change: 1 / 0)
    run_sync(store.create_container(_rec()))
    assert run_sync(store.get_container(U1)).generation == 1


def test_the_highest_generation_copy_wins_and_a_tombstone_blocks_older_copies(store):
    """Copies arrive out of order: the kept one is the newest; after a tombstone no
    copy of an older generation is kept, and the container is not listed."""
    r = _rec()
    kept = run_sync(store.apply_replicas([ReplicaCopy(U1, "node-9", 3, r.copy(status="Running")),
                                          ReplicaCopy(U1, "node-9", 2, r.copy(status="Creating"))]))
    assert kept == 1
    [copy] = run_sync(store.list_replicas(["node-9"]))
    assert (copy.generation, copy.record.status) == (3, "Running")
    assert run_sync(store.apply_replicas([ReplicaCopy(U1, "node-9", 4, None)])) == 1
    assert run_sync(store.apply_replicas([ReplicaCopy(U1, "node-9", 3, r)])) == 0
    assert run_sync(store.list_replicas()) == []


def test_sync_drops_copies_the_owner_no_longer_assigns_and_names_what_is_missing(store):
    """Anti-entropy: copies of the owner not in its digest go; the digest's uuids
    this store lacks or holds older are answered."""
    run_sync(store.apply_replicas([ReplicaCopy(U1, "node-9", 2, _rec()),
                                   ReplicaCopy(U2, "node-9", 5, _rec(U2, name="db"))]))
    wanted = run_sync(store.sync_replicas("node-9", {U2: 6, "u3": 1}))
    assert sorted(wanted) == sorted([U2, "u3"])
    assert [c.uuid for c in run_sync(store.list_replicas())] == [U2]


def test_queries_filter_by_owner_project_name_and_uuid(store):
    """Copies are found by owner (or all but some owners), project, name and uuid."""
    run_sync(store.apply_replicas([ReplicaCopy(U1, "node-8", 1, _rec()),
                                   ReplicaCopy(U2, "node-9", 1, _rec(U2, name="db",
                                                                    project_id="p2"))]))
    assert [c.uuid for c in run_sync(store.list_replicas(except_owners=["node-8"]))] == [U2]
    assert [c.uuid for c in run_sync(store.list_replicas(None, "p1"))] == [U1]
    assert [c.uuid for c in run_sync(store.list_replicas(name="db"))] == [U2]
    assert [c.uuid for c in run_sync(store.list_replicas(uuid=U1))] == [U1]
    assert run_sync(store.replica_owners()) == {"node-8": 1, "node-9": 1}


def test_copies_survive_a_reopen(tmp_path):
    """Copies are in the SQLite file: a restarted node still has them."""
    path = str(tmp_path / "z.sqlite")
    s = Store(path, run_blocking=sync_blocking)
    run_sync(s.open())
    run_sync(s.apply_replicas([ReplicaCopy(U1, "node-9", 7, _rec())]))
    run_sync(s.close())
    s2 = Store(path, run_blocking=sync_blocking)
    run_sync(s2.open())
    [copy] = run_sync(s2.list_replicas())
    assert (copy.owner, copy.generation, copy.record.host) == ("node-9", 7, "node-9")
    run_sync(s2.close())
