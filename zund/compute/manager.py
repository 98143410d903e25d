"""ContainerManager: this node's containers, as one Twisted service.

Invariants:
- The record is written (status Creating) before the runtime object exists, and
  removed only after the runtime object is gone; so after a crash at any moment
  the store and the runtime can be reconciled without orphans or ghosts.
- One task per container at a time: an action first claims the container by
  persisting its ``task_state`` (under the per-container lock, after checking the
  status); a second action meanwhile gets ``ContainerBusy`` (409).
- Periodic sync never overwrites the status of a container with a task in flight.
- A create request arrives complete (``records.CreateRequest``); nothing here
  applies a default or makes up a name.

Callers (the API layer, through ``zund.compute.local``) do policy and input
validation first. The parts, one concept each:

- ``lifecycle.py``: create, the state-changing actions and delete (state rules,
  per-container serialisation);
- ``tasks.py``: background work (tracked, drained on stop) and the per-container locks;
- ``reconcile.py``: start-up recovery and the periodic sync with the runtimes;
- ``capacity.py``: allocation accounting and the host dict;
- this module: the service (start/stop order), reads and the synchronous
  runtime calls (logs, exec, top, stats, archives, commit).
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Callable

import attrs
from oslo_utils import uuidutils
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from zund.common import errors
from zund.compute import capacity
from zund.compute.lifecycle import Lifecycle, check_state
from zund.compute.reconcile import Reconciler
from zund.compute.tasks import BackgroundTasks, ContainerLocks
from zund.records import ContainerRecord, CreateRequest
from zund.store import Store

log = Logger()


@attrs.frozen
class ManagerConfig:
    node: str
    default_runtime: str = "runc"  # a CreateRequest's runtime None means this one
    unique_name_scope: str = ""  # "" | "project" | "global"
    image_pull_policy: str = "ifnotpresent"
    sync_interval_s: float = 60.0
    availability_zone: str = "nova"
    stop_timeout_s: float = 10.0
    shutdown_timeout_s: float = 30.0
    refresh_min_interval_s: float = 1.0
    labels: dict = attrs.field(factory=dict)


def _uuid4() -> str:
    return str(uuidlib.uuid4())


class ContainerManager(service.Service):
    """Owns every container record of this node and drives the runtimes.

    ``runtimes``: name -> IRuntime (kept as ``self.runtimes``; the service may drop
    one that failed to open). ``new_uuid``: uuid factory (uuid4 unless injected).
    """

    name = "compute"

    def __init__(self, config: ManagerConfig, store: Store, runtimes: dict, clock,
                 capacity_config: capacity.CapacityConfig | None = None,
                 host_facts: capacity.HostFacts | None = None,
                 new_uuid: Callable[[], str] = _uuid4):
        self.config = config
        self.store = store
        self.runtimes = dict(runtimes)
        self.clock = clock
        self.capacity_config = capacity_config or capacity.CapacityConfig()
        self.host_facts = host_facts
        #: callables(event: str, rec) notified after a change of allocation
        #: (created / deleted / resized); the cluster layer re-gossips on it.
        self.listeners: list = []
        self.tasks = BackgroundTasks(clock)
        self.lifecycle = Lifecycle(config, store, self.runtimes, clock, self.tasks,
                                   ContainerLocks(), self._notify, new_uuid)
        self.reconciler = Reconciler(self.lifecycle, config.sync_interval_s,
                                     config.refresh_min_interval_s)

    # -- service ----------------------------------------------------------------

    def startService(self):
        super().startService()
        return defer.Deferred.fromCoroutine(self._start())

    async def _start(self):
        if self.host_facts is None:
            self.host_facts = capacity.detect_host(self.capacity_config)
        await self.recover()
        self.lifecycle.accepting = True
        self.reconciler.start_loop()

    def stopService(self):
        super().stopService()
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self):
        self.lifecycle.accepting = False
        self.reconciler.stop_loop()
        await self.drain(self.config.shutdown_timeout_s)

    async def drain(self, timeout_s: float) -> None:
        """Wait for in-flight background work (bounded by ``timeout_s``)."""
        await self.tasks.drain(timeout_s)

    def _notify(self, event: str, rec: ContainerRecord) -> None:
        for fn in list(self.listeners):
            try:
                fn(event, rec)
            except Exception:
                log.failure("compute.listener_failed")

    # -- lookups ----------------------------------------------------------------

    async def lookup(self, ctx, ident: str, all_projects: bool = False) -> ContainerRecord:
        """ContainerRecord by uuid or name. Non-admins only see their own project;
        an admin looking up one ident sees every project."""
        if uuidutils.is_uuid_like(ident):
            try:
                rec = await self.store.get_container(str(uuidlib.UUID(ident)))
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
        """Re-read live state from the runtime (throttled; see Reconciler.refresh)."""
        return await self.reconciler.refresh(rec)

    # -- lifecycle ------------------------------------------------------------------

    async def create(self, ctx, request: CreateRequest, *, uuid: str | None = None,
                     placement: dict | None = None) -> ContainerRecord:
        """Write the record (Creating) and create the container in the background;
        starts it when ``request.run``. ``uuid``: chosen by the entry node in a
        cluster (a repeat with the same uuid and project returns the existing
        record). ``placement``: the entry node's decision, recorded as the
        ``compute__schedule_container`` event."""
        return await self.lifecycle.create(ctx, request, uuid=uuid, placement=placement)

    async def record_unplaceable(self, ctx, request: CreateRequest, uuid: str, reason: str,
                                 decision: dict | None = None) -> ContainerRecord:
        """Keep the Error record of a create nobody could place (see Lifecycle)."""
        return await self.lifecycle.record_unplaceable(ctx, request, uuid, reason, decision)

    async def delete(self, ctx, rec, force: bool = False, stop: bool = False):
        await self.lifecycle.delete(ctx, rec, force=force, stop=stop)

    async def start(self, ctx, rec):
        await self.lifecycle.start(ctx, rec)

    async def stop(self, ctx, rec, timeout_s: float | None = None):
        await self.lifecycle.stop(ctx, rec, timeout_s)

    async def reboot(self, ctx, rec, timeout_s: float | None = None):
        await self.lifecycle.reboot(ctx, rec, timeout_s)

    async def pause(self, ctx, rec):
        await self.lifecycle.pause(ctx, rec)

    async def unpause(self, ctx, rec):
        await self.lifecycle.unpause(ctx, rec)

    async def kill(self, ctx, rec, signal: str | None = None):
        await self.lifecycle.kill(ctx, rec, signal)

    async def volumes_held(self, project_id: str, names: list) -> list:
        """Which of the project's named volumes this node holds (placement prefers
        it); none when the default runtime is not enabled."""
        rt = self.lifecycle.runtimes.get(self.config.default_runtime)
        if rt is None:
            return []
        try:
            return await self.lifecycle.volumes.holds(rt, project_id, names)
        except errors.ZundError:
            return []  # a hint only: the engine's trouble shows in the create

    async def rebuild(self, ctx, rec, image: str | None = None,
                      image_driver: str | None = None):
        await self.lifecycle.rebuild(ctx, rec, image, image_driver)

    async def update(self, ctx, rec, patch: dict) -> ContainerRecord:
        return await self.lifecycle.update(ctx, rec, patch)

    async def resize_container(self, ctx, rec, cpu=None, memory=None) -> ContainerRecord:
        return await self.lifecycle.resize_container(ctx, rec, cpu=cpu, memory=memory)

    # -- synchronous runtime calls ------------------------------------------------------

    async def logs(self, ctx, rec, stdout=True, stderr=True, timestamps=False,
                   tail: int | None = None, since: float | None = None) -> str:
        check_state(rec, "logs")
        rt = self.lifecycle.runtime(rec)
        if since is not None and "logs_since" not in rt.capabilities:
            raise errors.NotSupportedByRuntime(action="logs --since", runtime=rt.name)
        return await rt.logs(rec.uuid, stdout, stderr, timestamps, tail, since)

    async def execute(self, ctx, rec, argv: list):
        rt = self.lifecycle.require(rec, "exec", "execute")
        check_state(rec, "execute")
        return await self.lifecycle.recorded(ctx, rec, "execute",
                                             lambda: rt.execute(rec.uuid, argv))

    async def top(self, ctx, rec, ps_args: str | None = None) -> dict:
        rt = self.lifecycle.require(rec, "top", "top")
        check_state(rec, "top")
        return await rt.top(rec.uuid, ps_args)

    async def stats(self, ctx, rec) -> dict:
        rt = self.lifecycle.require(rec, "stats", "stats")
        check_state(rec, "stats")
        stats = dict(await rt.stats(rec.uuid))
        stats["CONTAINER"] = rec.name  # Zun shows the container's name, not the object's
        return stats

    async def get_archive(self, ctx, rec, path: str) -> tuple:
        rt = self.lifecycle.require(rec, "archive", "get_archive")
        check_state(rec, "get_archive")
        return await rt.get_archive(rec.uuid, path)

    async def put_archive(self, ctx, rec, path: str, data: bytes) -> None:
        rt = self.lifecycle.require(rec, "archive", "put_archive")
        check_state(rec, "put_archive")
        await self.lifecycle.recorded(ctx, rec, "put_archive",
                                      lambda: rt.put_archive(rec.uuid, path, data))

    async def commit(self, ctx, rec, repository: str, tag: str | None) -> str:
        rt = self.lifecycle.require(rec, "commit", "commit")
        check_state(rec, "commit")
        return await self.lifecycle.recorded(ctx, rec, "commit",
                                             lambda: rt.commit(rec.uuid, repository, tag))

    async def list_actions(self, ctx, rec) -> list:
        return await self.store.list_actions(rec.uuid)

    async def get_action(self, ctx, rec, request_id: str):
        return await self.store.get_action(rec.uuid, request_id)

    # -- reconciliation ------------------------------------------------------------------

    async def recover(self) -> None:
        """Start-up recovery (see Reconciler.recover)."""
        await self.reconciler.recover()

    async def sync_all(self) -> None:
        """One periodic reconcile pass (see Reconciler.sync_all)."""
        await self.reconciler.sync_all()

    # -- node ---------------------------------------------------------------------------

    def runtime_names(self) -> list[str]:
        return sorted(self.runtimes)

    async def usage(self) -> capacity.Usage:
        return capacity.usage_of(await self.store.list_containers())

    def held_capacity(self) -> capacity.Held:
        """What the runtimes hold outside container records (warm guests), summed."""
        return self._runtimes_held("held_capacity")

    def yieldable_capacity(self) -> capacity.Held:
        """The part of ``held_capacity()`` the runtimes give up for a container
        (booted warm guests), summed."""
        return self._runtimes_held("yieldable_capacity")

    def _runtimes_held(self, method: str) -> capacity.Held:
        total = capacity.Held()
        for rt in self.runtimes.values():
            held = getattr(rt, method, None)
            if held is not None:
                total = total + held()
        return total

    def yield_capacity(self, cpu: float, memory_mb: int, dry_run: bool = False,
                       request=None, token: str | None = None) -> capacity.Held:
        """Have the runtimes give up warm guests until ``cpu`` and ``memory_mb``
        are released (``LibvirtRuntime.yield_capacity``), the runtime ``request``
        names first, set aside under ``token`` (``keep_pledge``,
        ``return_pledge``). What was released, or with ``dry_run`` what would be
        (nothing is given up)."""
        total = capacity.Held()
        wanted = getattr(request, "runtime", None)
        for name, rt in sorted(self.runtimes.items(), key=lambda kv: kv[0] != wanted):
            give = getattr(rt, "yield_capacity", None)
            if give is None:
                continue
            if total.cpus >= cpu - 1e-9 and total.mem_mb >= memory_mb:
                break
            total = total + give(max(0.0, cpu - total.cpus), max(0, memory_mb - total.mem_mb),
                                 dry_run=dry_run, request=request, token=token)
        return total

    def keep_pledge(self, token: str) -> None:
        """The reservation ``token`` became a container (``LibvirtRuntime.keep_pledge``)."""
        for rt in self.runtimes.values():
            keep = getattr(rt, "keep_pledge", None)
            if keep is not None:
                keep(token)

    def return_pledge(self, token: str, room: capacity.Held) -> capacity.Held:
        """The reservation ``token`` ended without a container: its guests go back
        while ``room`` holds them (``LibvirtRuntime.return_pledge``); what went back."""
        back = capacity.Held()
        for rt in self.runtimes.values():
            give_back = getattr(rt, "return_pledge", None)
            if give_back is not None:
                back = back + give_back(token, capacity.Held(
                    cpus=max(0.0, room.cpus - back.cpus),
                    mem_mb=max(0, room.mem_mb - back.mem_mb)))
        return back

    def _held_listener_lists(self) -> list[list]:
        return [rt.held_listeners for rt in self.runtimes.values()
                if hasattr(rt, "held_listeners")]

    def watch_held(self, listener) -> None:
        """Call ``listener()`` whenever a runtime's held capacity changes."""
        for listeners in self._held_listener_lists():
            listeners.append(listener)

    def unwatch_held(self, listener) -> None:
        for listeners in self._held_listener_lists():
            if listener in listeners:
                listeners.remove(listener)

    async def host_info(self) -> dict:
        facts = self.host_facts or capacity.detect_host(self.capacity_config)
        return capacity.host_info(self.config.node, facts, await self.usage(),
                                  self.config.labels, self.runtime_names(),
                                  held=self.held_capacity())
