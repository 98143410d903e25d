"""Reconciling this node's records with its runtimes: start-up recovery (Zun's
compute ``init_containers``) and the periodic sync (Zun's
``sync_container_state``).

Invariants:
- Periodic sync never overwrites the status of a container with a task in flight
  (it skips records with a ``task_state`` and re-checks under the container lock).
- Every runtime object labelled as this node's that has no record is removed — the
  record is always written before the object exists, so such an object is a
  leftover, never a create in progress.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.logger import Logger

from zund.common import errors
from zund.compute import states
from zund.compute.lifecycle import Lifecycle
from zund.records import ContainerRecord
from zund.runtimes.base import RuntimeState, runtime_object_name

log = Logger()

CREATE_FAILED = "Container failed to create correctly."

#: ``status_reason`` of a record whose runtime could not be asked at start-up: list
#: and show then serve the same last-recorded status, marked as such; the next
#: sync that reaches the runtime (a show, or the periodic sync) clears it.
STALE = ("Status not confirmed: the runtime did not answer when zund started; "
         "this is the status last recorded.")

#: interrupted task_state -> action redone on start-up recovery
RESUMABLE = {
    "container_starting": "start",
    "container_stopping": "stop",
    "container_rebooting": "reboot",
    "container_pausing": "pause",
    "container_unpausing": "unpause",
}


def reached_runtime(rec: ContainerRecord) -> bool:
    """False for a record that never made it to a runtime (nothing to sync)."""
    return rec.placed and not (rec.status == states.ERROR and rec.container_id is None)


#: What a sync copies from the runtime and stores when it changed.
#:
#: Not ``status_detail``: its "Up 5 minutes" text follows from the status and the
#: times, and the API derives it when it answers (``views.container``), so a
#: running container's record is not rewritten each minute only because the clock
#: moved.
SYNC_FIELDS = ("status", "status_reason", "exit_code", "started_at", "finished_at")


def sync_key(rec: ContainerRecord) -> tuple:
    """The record's :data:`SYNC_FIELDS`."""
    return tuple(getattr(rec, name) for name in SYNC_FIELDS)


class Reconciler:
    """Start-up recovery and the periodic sync loop of one node's containers.

    Shares the lifecycle's store, runtimes, locks and background tasks.
    """

    def __init__(self, lifecycle: Lifecycle, sync_interval_s: float,
                 refresh_min_interval_s: float):
        self.lifecycle = lifecycle
        self.store = lifecycle.store
        self.sync_interval_s = sync_interval_s
        self.refresh_min_interval_s = refresh_min_interval_s
        self._loop: task.LoopingCall | None = None
        #: ``hold(uuid, action)``: set by the composition root when records can
        #: move away while this node is down (``zund.cluster.healer``): an
        #: ``auto_heal`` record that recovery would create or start is handed to it
        #: instead, and started (``resume``) only once the cluster said it did not
        #: move — never a record that has moved.
        self.hold = None

    # -- the periodic loop ----------------------------------------------------------

    def start_loop(self) -> None:
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self.lifecycle.clock
        self._loop.start(self.sync_interval_s, now=False)

    def stop_loop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def _tick(self):
        return self.lifecycle.tasks.spawn(self.sync_all(), "sync")

    # -- start-up recovery ------------------------------------------------------------

    async def recover(self) -> None:
        """Start-up recovery (Zun's compute init_containers):
        interrupted create -> resumed (``Lifecycle.resume_create``: a runtime
        object made before the crash is adopted, else made now; Error only when its
        runtime is gone from this node);
        interrupted delete -> finish it; interrupted start/stop/reboot/pause/unpause
        -> done again; other interrupted tasks -> cleared and re-synced; runtime
        objects of this node without a record -> removed.

        Every idle record is reconciled with its runtime here, before the manager
        accepts work and before the API is started (the service tree starts it
        later): ``list`` (the store) and ``show`` (the store after a refresh) then
        agree from the first request on, whatever changed while zund was down
        (issue 10 item 7). A record whose runtime cannot answer keeps its status,
        marked ``STALE``."""
        lc = self.lifecycle
        records = await self.store.list_containers()
        known = {r.uuid for r in records}
        idle: list[ContainerRecord] = []
        for rec in records:
            if rec.status == states.DELETING or rec.task_state == "container_deleting":
                log.info("compute.recover.finish_delete", uuid=rec.uuid)
                lc.tasks.spawn(lc.do_delete(rec.uuid, True), "delete")
            elif self.hold is not None and rec.auto_heal and rec.placed and (
                    rec.status == states.CREATING
                    or rec.task_state in ("image_pulling", "container_creating")
                    or RESUMABLE.get(rec.task_state) in ("start", "reboot", "unpause")):
                action = "create" if rec.status == states.CREATING or rec.task_state in (
                    "image_pulling", "container_creating") else RESUMABLE[rec.task_state]
                log.info("compute.recover.held_for_move_check", uuid=rec.uuid, action=action)
                self.hold(rec.uuid, action)
            elif rec.status == states.CREATING or rec.task_state in (
                    "image_pulling", "container_creating"):
                # Issue 11 item 1: the create was acknowledged (its record exists),
                # so it resumes; the runtime object, if made, is adopted.
                log.info("compute.recover.interrupted_create", uuid=rec.uuid)
                if rec.placed and (rec.runtime or lc.config.default_runtime) in lc.runtimes:
                    lc.tasks.spawn(lc.resume_create(rec.uuid), "create")
                else:
                    rec.status = states.ERROR
                    rec.status_reason = CREATE_FAILED
                    rec.task_state = None
                    await self.store.save_container(rec)
            elif rec.task_state in RESUMABLE:
                # Zun's compute init: an interrupted start/stop/... is done again, so
                # an accepted `run` still ends up Running.
                action = RESUMABLE[rec.task_state]
                log.info("compute.recover.resume", uuid=rec.uuid, action=action)
                action_id = await self.store.start_action(
                    rec.uuid, action, "req-recovery-" + lc.new_uuid(), None, None,
                    event=f"compute__do_container_{action}")
                lc.tasks.spawn(lc.run_action(rec.uuid, action, lc.op_for(action), action_id),
                               action)
            elif rec.status == states.REBUILDING:
                # issue 12 item 4 (zund.compute.rebuild): past the pull, the old runtime
                # object may be gone and the new one not made; Error lets the user
                # rebuild again (or delete). An interrupted pull is just cleared below.
                rec.task_state = None
                rec.status = states.ERROR
                rec.status_reason = ("rebuild interrupted by a restart of zund: rebuild "
                                     "the container again")
                await self.store.save_container(rec)
            elif rec.task_state is not None:
                rec.task_state = None
                await self.store.save_container(rec)
                await self.sync_one(rec)
            else:
                idle.append(rec)
        observed = await self._observe()
        for rec in idle:
            await self._sync_observed(rec, observed)
        await self._reap_orphans(known, observed)

    async def resume(self, uuid: str, action: str) -> None:
        """Do what start-up recovery held back for ``uuid`` (see ``hold``)."""
        lc = self.lifecycle
        if action == "create":
            lc.tasks.spawn(lc.resume_create(uuid), "create")
            return
        action_id = await self.store.start_action(
            uuid, action, "req-recovery-" + lc.new_uuid(), None, None,
            event=f"compute__do_container_{action}")
        lc.tasks.spawn(lc.run_action(uuid, action, lc.op_for(action), action_id), action)

    async def _observe(self) -> dict[str, dict | None]:
        """Runtime name -> {uuid: RuntimeState} of this node's objects (one ``list``
        per runtime), or None for a runtime that could not answer."""
        lc = self.lifecycle
        observed: dict[str, dict | None] = {}
        for name, rt in list(lc.runtimes.items()):
            try:
                objects = await rt.list(lc.config.node)
            except errors.ZundError as e:
                log.warn("compute.recover.list_failed", runtime=name, reason=str(e))
                observed[name] = None
                continue
            observed[name] = {state.uuid: state for state in objects}
        return observed

    async def _sync_observed(self, rec: ContainerRecord, observed: dict) -> None:
        """Start-up sync of one idle record from what its runtime listed."""
        if not reached_runtime(rec):
            return
        lc = self.lifecycle
        objects = observed.get(rec.runtime or lc.config.default_runtime)
        async with lc.locks[rec.uuid]:
            if objects is None:  # runtime not answering, or not enabled any more
                if rec.status != states.ERROR and rec.status_reason != STALE:
                    rec.status_reason = STALE
                    await self.store.save_container(rec)
                log.warn("compute.recover.unconfirmed", uuid=rec.uuid, status=rec.status)
                return
            # a missing object is found out (and recorded) by inspect
            await self.sync_one(rec, objects.get(rec.uuid))

    async def _reap_orphans(self, known: set[str], observed: dict | None = None) -> None:
        """Remove this node's runtime objects that have no record. ``observed``:
        what ``_observe`` listed just before (else each runtime is listed now)."""
        lc = self.lifecycle
        for name, rt in list(lc.runtimes.items()):
            if observed is not None and name in observed:
                if observed[name] is None:
                    continue  # could not list: nothing is known to be an orphan
                objects = list(observed[name].values())
            else:
                try:
                    objects = await rt.list(lc.config.node)
                except errors.ZundError as e:
                    log.warn("compute.reap.list_failed", runtime=name, reason=str(e))
                    continue
            for state in objects:
                if state.uuid not in known:
                    log.warn("compute.reap.orphan", uuid=state.uuid,
                             object=runtime_object_name(state.uuid))
                    try:
                        await rt.remove(state.uuid, force=True)
                    except errors.ZundError as e:
                        log.warn("compute.reap.remove_failed", uuid=state.uuid, reason=str(e))

    # -- sync -----------------------------------------------------------------------------

    async def sync_all(self) -> None:
        """Periodic reconcile: every idle record against the runtime, then orphans.

        Each runtime is listed once (``_observe``); a record the listing agrees with
        (:func:`sync_key` unchanged by what was listed) costs nothing more. Any
        other record is reconciled as before: under its lock, re-read, from a fresh
        inspect (never from the listing, which may predate a task that ran since).
        A runtime that cannot list falls back to an inspect per record."""
        lc = self.lifecycle
        records = await self.store.list_containers()
        observed = await self._observe()
        for rec in records:
            if rec.task_state is not None or rec.status in (states.CREATING, states.DELETING):
                continue
            if not reached_runtime(rec):
                continue
            objects = observed.get(rec.runtime or lc.config.default_runtime)
            state = objects.get(rec.uuid) if objects is not None else None
            if state is not None and not self._differs(rec, state):
                lc.mark_synced(rec.uuid)
                continue
            async with lc.locks[rec.uuid]:
                try:
                    fresh = await self.store.get_container(rec.uuid)
                except errors.ContainerNotFound:
                    continue
                if fresh.task_state is not None:
                    continue
                # inspected again: a task may have run since the listing, even
                # one that left the record as it was (a stop and a start)
                await self.sync_one(fresh)
        # Records are re-read here: every object the listing above saw had its
        # record written before it existed, so it is in this list unless deleted.
        known = {r.uuid for r in await self.store.list_containers()}
        await self._reap_orphans(known, observed)

    def _differs(self, rec: ContainerRecord, state: RuntimeState) -> bool:
        """Would ``state`` change what :meth:`sync_one` compares (and stores)? (No
        copy of the record: a sync of 1,000 agreeing records copied 1,000.)"""
        fields = self.lifecycle.synced_fields(rec, state)
        return any(fields[name] != getattr(rec, name) for name in SYNC_FIELDS)

    async def refresh(self, rec: ContainerRecord) -> ContainerRecord:
        """Re-read live state from the runtime (unless a task is in flight, or the
        record was reconciled less than ``refresh_min_interval_s`` ago: clients poll
        show in tight loops, and an inspect per poll only steals CPU from the engine)."""
        if rec.task_state is not None or rec.status in (states.CREATING, states.DELETING):
            return rec
        lc = self.lifecycle
        now = lc.clock.seconds()
        if now - lc.synced_at.get(rec.uuid, float("-inf")) < self.refresh_min_interval_s:
            return rec
        async with lc.locks[rec.uuid]:
            try:
                fresh = await self.store.get_container(rec.uuid)
            except errors.ContainerNotFound:
                return rec
            return await self.sync_one(fresh)

    async def sync_one(self, rec: ContainerRecord,
                       state: RuntimeState | None = None) -> ContainerRecord:
        """Reconcile one record with the runtime (``state``: what the runtime just
        reported for it, else it is inspected). Caller holds the container lock."""
        lc = self.lifecycle
        if not reached_runtime(rec):
            return rec
        try:
            if state is None:
                state = await lc.runtime(rec).inspect(rec.uuid)
        except errors.RuntimeObjectNotFound as e:
            if rec.auto_remove:
                await self.store.delete_container(rec.uuid)
                lc.synced_at.pop(rec.uuid, None)
                log.info("compute.sync.auto_removed", uuid=rec.uuid)
                lc.notify("deleted", rec)
                rec.status = states.DELETED
                return rec
            if rec.status != states.ERROR or rec.status_reason != str(e):
                rec.status = states.ERROR
                rec.status_reason = str(e)
                rec.status_detail = None
                await self.store.save_container(rec)
                log.warn("compute.sync.vanished", uuid=rec.uuid)
            return rec
        except errors.ZundError as e:
            log.warn("compute.sync.inspect_failed", uuid=rec.uuid, reason=str(e))
            return rec
        before = sync_key(rec)
        lc.apply_state(rec, state)
        if sync_key(rec) != before:
            await self.store.save_container(rec)
        return rec
