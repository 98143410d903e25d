"""Node-local durable store: SQLite in WAL mode.

A node is the single authority for the containers it hosts; this file is that
authority. Every mutating call returns only after the transaction committed
(``synchronous=FULL``), so a state change is durable before it is acknowledged.

All SQLite work runs on one dedicated thread (one connection, serialised), so the
reactor never blocks on fsync. Tests may pass a synchronous ``run_blocking``.

Schema is versioned with ``PRAGMA user_version``; ``MIGRATIONS[i]`` upgrades from
version i to i+1.
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import threading
from typing import Any, Callable

import attrs
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from zund.common import errors
from zund.records import (ActionEvent, ActionRecord, ContainerRecord, fmt_time,  # noqa: F401
                          parse_time, utcnow)

log = Logger()

SCHEMA_VERSION = 2

MIGRATIONS = [
    # 0 -> 1
    """
    CREATE TABLE containers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        uuid TEXT NOT NULL UNIQUE,
        name TEXT,
        project_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        status TEXT NOT NULL,
        task_state TEXT,
        host TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT,
        data TEXT NOT NULL
    );
    CREATE INDEX containers_project ON containers(project_id);
    CREATE INDEX containers_name ON containers(name);
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        container_uuid TEXT NOT NULL,
        action TEXT NOT NULL,
        request_id TEXT NOT NULL,
        user_id TEXT,
        project_id TEXT,
        start_time TEXT NOT NULL,
        finish_time TEXT,
        message TEXT
    );
    CREATE INDEX actions_container ON actions(container_uuid);
    CREATE TABLE action_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        action_id INTEGER NOT NULL REFERENCES actions(id) ON DELETE CASCADE,
        event TEXT NOT NULL,
        start_time TEXT NOT NULL,
        finish_time TEXT,
        result TEXT,
        traceback TEXT,
        details TEXT
    );
    CREATE TABLE reservations (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        cpu REAL NOT NULL,
        memory_mb INTEGER NOT NULL,
        disk_gb INTEGER NOT NULL,
        expires_at REAL NOT NULL,
        data TEXT
    );
    """,
    # 1 -> 2: the bidder keeps its reservations in memory (they live for seconds and
    # must not outlive a restart); the table was never written
    """
    DROP TABLE IF EXISTS reservations;
    """,
]


#: Columns that live outside the JSON blob (indexed / filterable).
_COLUMNS = ("uuid", "name", "project_id", "user_id", "status", "task_state", "host")


def _to_row(rec: ContainerRecord) -> dict:
    data = attrs.asdict(rec, recurse=False)
    for k in ("started_at", "finished_at", "created_at", "updated_at"):
        data[k] = fmt_time(data[k])
    data.pop("id")
    row = {k: data[k] for k in _COLUMNS}
    row["created_at"] = data["created_at"]
    row["updated_at"] = data["updated_at"]
    row["data"] = json.dumps(data, sort_keys=True)
    return row

def _from_row(row: sqlite3.Row) -> ContainerRecord:
    data = json.loads(row["data"])
    for k in ("started_at", "finished_at", "created_at", "updated_at"):
        data[k] = parse_time(data.get(k))
    known = {a.name for a in attrs.fields(ContainerRecord)}
    rec = ContainerRecord(**{k: v for k, v in data.items() if k in known})
    rec.id = row["id"]
    return rec


class Store:
    """SQLite-backed records. Open with :meth:`open`, close with :meth:`close`.

    ``run_blocking``: callable(fn, *a) -> Deferred; default is a private one-thread pool.
    Only the compute manager writes here.
    """

    def __init__(self, path: str, reactor=None, run_blocking: Callable | None = None):
        self.path = path
        self._reactor = reactor
        self._run_blocking = run_blocking
        self._pool: ThreadPool | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        if self._run_blocking is None:
            from twisted.internet import reactor as global_reactor  # noqa: only default

            reactor = self._reactor or global_reactor
            self._pool = ThreadPool(minthreads=1, maxthreads=1, name="zund-store")
            self._pool.start()
            pool = self._pool
            self._run_blocking = lambda fn, *a, **kw: threads.deferToThreadPool(
                reactor, pool, fn, *a, **kw
            )
        await self._call(self._open_sync)

    def _open_sync(self) -> None:
        d = os.path.dirname(self.path)
        if d:
            os.makedirs(d, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"store {self.path} has schema {version}, newer than this zund ({SCHEMA_VERSION})"
            )
        for v in range(version, SCHEMA_VERSION):
            conn.execute("BEGIN IMMEDIATE")
            try:
                # executescript() would COMMIT on its own; run statement by statement
                # so the migration and the version bump are one transaction.
                for stmt in _split_sql(MIGRATIONS[v]):
                    conn.execute(stmt)
                conn.execute(f"PRAGMA user_version={v + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            log.info("store.migrated", path=self.path, version=v + 1)
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        if self._pool is not None:
            self._pool.stop()
            self._pool = None

    def _call(self, fn, *a, **kw):
        if self._run_blocking is None:
            raise RuntimeError("store is not open")
        return defer.Deferred.fromCoroutine(self._acall(fn, *a, **kw))

    async def _acall(self, fn, *a, **kw):
        return await defer.maybeDeferred(self._run_blocking, fn, *a, **kw)

    def _tx(self, fn: Callable[[sqlite3.Connection], Any]):
        """Run fn inside one IMMEDIATE transaction on the store thread."""

        def run():
            with self._lock:
                conn = self._conn
                if conn is None:
                    raise RuntimeError("store is closed")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result

        return self._call(run)

    def _read(self, fn: Callable[[sqlite3.Connection], Any]):
        def run():
            with self._lock:
                if self._conn is None:
                    raise RuntimeError("store is closed")
                return fn(self._conn)

        return self._call(run)

    # -- containers ----------------------------------------------------------

    async def create_container(self, rec: ContainerRecord,
                               action: tuple[str, str, str | None, str | None, str] | None = None
                               ) -> int | None:
        """Insert ``rec`` (sets ``rec.id``). With ``action`` = (action, request_id,
        user_id, project_id, event), its first action is written in the same
        transaction; returns that action's id."""
        row = _to_row(rec)
        now = fmt_time(utcnow())

        def fn(conn):
            cur = conn.execute(
                "INSERT INTO containers (uuid, name, project_id, user_id, status, task_state,"
                " host, created_at, updated_at, data) VALUES (:uuid, :name, :project_id,"
                " :user_id, :status, :task_state, :host, :created_at, :updated_at, :data)",
                row,
            )
            rowid = cur.lastrowid
            action_id = None
            if action is not None:
                name, request_id, user_id, project_id, event = action
                action_id = self._insert_action(conn, rec.uuid, name, request_id, user_id,
                                                project_id, event, now)
            return rowid, action_id

        rec.id, action_id = await self._tx(fn)
        return action_id

    async def save_container(self, rec: ContainerRecord) -> ContainerRecord:
        """Persist every field of ``rec`` (bumps updated_at)."""
        rec.updated_at = utcnow()
        row = _to_row(rec)

        def fn(conn):
            cur = conn.execute(
                "UPDATE containers SET name=:name, project_id=:project_id, user_id=:user_id,"
                " status=:status, task_state=:task_state, host=:host, updated_at=:updated_at,"
                " data=:data WHERE uuid=:uuid",
                row,
            )
            if cur.rowcount != 1:
                raise errors.ContainerNotFound(ident=rec.uuid)

        await self._tx(fn)
        return rec

    async def get_container(self, uuid: str) -> ContainerRecord:
        def fn(conn):
            row = conn.execute("SELECT * FROM containers WHERE uuid=?", (uuid,)).fetchone()
            if row is None:
                raise errors.ContainerNotFound(ident=uuid)
            return _from_row(row)

        return await self._read(fn)

    async def find_by_name(self, name: str, project_id: str | None) -> list[ContainerRecord]:
        def fn(conn):
            if project_id is None:
                rows = conn.execute("SELECT * FROM containers WHERE name=?", (name,))
            else:
                rows = conn.execute(
                    "SELECT * FROM containers WHERE name=? AND project_id=?", (name, project_id)
                )
            return [_from_row(r) for r in rows.fetchall()]

        return await self._read(fn)

    async def name_taken(self, name: str, project_id: str | None, exclude: str | None = None) -> bool:
        def fn(conn):
            q = "SELECT uuid FROM containers WHERE lower(name)=lower(?)"
            args: list = [name]
            if project_id is not None:
                q += " AND project_id=?"
                args.append(project_id)
            rows = [r[0] for r in conn.execute(q, args).fetchall()]
            return any(u != exclude for u in rows)

        return await self._read(fn)

    async def list_containers(self, project_id: str | None = None) -> list[ContainerRecord]:
        """All records (of one project when given), in insertion order."""

        def fn(conn):
            if project_id is None:
                rows = conn.execute("SELECT * FROM containers ORDER BY id")
            else:
                rows = conn.execute(
                    "SELECT * FROM containers WHERE project_id=? ORDER BY id", (project_id,)
                )
            return [_from_row(r) for r in rows.fetchall()]

        return await self._read(fn)

    async def delete_container(self, uuid: str) -> None:
        def fn(conn):
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM actions WHERE container_uuid=?", (uuid,)).fetchall()]
            for i in ids:
                conn.execute("DELETE FROM action_events WHERE action_id=?", (i,))
            conn.execute("DELETE FROM actions WHERE container_uuid=?", (uuid,))
            conn.execute("DELETE FROM containers WHERE uuid=?", (uuid,))

        await self._tx(fn)

    # -- actions ---------------------------------------------------------------

    async def start_action(self, uuid: str, action: str, request_id: str, user_id: str | None,
                           project_id: str | None, event: str | None = None) -> int:
        now = fmt_time(utcnow())
        return await self._tx(lambda conn: self._insert_action(
            conn, uuid, action, request_id, user_id, project_id, event, now))

    @staticmethod
    def _insert_action(conn, uuid, action, request_id, user_id, project_id, event, now) -> int:
        cur = conn.execute(
            "INSERT INTO actions (container_uuid, action, request_id, user_id, project_id,"
            " start_time) VALUES (?,?,?,?,?,?)",
            (uuid, action, request_id, user_id, project_id, now),
        )
        aid = cur.lastrowid
        if event:
            conn.execute(
                "INSERT INTO action_events (action_id, event, start_time) VALUES (?,?,?)",
                (aid, event, now),
            )
        return aid

    async def add_event(self, action_id: int, event: str, result: str | None = None,
                        details: Any = None, traceback: str | None = None,
                        finished: bool = True) -> None:
        now = fmt_time(utcnow())

        def fn(conn):
            conn.execute(
                "INSERT INTO action_events (action_id, event, start_time, finish_time, result,"
                " traceback, details) VALUES (?,?,?,?,?,?,?)",
                (action_id, event, now, now if finished else None, result, traceback,
                 json.dumps(details) if details is not None else None),
            )

        await self._tx(fn)

    async def finish_action(self, action_id: int, message: str | None = None,
                            result: str = "Success", traceback: str | None = None) -> None:
        now = fmt_time(utcnow())

        def fn(conn):
            conn.execute("UPDATE actions SET finish_time=?, message=? WHERE id=?",
                         (now, message, action_id))
            conn.execute(
                "UPDATE action_events SET finish_time=?, result=?, traceback=?"
                " WHERE action_id=? AND finish_time IS NULL",
                (now, result, traceback, action_id),
            )

        await self._tx(fn)

    async def list_actions(self, uuid: str) -> list[ActionRecord]:
        def fn(conn):
            rows = conn.execute(
                "SELECT * FROM actions WHERE container_uuid=? ORDER BY id DESC", (uuid,)
            ).fetchall()
            return [_action_from_row(r) for r in rows]

        return await self._read(fn)

    async def get_action(self, uuid: str, request_id: str) -> ActionRecord:
        def fn(conn):
            row = conn.execute(
                "SELECT * FROM actions WHERE container_uuid=? AND request_id=? ORDER BY id DESC",
                (uuid, request_id),
            ).fetchone()
            if row is None:
                raise errors.ActionNotFound(request_id=request_id, ident=uuid)
            act = _action_from_row(row)
            for e in conn.execute(
                "SELECT * FROM action_events WHERE action_id=? ORDER BY id", (row["id"],)
            ).fetchall():
                act.events.append(ActionEvent(
                    event=e["event"], start_time=parse_time(e["start_time"]),
                    finish_time=parse_time(e["finish_time"]), result=e["result"],
                    traceback=e["traceback"],
                    details=json.loads(e["details"]) if e["details"] else None,
                ))
            return act

        return await self._read(fn)


def _action_from_row(r) -> ActionRecord:
    return ActionRecord(
        id=r["id"], container_uuid=r["container_uuid"], action=r["action"],
        request_id=r["request_id"], user_id=r["user_id"], project_id=r["project_id"],
        start_time=parse_time(r["start_time"]), finish_time=parse_time(r["finish_time"]),
        message=r["message"],
    )


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
