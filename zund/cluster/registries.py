"""Private registries across the cluster, with no central database.

Where the records live: a project's registries are kept by the first
``replicas`` (3) nodes of the key ``registries:<project>``'s rendezvous order over
the live members (``zund.cluster.quota.rendezvous``, the rule quota limits use).
Any node serves the API: a write (create, update, delete) sends the new copy of
the one registry it changes to every replica and needs a majority of
acknowledgements; a read asks every replica, merges per registry by version
(``zund.cluster.kvstore``: the newest copy wins, deletions are tombstones) and
writes the newest copy back to replicas that were behind. Because copies merge
per registry, two concurrent creates of different registries through two nodes
both survive (the version is ``(seconds, node)``).

A replica keeps its copies in its store with the password encrypted by its own
node key (``zund.registries.NodeKey``, ``<state_path>/registry.key``); copies
travel between nodes in sealed peer bodies. The owner node that pulls an image
from a private registry asks the replicas for the record (``credentials``) at
pull time, so the create request and the placement messages never carry a
password.

Who may call: the API resource (CRUD, policy checked there), the container
lifecycle (``credentials``), the create path (``resolve``) and the peer server
(``handle``).
"""

from __future__ import annotations

import datetime
import uuid as uuidlib
from typing import Callable

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from zund.cluster import kvstore, messages
from zund.common import errors
from zund.registries import NodeKey, RegistryEntry, find

log = Logger()


def registries_key(project_id: str) -> str:
    return f"registries:{project_id}"


class RegistryService(service.Service):
    """Registries as seen from node ``node``; a child of the service tree after
    the store (``startService`` loads this node's copies).

    ``view``: ``() -> list[NodeView]`` (gossip), None for a single node;
    ``client``: the PeerClient (``call(node, msg)``), None for a single node;
    ``store``: the node's Store (``put_registry``/``list_registries``), None: memory;
    ``key``: the NodeKey that encrypts stored passwords (required with a store).
    The replication is ``zund.cluster.kvstore.ReplicatedStore``'s (space
    ``registries``, one group per project).
    """

    name = "registries"

    def __init__(self, node: str, clock, view: Callable | None = None, client=None,
                 store=None, key: NodeKey | None = None, replicas: int = 3,
                 new_id: Callable[[], str] | None = None):
        self.node = node
        self._clock = clock
        self._store = store
        self._key = key
        self._new_id = new_id or (lambda: str(uuidlib.uuid4()))
        self.kv = kvstore.ReplicatedStore(
            node, "registries", ident=lambda e: e.uuid, group_of=lambda e: e.project_id,
            put_message=messages.RegistryPut, get_message=messages.RegistryGet,
            view=view, client=client, persist=self._persist if store is not None else None,
            replicas=replicas)

    @property
    def held(self) -> dict:
        """uuid -> the newest copy this node holds"""
        return self.kv.held

    @property
    def replicas_count(self) -> int:
        return self.kv.replicas_count

    def startService(self):
        super().startService()
        return defer.Deferred.fromCoroutine(self._load())

    async def _load(self) -> None:
        if self._store is None:
            return
        entries = []
        for data in await self._store.list_registries():
            if data.get("password"):
                data = dict(data, password=self._key.decrypt(data["password"]))
            entries.append(RegistryEntry.from_wire(data))
        self.kv.load(entries)
        log.info("registries.loaded node={node} count={n}", node=self.node,
                 n=len(self.held))

    async def _persist(self, entry: RegistryEntry) -> None:
        """A copy on disk, its password encrypted with this node's key."""
        data = entry.to_wire()
        if entry.password:
            data["password"] = self._key.encrypt(entry.password)
        await self._store.put_registry(data)

    def replicas(self, project_id: str) -> list[str]:
        return self.kv.holders(project_id)

    async def handle(self, msg):
        """Serve a registry peer message (called by the peer server)."""
        if isinstance(msg, messages.RegistryPut):
            await self.kv.handle_put(msg.entries)
            return None
        if isinstance(msg, messages.RegistryGet):
            return self.kv.handle_get(msg.project_id)
        raise errors.UnsupportedPeerOperation(operation=msg.OP.name, node=self.node)

    # -- replicated reads and writes -------------------------------------------------

    async def _read(self, project_id: str) -> dict:
        """uuid -> newest copy of the project's registries among its replicas
        (tombstones included); stale replicas are brought up to date."""
        return await self.kv.read(project_id)

    async def _write(self, entry: RegistryEntry) -> None:
        await self.kv.write(entry)

    def _now_text(self) -> str:
        return datetime.datetime.fromtimestamp(self._clock.seconds(),
                                               datetime.timezone.utc).isoformat()

    def _version(self, previous: RegistryEntry | None = None) -> tuple:
        return kvstore.next_version(self._clock.seconds(), self.node, previous)

    # -- the API's operations (policy is the caller's) -------------------------------

    async def create(self, ctx, name: str | None, domain: str, username: str | None,
                     password: str | None) -> RegistryEntry:
        current = await self._read(ctx.project_id)
        if name is not None and any(e.name == name and not e.deleted
                                    for e in current.values()):
            raise errors.RegistryAlreadyExists(name=name)
        entry = RegistryEntry(
            uuid=self._new_id(), project_id=ctx.project_id, user_id=ctx.user_id or "",
            name=name, domain=domain, username=username, password=password,
            created_at=self._now_text(), updated_at=None, version=self._version())
        await self._write(entry)
        log.info("registries.created uuid={uuid} project={project} domain={domain}",
                 uuid=entry.uuid, project=entry.project_id, domain=domain)
        return entry

    async def list(self, ctx, all_projects: bool = False) -> list:
        if not all_projects:
            entries = (await self._read(ctx.project_id)).values()
        else:
            entries = (await self._gather_all()).values()
        return sorted((e for e in entries if not e.deleted),
                      key=lambda e: (e.created_at, e.uuid))

    async def _gather_all(self) -> dict:
        """Every project's registries: each live node's copies, merged."""
        return await self.kv.gather_all()

    async def get(self, ctx, ident: str, all_projects: bool = False) -> RegistryEntry:
        if all_projects:
            return find((await self._gather_all()).values(), ident)
        return find((await self._read(ctx.project_id)).values(), ident)

    async def update(self, ctx, ident: str, changes: dict,
                     all_projects: bool = False) -> RegistryEntry:
        entry = await self.get(ctx, ident, all_projects)
        if changes.get("name") is not None and changes["name"] != entry.name:
            current = await self._read(entry.project_id)
            if any(e.name == changes["name"] and not e.deleted for e in current.values()):
                raise errors.RegistryAlreadyExists(name=changes["name"])
        updated = attrs.evolve(entry, **changes, updated_at=self._now_text(),
                               version=self._version(entry))
        await self._write(updated)
        return updated

    async def delete(self, ctx, ident: str, all_projects: bool = False) -> None:
        entry = await self.get(ctx, ident, all_projects)
        # the tombstone keeps no credential
        await self._write(attrs.evolve(entry, deleted=True, password=None,
                                       updated_at=self._now_text(), version=self._version(entry)))
        log.info("registries.deleted uuid={uuid} project={project}", uuid=entry.uuid,
                 project=entry.project_id)

    async def resolve(self, ctx, ident: str) -> RegistryEntry:
        """The caller's project's registry ``ident`` (uuid or name), for a create."""
        return await self.get(ctx, ident)

    async def credentials(self, project_id: str, registry_id: str) -> RegistryEntry:
        """The registry a container of ``project_id`` pulls from (its record's
        ``registry_id``): asked of the project's replicas by the owner node."""
        current = await self._read(project_id)
        entry = current.get(registry_id)
        if entry is None or entry.deleted:
            raise errors.RegistryNotFound(registry=registry_id)
        return entry
