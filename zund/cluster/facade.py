"""One cloud from any node: ``IContainers`` for the whole cluster.

Creates are placed by the bid coordinator (a request nobody can host becomes an
Error record kept by this node, through the manager). Every owner call (show and
each action) runs on the node that HOLDS the record — found by the
``Directory`` (this node's store → recent-placement cache → ask the peers) — as
ONE ``OWNER_CALL`` round trip carrying the caller's context: the owner looks the
record up, checks the policy rule against it and acts. A cached owner that
answers not found (stale cache) is relocated once. Lists are a scatter-gather.

Which methods are owner calls, and which are slow, is declared once in
``zund.compute.interface.IContainers``; every method is written out here.
"""

from __future__ import annotations

import datetime
import random
import uuid as uuidlib

import attrs
from twisted.logger import Logger
from zope.interface import implementer

from zund.cluster.directory import GONE_STATES, LIVE_STATES, Located
from zund.cluster.metadata import NodeMeta
from zund.cluster.types import PlacementRequest
from zund.common import errors
from zund.compute import capacity, interface
from zund.compute.interface import ContainerRef, IContainers, Listing, ServiceState
from zund.compute.volumes import named_volumes
from zund.records import ContainerRecord, CreateRequest

log = Logger()


def hint_labels(hints: dict) -> dict:
    """``label:k=v`` scheduler hints (either spelling) -> {k: v} for placement."""
    labels = {}
    for k, v in (hints or {}).items():
        if isinstance(k, str) and k.startswith("label:"):
            labels[k[len("label:"):]] = str(v)
        elif isinstance(v, str) and v.startswith("label:") and "=" in v:
            lk, _, lv = v[len("label:"):].partition("=")
            labels[lk] = lv
    return labels


def quota_demand(preq: PlacementRequest) -> dict:
    """What the container counts against its project's quota."""
    return {"containers": 1, "cpu": preq.cpu, "memory": preq.memory_mb, "disk": preq.disk_gb}


def _utc(seconds: float | None) -> datetime.datetime | None:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).replace(tzinfo=None)


@implementer(IContainers)
class ClusterContainers:
    """The containers of the whole cluster, as seen from node ``node``.

    ``local``: this node's ``zund.compute.local.LocalContainers``;
    ``coordinator``: ``zund.cluster.placement.Coordinator``;
    ``directory``: ``zund.cluster.directory.Directory``;
    ``client``: ``zund.cluster.peer_client.PeerClient`` (owner calls);
    ``view``: ``() -> list[NodeView]`` from gossip (this node included);
    ``default_runtime``: the runtime a request without one is placed for;
    ``rng``: random.Random for new container uuids (a seeded simulation replays).
    """

    def __init__(self, node: str, local, coordinator, directory, client, view,
                 default_runtime: str = "runc", rng: random.Random | None = None,
                 quota=None):
        self.node = node
        #: zund.cluster.quota.QuotaService (None: no quotas): claim before placement
        self.quota = quota
        self.local = local
        self.coordinator = coordinator
        self.directory = directory
        self.client = client
        self.view = view
        self.default_runtime = default_runtime
        self._rng = rng or random.Random()

    # -- routing -----------------------------------------------------------------

    async def _at_owner(self, ctx, ref: ContainerRef, local_call, **args):
        """Run the owner call ``local_call`` (a bound method of ``self.local``,
        whose name is the IContainers operation) where the record lives: here, or
        as one OWNER_CALL on its owner."""
        operation = local_call.__name__
        if operation not in interface.owner_operations():
            raise TypeError(f"{operation} is not an IContainers owner call")
        found = await self.directory.find(ctx, ref.ident, ref.all_projects)
        if found.node is None:
            return await local_call(ctx, ref, **args)
        try:
            return await self._remote(ctx, ref, found, operation, args)
        except errors.ContainerNotFound:
            if not found.from_cache:
                raise
        # a stale cache: the container moved or went; ask everyone once
        self.directory.forget(found.uuid)
        found = await self.directory.find(ctx, ref.ident, ref.all_projects, use_cache=False)
        if found.node is None:
            return await local_call(ctx, ref, **args)
        return await self._remote(ctx, ref, found, operation, args)

    async def _remote(self, ctx, ref: ContainerRef, found: Located, operation: str,
                      args: dict):
        node = found.node
        if found.gone or node.state in GONE_STATES:
            raise errors.ServiceUnavailable(
                reason=f"node {node.name} hosting container {found.uuid} is {node.state}")
        # the owner is asked for exactly the record found (a name may be ambiguous
        # across nodes; the uuid is not)
        result = await self.client.owner_call(node, ctx, operation,
                                              attrs.evolve(ref, ident=found.uuid), args)
        if isinstance(result, ContainerRecord):
            self.directory.remember(result.uuid, node, result)
        return result

    # -- not about one container -------------------------------------------------------

    async def create(self, ctx, request: CreateRequest) -> ContainerRecord:
        u = str(uuidlib.UUID(int=self._rng.getrandbits(128), version=4))
        preq = PlacementRequest(
            request_id=ctx.request_id, uuid=u, project_id=ctx.project_id, user_id=ctx.user_id,
            cpu=float(request.cpu), memory_mb=int(request.memory),
            disk_gb=int(request.disk or 0),
            runtime=request.runtime or self.default_runtime,
            availability_zone=request.availability_zone,
            labels=hint_labels(request.hints), requested_host=request.host,
            volumes=tuple(named_volumes(request.mounts)), image=request.image or "")
        if self.quota is not None:  # QuotaExceeded before any bid (zund.cluster.quota)
            await self.quota.claim(ctx.project_id, u, quota_demand(preq))
        try:
            record, decision = await self.coordinator.place(preq, ctx, request)
        except errors.NoValidHost as e:
            decision = getattr(e, "decision", None)
            log.warn("cluster.placement.no_valid_host uuid={uuid} why={why}", uuid=u,
                     why=(decision or {}).get("why"))
            try:
                record = await self.local.record_unplaceable(ctx, request, u, str(e),
                                                             decision)
            except BaseException:
                await self._settle_quota(ctx.project_id, u, False)
                raise
            await self._settle_quota(ctx.project_id, u, True)  # an Error record counts
            return record
        except BaseException:
            await self._settle_quota(ctx.project_id, u, False)
            raise
        await self._settle_quota(ctx.project_id, u, True)
        self.directory.remember(u, decision["winner"], record)
        # debug: one line per create at INFO cost ~3% of a node's CPU under load
        # (issue 13); the decision is kept in the action's schedule event anyway
        log.debug("cluster.placed uuid={uuid} winner={winner} why={why}", uuid=u,
                 winner=decision["winner"], why=decision.get("why"))
        return record

    async def list(self, ctx, all_projects=False) -> Listing:
        listing = await self.directory.list_all(ctx, all_projects)
        ordered = sorted(listing.records, key=lambda r: (r.created_at, r.id or 0))
        return Listing(ordered, listing.partial_nodes)

    def runtime_names(self) -> list[str]:
        return self.local.runtime_names()

    async def host_info(self) -> dict:
        return await self.local.host_info()

    async def hosts(self) -> list[dict]:
        """Every node gossip knows: exact numbers for this node, gossiped numbers
        (allocation-based, as Zun's) for the others."""
        out = []
        for n in self.view():
            if n.name == self.node:
                out.append(await self.local.host_info())
                continue
            meta = n.meta or NodeMeta()
            cap, hw = meta.cap, meta.hardware
            out.append({
                "uuid": capacity.node_uuid(n.name), "hostname": n.name,
                "mem_total": hw.mem_mb, "mem_used": cap.mem_used_mb,
                "cpus": hw.cpus, "cpu_used": cap.cpu_used,
                "disk_total": hw.disk_gb, "disk_used": cap.disk_used_gb,
                "disk_quota_supported": False, "total_containers": cap.containers,
                "architecture": hw.arch, "os_type": "linux", "os": hw.os,
                "kernel_version": hw.kernel,
                "labels": dict(meta.labels), "runtimes": list(meta.runtimes),
                "enable_cpu_pinning": False,
            })
        return out

    async def services(self) -> list[ServiceState]:
        """One zun-compute service per node: up while gossip says alive or suspect,
        down otherwise, and when that state last changed."""
        return [ServiceState(host=n.name, state="up" if n.state in LIVE_STATES else "down",
                             availability_zone=n.meta.az if n.meta else "nova",
                             changed_at=_utc(n.changed_at))
                for n in self.view()]

    # -- owner calls -----------------------------------------------------------------------

    async def show(self, ctx, ref):
        try:
            return await self._at_owner(ctx, ref, self.local.show)
        except errors.ServiceUnavailable:
            # the owner is gone or did not answer: report its last known state
            # (status Unknown) rather than hide the container
            found = await self.directory.find(ctx, ref.ident, ref.all_projects)
            if found.gone and found.record is not None:
                return found.record
            last = self.directory.last_known(ctx, found.uuid)
            if last is None:
                raise
            return last

    async def find(self, ctx, ref):
        return await self._at_owner(ctx, ref, self.local.find)

    async def delete(self, ctx, ref, force=False, stop=False):
        if self.quota is None:
            return await self._at_owner(ctx, ref, self.local.delete, force=force, stop=stop)
        found = await self.directory.find(ctx, ref.ident, ref.all_projects)
        result = await self._at_owner(ctx, ref, self.local.delete, force=force, stop=stop)
        project = found.record.project_id if found.record is not None else ctx.project_id
        await self._settle_quota(project, found.uuid, False)
        return result

    async def _settle_quota(self, project_id: str, uuid: str, committed: bool) -> None:
        if self.quota is not None:
            await self.quota.settle(project_id, uuid, committed)

    async def start(self, ctx, ref):
        return await self._at_owner(ctx, ref, self.local.start)

    async def stop(self, ctx, ref, timeout_s=None):
        return await self._at_owner(ctx, ref, self.local.stop, timeout_s=timeout_s)

    async def reboot(self, ctx, ref, timeout_s=None):
        return await self._at_owner(ctx, ref, self.local.reboot, timeout_s=timeout_s)

    async def pause(self, ctx, ref):
        return await self._at_owner(ctx, ref, self.local.pause)

    async def unpause(self, ctx, ref):
        return await self._at_owner(ctx, ref, self.local.unpause)

    async def kill(self, ctx, ref, signal=None):
        return await self._at_owner(ctx, ref, self.local.kill, signal=signal)

    async def rebuild(self, ctx, ref, image=None, image_driver=None):
        return await self._at_owner(ctx, ref, self.local.rebuild, image=image,
                                    image_driver=image_driver)

    async def logs(self, ctx, ref, stdout=True, stderr=True, timestamps=False, tail=None,
                   since=None):
        return await self._at_owner(ctx, ref, self.local.logs, stdout=stdout, stderr=stderr,
                                    timestamps=timestamps, tail=tail, since=since)

    async def execute(self, ctx, ref, argv):
        return await self._at_owner(ctx, ref, self.local.execute, argv=list(argv))

    async def console_open(self, ctx, ref, kind, argv=None):
        return await self._at_owner(ctx, ref, self.local.console_open, kind=kind,
                                    argv=None if argv is None else list(argv))

    async def console_resize(self, ctx, ref, width, height, exec_id=None):
        return await self._at_owner(ctx, ref, self.local.console_resize, width=int(width),
                                    height=int(height), exec_id=exec_id)

    async def top(self, ctx, ref, ps_args=None):
        return await self._at_owner(ctx, ref, self.local.top, ps_args=ps_args)

    async def stats(self, ctx, ref):
        return await self._at_owner(ctx, ref, self.local.stats)

    async def update(self, ctx, ref, patch):
        return await self._at_owner(ctx, ref, self.local.update, patch=dict(patch))

    async def network_action(self, ctx, ref, action, args):
        return await self._at_owner(ctx, ref, self.local.network_action, action=action,
                                    args=dict(args))

    async def resize_container(self, ctx, ref, cpu=None, memory=None):
        return await self._at_owner(ctx, ref, self.local.resize_container, cpu=cpu,
                                    memory=memory)

    async def get_archive(self, ctx, ref, path):
        return await self._at_owner(ctx, ref, self.local.get_archive, path=path)

    async def put_archive(self, ctx, ref, path, data):
        return await self._at_owner(ctx, ref, self.local.put_archive, path=path, data=data)

    async def commit(self, ctx, ref, repository, tag=None):
        return await self._at_owner(ctx, ref, self.local.commit, repository=repository,
                                    tag=tag)

    async def list_actions(self, ctx, ref):
        return await self._at_owner(ctx, ref, self.local.list_actions)

    async def get_action(self, ctx, ref, request_id):
        return await self._at_owner(ctx, ref, self.local.get_action, request_id=request_id)
