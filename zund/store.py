"""Node-local durable store: SQLite in WAL mode.

A node is the single authority for the containers it hosts; this file is that
authority. Every mutating call returns only after the transaction committed
(``synchronous=FULL``), so a state change is durable before it is acknowledged.

All SQLite writes run on one dedicated thread (one connection, serialised), so the
reactor never blocks on fsync. Tests may pass a synchronous ``run_blocking``.

Group commit: write transactions that arrive while the store thread is busy run
together in one ``BEGIN IMMEDIATE … COMMIT`` (one fsync), each inside its own
SAVEPOINT, so a failing one rolls back only itself and its caller alone gets its
exception. Every caller's Deferred fires only after the shared COMMIT succeeded;
if the COMMIT fails, every member fails. Callers are answered in queue order, so
change listeners hear of committed changes in commit order.

Point reads (one container, its actions, one image) run on the reactor thread on
a second, read-only connection: in WAL mode a reader sees the last commit, and a
writer's Deferred fires only after its commit, so such a read never sees state
older than a write its caller awaited. Scans stay on the store thread.

Schema is versioned with ``PRAGMA user_version``; ``MIGRATIONS[i]`` upgrades from
version i to i+1.
"""

from __future__ import annotations

import datetime
import json
import os
import queue
import sqlite3
import threading
from collections import deque
from typing import Any, Callable

import attrs
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from zund.common import errors
from zund.records import (ActionEvent, ActionRecord, ContainerRecord, fmt_time,  # noqa: F401
                          parse_time, utcnow)

log = Logger()

SCHEMA_VERSION = 8
#: page cache of the write connection, KiB (SQLite's default is 2,000): the b-tree's
#: interior pages and the pages a commit touches fit; full-table reads (lists) re-read
#: the rest from the OS page cache, cheap next to decoding the records (issue 13 §5:
#: 1,000 containers' store is ~2.5 MB, all of which the default cache kept)
WRITER_CACHE_KIB = 512

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
    # 2 -> 3: copies of other nodes' records (zund.cluster.replicas). One row per
    # container uuid; ``deleted`` rows are tombstones that keep the generation so
    # a late copy cannot resurrect a deleted container.
    """
    CREATE TABLE IF NOT EXISTS replicas (
        uuid TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        generation INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        name TEXT,
        project_id TEXT,
        received_at TEXT NOT NULL,
        data TEXT
    );
    CREATE INDEX IF NOT EXISTS replicas_owner ON replicas(owner);
    CREATE INDEX IF NOT EXISTS replicas_name ON replicas(name);
    """,
    # 3 -> 4: images this node pulled or loaded (zund.images.local), one row per
    # image record; (repo, tag) is unique on a node, as in Zun
    """
    CREATE TABLE IF NOT EXISTS images (
        uuid TEXT PRIMARY KEY,
        repo TEXT NOT NULL,
        tag TEXT NOT NULL,
        created_at TEXT NOT NULL,
        data TEXT NOT NULL,
        UNIQUE (repo, tag)
    );
    """,
    # 4 -> 5: this node's replicas of quota limits (zund.cluster.quota), one row per
    # key ("project:<id>" | "class:<name>"); the version (seconds, node) decides
    # which copy is newer, so a restart serves what it acknowledged
    """
    CREATE TABLE IF NOT EXISTS quota_limits (
        key TEXT PRIMARY KEY,
        limits TEXT NOT NULL,
        version_s REAL NOT NULL,
        version_node TEXT NOT NULL
    );
    """,
    # 5 -> 6: this node's copies of private registries (zund.cluster.registries), one
    # row per registry uuid; ``data`` holds the password encrypted with the node key
    # (never plaintext); a deleted registry stays as a tombstone of a newer version
    """
    CREATE TABLE IF NOT EXISTS registries (
        uuid TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        version_s REAL NOT NULL,
        version_node TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        data TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS registries_project ON registries(project_id);
    """,
    # 6 -> 7: this node's copies of flavors created through the compute API
    # (zund.cluster.flavors), one row per flavor id; deletions stay as tombstones
    """
    CREATE TABLE IF NOT EXISTS flavors (
        id TEXT PRIMARY KEY,
        version_s REAL NOT NULL,
        version_node TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        data TEXT NOT NULL
    );
    """,
    # 7 -> 8: indexes for the point reads (issue 13): a container's action events
    # (and the cascade of a deleted action) and the case-blind name check
    """
    CREATE INDEX IF NOT EXISTS action_events_action ON action_events(action_id);
    CREATE INDEX IF NOT EXISTS containers_lower_name ON containers(lower(name));
    """,
]


#: Columns that live outside the JSON blob (indexed / filterable).
_COLUMNS = ("uuid", "name", "project_id", "user_id", "status", "task_state", "host")


#: the record's timestamps, stored as text in the JSON blob
_TIMES = ("started_at", "finished_at", "created_at", "updated_at")
#: one encoder for every blob (``json.dumps`` with options builds one per call)
_encode = json.JSONEncoder(sort_keys=True).encode
#: ContainerRecord's fields: a blob written by a newer zund may have more
_FIELDS = frozenset(a.name for a in attrs.fields(ContainerRecord))
#: the fields a blob holds (every one but ``id``, a column) when written by this zund
_BLOB_FIELDS = _FIELDS - {"id"}
#: a record may be built without its __init__ (a third of a decode's time) while the
#: class has no converter, validator, post-init or __setattr__ hook that would skip
_PLAIN_RECORD = (
    not any(a.converter or a.validator for a in attrs.fields(ContainerRecord))
    and not hasattr(ContainerRecord, "__attrs_post_init__")
    and ContainerRecord.__setattr__ is object.__setattr__)


#: the blob's fields in the record's order (``id`` is a column)
_BLOB_ORDER = tuple(a.name for a in attrs.fields(ContainerRecord) if a.name != "id")


def _to_row(rec: ContainerRecord) -> dict:
    # a plain getattr per field: what asdict(recurse=False) gives, at half its cost
    data = {k: getattr(rec, k) for k in _BLOB_ORDER}
    for k in _TIMES:
        data[k] = fmt_time(data[k])
    row = {k: data[k] for k in _COLUMNS}
    row["created_at"] = data["created_at"]
    row["updated_at"] = data["updated_at"]
    row["data"] = _encode(data)
    return row


def _from_row(row: sqlite3.Row) -> ContainerRecord:
    rec = _from_data(row["data"])
    rec.id = row["id"]
    return rec


def _from_data(text: str) -> ContainerRecord:
    data = json.loads(text)
    for k in _TIMES:
        data[k] = parse_time(data.get(k))
    if _PLAIN_RECORD and data.keys() == _BLOB_FIELDS:
        rec = object.__new__(ContainerRecord)
        for k, v in data.items():
            object.__setattr__(rec, k, v)
        rec.id = None
        return rec
    if not data.keys() <= _FIELDS:
        data = {k: v for k, v in data.items() if k in _FIELDS}
    return ContainerRecord(**data)  # older blob: defaults fill the new fields


@attrs.frozen
class RecordChange:
    """One committed change of this node's records, for :meth:`Store.add_listener`.
    ``record`` None: the container ``uuid`` was deleted at ``generation``."""

    uuid: str
    generation: int
    record: ContainerRecord | None


@attrs.frozen
class ReplicaCopy:
    """A copy of another node's record (or its tombstone, ``record`` None)."""

    uuid: str
    owner: str
    generation: int
    record: ContainerRecord | None


class _StoreThread:
    """The one thread every SQLite write runs on: ``run(fn, *a, **kw)`` queues the
    call and returns a Deferred the reactor fires with its result or Failure.

    What ``deferToThreadPool`` on a one-thread pool did, at half its CPU per call
    (issue 13: two of these per create): no Twisted Team/worker coordination, no
    log context copy; one ``SimpleQueue`` put, one ``callFromThread`` back."""

    _STOP = object()

    def __init__(self, reactor) -> None:
        self._reactor = reactor
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="zund-store", daemon=True)
        self._thread.start()

    def run(self, fn, *a, **kw) -> defer.Deferred:
        d = defer.Deferred()
        self._queue.put((fn, a, kw, d))
        return d

    def _work(self) -> None:
        call_back = self._reactor.callFromThread
        while True:
            item = self._queue.get()
            if item is self._STOP:
                return
            fn, a, kw, d = item
            try:
                result = fn(*a, **kw)
            except BaseException:
                call_back(d.errback, Failure())
            else:
                call_back(d.callback, result)
            del item, fn, a, kw, d

    def stop(self) -> None:
        """Finish what is queued, then end the thread (waits for it)."""
        self._queue.put(self._STOP)
        self._thread.join()


class Store:
    """SQLite-backed records. Open with :meth:`open`, close with :meth:`close`.

    ``run_blocking``: callable(fn, *a) -> Deferred; default is a private one-thread pool.
    Only the compute manager writes this node's containers; only the replicator
    (``zund.cluster.replicas``) writes the ``replicas`` table.

    Every write of a container bumps its ``generation``; listeners added with
    :meth:`add_listener` hear of each committed change (``RecordChange``).
    """

    #: at most this many write transactions share one COMMIT
    MAX_GROUP = 64

    def __init__(self, path: str, reactor=None, run_blocking: Callable | None = None,
                 connect: Callable[..., sqlite3.Connection] = sqlite3.connect, *,
                 max_group: int = MAX_GROUP, point_reads: bool = True):
        """``connect``: ``sqlite3.connect`` or a stand-in with its signature (tests
        inject faults with a ``sqlite3.Connection`` subclass). ``max_group``: write
        transactions per COMMIT at most (1: no group commit); ``point_reads``: False
        sends every read to the store thread (both for comparisons in bench/)."""
        self.path = path
        self.max_group = max(1, int(max_group))
        self._point_reads = point_reads
        self._reactor = reactor
        self._run_blocking = run_blocking
        self._connect = connect
        self._pool: _StoreThread | None = None
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[RecordChange], None]] = []
        # write transactions waiting for the next group: (fn, Deferred)
        self._pending: deque[tuple[Callable, defer.Deferred]] = deque()
        self._group_in_flight = False
        self._drain_waiters: list[defer.Deferred] = []
        #: COMMITs done, write transactions committed in them, and the largest group
        #: (the figures of group commit; read by tests and the metrics)
        self.commits = 0
        self.transactions = 0
        self.largest_group = 0

    # -- change listeners ------------------------------------------------------

    def add_listener(self, listener: Callable[[RecordChange], None]) -> None:
        """``listener(change)`` after every committed create, save and delete of a
        container, on the caller's (reactor) thread; it must not block. Its
        exceptions are logged, never raised into the write."""
        self._listeners.append(listener)

    def remove_listener(self, listener) -> None:
        self._listeners.remove(listener)

    def _changed(self, change: RecordChange) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                log.failure("store.listener_failed uuid={uuid}", uuid=change.uuid)

    # -- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        if self._run_blocking is None:
            from twisted.internet import reactor as global_reactor  # noqa: only default

            reactor = self._reactor or global_reactor
            self._pool = _StoreThread(reactor)
            self._run_blocking = self._pool.run
        await self._call(self._open_sync)

    def _open_sync(self) -> None:
        d = os.path.dirname(self.path)
        if d:
            os.makedirs(d, exist_ok=True)
        conn = self._connect(self.path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
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
        if (self._point_reads and self.path != ":memory:"
                and not self.path.startswith("file:")):
            # point reads on the reactor thread (module docstring); never waits for
            # a lock: a busy reader falls back to the store thread
            reader = sqlite3.connect(self.path, check_same_thread=False,
                                     isolation_level=None)
            reader.row_factory = sqlite3.Row
            reader.execute("PRAGMA query_only=ON")
            reader.execute("PRAGMA busy_timeout=0")
            # small: the writer's commits invalidate what it caches anyway
            reader.execute("PRAGMA cache_size=-256")
            self._reader = reader

    async def close(self) -> None:
        # writes queued before close are still written (as one FIFO thread did)
        while self._group_in_flight or self._pending:
            waiter = defer.Deferred()
            self._drain_waiters.append(waiter)
            await waiter
        if self._reader is not None:
            self._reader.close()
            self._reader = None
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

    def _tx(self, fn: Callable[[sqlite3.Connection], Any]) -> defer.Deferred:
        """Run ``fn(conn)`` in a write transaction on the store thread; the Deferred
        fires with its result once the transaction is committed (durable), or with
        its exception (then nothing it wrote is kept). Transactions queued while a
        group is in flight form the next group (group commit, module docstring)."""
        if self._run_blocking is None:
            return defer.fail(RuntimeError("store is not open"))
        d = defer.Deferred()
        self._pending.append((fn, d))
        self._next_group()
        return d

    def _next_group(self) -> None:
        if self._group_in_flight or not self._pending:
            return
        group = [self._pending.popleft()
                 for _ in range(min(len(self._pending), self.max_group))]
        self._group_in_flight = True
        gd = defer.maybeDeferred(self._run_blocking, self._run_group, [fn for fn, _ in group])
        gd.addBoth(self._group_done, group)

    def _group_done(self, outcome, group) -> None:
        # still "in flight" while the members are answered: writes their callbacks
        # start join the next group together instead of going one by one
        try:
            # a caller that cancelled its wait was answered then (the write goes on)
            if isinstance(outcome, Failure):
                for _fn, d in group:
                    if not d.called:
                        d.errback(outcome)
            else:
                self.commits += 1
                self.transactions += sum(1 for ok, _ in outcome if ok)
                self.largest_group = max(self.largest_group, len(group))
                for (_fn, d), (ok, value) in zip(group, outcome):
                    if d.called:
                        continue
                    if ok:
                        d.callback(value)
                    else:
                        d.errback(value)
        finally:
            self._group_in_flight = False
            self._next_group()
            if not self._group_in_flight:
                waiters, self._drain_waiters = self._drain_waiters, []
                for waiter in waiters:
                    waiter.callback(None)

    def _run_group(self, fns: list[Callable]) -> list[tuple[bool, Any]]:
        """Store thread: one BEGIN IMMEDIATE … COMMIT for every fn of the group,
        each in its own SAVEPOINT; returns (True, result) | (False, Failure) per fn.
        Raises (the whole group fails, nothing kept) when BEGIN or COMMIT fails or a
        member's error ended the transaction itself."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise RuntimeError("store is closed")
            conn.execute("BEGIN IMMEDIATE")
            try:
                outcomes: list[tuple[bool, Any]] = []
                single = len(fns) == 1
                for fn in fns:
                    if not single:
                        conn.execute("SAVEPOINT member")
                    try:
                        result = fn(conn)
                    except Exception:
                        failure = Failure()
                        if not conn.in_transaction:
                            raise  # SQLite rolled the whole transaction back
                        if single:
                            conn.execute("ROLLBACK")
                            return [(False, failure)]
                        conn.execute("ROLLBACK TO member")
                        conn.execute("RELEASE member")
                        outcomes.append((False, failure))
                    else:
                        if not single:
                            conn.execute("RELEASE member")
                        outcomes.append((True, result))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return outcomes

    def _read(self, fn: Callable[[sqlite3.Connection], Any]):
        def run():
            with self._lock:
                if self._conn is None:
                    raise RuntimeError("store is closed")
                return fn(self._conn)

        return self._call(run)

    async def _point_read(self, fn: Callable[[sqlite3.Connection], Any]):
        """A small indexed read (``fn`` must consume its cursors whole, e.g.
        ``fetchall``, so no read transaction outlives it): on the reactor thread
        with the read-only connection, else (no reader, or it is busy) as
        :meth:`_read`."""
        reader = self._reader
        if reader is not None:
            try:
                return fn(reader)
            except sqlite3.OperationalError:
                pass  # busy (e.g. the WAL being reset): the store thread answers
        return await self._read(fn)

    # -- containers ----------------------------------------------------------

    async def create_container(self, rec: ContainerRecord,
                               action: tuple[str, str, str | None, str | None, str] | None = None,
                               events: tuple = ()) -> int | None:
        """Insert ``rec`` (sets ``rec.id``; its generation is at least 1). With
        ``action`` = (action, request_id, user_id, project_id, event), its first
        action is written in the same transaction; returns that action's id.
        ``events``: (event, result, details) finished events of that action, also
        in the same transaction (one commit per acknowledged create)."""
        rec.generation = max(1, rec.generation)
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
                for ev_name, result, details in events:
                    self._insert_event(conn, action_id, ev_name, now, result, details)
            return rowid, action_id

        rec.id, action_id = await self._tx(fn)
        self._changed(RecordChange(rec.uuid, rec.generation, rec.copy()))
        return action_id

    async def save_container(self, rec: ContainerRecord,
                             finish_action: int | None = None) -> ContainerRecord:
        """Persist every field of ``rec`` (bumps updated_at and the generation: one
        more than the stored one, so two copies of a record saved in turn still
        count up). ``finish_action``: an action id finished (Success) in the same
        transaction, as :meth:`finish_action` would."""
        rec.updated_at = utcnow()
        now = fmt_time(rec.updated_at)

        def fn(conn):
            stored = conn.execute("SELECT json_extract(data, '$.generation')"
                                  " FROM containers WHERE uuid=?", (rec.uuid,)).fetchone()
            if stored is None:
                raise errors.ContainerNotFound(ident=rec.uuid)
            current = stored[0] or 0
            rec.generation = max(current, rec.generation) + 1
            row = _to_row(rec)
            conn.execute(
                "UPDATE containers SET name=:name, project_id=:project_id, user_id=:user_id,"
                " status=:status, task_state=:task_state, host=:host, updated_at=:updated_at,"
                " data=:data WHERE uuid=:uuid",
                row,
            )
            if finish_action is not None:
                self._finish_action(conn, finish_action, now, None, "Success", None)

        await self._tx(fn)
        self._changed(RecordChange(rec.uuid, rec.generation, rec.copy()))
        return rec

    async def get_container(self, uuid: str) -> ContainerRecord:
        def fn(conn):
            rows = conn.execute("SELECT * FROM containers WHERE uuid=?", (uuid,)).fetchall()
            if not rows:
                raise errors.ContainerNotFound(ident=uuid)
            return _from_row(rows[0])

        return await self._point_read(fn)

    async def find_by_name(self, name: str, project_id: str | None) -> list[ContainerRecord]:
        def fn(conn):
            if project_id is None:
                rows = conn.execute("SELECT * FROM containers WHERE name=?", (name,))
            else:
                rows = conn.execute(
                    "SELECT * FROM containers WHERE name=? AND project_id=?", (name, project_id)
                )
            return [_from_row(r) for r in rows.fetchall()]

        return await self._point_read(fn)

    async def name_taken(self, name: str, project_id: str | None, exclude: str | None = None) -> bool:
        def fn(conn):
            q = "SELECT uuid FROM containers WHERE lower(name)=lower(?)"
            args: list = [name]
            if project_id is not None:
                q += " AND project_id=?"
                args.append(project_id)
            rows = [r[0] for r in conn.execute(q, args).fetchall()]
            return any(u != exclude for u in rows)

        return await self._point_read(fn)

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
            stored = conn.execute("SELECT json_extract(data, '$.generation')"
                                  " FROM containers WHERE uuid=?", (uuid,)).fetchone()
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM actions WHERE container_uuid=?", (uuid,)).fetchall()]
            for i in ids:
                conn.execute("DELETE FROM action_events WHERE action_id=?", (i,))
            conn.execute("DELETE FROM actions WHERE container_uuid=?", (uuid,))
            conn.execute("DELETE FROM containers WHERE uuid=?", (uuid,))
            return None if stored is None else (stored[0] or 0)

        generation = await self._tx(fn)
        if generation is not None:
            self._changed(RecordChange(uuid, generation + 1, None))

    # -- replicas of other nodes' records ------------------------------------------

    async def apply_replicas(self, copies: list[ReplicaCopy]) -> int:
        """Keep each copy unless a copy (or tombstone) of the same uuid with a
        generation at least as high is already kept; returns how many were kept."""
        now = fmt_time(utcnow())

        def fn(conn):
            kept = 0
            for c in copies:
                row = conn.execute("SELECT generation FROM replicas WHERE uuid=?",
                                   (c.uuid,)).fetchone()
                if row is not None and row[0] >= c.generation:
                    continue
                rec = c.record
                data = None if rec is None else _to_row(rec)["data"]
                conn.execute(
                    "INSERT OR REPLACE INTO replicas (uuid, owner, generation, deleted, name,"
                    " project_id, received_at, data) VALUES (?,?,?,?,?,?,?,?)",
                    (c.uuid, c.owner, c.generation, 1 if rec is None else 0,
                     None if rec is None else rec.name,
                     None if rec is None else rec.project_id, now, data))
                kept += 1
            return kept

        return await self._tx(fn)

    async def sync_replicas(self, owner: str, digest: dict[str, int],
                            tombstone_ttl_s: float = 3600.0) -> list[str]:
        """``owner`` says which of its records this node should hold (uuid ->
        generation): copies of ``owner`` not in ``digest`` are dropped, tombstones
        of ``owner`` older than ``tombstone_ttl_s`` are forgotten; returns the
        uuids whose kept generation is lower than the digest's (or missing)."""
        cutoff = fmt_time(utcnow() - datetime.timedelta(seconds=tombstone_ttl_s))

        def fn(conn):
            held = {r[0]: (r[1], r[2]) for r in conn.execute(
                "SELECT uuid, generation, deleted FROM replicas WHERE owner=?", (owner,))}
            for uuid, (_gen, deleted) in held.items():
                if uuid not in digest and not deleted:
                    conn.execute("DELETE FROM replicas WHERE uuid=?", (uuid,))
            conn.execute("DELETE FROM replicas WHERE owner=? AND deleted=1 AND received_at<?",
                         (owner, cutoff))
            wanted = []
            for uuid, generation in digest.items():
                row = conn.execute("SELECT generation FROM replicas WHERE uuid=?",
                                   (uuid,)).fetchone()
                if row is None or row[0] < generation:
                    wanted.append(uuid)
            return wanted

        return await self._tx(fn)

    async def list_replicas(self, owners: list[str] | None = None,
                            project_id: str | None = None, *,
                            except_owners: list[str] = (),
                            name: str | None = None,
                            uuid: str | None = None) -> list[ReplicaCopy]:
        """Kept copies (no tombstones), of ``owners`` when given, of no owner in
        ``except_owners``, of one project when given, with one ``name`` or
        ``uuid`` when given."""

        def fn(conn):
            q = "SELECT * FROM replicas WHERE deleted=0"
            args: list = []
            if owners is not None:
                q += f" AND owner IN ({','.join('?' * len(owners))})"
                args.extend(owners)
            if except_owners:
                q += f" AND owner NOT IN ({','.join('?' * len(except_owners))})"
                args.extend(except_owners)
            if project_id is not None:
                q += " AND project_id=?"
                args.append(project_id)
            if name is not None:
                q += " AND name=?"
                args.append(name)
            if uuid is not None:
                q += " AND uuid=?"
                args.append(uuid)
            out = []
            for r in conn.execute(q + " ORDER BY uuid", args).fetchall():
                out.append(ReplicaCopy(r["uuid"], r["owner"], r["generation"],
                                       _from_data(r["data"])))
            return out

        return await self._read(fn)

    async def replica_owners(self) -> dict[str, int]:
        """owner -> how many live copies of its records this node keeps."""

        def fn(conn):
            return {r[0]: r[1] for r in conn.execute(
                "SELECT owner, count(*) FROM replicas WHERE deleted=0 GROUP BY owner")}

        return await self._read(fn)

    async def drop_replicas(self, uuids: list[str]) -> None:
        """Forget copies (and tombstones) of ``uuids`` (this node owns them now)."""

        def fn(conn):
            for u in uuids:
                conn.execute("DELETE FROM replicas WHERE uuid=?", (u,))

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

        await self._tx(lambda conn: self._insert_event(conn, action_id, event, now, result,
                                                       details, traceback, finished))

    @staticmethod
    def _insert_event(conn, action_id, event, now, result, details, traceback=None,
                      finished=True) -> None:
        conn.execute(
            "INSERT INTO action_events (action_id, event, start_time, finish_time, result,"
            " traceback, details) VALUES (?,?,?,?,?,?,?)",
            (action_id, event, now, now if finished else None, result, traceback,
             json.dumps(details) if details is not None else None),
        )

    async def finish_action(self, action_id: int, message: str | None = None,
                            result: str = "Success", traceback: str | None = None) -> None:
        now = fmt_time(utcnow())
        await self._tx(lambda conn: self._finish_action(conn, action_id, now, message,
                                                        result, traceback))

    @staticmethod
    def _finish_action(conn, action_id, now, message, result, traceback) -> None:
        conn.execute("UPDATE actions SET finish_time=?, message=? WHERE id=?",
                     (now, message, action_id))
        conn.execute(
            "UPDATE action_events SET finish_time=?, result=?, traceback=?"
            " WHERE action_id=? AND finish_time IS NULL",
            (now, result, traceback, action_id),
        )

    async def list_actions(self, uuid: str) -> list[ActionRecord]:
        def fn(conn):
            rows = conn.execute(
                "SELECT * FROM actions WHERE container_uuid=? ORDER BY id DESC", (uuid,)
            ).fetchall()
            return [_action_from_row(r) for r in rows]

        return await self._point_read(fn)

    async def get_action(self, uuid: str, request_id: str) -> ActionRecord:
        def fn(conn):
            rows = conn.execute(
                "SELECT * FROM actions WHERE container_uuid=? AND request_id=? ORDER BY id DESC",
                (uuid, request_id),
            ).fetchall()
            if not rows:
                raise errors.ActionNotFound(request_id=request_id, ident=uuid)
            row = rows[0]
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

        return await self._point_read(fn)


    # -- images (zund.images.local) ----------------------------------------------

    async def put_image(self, rec) -> None:
        """Insert or replace the image record ``rec`` (a ``zund.images.records.
        ImageRecord``); the row of the same (repo, tag) is replaced."""
        data = json.dumps(rec.to_dict(), sort_keys=True)

        def fn(conn):
            conn.execute("DELETE FROM images WHERE repo=? AND tag=? AND uuid<>?",
                         (rec.repo, rec.tag, rec.uuid))
            conn.execute("INSERT OR REPLACE INTO images (uuid, repo, tag, created_at, data) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (rec.uuid, rec.repo, rec.tag, fmt_time(rec.created_at or utcnow()),
                          data))

        await self._tx(fn)

    async def get_image(self, uuid: str):
        """The image record ``uuid``, or None."""
        from zund.images.records import ImageRecord

        def fn(conn):
            rows = conn.execute("SELECT data FROM images WHERE uuid=?", (uuid,)).fetchall()
            return ImageRecord.from_dict(json.loads(rows[0]["data"])) if rows else None

        return await self._point_read(fn)

    async def find_image(self, repo: str, tag: str):
        """The image record of ``repo:tag``, or None."""
        from zund.images.records import ImageRecord

        def fn(conn):
            rows = conn.execute("SELECT data FROM images WHERE repo=? AND tag=?",
                                (repo, tag)).fetchall()
            return ImageRecord.from_dict(json.loads(rows[0]["data"])) if rows else None

        return await self._point_read(fn)

    async def list_images(self) -> list:
        from zund.images.records import ImageRecord

        def fn(conn):
            rows = conn.execute("SELECT data FROM images ORDER BY created_at, uuid").fetchall()
            return [ImageRecord.from_dict(json.loads(r["data"])) for r in rows]

        return await self._read(fn)

    async def delete_image(self, uuid: str) -> None:
        await self._tx(lambda conn: conn.execute("DELETE FROM images WHERE uuid=?", (uuid,)))

    # -- quota limits (zund.cluster.quota) ------------------------------------------

    async def put_quota_limits(self, key: str, limits: dict, version: tuple) -> bool:
        """Keep ``limits`` for ``key`` at ``version`` (``(seconds, node)``) unless a
        copy of the same or a newer version is held; True when written. Durable on
        return (a replica acknowledges only what a restart will serve)."""
        def fn(conn):
            row = conn.execute("SELECT version_s, version_node FROM quota_limits "
                               "WHERE key=?", (key,)).fetchone()
            if row is not None and (row["version_s"], row["version_node"]) >= tuple(version):
                return False
            conn.execute("INSERT OR REPLACE INTO quota_limits (key, limits, version_s, "
                         "version_node) VALUES (?, ?, ?, ?)",
                         (key, json.dumps(limits, sort_keys=True), float(version[0]),
                          str(version[1])))
            return True

        return await self._tx(fn)

    async def list_quota_limits(self) -> dict:
        """Every quota limits copy held: key -> (limits, (seconds, node))."""
        def fn(conn):
            rows = conn.execute("SELECT key, limits, version_s, version_node "
                                "FROM quota_limits").fetchall()
            return {r["key"]: (json.loads(r["limits"]), (r["version_s"], r["version_node"]))
                    for r in rows}

        return await self._read(fn)


    # -- private registries (zund.cluster.registries) -------------------------------

    async def put_registry(self, data: dict) -> bool:
        """Keep the registry copy ``data`` (a ``RegistryEntry.to_wire()`` whose
        password the caller has already encrypted) unless a copy of the same or a
        newer ``version`` is held; True when written. Durable on return."""
        version = (float(data["version"][0]), str(data["version"][1]))

        def fn(conn):
            row = conn.execute("SELECT version_s, version_node FROM registries "
                               "WHERE uuid=?", (data["uuid"],)).fetchone()
            if row is not None and (row["version_s"], row["version_node"]) >= version:
                return False
            conn.execute("INSERT OR REPLACE INTO registries (uuid, project_id, version_s, "
                         "version_node, deleted, data) VALUES (?, ?, ?, ?, ?, ?)",
                         (data["uuid"], data["project_id"], version[0], version[1],
                          int(bool(data.get("deleted"))), json.dumps(data, sort_keys=True)))
            return True

        return await self._tx(fn)

    async def list_registries(self) -> list:
        """Every registry copy held (tombstones included), as stored."""
        def fn(conn):
            rows = conn.execute("SELECT data FROM registries ORDER BY uuid").fetchall()
            return [json.loads(r["data"]) for r in rows]

        return await self._read(fn)


    # -- flavors created through the compute API (zund.cluster.flavors) -------------

    async def put_flavor(self, data: dict) -> bool:
        """Keep the flavor copy ``data`` (a ``Flavor.to_wire()`` with a version)
        unless a copy of the same or a newer version is held; True when written.
        Durable on return."""
        version = (float(data["version"][0]), str(data["version"][1]))

        def fn(conn):
            row = conn.execute("SELECT version_s, version_node FROM flavors WHERE id=?",
                               (data["id"],)).fetchone()
            if row is not None and (row["version_s"], row["version_node"]) >= version:
                return False
            conn.execute("INSERT OR REPLACE INTO flavors (id, version_s, version_node, "
                         "deleted, data) VALUES (?, ?, ?, ?, ?)",
                         (data["id"], version[0], version[1], int(bool(data.get("deleted"))),
                          json.dumps(data, sort_keys=True)))
            return True

        return await self._tx(fn)

    async def list_flavors(self) -> list:
        """Every flavor copy held (tombstones included), as stored."""
        def fn(conn):
            rows = conn.execute("SELECT data FROM flavors ORDER BY id").fetchall()
            return [json.loads(r["data"]) for r in rows]

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
