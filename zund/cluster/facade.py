"""One cloud from any node: the object the API talks to in a cluster.

It has the ContainerManager's interface (the API cannot tell the difference):
creates are placed by the bid coordinator; every read and action on a container
goes to its owner — the local manager when ``rec.host`` is this node, else the
owner's peer RPC with the caller's context; lists are a scatter-gather.
"""

from __future__ import annotations

import datetime
import uuid as uuidlib

from twisted.logger import Logger

from zund.cluster import wire
from zund.cluster.types import NodeView, PlacementRequest
from zund.common import errors
from zund.compute import capacity, states
from zund.records import ContainerRecord, utcnow

log = Logger()

_ROUTED = ("delete", "start", "stop", "reboot", "pause", "unpause", "kill", "logs",
           "execute", "top", "stats", "update", "resize_container", "get_archive",
           "put_archive", "commit", "list_actions", "get_action")


class PartialList(list):
    """A merged list that remembers which nodes did not answer."""

    partial_nodes: list = []


class ClusterContainers:
    def __init__(self, node: str, manager, coordinator, directory, client, view, store,
                 default_runtime: str = "runc"):
        """``view()`` -> list[NodeView] from gossip (this node included)."""
        self.node = node
        self.manager = manager
        self.coordinator = coordinator
        self.directory = directory
        self.client = client
        self.view = view
        self.store = store
        self.default_runtime = default_runtime
        self.listeners = manager.listeners

    def __getattr__(self, name):
        if name in _ROUTED:
            return self._routed(name)
        raise AttributeError(name)

    # -- routing -----------------------------------------------------------------

    def _node(self, name: str | None) -> NodeView | None:
        for n in self.view():
            if n.name == name:
                return n
        return None

    def _is_local(self, rec: ContainerRecord) -> bool:
        return rec.host in (None, self.node)

    def _routed(self, method: str):
        async def call(ctx, rec, *args, **kwargs):
            if self._is_local(rec):
                return await getattr(self.manager, method)(ctx, rec, *args, **kwargs)
            owner = self._node(rec.host)
            if owner is None or owner.state in ("dead", "left"):
                raise errors.ServiceUnavailable(
                    reason=f"host {rec.host} of container {rec.uuid} is unreachable")
            params = _kwargs_of(method, args, kwargs)
            return await self.client.call(owner, ctx, rec.uuid, method, **params)

        return call

    # -- lookups ----------------------------------------------------------------------

    async def lookup(self, ctx, ident: str, all_projects: bool = False) -> ContainerRecord:
        _owner, rec = await self.directory.locate(ctx, ident)
        return rec

    async def refresh(self, rec: ContainerRecord) -> ContainerRecord:
        if self._is_local(rec):
            return await self.manager.refresh(rec)
        return rec  # a remote owner refreshed it while answering the lookup

    async def list(self, ctx, all_projects: bool = False):
        records, partial = await self.directory.list_all(ctx, all_projects)
        out = PartialList(sorted(records, key=lambda r: (r.created_at, r.id or 0)))
        out.partial_nodes = list(partial)
        return out

    # -- create -------------------------------------------------------------------------

    async def create(self, ctx, request: dict, run: bool) -> ContainerRecord:
        u = str(uuidlib.uuid4())
        labels = {}
        for k, v in (request.get("hints") or {}).items():
            if isinstance(k, str) and k.startswith("label:"):
                labels[k[len("label:"):]] = str(v)
            elif isinstance(v, str) and v.startswith("label:") and "=" in v:
                lk, _, lv = v[len("label:"):].partition("=")
                labels[lk] = lv
        preq = PlacementRequest(
            request_id=ctx.request_id, uuid=u, project_id=ctx.project_id, user_id=ctx.user_id,
            cpu=float(request.get("cpu") or self.manager.config.default_cpu),
            memory_mb=int(request.get("memory") or self.manager.config.default_memory_mb),
            disk_gb=int(request.get("disk") or 0),
            runtime=request.get("runtime") or self.default_runtime,
            availability_zone=request.get("availability_zone"),
            labels=labels, requested_host=request.get("host"))
        create = dict(request)
        create["uuid"] = u
        try:
            record, decision = await self.coordinator.place(preq, ctx.to_dict(), create, run)
        except errors.NoValidHost as e:
            return await self._unplaceable(ctx, request, u, str(e),
                                           getattr(e, "decision", None))
        if isinstance(record, dict):
            record = wire.record_from_dict(record)
        self.directory.remember(u, decision["winner"], record)
        log.info("cluster.placed uuid={uuid} winner={winner} why={why}", uuid=u,
                 winner=decision["winner"], why=decision.get("why"))
        return record

    async def _unplaceable(self, ctx, request: dict, u: str, reason: str,
                           decision: dict | None = None) -> ContainerRecord:
        """Zun: a container nobody can host ends in Error with the scheduler's
        reason. The entry node keeps that record (host None)."""
        rec = ContainerRecord(
            uuid=u, project_id=ctx.project_id, user_id=ctx.user_id, image=request["image"],
            name=request.get("name"), status=states.ERROR, status_reason=reason,
            command=request.get("command"), entrypoint=request.get("entrypoint"),
            cpu=float(request.get("cpu") or self.manager.config.default_cpu),
            memory=int(request.get("memory") or self.manager.config.default_memory_mb),
            environment=dict(request.get("environment") or {}),
            labels=dict(request.get("labels") or {}),
            runtime=request.get("runtime") or self.default_runtime, host=None,
            auto_remove=bool(request.get("auto_remove")))
        action_id = await self.store.create_container(
            rec, action=("create", ctx.request_id, ctx.user_id, ctx.project_id, None))
        await self.store.add_event(action_id, "compute__schedule_container", result="Error",
                                   details=decision)
        await self.store.finish_action(action_id, message=reason, result="Error")
        log.warn("cluster.placement.no_valid_host", uuid=u, reason=reason,
                 why=(decision or {}).get("why"))
        return rec

    # -- node / cluster info ----------------------------------------------------------------

    def runtime_names(self) -> list[str]:
        return self.manager.runtime_names()

    async def host_info(self) -> dict:
        return await self.manager.host_info()

    async def list_hosts(self) -> list[dict]:
        """Every node gossip knows: exact numbers for this node, gossiped numbers
        (allocation-based, as Zun's) for the others."""
        out = []
        for n in self.view():
            if n.name == self.node:
                out.append(await self.manager.host_info())
                continue
            cap = (n.meta or {}).get("cap", {})
            hw = (n.meta or {}).get("host", {})
            out.append({
                "uuid": capacity.node_uuid(n.name), "hostname": n.name,
                "mem_total": hw.get("mem_mb", cap.get("mem_mb", 0)),
                "mem_used": cap.get("mem_used_mb", 0),
                "cpus": hw.get("cpus", int(cap.get("cpus", 0))),
                "cpu_used": cap.get("cpu_used", 0.0),
                "disk_total": hw.get("disk_gb", cap.get("disk_gb", 0)),
                "disk_used": cap.get("disk_used_gb", 0),
                "disk_quota_supported": False, "total_containers": cap.get("containers", 0),
                "architecture": hw.get("arch"), "os_type": "linux", "os": hw.get("os"),
                "kernel_version": hw.get("kernel"),
                "labels": dict((n.meta or {}).get("labels", {})),
                "runtimes": list((n.meta or {}).get("runtimes", [])),
                "enable_cpu_pinning": False,
            })
        return out

    async def list_services(self) -> list[dict]:
        """One zun-compute service per node; state from gossip."""
        out = []
        for n in self.view():
            out.append({"host": n.name, "state": "up" if n.state in ("alive", "suspect") else "down",
                        "availability_zone": (n.meta or {}).get("az") or "nova",
                        "changed_at": datetime.datetime.fromtimestamp(
                            n.changed_at, datetime.timezone.utc).replace(tzinfo=None)
                        if getattr(n, "changed_at", None) else utcnow()})
        return out


_POSITIONAL = {
    "delete": ("force", "stop"),
    "stop": ("timeout_s",), "reboot": ("timeout_s",), "kill": ("signal",),
    "logs": ("stdout", "stderr", "timestamps", "tail", "since"),
    "execute": ("argv",), "top": ("ps_args",), "update": ("patch",),
    "resize_container": ("cpu", "memory"), "get_archive": ("path",),
    "put_archive": ("path", "data"), "commit": ("repository", "tag"),
    "get_action": ("request_id",),
}


def _kwargs_of(method: str, args: tuple, kwargs: dict) -> dict:
    names = _POSITIONAL.get(method, ())
    if len(args) > len(names):
        raise TypeError(f"{method}: too many positional arguments")
    out = dict(zip(names, args))
    out.update(kwargs)
    return out
