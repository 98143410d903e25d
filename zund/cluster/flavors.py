"""Flavors created through the compute API, across the cluster, with no central
database.

All of them form one group kept by the first 3 nodes of the key ``flavors:all``'s
rendezvous order (``zund.cluster.kvstore.ReplicatedStore``: majority write,
newest read with read repair, per-flavor merge, tombstones), each holder durable
in its store (table ``flavors``) before it acknowledges. So a flavor created
through one node is visible and usable through every node and survives the
death of any one node (and the restart of all).

The configured flavors (``[nova_api] flavors``/``flavors_file``, ``defaults``)
stay read-only defaults: an API flavor cannot take a configured id or name, and
a configured flavor cannot be deleted or changed through the API (409).

Who may call: the compute API (``zund.api.nova.flavor_routes``: policy is
checked there) and the peer server (``handle``).
"""

from __future__ import annotations

from typing import Callable

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from zund.cluster import kvstore, messages
from zund.common import errors
from zund.flavors import Flavor

log = Logger()

#: every API flavor is in this one group (flavors are few; one read sees them all)
GROUP = "all"


def not_found(ident: str) -> errors.ResourceNotFound:
    return errors.ResourceNotFound(f"Flavor {ident} could not be found.")


def read_only(flavor: Flavor) -> errors.Conflict:
    return errors.Conflict(
        f"Flavor {flavor.id} comes from the nodes' configuration ([nova_api] flavors) "
        "and is read-only; create a flavor of another name through the API instead.")


class FlavorService(service.Service):
    """The cluster's API flavors as seen from node ``node`` (a child of the service
    tree after the store; ``startService`` loads this node's copies).

    ``defaults``: the configured flavors; ``view``/``client``: gossip view and
    PeerClient (None: one node); ``store``: the node's Store
    (``put_flavor``/``list_flavors``), None: memory only.
    """

    name = "flavors"

    def __init__(self, node: str, clock, defaults=(), view: Callable | None = None,
                 client=None, store=None, replicas: int = 3):
        self.node = node
        self._clock = clock
        self.defaults = tuple(defaults)
        self._store = store
        self.kv = kvstore.ReplicatedStore(
            node, "flavors", ident=lambda f: f.id, group_of=lambda f: GROUP,
            put_message=messages.FlavorPut, get_message=messages.FlavorGet,
            view=view, client=client, persist=self._persist if store is not None else None,
            replicas=replicas)
        #: the live API flavors of the last read (for views that must not wait on peers)
        self._last_read: tuple = ()
        self._read_at = float("-inf")

    def startService(self):
        super().startService()
        return defer.Deferred.fromCoroutine(self._load())

    async def _load(self) -> None:
        if self._store is None:
            return
        n = self.kv.load(Flavor.from_wire(d) for d in await self._store.list_flavors())
        self._last_read = tuple(f for f in self.kv.held.values() if not f.deleted)
        log.info("flavors.loaded node={node} count={n}", node=self.node, n=n)

    async def _persist(self, flavor: Flavor) -> None:
        await self._store.put_flavor(flavor.to_wire())

    async def handle(self, msg):
        """Serve a flavor peer message (called by the peer server)."""
        if isinstance(msg, messages.FlavorPut):
            await self.kv.handle_put(msg.entries)
            return None
        if isinstance(msg, messages.FlavorGet):
            return self.kv.handle_get(msg.group)
        raise errors.UnsupportedPeerOperation(operation=msg.OP.name, node=self.node)

    # -- reads ---------------------------------------------------------------------

    async def _read(self) -> dict:
        current = await self.kv.read(GROUP)
        self._read_at = self._clock.seconds()
        self._last_read = tuple(f for f in current.values() if not f.deleted)
        return current

    async def all(self) -> tuple:
        """The configured flavors, then the API flavors (by id), newest copies."""
        current = await self._read()
        made = sorted((f for f in current.values() if not f.deleted), key=lambda f: f.id)
        return self.defaults + tuple(made)

    async def fresh(self, max_age_s: float = 5.0) -> tuple:
        """``cached()`` after a read when the last one is older than ``max_age_s``
        (a read that fails keeps the cache: for views, never an error)."""
        if self._clock.seconds() - self._read_at >= max_age_s:
            try:
                await self._read()
            except errors.ZundError as e:
                log.info("flavors.read_failed node={node} reason={r}", node=self.node,
                         r=str(e))
        return self.cached()

    def cached(self) -> tuple:
        """The configured flavors and the API flavors of the last read (no peer call:
        to name a server's flavor in a view)."""
        return self.defaults + self._last_read

    async def get(self, ident: str) -> Flavor:
        for f in await self.all():
            if f.id == ident:
                return f
        raise not_found(ident)

    # -- writes (policy is the caller's) ----------------------------------------------

    def _version(self, previous: Flavor | None = None) -> tuple:
        return kvstore.next_version(self._clock.seconds(), self.node,
                                    previous if previous and previous.version else None)

    async def create(self, flavor: Flavor) -> Flavor:
        """Store ``flavor`` (its version is set here); 409 when its id or name is
        taken (a configured flavor's included; a deleted id may be reused)."""
        current = await self._read()
        live = [f for f in self.defaults + tuple(current.values()) if not f.deleted]
        if any(f.id == flavor.id for f in live):
            raise errors.Conflict(f"Flavor with ID {flavor.id} already exists.")
        if any(f.name == flavor.name for f in live):
            raise errors.Conflict(f"Flavor with name {flavor.name} already exists.")
        made = attrs.evolve(flavor, version=self._version(current.get(flavor.id)),
                            deleted=False)
        await self.kv.write(made)
        self._last_read = tuple(f for f in self._last_read if f.id != made.id) + (made,)
        log.info("flavors.created id={id} name={name}", id=made.id, name=made.name)
        return made

    async def _change(self, ident: str, **changes) -> Flavor:
        for f in self.defaults:
            if f.id == ident:
                raise read_only(f)
        current = (await self._read()).get(ident)
        if current is None or current.deleted:
            raise not_found(ident)
        changed = attrs.evolve(current, **changes, version=self._version(current))
        await self.kv.write(changed)
        self._last_read = tuple(f for f in self._last_read if f.id != ident) + (
            () if changed.deleted else (changed,))
        return changed

    async def delete(self, ident: str) -> None:
        await self._change(ident, deleted=True)
        log.info("flavors.deleted id={id}", id=ident)

    async def set_specs(self, ident: str, specs: dict) -> Flavor:
        current = await self.get(ident)
        return await self._change(ident, extra_specs={**current.extra_specs, **specs})

    async def unset_spec(self, ident: str, key: str) -> Flavor:
        current = await self.get(ident)
        if key not in current.extra_specs:
            raise errors.ResourceNotFound(
                f"Flavor {ident} has no extra specs with key {key}.")
        return await self._change(ident, extra_specs={
            k: val for k, val in current.extra_specs.items() if k != key})

    async def add_access(self, ident: str, project_id: str) -> Flavor:
        current = await self.get(ident)
        if current.is_public:
            raise errors.Conflict(f"Can not add access to a public flavor {ident}.")
        if project_id in current.projects:
            raise errors.Conflict(f"Flavor access already exists for flavor {ident} and "
                                  f"project {project_id} combination.")
        return await self._change(ident, projects=current.projects + (project_id,))

    async def remove_access(self, ident: str, project_id: str) -> Flavor:
        current = await self.get(ident)
        if project_id not in current.projects:
            raise errors.ResourceNotFound(f"Flavor access not found for {ident} / "
                                          f"{project_id} combination.")
        return await self._change(ident, projects=tuple(
            p for p in current.projects if p != project_id))
