"""Store: records survive reopen, schema is versioned, actions are kept in order."""

import sqlite3

import pytest

from zund.common import errors
from zund.records import ContainerRecord
from zund.store import SCHEMA_VERSION, Store

from .conftest import run_sync, sync_blocking


def _rec(**kw):
    base = dict(uuid="5b8e5a59-3c51-4d8e-9e43-6f6c1e1b0a01", project_id="p1", user_id="u1",
                image="busybox", name="web")
    base.update(kw)
    return ContainerRecord(**base)


def test_create_get_roundtrip_keeps_every_field(store):
    """A created record reads back identical, with its insertion id."""
    rec = _rec(command=["sh", "-c", "echo hi"], environment={"A": "1"}, memory=256, cpu=0.5,
               restart_policy={"Name": "on-failure", "MaximumRetryCount": 3})
    run_sync(store.create_container(rec))
    got = run_sync(store.get_container(rec.uuid))
    assert got == rec
    assert got.id == 1


def test_records_survive_reopen(tmp_path):
    """Records written before close are there after reopening the file."""
    path = str(tmp_path / "z.sqlite")
    s = Store(path, run_blocking=sync_blocking)
    run_sync(s.open())
    run_sync(s.create_container(_rec()))
    run_sync(s.close())
    s2 = Store(path, run_blocking=sync_blocking)
    run_sync(s2.open())
    assert run_sync(s2.get_container(_rec().uuid)).name == "web"
    run_sync(s2.close())


def test_schema_version_and_wal(tmp_path):
    """The file carries the schema version and uses WAL journaling."""
    path = str(tmp_path / "z.sqlite")
    s = Store(path, run_blocking=sync_blocking)
    run_sync(s.open())
    run_sync(s.close())
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(tmp_path):
    """A store written by a newer zund is not silently downgraded."""
    path = str(tmp_path / "z.sqlite")
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    s = Store(path, run_blocking=sync_blocking)
    with pytest.raises(RuntimeError, match="newer"):
        run_sync(s.open())


def test_save_unknown_raises_not_found(store):
    """Saving a record that was never created is an error, not an upsert."""
    with pytest.raises(errors.ContainerNotFound):
        run_sync(store.save_container(_rec()))


def test_find_by_name_is_project_scoped(store):
    """Name lookups see only the given project unless none is given."""
    run_sync(store.create_container(_rec()))
    run_sync(store.create_container(_rec(uuid="5b8e5a59-3c51-4d8e-9e43-6f6c1e1b0a02",
                                         project_id="p2")))
    assert len(run_sync(store.find_by_name("web", "p1"))) == 1
    assert len(run_sync(store.find_by_name("web", None))) == 2
    assert run_sync(store.name_taken("WEB", "p1"))
    assert not run_sync(store.name_taken("web", "p1", exclude=_rec().uuid))


def test_delete_removes_record_and_actions(store):
    """Deleting a container removes its actions and events too."""
    rec = _rec()
    run_sync(store.create_container(rec))
    aid = run_sync(store.start_action(rec.uuid, "create", "req-1", "u1", "p1", event="e"))
    run_sync(store.finish_action(aid))
    run_sync(store.delete_container(rec.uuid))
    with pytest.raises(errors.ContainerNotFound):
        run_sync(store.get_container(rec.uuid))
    assert run_sync(store.list_actions(rec.uuid)) == []


def test_actions_and_events(store):
    """Actions list newest first; an action shows its events with results."""
    rec = _rec()
    run_sync(store.create_container(rec))
    a1 = run_sync(store.start_action(rec.uuid, "create", "req-1", "u1", "p1", event="do_create"))
    run_sync(store.finish_action(a1))
    a2 = run_sync(store.start_action(rec.uuid, "stop", "req-2", "u1", "p1", event="do_stop"))
    run_sync(store.finish_action(a2, message="boom", result="Error"))
    acts = run_sync(store.list_actions(rec.uuid))
    assert [a.action for a in acts] == ["stop", "create"]
    act = run_sync(store.get_action(rec.uuid, "req-2"))
    assert act.message == "boom"
    assert [(e.event, e.result) for e in act.events] == [("do_stop", "Error")]
    with pytest.raises(errors.ActionNotFound):
        run_sync(store.get_action(rec.uuid, "req-x"))


def test_v1_store_upgrades_dropping_the_reservations_table(tmp_path):
    """A v1 file (with the never-used reservations table) opens as the current schema:
    the table is gone and the records are kept."""
    path = str(tmp_path / "z.sqlite")
    s = Store(path, run_blocking=sync_blocking)
    run_sync(s.open())
    run_sync(s.create_container(_rec()))
    run_sync(s.close())
    # what v1 had on top of v2
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE reservations (id TEXT PRIMARY KEY, project_id TEXT NOT NULL,"
        " cpu REAL NOT NULL, memory_mb INTEGER NOT NULL, disk_gb INTEGER NOT NULL,"
        " expires_at REAL NOT NULL, data TEXT);"
        " INSERT INTO reservations VALUES ('r1', 'p1', 1.0, 512, 0, 0.0, '{}');"
        " PRAGMA user_version=1;")
    conn.close()
    s2 = Store(path, run_blocking=sync_blocking)
    run_sync(s2.open())
    assert run_sync(s2.get_container(_rec().uuid)).name == "web"
    run_sync(s2.close())
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "reservations" not in tables
    assert {"containers", "actions", "action_events", "replicas"} <= tables
    conn.close()


def test_new_store_has_no_reservations_table(tmp_path):
    """A store created from scratch never has the reservations table."""
    path = str(tmp_path / "z.sqlite")
    s = Store(path, run_blocking=sync_blocking)
    run_sync(s.open())
    run_sync(s.close())
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "reservations" not in tables
    conn.close()
