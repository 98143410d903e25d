"""ContainerManager: this node's containers.

Invariants:
- The record is written (status Creating) before the runtime object exists, and
  removed only after the runtime object is gone; so after a crash at any moment
  the store and the runtime can be reconciled without orphans or ghosts.
- One task per container at a time: an action first claims the container by
  persisting its ``task_state`` (under the per-container lock, after checking the
  status); a second action meanwhile gets ``ContainerBusy`` (409).
- Periodic sync never overwrites the status of a container with a task in flight.

Callers (the API layer) do policy and input validation first.
"""

from __future__ import annotations

import traceback
import uuid as uuidlib

import attrs
from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from zund.common import errors
from zund.compute import capacity, states
from zund.runtimes.base import ContainerSpec, RuntimeState, runtime_object_name
from zund.records import ContainerRecord, utcnow
from zund.store import Store

log = Logger()

_CREATE_FAILED = "Container failed to create correctly."

#: interrupted task_state -> action redone on start-up recovery
_RESUMABLE = {
    "container_starting": "start",
    "container_stopping": "stop",
    "container_rebooting": "reboot",
    "container_pausing": "pause",
    "container_unpausing": "unpause",
}


@attrs.frozen
class ManagerConfig:
    node: str
    default_runtime: str = "runc"
    default_cpu: float = 1.0
    default_memory_mb: int = 512
    unique_name_scope: str = ""  # "" | "project" | "global"
    image_pull_policy: str = "ifnotpresent"
    sync_interval_s: float = 60.0
    availability_zone: str = "nova"
    stop_timeout_s: float = 10.0
    shutdown_timeout_s: float = 30.0
    refresh_min_interval_s: float = 1.0
    labels: dict = attrs.field(factory=dict)


def is_uuid_like(value: str) -> bool:
    try:
        return str(uuidlib.UUID(value)) == value.lower()
    except (TypeError, ValueError, AttributeError):
        return False


_GREEK = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
          "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau",
          "upsilon", "phi", "chi", "psi", "omega")


def random_name(u: str) -> str:
    """Zun-style default name derived from the uuid: ``<greek>-<1..24>-container``."""
    n = uuidlib.UUID(u).int
    return f"{_GREEK[n % 24]}-{(n >> 8) % 24 + 1}-container"


class ContainerManager(service.Service):
    """Owns every container record of this node and drives the runtimes."""

    name = "compute"

    def __init__(self, config: ManagerConfig, store: Store, runtimes: dict, clock,
                 capacity_config: capacity.CapacityConfig | None = None,
                 host_facts: capacity.HostFacts | None = None):
        self.config = config
        self.store = store
        self.runtimes = dict(runtimes)
        self.clock = clock
        self.capacity_config = capacity_config or capacity.CapacityConfig()
        self.host_facts = host_facts
        self._locks: dict[str, defer.DeferredLock] = {}
        #: uuid -> clock time of the last reconcile with the runtime
        self._synced_at: dict[str, float] = {}
        self._inflight: set[defer.Deferred] = set()
        self._sync_loop: task.LoopingCall | None = None
        self._accepting = False
        #: callables(event: str, rec) notified after a change of allocation
        #: (created / deleted / resized); the cluster layer re-gossips on it.
        self.listeners: list = []

    # -- service ----------------------------------------------------------------

    def startService(self):
        super().startService()
        return defer.Deferred.fromCoroutine(self._start())

    async def _start(self):
        if self.host_facts is None:
            self.host_facts = capacity.detect_host(self.capacity_config)
        await self.recover()
        self._accepting = True
        self._sync_loop = task.LoopingCall(self._sync_tick)
        self._sync_loop.clock = self.clock
        self._sync_loop.start(self.config.sync_interval_s, now=False)

    def stopService(self):
        super().stopService()
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self):
        self._accepting = False
        if self._sync_loop is not None and self._sync_loop.running:
            self._sync_loop.stop()
        await self.drain(self.config.shutdown_timeout_s)

    async def drain(self, timeout_s: float) -> None:
        """Wait for in-flight background work (bounded by ``timeout_s``)."""
        pending = list(self._inflight)
        if not pending:
            return
        log.info("compute.draining", count=len(pending))
        done = defer.DeferredList(pending, consumeErrors=True)
        timeout = self.clock.callLater(timeout_s, done.cancel)
        try:
            await done
        except defer.CancelledError:
            log.warn("compute.drain_timeout", count=len(self._inflight))
        finally:
            if timeout.active():
                timeout.cancel()

    def _spawn(self, coro, what: str) -> defer.Deferred:
        d = defer.Deferred.fromCoroutine(coro)
        self._inflight.add(d)

        def done(result):
            self._inflight.discard(d)
            return result

        def failed(f):
            log.failure("compute.task_failed", f, task=what)

        d.addBoth(done)
        d.addErrback(failed)
        return d

    def _lock(self, uuid: str) -> defer.DeferredLock:
        lock = self._locks.get(uuid)
        if lock is None:
            lock = self._locks[uuid] = defer.DeferredLock()
        return lock

    def _notify(self, event: str, rec: ContainerRecord) -> None:
        for fn in list(self.listeners):
            try:
                fn(event, rec)
            except Exception:
                log.failure("compute.listener_failed")

    def _runtime(self, rec: ContainerRecord):
        rt = self.runtimes.get(rec.runtime or self.config.default_runtime)
        if rt is None:
            raise errors.RuntimeUnavailable(runtime=rec.runtime, reason="not enabled on this node")
        return rt

    def _require(self, rec: ContainerRecord, capability: str, action: str):
        rt = self._runtime(rec)
        if capability not in rt.capabilities:
            raise errors.NotSupportedByRuntime(action=action, runtime=rt.name)
        return rt

    # -- lookups ----------------------------------------------------------------

    async def lookup(self, ctx, ident: str, all_projects: bool = False) -> ContainerRecord:
        """ContainerRecord by uuid or name. Non-admins only see their own project;
        an admin looking up one ident sees every project."""
        if is_uuid_like(ident):
            try:
                rec = await self.store.get_container(ident.lower())
            except errors.ContainerNotFound:
                raise errors.ContainerNotFound(ident=ident) from None
            if not ctx.is_admin and rec.project_id != ctx.project_id:
                raise errors.ContainerNotFound(ident=ident)
            return rec
        found = await self.store.find_by_name(ident, None if ctx.is_admin else ctx.project_id)
        if not found:
            raise errors.ContainerNotFound(ident=ident)
        if len(found) > 1:
            raise errors.Conflicts(name=ident)
        return found[0]

    async def list(self, ctx, all_projects: bool = False) -> list[ContainerRecord]:
        project = None if (all_projects and ctx.is_admin) else ctx.project_id
        return await self.store.list_containers(project)

    async def refresh(self, rec: ContainerRecord) -> ContainerRecord:
        """Re-read live state from the runtime (unless a task is in flight, or the
        record was reconciled less than ``refresh_min_interval_s`` ago: clients poll
        show in tight loops, and an inspect per poll only steals CPU from the engine)."""
        if rec.task_state is not None or rec.status in (states.CREATING, states.DELETING):
            return rec
        now = self.clock.seconds()
        if now - self._synced_at.get(rec.uuid, float("-inf")) < self.config.refresh_min_interval_s:
            return rec
        lock = self._lock(rec.uuid)
        await lock.acquire()
        try:
            try:
                fresh = await self.store.get_container(rec.uuid)
            except errors.ContainerNotFound:
                return rec
            return await self._sync_one(fresh)
        finally:
            lock.release()

    # -- create -------------------------------------------------------------------

    async def create(self, ctx, request: dict, run: bool) -> ContainerRecord:
        if not self._accepting:
            raise errors.ServiceUnavailable(reason="node is shutting down")
        # In a cluster the entry node chooses the uuid; a repeated commit of the same
        # uuid (a retry after a lost reply) returns the record instead of a twin.
        u = request.get("uuid") or str(uuidlib.uuid4())
        if request.get("uuid"):
            try:
                existing = await self.store.get_container(u)
            except errors.ContainerNotFound:
                pass
            else:
                if existing.project_id != ctx.project_id:
                    raise errors.ContainerAlreadyExists(field="uuid", value=u)
                return existing
        runtime = request.get("runtime") or self.config.default_runtime
        if runtime not in self.runtimes:
            raise errors.InvalidInput(
                field="runtime",
                reason=f"runtime {runtime} is not available on this node "
                       f"(available: {', '.join(sorted(self.runtimes))})")
        name = request.get("name") or random_name(u)
        await self._check_name(ctx, name, None)
        rec = ContainerRecord(
            uuid=u, project_id=ctx.project_id, user_id=ctx.user_id,
            image=request["image"], name=name,
            status=states.CREATING, task_state="container_creating",
            command=request.get("command"), entrypoint=request.get("entrypoint"),
            cpu=float(request.get("cpu") or self.config.default_cpu),
            memory=int(request.get("memory") or self.config.default_memory_mb),
            disk=request.get("disk"),
            cpu_policy=request.get("cpu_policy") or "shared",
            workdir=request.get("workdir"), hostname=request.get("hostname"),
            environment=dict(request.get("environment") or {}),
            labels=dict(request.get("labels") or {}),
            restart_policy=request.get("restart_policy"),
            image_driver=request.get("image_driver") or "docker",
            image_pull_policy=request.get("image_pull_policy"),
            interactive=bool(request.get("interactive")),
            tty=bool(request.get("tty")),
            auto_remove=bool(request.get("auto_remove")),
            auto_heal=bool(request.get("auto_heal")),
            privileged=bool(request.get("privileged")),
            runtime=runtime, host=self.config.node,
            availability_zone=request.get("availability_zone") or self.config.availability_zone,
            exposed_ports=dict(request.get("exposed_ports") or {}),
            healthcheck=dict(request.get("healthcheck") or {}),
            hints=dict(request.get("hints") or {}),
        )
        action_id = await self.store.create_container(
            rec, action=("create", ctx.request_id, ctx.user_id, ctx.project_id,
                         "compute__do_container_create"))
        if request.get("placement"):
            # the entry node's decision: candidates, bids, winner, why
            await self.store.add_event(action_id, "compute__schedule_container",
                                       result="Success", details=request["placement"])
        self._notify("created", rec)
        self._spawn(self._do_create(rec.uuid, run, action_id), "create")
        return rec

    async def _check_name(self, ctx, name: str, exclude: str | None) -> None:
        scope = self.config.unique_name_scope
        if not scope:
            return
        project = ctx.project_id if scope == "project" else None
        if await self.store.name_taken(name, project, exclude=exclude):
            raise errors.ContainerAlreadyExists(field="name", value=name)

    def _spec(self, rec: ContainerRecord) -> ContainerSpec:
        rp = rec.restart_policy
        if rp:
            rp = {"Name": rp.get("Name", "no"),
                  "MaximumRetryCount": int(rp.get("MaximumRetryCount") or 0)}
        return ContainerSpec(
            uuid=rec.uuid, image=rec.image, node=self.config.node, project_id=rec.project_id,
            name=rec.name or "", user_id=rec.user_id,
            command=tuple(rec.command) if rec.command is not None else None,
            entrypoint=tuple(rec.entrypoint) if rec.entrypoint is not None else None,
            cpu=rec.cpu, memory_mb=rec.memory, environment=dict(rec.environment),
            labels=dict(rec.labels), workdir=rec.workdir, hostname=rec.hostname,
            restart_policy=rp, auto_remove=rec.auto_remove, interactive=rec.interactive,
            tty=rec.tty, privileged=rec.privileged,
            image_pull_policy=rec.image_pull_policy or self.config.image_pull_policy,
            exposed_ports=dict(rec.exposed_ports),
        )

    async def _do_create(self, uuid: str, run: bool, action_id: int) -> None:
        lock = self._lock(uuid)
        await lock.acquire()
        try:
            t0 = self.clock.seconds()
            rec = await self.store.get_container(uuid)
            rt = self._runtime(rec)
            spec = self._spec(rec)
            marks = {}
            try:
                rec.task_state = "image_pulling"
                await self.store.save_container(rec)
                await rt.ensure_image(spec.image, spec.image_pull_policy)
                marks["image_ms"] = self.clock.seconds()
                rec.task_state = "container_creating"
                await self.store.save_container(rec)
                state = await rt.create(spec)
                marks["create_ms"] = self.clock.seconds()
                rec.container_id = state.runtime_id
                rec.ports = sorted(state.ports)
                if state.hostname and not rec.hostname:
                    rec.hostname = state.hostname
                rec.status = states.CREATED
                rec.status_detail = "Created"
                if run:
                    rec.task_state = "container_starting"
                    await self.store.save_container(rec)
                    await rt.start(uuid)
                    marks["start_ms"] = self.clock.seconds()
                    state = await rt.inspect(uuid)
                    self._apply_state(rec, state)
                rec.task_state = None
                await self.store.save_container(rec)
                await self.store.finish_action(action_id)
                prev, took = t0, {}
                for k, t in marks.items():
                    took[k] = round((t - prev) * 1000, 1)
                    prev = t
                took["total_ms"] = round((self.clock.seconds() - t0) * 1000, 1)
                log.info("compute.container.created uuid={uuid} status={status} {took}",
                         uuid=uuid, status=rec.status, took=took)
            except errors.ZundError as e:
                await self._fail(rec, e, action_id, "create")
        except errors.ContainerNotFound:
            pass  # deleted meanwhile
        finally:
            lock.release()

    async def _fail(self, rec: ContainerRecord, e: Exception, action_id: int | None,
                    what: str) -> None:
        log.warn("compute.container.{what}_failed", what=what, uuid=rec.uuid, reason=str(e))
        rec.status = states.ERROR
        rec.status_reason = str(e)
        rec.status_detail = None
        rec.task_state = None
        await self.store.save_container(rec)
        if action_id is not None:
            await self.store.finish_action(action_id, message=str(e), result="Error",
                                           traceback=traceback.format_exc())

    def _apply_state(self, rec: ContainerRecord, state: RuntimeState) -> None:
        """Copy what the runtime says into the record (no I/O)."""
        self._synced_at[rec.uuid] = self.clock.seconds()
        rec.status = states.status_from_runtime(rec.status, state.status)
        rec.exit_code = state.exit_code
        rec.started_at = state.started_at
        rec.finished_at = state.finished_at
        if state.hostname and not rec.hostname:
            rec.hostname = state.hostname
        if state.ports:
            rec.ports = sorted(state.ports)
        if rec.status not in (states.ERROR,):
            rec.status_reason = None
        rec.status_detail = states.status_detail(
            rec.status, rec.exit_code, rec.started_at, rec.finished_at, utcnow())

    # -- simple lifecycle actions ---------------------------------------------------

    async def _claim(self, ctx, rec: ContainerRecord, action: str, task_state: str | None,
                     valid_action: str | None = None) -> tuple[ContainerRecord, int]:
        """Check the status and persist the task_state, atomically per container.
        Returns the fresh record and the action id."""
        if not self._accepting:
            raise errors.ServiceUnavailable(reason="node is shutting down")
        await self._fail_fast_if_busy(rec.uuid, action)
        lock = self._lock(rec.uuid)
        await lock.acquire()
        try:
            fresh = await self.store.get_container(rec.uuid)
            if fresh.task_state is not None:
                raise errors.ContainerBusy(action=action, uuid=fresh.uuid,
                                           task_state=fresh.task_state)
            if not states.is_allowed(valid_action or action, fresh.status):
                raise errors.InvalidStateException(action=action, uuid=fresh.uuid,
                                                   status=fresh.status)
            if task_state is not None:
                fresh.task_state = task_state
                await self.store.save_container(fresh)
            recorded = states.RECORDED_ACTION.get(action, action)
            action_id = await self.store.start_action(
                fresh.uuid, recorded, ctx.request_id, ctx.user_id, ctx.project_id,
                event=f"compute__do_container_{recorded}")
            return fresh, action_id
        finally:
            lock.release()

    async def _fail_fast_if_busy(self, uuid: str, action: str) -> None:
        """A task holds the container lock for its whole run; answer 409 at once
        instead of queueing behind it (re-checked under the lock afterwards)."""
        current = await self.store.get_container(uuid)
        if current.task_state is not None:
            raise errors.ContainerBusy(action=action, uuid=uuid, task_state=current.task_state)

    async def _lifecycle(self, ctx, rec, action: str, op) -> None:
        fresh, action_id = await self._claim(ctx, rec, action, states.TASK_OF_ACTION[action])
        self._spawn(self._run_lifecycle(fresh.uuid, action, op, action_id), action)

    async def _run_lifecycle(self, uuid: str, action: str, op, action_id: int) -> None:
        lock = self._lock(uuid)
        await lock.acquire()
        try:
            rec = await self.store.get_container(uuid)
            rt = self._runtime(rec)
            try:
                await op(rt, uuid)
                state = await rt.inspect(uuid)
                self._apply_state(rec, state)
                rec.task_state = None
                await self.store.save_container(rec)
                await self.store.finish_action(action_id)
                log.info("compute.container.{action}", action=action, uuid=uuid,
                         status=rec.status)
            except errors.RuntimeObjectNotFound as e:
                await self._fail(rec, e, action_id, action)
            except errors.ZundError as e:
                # the action failed but the container is what the runtime says it is
                rec.task_state = None
                try:
                    self._apply_state(rec, await rt.inspect(uuid))
                except errors.ZundError:
                    pass
                rec.status_reason = str(e)
                await self.store.save_container(rec)
                await self.store.finish_action(action_id, message=str(e), result="Error",
                                               traceback=traceback.format_exc())
                log.warn("compute.container.action_failed", action=action, uuid=uuid,
                         reason=str(e))
        finally:
            lock.release()

    async def start(self, ctx, rec):
        await self._lifecycle(ctx, rec, "start", lambda rt, u: rt.start(u))

    async def stop(self, ctx, rec, timeout_s: float | None = None):
        t = self.config.stop_timeout_s if timeout_s is None else timeout_s
        await self._lifecycle(ctx, rec, "stop", lambda rt, u: rt.stop(u, t))

    async def reboot(self, ctx, rec, timeout_s: float | None = None):
        t = self.config.stop_timeout_s if timeout_s is None else timeout_s
        await self._lifecycle(ctx, rec, "reboot", lambda rt, u: rt.restart(u, t))

    async def pause(self, ctx, rec):
        self._require(rec, "pause", "pause")
        await self._lifecycle(ctx, rec, "pause", lambda rt, u: rt.pause(u))

    async def unpause(self, ctx, rec):
        self._require(rec, "pause", "unpause")
        await self._lifecycle(ctx, rec, "unpause", lambda rt, u: rt.unpause(u))

    async def kill(self, ctx, rec, signal: str | None = None):
        await self._lifecycle(ctx, rec, "kill", lambda rt, u: rt.kill(u, signal))

    # -- delete ----------------------------------------------------------------------

    async def delete(self, ctx, rec, force: bool = False, stop: bool = False):
        if force:
            valid = "delete_force"
        elif stop and rec.status == states.RUNNING:
            valid = "delete_after_stop"
        else:
            valid = "delete"
        if not force:
            await self._fail_fast_if_busy(rec.uuid, "delete")
        lock = self._lock(rec.uuid)
        await lock.acquire()
        try:
            fresh = await self.store.get_container(rec.uuid)
            if fresh.task_state is not None and not force:
                raise errors.ContainerBusy(action="delete", uuid=fresh.uuid,
                                           task_state=fresh.task_state)
            if not states.is_allowed(valid, fresh.status):
                raise errors.InvalidStateException(action="delete", uuid=fresh.uuid,
                                                   status=fresh.status)
            fresh.status = states.DELETING
            fresh.task_state = "container_deleting"
            await self.store.save_container(fresh)
        finally:
            lock.release()
        log.info("compute.container.deleting", uuid=rec.uuid, force=force, stop=stop)
        self._spawn(self._do_delete(rec.uuid, stop or force), "delete")

    async def _do_delete(self, uuid: str, stop_first: bool) -> None:
        lock = self._lock(uuid)
        await lock.acquire()
        try:
            try:
                rec = await self.store.get_container(uuid)
            except errors.ContainerNotFound:
                return
            try:
                rt = self._runtime(rec)
                if stop_first:
                    try:
                        await rt.stop(uuid, self.config.stop_timeout_s)
                    except errors.RuntimeObjectNotFound:
                        pass
                await rt.remove(uuid, force=True)
            except errors.ZundError as e:
                await self._fail(rec, e, None, "delete")
                return
            await self.store.delete_container(uuid)
            self._synced_at.pop(uuid, None)
            log.info("compute.container.deleted", uuid=uuid)
            self._notify("deleted", rec)
        finally:
            lock.release()
            self._locks.pop(uuid, None)

    # -- synchronous actions --------------------------------------------------------

    def _check_state(self, rec, action: str) -> None:
        if not states.is_allowed(action, rec.status):
            raise errors.InvalidStateException(action=action, uuid=rec.uuid, status=rec.status)

    async def _recorded(self, ctx, rec, action: str, coro_fn):
        """Run a synchronous action and record it in container_actions."""
        recorded = states.RECORDED_ACTION.get(action, action)
        action_id = await self.store.start_action(
            rec.uuid, recorded, ctx.request_id, ctx.user_id, ctx.project_id,
            event=f"compute__do_container_{recorded}")
        try:
            result = await coro_fn()
        except errors.ZundError as e:
            await self.store.finish_action(action_id, message=str(e), result="Error")
            raise
        await self.store.finish_action(action_id)
        return result

    async def logs(self, ctx, rec, stdout=True, stderr=True, timestamps=False,
                   tail: int | None = None, since: float | None = None) -> str:
        self._check_state(rec, "logs")
        rt = self._runtime(rec)
        if since is not None and "logs_since" not in rt.capabilities:
            raise errors.NotSupportedByRuntime(action="logs --since", runtime=rt.name)
        return await rt.logs(rec.uuid, stdout, stderr, timestamps, tail, since)

    async def execute(self, ctx, rec, argv: list):
        rt = self._require(rec, "exec", "execute")
        self._check_state(rec, "execute")
        return await self._recorded(ctx, rec, "execute", lambda: rt.execute(rec.uuid, argv))

    async def top(self, ctx, rec, ps_args: str | None = None) -> dict:
        rt = self._require(rec, "top", "top")
        self._check_state(rec, "top")
        return await rt.top(rec.uuid, ps_args)

    async def stats(self, ctx, rec) -> dict:
        rt = self._require(rec, "stats", "stats")
        self._check_state(rec, "stats")
        stats = dict(await rt.stats(rec.uuid))
        stats["CONTAINER"] = rec.name  # Zun shows the container's name, not the object's
        return stats

    async def update(self, ctx, rec, patch: dict) -> ContainerRecord:
        lock = self._lock(rec.uuid)
        await lock.acquire()
        try:
            fresh = await self.store.get_container(rec.uuid)
            resources = {k: patch[k] for k in ("cpu", "memory") if patch.get(k) is not None}
            if resources:
                if fresh.task_state is not None:
                    raise errors.ContainerBusy(action="update", uuid=fresh.uuid,
                                               task_state=fresh.task_state)
                self._check_state(fresh, "update")
                rt = self._require(fresh, "update", "update")

                async def apply():
                    await rt.update(fresh.uuid, resources.get("cpu"), resources.get("memory"))

                await self._recorded(ctx, fresh, "update", apply)
                if "cpu" in resources:
                    fresh.cpu = float(resources["cpu"])
                if "memory" in resources:
                    fresh.memory = int(resources["memory"])
            if patch.get("name") is not None and patch["name"] != fresh.name:
                await self._check_name(ctx, patch["name"], fresh.uuid)
                fresh.name = patch["name"]
            if patch.get("auto_heal") is not None:
                fresh.auto_heal = bool(patch["auto_heal"])
            await self.store.save_container(fresh)
        finally:
            lock.release()
        if resources:
            self._notify("resized", fresh)
        return fresh

    async def resize_container(self, ctx, rec, cpu=None, memory=None) -> ContainerRecord:
        self._check_state(rec, "resize_container")
        return await self.update(ctx, rec, {"cpu": cpu, "memory": memory})

    async def get_archive(self, ctx, rec, path: str) -> tuple:
        rt = self._require(rec, "archive", "get_archive")
        self._check_state(rec, "get_archive")
        return await rt.get_archive(rec.uuid, path)

    async def put_archive(self, ctx, rec, path: str, data: bytes) -> None:
        rt = self._require(rec, "archive", "put_archive")
        self._check_state(rec, "put_archive")
        await self._recorded(ctx, rec, "put_archive", lambda: rt.put_archive(rec.uuid, path, data))

    async def commit(self, ctx, rec, repository: str, tag: str | None) -> str:
        rt = self._require(rec, "commit", "commit")
        self._check_state(rec, "commit")
        return await self._recorded(ctx, rec, "commit",
                                    lambda: rt.commit(rec.uuid, repository, tag))

    async def list_actions(self, ctx, rec) -> list:
        return await self.store.list_actions(rec.uuid)

    async def get_action(self, ctx, rec, request_id: str):
        return await self.store.get_action(rec.uuid, request_id)

    # -- reconciliation ----------------------------------------------------------------

    async def recover(self) -> None:
        """Start-up recovery (Zun's compute init_containers):
        interrupted create -> Error (and the half-made runtime object is removed);
        interrupted delete -> finish it; other interrupted tasks -> cleared and
        re-synced; runtime objects of this node without a record -> removed."""
        records = await self.store.list_containers()
        known = {r.uuid for r in records}
        for rec in records:
            if rec.status == states.DELETING or rec.task_state == "container_deleting":
                log.info("compute.recover.finish_delete", uuid=rec.uuid)
                self._spawn(self._do_delete(rec.uuid, True), "delete")
            elif rec.status == states.CREATING or rec.task_state in (
                    "image_pulling", "container_creating"):
                log.warn("compute.recover.interrupted_create", uuid=rec.uuid)
                try:
                    await self._runtime(rec).remove(rec.uuid, force=True)
                except errors.ZundError as e:
                    log.warn("compute.recover.remove_failed", uuid=rec.uuid, reason=str(e))
                rec.status = states.ERROR
                rec.status_reason = _CREATE_FAILED
                rec.task_state = None
                await self.store.save_container(rec)
            elif rec.task_state in _RESUMABLE:
                # Zun's compute init: an interrupted start/stop/... is done again, so
                # an accepted `run` still ends up Running.
                action = _RESUMABLE[rec.task_state]
                log.info("compute.recover.resume", uuid=rec.uuid, action=action)
                action_id = await self.store.start_action(
                    rec.uuid, action, "req-recovery-" + str(uuidlib.uuid4()), None, None,
                    event=f"compute__do_container_{action}")
                op = self._resume_op(action)
                self._spawn(self._run_lifecycle(rec.uuid, action, op, action_id), action)
            elif rec.task_state is not None:
                rec.task_state = None
                await self.store.save_container(rec)
                await self._sync_one(rec)
        await self._reap_orphans(known)

    def _resume_op(self, action: str):
        t = self.config.stop_timeout_s
        return {
            "start": lambda rt, u: rt.start(u),
            "stop": lambda rt, u: rt.stop(u, t),
            "reboot": lambda rt, u: rt.restart(u, t),
            "pause": lambda rt, u: rt.pause(u),
            "unpause": lambda rt, u: rt.unpause(u),
        }[action]

    async def _reap_orphans(self, known: set[str]) -> None:
        for name, rt in self.runtimes.items():
            try:
                objects = await rt.list(self.config.node)
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

    def _sync_tick(self):
        return self._spawn(self.sync_all(), "sync")

    async def sync_all(self) -> None:
        """Periodic reconcile: every idle record against the runtime, then orphans."""
        records = await self.store.list_containers()
        for rec in records:
            if rec.task_state is not None or rec.status in (states.CREATING, states.DELETING):
                continue
            lock = self._lock(rec.uuid)
            await lock.acquire()
            try:
                try:
                    fresh = await self.store.get_container(rec.uuid)
                except errors.ContainerNotFound:
                    continue
                if fresh.task_state is None:
                    await self._sync_one(fresh)
            finally:
                lock.release()
        # Records are re-read here: anything created since the list above already
        # had its record written before its runtime object existed.
        known = {r.uuid for r in await self.store.list_containers()}
        await self._reap_orphans(known)

    async def _sync_one(self, rec: ContainerRecord) -> ContainerRecord:
        """Reconcile one record with the runtime. Caller holds the container lock."""
        if rec.status in (states.ERROR,) and rec.container_id is None:
            return rec  # never made it to the runtime
        try:
            rt = self._runtime(rec)
            state = await rt.inspect(rec.uuid)
        except errors.RuntimeObjectNotFound as e:
            if rec.auto_remove:
                await self.store.delete_container(rec.uuid)
                self._synced_at.pop(rec.uuid, None)
                log.info("compute.sync.auto_removed", uuid=rec.uuid)
                self._notify("deleted", rec)
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
        before = (rec.status, rec.exit_code, rec.started_at, rec.finished_at, rec.status_detail)
        self._apply_state(rec, state)
        after = (rec.status, rec.exit_code, rec.started_at, rec.finished_at, rec.status_detail)
        if before != after:
            await self.store.save_container(rec)
        return rec

    # -- node ---------------------------------------------------------------------------

    def runtime_names(self) -> list[str]:
        return sorted(self.runtimes)

    async def usage(self) -> capacity.Usage:
        return capacity.usage_of(await self.store.list_containers())

    async def host_info(self) -> dict:
        facts = self.host_facts or capacity.detect_host(self.capacity_config)
        used = await self.usage()
        return {
            "uuid": capacity.node_uuid(self.config.node),
            "hostname": self.config.node,
            "mem_total": facts.mem_total_mb,
            "mem_used": used.mem_used_mb,
            "cpus": facts.cpus,
            "cpu_used": round(used.cpu_used, 3),
            "disk_total": facts.disk_total_gb,
            "disk_used": used.disk_used_gb,
            "disk_quota_supported": False,
            "total_containers": used.containers,
            "architecture": facts.architecture,
            "os_type": "linux",
            "os": facts.os,
            "kernel_version": facts.kernel_version,
            "labels": dict(self.config.labels),
            "runtimes": self.runtime_names(),
            "enable_cpu_pinning": False,
        }
