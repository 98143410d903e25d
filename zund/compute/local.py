"""``IContainers`` over this node's ContainerManager (no cluster).

Every owner call is: lookup scoped by the caller's context → the ref's policy
rules checked against the real record (its project and user) → the manager's
action. The peer server runs these same methods for calls forwarded by other
nodes, so the owner always decides with the record in hand.

``policy``: anything with ``authorize(ctx, rule, target)`` (raises
PolicyNotAuthorized) and ``check(ctx, rule, target) -> bool`` — the API's
``PolicyEnforcer``, injected by the composition root.
"""

from __future__ import annotations

import attrs
from zope.interface import implementer

from zund.common import errors
from zund.compute.interface import ContainerRef, IContainers, Listing, ServiceState
from zund.records import ContainerRecord

#: policy rule that lets a caller see action event tracebacks
ACTION_EVENTS_RULE = "container:action:events"


def policy_target(rec: ContainerRecord) -> dict:
    return {"project_id": rec.project_id, "user_id": rec.user_id}


@implementer(IContainers)
class LocalContainers:
    """This node's containers. ``manager``: a ContainerManager; ``policy``: see
    the module docstring. Who may call: the API (single node), the cluster
    implementation for records held here, and the peer server."""

    def __init__(self, manager, policy):
        self.manager = manager
        self._policy = policy
        #: a zund.console.service.ConsoleService (set by the composition root;
        #: None: interactive consoles are refused)
        self.console = None

    @property
    def node(self) -> str:
        return self.manager.config.node

    # -- owner side helpers -------------------------------------------------------

    async def locate(self, ctx, ident: str, all_projects: bool = False) -> ContainerRecord:
        """The record, scoped by ``ctx`` only (no policy): where is it, for routing."""
        return await self.manager.lookup(ctx, ident, all_projects=all_projects)

    async def _record(self, ctx, ref: ContainerRef) -> ContainerRecord:
        rec = await self.manager.lookup(ctx, ref.ident, all_projects=ref.all_projects)
        target = policy_target(rec)
        for rule in ref.rules():
            self._policy.authorize(ctx, rule, target)
        return rec

    # -- not about one container ------------------------------------------------------

    async def create(self, ctx, request, uuid: str | None = None,
                     placement: dict | None = None) -> ContainerRecord:
        """``uuid``/``placement``: chosen by the entry node in a cluster."""
        return await self.manager.create(ctx, request, uuid=uuid, placement=placement)

    async def record_unplaceable(self, ctx, request, uuid: str, reason: str,
                                 decision: dict | None = None) -> ContainerRecord:
        return await self.manager.record_unplaceable(ctx, request, uuid, reason, decision)

    async def list(self, ctx, all_projects=False) -> Listing:
        return Listing(await self.manager.list(ctx, all_projects=all_projects))

    def runtime_names(self) -> list[str]:
        return self.manager.runtime_names()

    async def host_info(self) -> dict:
        return await self.manager.host_info()

    async def hosts(self) -> list[dict]:
        return [await self.manager.host_info()]

    async def services(self) -> list[ServiceState]:
        cfg = self.manager.config
        return [ServiceState(host=cfg.node, state="up",
                             availability_zone=cfg.availability_zone)]

    # -- owner calls ----------------------------------------------------------------------

    async def show(self, ctx, ref):
        rec = await self._record(ctx, ref)
        return await self.manager.refresh(rec) or rec

    async def find(self, ctx, ref):
        return await self._record(ctx, ref)

    async def delete(self, ctx, ref, force=False, stop=False):
        rec = await self._record(ctx, ref)
        return await self.manager.delete(ctx, rec, force=force, stop=stop)

    async def start(self, ctx, ref):
        return await self.manager.start(ctx, await self._record(ctx, ref))

    async def stop(self, ctx, ref, timeout_s=None):
        return await self.manager.stop(ctx, await self._record(ctx, ref), timeout_s=timeout_s)

    async def reboot(self, ctx, ref, timeout_s=None):
        return await self.manager.reboot(ctx, await self._record(ctx, ref),
                                         timeout_s=timeout_s)

    async def pause(self, ctx, ref):
        return await self.manager.pause(ctx, await self._record(ctx, ref))

    async def unpause(self, ctx, ref):
        return await self.manager.unpause(ctx, await self._record(ctx, ref))

    async def kill(self, ctx, ref, signal=None):
        return await self.manager.kill(ctx, await self._record(ctx, ref), signal=signal)

    async def rebuild(self, ctx, ref, image=None, image_driver=None):
        return await self.manager.rebuild(ctx, await self._record(ctx, ref), image=image,
                                          image_driver=image_driver)

    async def logs(self, ctx, ref, stdout=True, stderr=True, timestamps=False, tail=None,
                   since=None):
        return await self.manager.logs(ctx, await self._record(ctx, ref), stdout=stdout,
                                       stderr=stderr, timestamps=timestamps, tail=tail,
                                       since=since)

    async def execute(self, ctx, ref, argv):
        return await self.manager.execute(ctx, await self._record(ctx, ref), list(argv))

    async def console_open(self, ctx, ref, kind, argv=None):
        rec = await self._record(ctx, ref)
        if self.console is None:
            raise errors.InteractiveNotSupported(what="An interactive console")
        return await self.console.open_on_owner(ctx, rec, kind, argv)

    async def console_resize(self, ctx, ref, width, height, exec_id=None):
        rec = await self._record(ctx, ref)
        if self.console is None:
            raise errors.InteractiveNotSupported(what="Resizing a console")
        return await self.console.resize_on_owner(rec, int(width), int(height), exec_id)

    async def top(self, ctx, ref, ps_args=None):
        return await self.manager.top(ctx, await self._record(ctx, ref), ps_args=ps_args)

    async def stats(self, ctx, ref):
        return await self.manager.stats(ctx, await self._record(ctx, ref))

    async def update(self, ctx, ref, patch):
        return await self.manager.update(ctx, await self._record(ctx, ref), dict(patch))

    async def network_action(self, ctx, ref, action, args):
        from zund.network.node import act  # the network package is optional per node
        return await act(self.manager.lifecycle, ctx, await self._record(ctx, ref), action,
                         dict(args))

    async def resize_container(self, ctx, ref, cpu=None, memory=None):
        return await self.manager.resize_container(ctx, await self._record(ctx, ref),
                                                   cpu=cpu, memory=memory)

    async def get_archive(self, ctx, ref, path):
        return await self.manager.get_archive(ctx, await self._record(ctx, ref), path)

    async def put_archive(self, ctx, ref, path, data):
        return await self.manager.put_archive(ctx, await self._record(ctx, ref), path, data)

    async def commit(self, ctx, ref, repository, tag=None):
        return await self.manager.commit(ctx, await self._record(ctx, ref), repository, tag)

    async def list_actions(self, ctx, ref):
        return await self.manager.list_actions(ctx, await self._record(ctx, ref))

    async def get_action(self, ctx, ref, request_id):
        rec = await self._record(ctx, ref)
        act = await self.manager.get_action(ctx, rec, request_id)
        if self._policy.check(ctx, ACTION_EVENTS_RULE, policy_target(rec)):
            return act
        events = [attrs.evolve(e, traceback=None) for e in act.events]
        return attrs.evolve(act, events=events)
