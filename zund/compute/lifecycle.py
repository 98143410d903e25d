"""Lifecycle of this node's containers: create, the state-changing actions, delete.

Invariants (the manager's module docstring states them for callers):
- The record is written (status Creating) before the runtime object exists, and
  removed only after the runtime object is gone.
- One task per container at a time: an action first claims the container by
  persisting its ``task_state`` (under the per-container lock, after checking the
  status, Zun's VALID_STATES); a second action meanwhile gets ``ContainerBusy``.
- A create request arrives complete (``records.CreateRequest``: defaults applied and
  the name chosen by the API); a record is built only with ``records.new_record``.

Only ``ContainerManager`` (and the reconciler, for recovery) call into this module.
"""

from __future__ import annotations

import traceback
from typing import Callable

from oslo_utils import uuidutils
from twisted.logger import Logger

from zund.common import errors
from zund.compute import rebuild, states
from zund.compute.tasks import BackgroundTasks, ContainerLocks
from zund.compute.volumes import LocalVolumes, mounts_of
from zund.records import ContainerRecord, CreateRequest, new_record, utcnow
from zund.runtimes.base import ContainerSpec, RegistryAuth, RuntimeState, RuntimeStatus
from zund.store import Store

log = Logger()

#: Zun's event of the scheduling step in a create action
SCHEDULE_EVENT = "compute__schedule_container"
#: a healed or drained-away container's record starts this much above the
#: generation of the copy it replaces, so nothing the old owner wrote after its
#: last replicated copy can outrank it (zund.cluster.healer)
HEAL_GENERATION_STEP = 1 << 20


def spec_of(rec: ContainerRecord, node: str, image_pull_policy: str) -> ContainerSpec:
    """What the runtime is asked to create for ``rec`` (no I/O).
    ``image_pull_policy``: used when the record names none."""
    rp = rec.restart_policy
    if rp:
        rp = {"Name": rp.get("Name", "no"),
              "MaximumRetryCount": int(rp.get("MaximumRetryCount") or 0)}
    return ContainerSpec(
        uuid=rec.uuid, image=rec.image, node=node, project_id=rec.project_id,
        name=rec.name or "", user_id=rec.user_id,
        command=tuple(rec.command) if rec.command is not None else None,
        entrypoint=tuple(rec.entrypoint) if rec.entrypoint is not None else None,
        cpu=rec.cpu, memory_mb=rec.memory, environment=dict(rec.environment),
        labels=dict(rec.labels), workdir=rec.workdir, hostname=rec.hostname,
        restart_policy=rp, auto_remove=rec.auto_remove, interactive=rec.interactive,
        tty=rec.tty, privileged=rec.privileged,
        image_pull_policy=rec.image_pull_policy or image_pull_policy,
        exposed_ports=dict(rec.exposed_ports), mounts=mounts_of(rec),
    )


def check_state(rec: ContainerRecord, action: str) -> None:
    """Zun's VALID_STATES check: ``InvalidStateException`` when ``action`` is not
    accepted in the record's status."""
    if not states.is_allowed(action, rec.status):
        raise errors.InvalidStateException(action=action, uuid=rec.uuid, status=rec.status)


def delete_allowed(status: str, *, force: bool, stop: bool) -> bool:
    """Zun's VALID_STATES for a delete: ``force`` takes any status; ``stop`` (stop,
    then delete) takes what a plain delete takes plus Running."""
    if force:
        return states.is_allowed("delete_force", status)
    if stop and states.is_allowed("delete_after_stop", status):
        return True
    return states.is_allowed("delete", status)


class Lifecycle:
    """Create, act on and delete this node's containers.

    ``runtimes``: the node's runtimes by name (the same dict the manager exposes;
    the service may drop a runtime that failed to start). ``notify(event, rec)``:
    called after a change of allocation (created / deleted / resized).
    ``new_uuid``: uuid factory (``uuid4`` in production; injectable for tests).
    """

    def __init__(self, config, store: Store, runtimes: dict, clock, tasks: BackgroundTasks,
                 locks: ContainerLocks, notify: Callable, new_uuid: Callable[[], str]):
        self.config = config
        self.store = store
        self.runtimes = runtimes
        self.clock = clock
        self.tasks = tasks
        self.locks = locks
        self.notify = notify
        self.new_uuid = new_uuid
        #: False until start-up recovery is done, and again from stopService on
        self.accepting = False
        #: zund.images.glance.GlanceImages of this node (None: no Glance), for
        #: containers created with image_driver glance (set by the composition root)
        self.glance = None
        #: zund.cluster.registries.RegistryService (None: no private registries):
        #: the credentials of a container's ``registry_id`` at pull time
        self.registries = None
        #: uuid -> clock time of the last reconcile with the runtime
        self.synced_at: dict[str, float] = {}
        #: zund.compute.volumes.IVolumeDriver: where the containers' volumes live
        self.volumes = LocalVolumes()
        #: rt -> rt: how callers see a record's runtime (the composition root sets
        #: zund.metrics.NodeMetrics.timed_runtime to time runtime calls); None = as is
        self.runtime_view: Callable | None = None
        #: zund.network.node.NodeNetworks (None: ``[network] driver = none``): ports
        #: allocated at create, wired before the runtime object is made and before
        #: each start, released after removal (issue 16)
        self.networks = None

    # -- runtimes -----------------------------------------------------------------

    def runtime(self, rec: ContainerRecord):
        rt = self.runtimes.get(rec.runtime or self.config.default_runtime)
        if rt is None:
            raise errors.RuntimeUnavailable(runtime=rec.runtime, reason="not enabled on this node")
        return rt if self.runtime_view is None else self.runtime_view(rt)

    def require(self, rec: ContainerRecord, capability: str, action: str):
        """The record's runtime, if it has ``capability``; else NotSupportedByRuntime."""
        rt = self.runtime(rec)
        if capability not in rt.capabilities:
            raise errors.NotSupportedByRuntime(action=action, runtime=rt.name)
        return rt

    @staticmethod
    def synced_fields(rec: ContainerRecord, state: RuntimeState) -> dict:
        """The fields :meth:`apply_state` writes for ``state``, with their new values
        (``rec`` untouched: the periodic sync compares them without a copy)."""
        status = states.status_from_runtime(rec.status, state.status)
        out = {"status": status, "exit_code": state.exit_code,
               "started_at": state.started_at, "finished_at": state.finished_at,
               "status_reason": rec.status_reason if status == states.ERROR else None}
        if state.hostname and not rec.hostname:
            out["hostname"] = state.hostname
        if state.ports:
            out["ports"] = sorted(state.ports)
        return out

    def mark_synced(self, uuid: str) -> None:
        """Stamp ``uuid`` as agreeing with its runtime as of now."""
        self.synced_at[uuid] = self.clock.seconds()

    def apply_state(self, rec: ContainerRecord, state: RuntimeState) -> None:
        """Copy what the runtime says into the record (no I/O); stamps the sync time."""
        self.mark_synced(rec.uuid)
        for name, value in self.synced_fields(rec, state).items():
            setattr(rec, name, value)
        rec.status_detail = states.status_detail(
            rec.status, rec.exit_code, rec.started_at, rec.finished_at, utcnow())

    def _require_accepting(self) -> None:
        if not self.accepting:
            raise errors.ServiceUnavailable(reason="node is shutting down")

    # -- create -------------------------------------------------------------------

    async def _existing(self, ctx, uuid: str) -> ContainerRecord | None:
        """A repeat of a create with the same uuid (a retry after a lost reply)
        returns the record instead of a twin; another project's uuid is a conflict."""
        if not uuidutils.is_uuid_like(uuid):
            raise errors.InvalidInput(field="uuid", reason=f"{uuid!r} is not a uuid")
        try:
            existing = await self.store.get_container(uuid)
        except errors.ContainerNotFound:
            return None
        if existing.project_id != ctx.project_id:
            raise errors.ContainerAlreadyExists(field="uuid", value=uuid)
        return existing

    async def create(self, ctx, request: CreateRequest, *, uuid: str | None = None,
                     placement: dict | None = None) -> ContainerRecord:
        self._require_accepting()
        if uuid is not None:
            existing = await self._existing(ctx, uuid)
            if existing is not None:
                return existing
        u = uuid or self.new_uuid()
        runtime = request.runtime or self.config.default_runtime
        if runtime not in self.runtimes:
            raise errors.InvalidInput(
                field="runtime",
                reason=f"runtime {runtime} is not available on this node "
                       f"(available: {', '.join(sorted(self.runtimes))})")
        await self.check_name(ctx, request.name, None)
        # the container lives in this node's zone: placement only chose this node
        # if it was in the requested one
        rec = new_record(u, ctx.project_id, ctx.user_id, request, host=self.config.node,
                         runtime=runtime,
                         availability_zone=request.availability_zone
                         or self.config.availability_zone,
                         status=states.CREATING, task_state="container_creating")
        if self.networks is not None and request.nets:
            await self.networks.allocate(ctx, rec, request.nets, request.security_groups,
                                         request.exposed_ports)
        heal = (placement or {}).get("heal")
        if heal:
            # a heal or a drain move (zund.cluster.healer): outrank the old copy
            rec.generation = int(heal.get("generation") or 0) + HEAL_GENERATION_STEP
        # the entry node's decision (candidates, bids, winner, why) is an event of
        # the create action, committed with the record: one commit per create
        action_id = await self.store.create_container(
            rec, action=("create", ctx.request_id, ctx.user_id, ctx.project_id,
                         "compute__do_container_create"),
            events=((SCHEDULE_EVENT, "Success", placement),) if placement else ())
        if heal:
            message = (f"healed from node {heal.get('from')} to node {self.config.node}, "
                       f"because {heal.get('because')}")
            heal_id = await self.store.start_action(u, "heal", "req-" + self.new_uuid(),
                                                    ctx.user_id,
                                                    ctx.project_id, event="compute__heal")
            await self.store.finish_action(heal_id, message=message)
            log.info("compute.container.healed", uuid=u, message=message)
        self.notify("created", rec)
        # the record just committed goes to the task as it is (no re-read: nothing
        # awaited since the commit, and the task takes the container lock before
        # this returns); a heal awaited its action above, so its task reads
        self.tasks.spawn(self._do_create(rec.uuid, request.run, action_id,
                                         committed=None if heal else rec.copy()),
                         "create")
        return rec

    async def record_unplaceable(self, ctx, request: CreateRequest, uuid: str, reason: str,
                                 decision: dict | None = None) -> ContainerRecord:
        """Zun: a container nobody can host ends in Error with the scheduler's reason.
        This node (the entry node) keeps that record: status Error, no host, a create
        action whose schedule event is Error with ``decision`` as details. It holds
        no capacity (``ContainerRecord.placed`` is False) and never reaches a runtime."""
        self._require_accepting()
        existing = await self._existing(ctx, uuid)
        if existing is not None:
            return existing
        rec = new_record(uuid, ctx.project_id, ctx.user_id, request, host=None,
                         runtime=request.runtime or self.config.default_runtime,
                         availability_zone=request.availability_zone,
                         status=states.ERROR, status_reason=reason)
        action_id = await self.store.create_container(
            rec, action=("create", ctx.request_id, ctx.user_id, ctx.project_id, None))
        await self.store.add_event(action_id, SCHEDULE_EVENT, result="Error", details=decision)
        await self.store.finish_action(action_id, message=reason, result="Error")
        log.warn("compute.container.unplaceable", uuid=uuid, reason=reason,
                 why=(decision or {}).get("why"))
        return rec

    async def check_name(self, ctx, name: str, exclude: str | None) -> None:
        """``[compute] unique_container_name_scope``: "" (no check), "project", "global"."""
        scope = self.config.unique_name_scope
        if not scope:
            return
        project = ctx.project_id if scope == "project" else None
        if await self.store.name_taken(name, project, exclude=exclude):
            raise errors.ContainerAlreadyExists(field="name", value=name)

    async def resume_create(self, uuid: str) -> None:
        """Start-up recovery of a create that was acknowledged (its record exists)
        but not finished when the node stopped: done again from where the runtime
        is. Idempotent: the runtime object, looked up by the container's uuid (the
        ``zund.uuid`` label), is adopted when it exists instead of made twice; an
        adopted object that already ran is not started again. Finishes the
        create's own action."""
        action_id = None
        for act in await self.store.list_actions(uuid):
            if act.action == "create" and act.finish_time is None:
                action_id = act.id
        try:
            rec = await self.store.get_container(uuid)
        except errors.ContainerNotFound:
            return
        log.info("compute.recover.resume_create", uuid=uuid, run=rec.run_on_create)
        await self._do_create(uuid, rec.run_on_create, action_id, resume=True)

    async def registry_auth(self, rec) -> RegistryAuth | None:
        """The credentials of ``rec``'s private registry, asked of the cluster at
        pull time (never stored on the record); a registry that is gone or cannot
        be read fails the pull with the reason."""
        if not rec.registry_id:
            return None
        if self.registries is None:
            raise errors.ImagePullFailed(image=rec.image, reason=(
                f"node {self.config.node} serves no private registries"))
        try:
            entry = await self.registries.credentials(rec.project_id, rec.registry_id)
        except errors.RegistryNotFound as e:
            raise errors.ImagePullFailed(image=rec.image, reason=(
                f"registry {rec.registry_id} no longer exists")) from e
        except errors.ServiceUnavailable as e:
            raise errors.ImagePullFailed(image=rec.image, reason=(
                f"the credentials of registry {rec.registry_id} could not be read: "
                f"{e}")) from e
        return RegistryAuth(entry.domain, entry.username, entry.password)

    async def _adopt(self, rt, uuid: str):
        """The runtime object of ``uuid`` made before a crash, or None."""
        try:
            return await rt.inspect(uuid)
        except errors.RuntimeObjectNotFound:
            return None

    async def _do_create(self, uuid: str, run: bool, action_id: int | None,
                         resume: bool = False,
                         committed: ContainerRecord | None = None) -> None:
        """The background half of a create: the runtime object, then (``run``) its
        start, then ONE commit of the outcome with the create action's end.
        ``committed``: the record ``create`` just wrote (else it is read).

        Timing (issue 13 §2): the steps are logged with ``compute.container.created``.
        A runtime with ``create_and_start`` (Docker) makes and starts the object in
        one engine job and reports its state inspected after the start, so the
        record still says what the engine says (a process that exited at once is
        Stopped, not Running); others go create, start, inspect."""
        async with self.locks[uuid]:
            rec = committed
            if rec is None:
                try:
                    rec = await self.store.get_container(uuid)
                except errors.ContainerNotFound:
                    return  # deleted meanwhile
            t0 = self.clock.seconds()
            marks: dict = {}
            steps: dict = {}
            rt = None
            try:
                rt = self.runtime(rec)
                spec = spec_of(rec, self.config.node, self.config.image_pull_policy)
                state = await self._adopt(rt, uuid) if resume else None
                started = False
                if state is None:
                    await self.volumes.prepare(rt, rec)
                    if self.networks is not None:
                        spec = await self.networks.prepare(rec, spec)
                    state, started = await self._create_object(rt, rec, spec, marks,
                                                                start=run, steps=steps)
                elif state.status != RuntimeStatus.CREATED:
                    run = False  # it was started before the crash: what it is now stands
                rec.container_id = state.runtime_id
                rec.ports = sorted(state.ports)
                if state.hostname and not rec.hostname:
                    rec.hostname = state.hostname
                rec.status = states.CREATED
                rec.status_detail = "Created"
                if resume and not run:
                    self.apply_state(rec, state)
                if run:
                    # No commit of "Created, container_starting" first: a crash here
                    # leaves the record Creating, and recovery adopts the object
                    # (started or not) by its uuid; the commit only cost the client
                    # a store round trip (issue 13 §2).
                    if not started:
                        await rt.start(uuid)
                    if self.networks is not None:
                        await self.networks.started(rec)
                    if not started:
                        marks["start_ms"] = self.clock.seconds()
                    self.apply_state(rec, state if started else await rt.inspect(uuid))
                rec.task_state = None
                # the record and the end of its create action: one transaction
                await self.store.save_container(rec, finish_action=action_id)
            except errors.ContainerNotFound:
                return  # deleted (forcibly) meanwhile
            except errors.ZundError as e:
                if rec.container_id is None and run and rt is not None \
                        and hasattr(rt, "create_and_start"):
                    # made, then its start failed in the same engine job: keep its
                    # id, so the record is known to have reached the runtime
                    found = await self._adopt_quietly(rt, uuid)
                    if found is not None and found.node == self.config.node:
                        rec.container_id = found.runtime_id
                await self.fail(rec, e, action_id, "create")
                return
            prev, took = t0, {}
            for k, t in marks.items():
                took[k] = round((t - prev) * 1000, 1)
                prev = t
            took["total_ms"] = round((self.clock.seconds() - t0) * 1000, 1)
            if steps:
                took["engine_ms"] = steps  # the engine calls inside create_and_start
            log.info("compute.container.created uuid={uuid} status={status} {took}",
                     uuid=uuid, status=rec.status, took=took)

    async def _adopt_quietly(self, rt, uuid: str):
        """``_adopt`` for a failure path: None also when the runtime cannot answer."""
        try:
            return await self._adopt(rt, uuid)
        except errors.ZundError:
            return None

    async def _create_object(self, rt, rec: ContainerRecord, spec: ContainerSpec,
                             marks: dict, start: bool = False,
                             steps: dict | None = None) -> tuple:
        """Make the runtime object of ``rec``, pulling its image first if needed ->
        ``(state, started)``: with ``start`` and a runtime that has
        ``create_and_start``, the object is also started (``started`` True, the
        state inspected after the start); else only created.

        With pull policy ifnotpresent or never, the object is created at once: the
        IRuntime contract says create never pulls and answers ImageNotFound for a
        missing image, so only then is the image pulled (task_state image_pulling,
        persisted: a pull can take minutes) and the create made again. This skips
        an image lookup and two commits on the usual path, the image being there
        (issue 13 §2). ``always`` and Glance images pull (or fetch) first."""
        combined = getattr(rt, "create_and_start", None) if start else None

        async def make():
            if combined is not None:
                state = await combined(spec, steps)
            else:
                state = await rt.create(spec)
            marks["create_ms" if combined is None else "create_start_ms"] = \
                self.clock.seconds()
            return state, combined is not None

        pull_first = (rec.image_driver == "glance"
                      or (spec.image_pull_policy or "").lower() == "always")
        if not pull_first:
            try:
                return await make()
            except errors.ImageNotFound:
                pass  # not here: pull following the policy (``never``: fails there)
        rec.task_state = "image_pulling"
        await self.store.save_container(rec)
        if rec.image_driver == "glance":
            # downloaded from Glance into the local engine (cached there),
            # where both real runtimes take their images from
            if self.glance is None:
                raise errors.ImagePullFailed(
                    image=rec.image, reason=f"node {self.config.node} has no "
                                           "Glance configured")
            await self.glance.fetch(rec.image)
            await rt.ensure_image(spec.image, "ifnotpresent")
        else:
            await rt.ensure_image(spec.image, spec.image_pull_policy,
                                  await self.registry_auth(rec))
        marks["image_ms"] = self.clock.seconds()
        rec.task_state = "container_creating"
        await self.store.save_container(rec)
        return await make()

    async def fail(self, rec: ContainerRecord, e: Exception, action_id: int | None,
                   what: str) -> None:
        """The task on ``rec`` failed: status Error with the reason, task cleared."""
        log.warn("compute.container.{what}_failed", what=what, uuid=rec.uuid, reason=str(e))
        rec.status = states.ERROR
        rec.status_reason = str(e)
        rec.status_detail = None
        rec.task_state = None
        await self.store.save_container(rec)
        if action_id is not None:
            await self.store.finish_action(action_id, message=str(e), result="Error",
                                           traceback=traceback.format_exc())

    # -- state-changing actions ---------------------------------------------------------

    async def _claim(self, ctx, rec: ContainerRecord, action: str,
                     task_state: str | None) -> tuple[ContainerRecord, int]:
        """Check the status and persist the task_state, atomically per container.
        Returns the fresh record and the action id."""
        self._require_accepting()
        await self._fail_fast_if_busy(rec.uuid, action)
        async with self.locks[rec.uuid]:
            fresh = await self.store.get_container(rec.uuid)
            if fresh.task_state is not None:
                raise errors.ContainerBusy(action=action, uuid=fresh.uuid,
                                           task_state=fresh.task_state)
            check_state(fresh, action)
            if task_state is not None:
                fresh.task_state = task_state
                await self.store.save_container(fresh)
            recorded = states.RECORDED_ACTION.get(action, action)
            action_id = await self.store.start_action(
                fresh.uuid, recorded, ctx.request_id, ctx.user_id, ctx.project_id,
                event=f"compute__do_container_{recorded}")
            return fresh, action_id

    async def _fail_fast_if_busy(self, uuid: str, action: str) -> None:
        """A task holds the container lock for its whole run; answer 409 at once
        instead of queueing behind it (re-checked under the lock afterwards)."""
        current = await self.store.get_container(uuid)
        if current.task_state is not None:
            raise errors.ContainerBusy(action=action, uuid=uuid, task_state=current.task_state)

    async def _act(self, ctx, rec, action: str, op) -> None:
        fresh, action_id = await self._claim(ctx, rec, action, states.TASK_OF_ACTION[action])
        self.tasks.spawn(self.run_action(fresh.uuid, action, op, action_id), action)

    async def run_action(self, uuid: str, action: str, op, action_id: int) -> None:
        """The background half of a claimed action: ``await op(runtime, uuid)``, then
        the status the runtime reports; the task_state is cleared either way."""
        async with self.locks[uuid]:
            rec = await self.store.get_container(uuid)
            rt = self.runtime(rec)
            try:
                if self.networks is not None and action in ("start", "reboot"):
                    await self.networks.ensure(rec)
                await op(rt, uuid)
                if self.networks is not None and action in ("start", "reboot"):
                    await self.networks.started(rec)
                self.apply_state(rec, await rt.inspect(uuid))
                rec.task_state = None
                await self.store.save_container(rec)
                await self.store.finish_action(action_id)
                log.info("compute.container.{action}", action=action, uuid=uuid,
                         status=rec.status)
            except errors.RuntimeObjectNotFound as e:
                await self.fail(rec, e, action_id, action)
            except errors.ZundError as e:
                # the action failed but the container is what the runtime says it is
                rec.task_state = None
                try:
                    self.apply_state(rec, await rt.inspect(uuid))
                except errors.ZundError:
                    pass
                rec.status_reason = str(e)
                await self.store.save_container(rec)
                await self.store.finish_action(action_id, message=str(e), result="Error",
                                               traceback=traceback.format_exc())
                log.warn("compute.container.action_failed", action=action, uuid=uuid,
                         reason=str(e))

    def op_for(self, action: str, timeout_s: float | None = None):
        """``op(runtime, uuid)`` of a resumable action (start-up recovery redoes it)."""
        t = self.config.stop_timeout_s if timeout_s is None else timeout_s
        return {
            "start": lambda rt, u: rt.start(u),
            "stop": lambda rt, u: rt.stop(u, t),
            "reboot": lambda rt, u: rt.restart(u, t),
            "pause": lambda rt, u: rt.pause(u),
            "unpause": lambda rt, u: rt.unpause(u),
        }[action]

    async def start(self, ctx, rec):
        await self._act(ctx, rec, "start", self.op_for("start"))

    async def stop(self, ctx, rec, timeout_s: float | None = None):
        await self._act(ctx, rec, "stop", self.op_for("stop", timeout_s))

    async def reboot(self, ctx, rec, timeout_s: float | None = None):
        await self._act(ctx, rec, "reboot", self.op_for("reboot", timeout_s))

    async def pause(self, ctx, rec):
        self.require(rec, "pause", "pause")
        await self._act(ctx, rec, "pause", self.op_for("pause"))

    async def unpause(self, ctx, rec):
        self.require(rec, "pause", "unpause")
        await self._act(ctx, rec, "unpause", self.op_for("unpause"))

    async def kill(self, ctx, rec, signal: str | None = None):
        await self._act(ctx, rec, "kill", lambda rt, u: rt.kill(u, signal))

    async def rebuild(self, ctx, rec, image: str | None = None,
                      image_driver: str | None = None):
        """Zun's rebuild, same node, same uuid, name and volumes (zund.compute.rebuild)."""
        fresh, action_id = await self._claim(ctx, rec, "rebuild",
                                             states.TASK_OF_ACTION["rebuild"])
        self.tasks.spawn(rebuild.run_rebuild(
            self, fresh.uuid, image, image_driver, action_id,
            lambda r: spec_of(r, self.config.node, self.config.image_pull_policy)), "rebuild")

    # -- delete ----------------------------------------------------------------------

    async def delete(self, ctx, rec, force: bool = False, stop: bool = False):
        """Mark the container Deleting and remove it in the background.

        The status rule is checked against the record read under the lock, never
        against ``rec`` (the caller's copy, read before the lock): a create with
        run=true may have reached Running meanwhile, and a stop-then-delete must
        not refuse itself for a status it would stop anyway (issue 10 item 8)."""
        if not force:
            await self._fail_fast_if_busy(rec.uuid, "delete")
        async with self.locks[rec.uuid]:
            fresh = await self.store.get_container(rec.uuid)
            if fresh.task_state is not None and not force:
                raise errors.ContainerBusy(action="delete", uuid=fresh.uuid,
                                           task_state=fresh.task_state)
            if not delete_allowed(fresh.status, force=force, stop=stop):
                raise errors.InvalidStateException(action="delete", uuid=fresh.uuid,
                                                   status=fresh.status)
            fresh.status = states.DELETING
            fresh.task_state = "container_deleting"
            await self.store.save_container(fresh)
        log.info("compute.container.deleting", uuid=rec.uuid, force=force, stop=stop)
        self.tasks.spawn(self.do_delete(rec.uuid, stop or force), "delete")

    async def do_delete(self, uuid: str, stop_first: bool) -> None:
        """Remove the runtime object, then the record (a crash in between leaves a
        Deleting record that start-up recovery finishes)."""
        async with self.locks[uuid]:
            try:
                try:
                    rec = await self.store.get_container(uuid)
                except errors.ContainerNotFound:
                    return
                if rec.placed:
                    try:
                        rt = self.runtime(rec)
                        if not await self._made_elsewhere(rt, uuid):
                            if stop_first:
                                try:
                                    await rt.stop(uuid, self.config.stop_timeout_s)
                                except errors.RuntimeObjectNotFound:
                                    pass
                            await rt.remove(uuid, force=True)
                            await self.volumes.release(rt, rec)
                        if self.networks is not None:
                            await self.networks.release(rec)
                    except errors.ZundError as e:
                        await self.fail(rec, e, None, "delete")
                        return
                await self.store.delete_container(uuid)
                self.synced_at.pop(uuid, None)
                log.info("compute.container.deleted", uuid=uuid)
                self.notify("deleted", rec)
            finally:
                self.locks.forget(uuid)

    async def _made_elsewhere(self, rt, uuid: str) -> bool:
        """True when the runtime object named for ``uuid`` was made by another node
        (its node label says so): a stale copy's delete must never remove the object
        of the node the container moved to, e.g. on an engine nodes share."""
        try:
            state = await rt.inspect(uuid)
        except errors.RuntimeObjectNotFound:
            return False
        owner = getattr(state, "node", None)
        if owner and owner != self.config.node:
            log.warn("compute.container.delete_skipped_foreign_object", uuid=uuid,
                     made_by=owner)
            return True
        return False

    # -- update -------------------------------------------------------------------------

    async def recorded(self, ctx, rec, action: str, coro_fn):
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

    async def update(self, ctx, rec, patch: dict) -> ContainerRecord:
        async with self.locks[rec.uuid]:
            fresh = await self.store.get_container(rec.uuid)
            resources = {k: patch[k] for k in ("cpu", "memory") if patch.get(k) is not None}
            if resources:
                if fresh.task_state is not None:
                    raise errors.ContainerBusy(action="update", uuid=fresh.uuid,
                                               task_state=fresh.task_state)
                check_state(fresh, "update")
                rt = self.require(fresh, "update", "update")

                async def apply():
                    await rt.update(fresh.uuid, resources.get("cpu"), resources.get("memory"))

                await self.recorded(ctx, fresh, "update", apply)
                if "cpu" in resources:
                    fresh.cpu = float(resources["cpu"])
                if "memory" in resources:
                    fresh.memory = int(resources["memory"])
            if patch.get("name") is not None and patch["name"] != fresh.name:
                await self.check_name(ctx, patch["name"], fresh.uuid)
                fresh.name = patch["name"]
            if patch.get("auto_heal") is not None:
                fresh.auto_heal = bool(patch["auto_heal"])
            await self.store.save_container(fresh)
        if resources:
            self.notify("resized", fresh)
        return fresh

    async def resize_container(self, ctx, rec, cpu=None, memory=None) -> ContainerRecord:
        check_state(rec, "resize_container")
        return await self.update(ctx, rec, {"cpu": cpu, "memory": memory})
