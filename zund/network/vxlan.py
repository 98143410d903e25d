"""The ``vxlan`` backend: tenant networks that need nothing but the kernel.

Control plane (this module): network definitions and per-node address blocks are
:class:`zund.network.records.NetItem` values in a replicated store
(``zund.cluster.kvstore``: 3 rendezvous holders, majority write, newest read), so
any node can die without losing a network. Ports are this node's own: allocated
from blocks this node claimed (no cross-node lock), kept in
``<state_path>/network-ports.json`` and on the container record.

Data plane (``zund.network.dataplane``): per network this node takes part in, a
bridge ``zbr-<vni>`` and a VXLAN device ``zvx-<vni>`` (learning off) whose flood
entries point at the tunnel address of every other node holding a block of that
network; they are refreshed when a node claims or releases a block (a
``NetworkChanged`` push to every live node) and every ``sync_interval``.

Isolation: one VNI and one bridge per network; bridges carry no address and the
node does not route between them, so a network reaches only its own ports.
Within a network, security groups (``zund.network.secgroups``): each port's
membership is a replicated ``member:`` item beside the blocks; the sync of a
network rebuilds the ingress rules of this node's ports whose inputs changed.
"""

from __future__ import annotations

import datetime
import json
import os
import uuid as uuidlib
from typing import Callable

import attrs
from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from zund.cluster import messages
from zund.cluster.kvstore import ReplicatedStore, next_version
from zund.common import errors
from zund.network import dataplane
from zund.network import errors as net_errors
from zund.network import records as R
from zund.network import secgroups
from zund.network.interface import INetworkBackend, Network, Port

log = Logger()


@attrs.frozen
class VxlanConfig:
    node: str
    local_ip: str
    underlay_mtu: int = 1500
    vxlan_port: int = 4789
    block_size: int = 16
    auto_cidr_pool: str = "10.96.0.0/12"
    sync_interval_s: float = 5.0

    @property
    def mtu(self) -> int:
        return self.underlay_mtu - 50  # VXLAN over IPv4: 50 bytes of headers


@implementer(INetworkBackend)
class VxlanNetworks(service.Service):
    """The vxlan backend of node ``config.node``.

    ``dataplane``: a ``zund.network.dataplane.Dataplane`` (None: control plane
    only, e.g. in simulations); ``view``/``client``: gossip view and peer client
    (None for one node); ``state_path``: where copies and ports are kept (None:
    memory)."""

    name = "networks"
    backend_name = "vxlan"

    def __init__(self, config: VxlanConfig, clock, *, view: Callable | None = None,
                 client=None, state_path: str | None = None, dataplane=None,
                 new_id: Callable[[], str] | None = None):
        self.config = config
        self.node = config.node
        self._clock = clock
        self._view = view
        self._client = client
        self._state_path = state_path
        self.dataplane = dataplane
        self._new_id = new_id or (lambda: str(uuidlib.uuid4()))
        self.kv = ReplicatedStore(
            self.node, "networks", ident=lambda i: i.key, group_of=lambda i: i.group,
            put_message=messages.NetworkPut, get_message=messages.NetworkGet,
            view=view, client=client, persist=self._persist if state_path else None)
        #: port id -> Port: this node's ports
        self.ports: dict[str, Port] = {}
        #: port id -> {"exposed_ports": {...}, "project": ...}
        self.security: dict[str, dict] = {}
        #: port id -> the PortRules the kernel has (what the data plane was given)
        self.applied: dict[str, secgroups.PortRules] = {}
        #: port id -> the version of its last membership write from here (a
        #: quick second write at the same clock reading must still be newer)
        self._member_versions: dict[str, tuple] = {}
        self._net_locks: dict[str, defer.DeferredLock] = {}
        #: net id -> the VTEPs this node floods to (what the data plane has)
        self.peers: dict[str, frozenset] = {}
        #: net id -> its VNI, for the networks whose devices exist on this node
        self._vnis: dict[str, int] = {}
        self._loop: task.LoopingCall | None = None
        self._lock = defer.DeferredLock()

    # -- persistence -------------------------------------------------------------------

    def _path(self, name: str) -> str:
        return os.path.join(self._state_path, name)

    def _write_json(self, name: str, data) -> None:
        tmp = self._path(name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path(name))

    async def _persist(self, item: R.NetItem) -> None:
        held = dict(self.kv.held)
        held[item.key] = item
        self._write_json("networks.json", [i.to_wire() for i in held.values()])

    def _save_ports(self) -> None:
        if self._state_path:
            self._write_json("network-ports.json",
                             {"ports": [p.to_dict() for p in self.ports.values()],
                              "security": self.security})

    def _load(self) -> None:
        if not self._state_path:
            return
        try:
            with open(self._path("networks.json")) as f:
                self.kv.load(R.NetItem.from_wire(d) for d in json.load(f))
        except FileNotFoundError:
            pass
        try:
            with open(self._path("network-ports.json")) as f:
                data = json.load(f)
            self.ports = {p["id"]: Port.from_dict(p) for p in data.get("ports", [])}
            self.security = dict(data.get("security") or {})
        except FileNotFoundError:
            pass

    # -- service ------------------------------------------------------------------------

    def startService(self):
        super().startService()
        self._load()
        log.info("network.vxlan.loaded node={node} items={items} ports={ports}",
                 node=self.node, items=len(self.kv.held), ports=len(self.ports))
        self._loop = task.LoopingCall(self._sync_soon)
        self._loop.clock = self._clock
        self._loop.start(self.config.sync_interval_s, now=True)

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def _sync_soon(self):
        d = defer.Deferred.fromCoroutine(self.sync())
        d.addErrback(lambda f: log.failure("network.vxlan.sync_failed", failure=f))
        return None  # a slow sync never stops the loop

    async def handle(self, msg):
        """Serve a network peer message (called by the peer server)."""
        if isinstance(msg, messages.NetworkPut):
            await self.kv.handle_put(msg.items)
            return None
        if isinstance(msg, messages.NetworkGet):
            return self.kv.handle_get(msg.group)
        if isinstance(msg, messages.NetworkChanged):
            if any(p.net_id == msg.net_id for p in self.ports.values()):
                await self._sync_net(msg.net_id)
            return None
        raise errors.UnsupportedPeerOperation(operation=msg.OP.name, node=self.node)

    # -- helpers -------------------------------------------------------------------------

    def _now_text(self) -> str:
        return datetime.datetime.fromtimestamp(self._clock.seconds(),
                                               datetime.timezone.utc).isoformat()

    def _version(self, previous=None) -> tuple:
        return next_version(self._clock.seconds(), self.node, previous)

    async def _defs(self) -> dict:
        """net id -> (Network, NetItem) of every live network."""
        out = {}
        for item in (await self.kv.read(R.DEFS)).values():
            if not item.deleted and item.key.startswith("net:"):
                out[item.data["id"]] = (Network.from_dict(item.data), item)
        return out

    @staticmethod
    def _visible(ctx, net: Network) -> bool:
        # networks are the project's: an admin acting in another project does not
        # see (nor use) a project's private network either
        return net.shared or net.project_id == ctx.project_id

    async def _find(self, ctx, name_or_id: str) -> tuple[Network, R.NetItem]:
        defs = await self._defs()
        if name_or_id in defs and self._visible(ctx, defs[name_or_id][0]):
            return defs[name_or_id]
        named = [v for v in defs.values() if v[0].name == name_or_id
                 and (v[0].project_id == ctx.project_id or v[0].shared)]
        own = [v for v in named if v[0].project_id == ctx.project_id]
        named = own or named
        if len(named) > 1:
            raise errors.Conflicts(message=f"Multiple networks exist with name {name_or_id}; "
                                           "use the id.")
        if not named:
            raise net_errors.NetworkNotFound(network=name_or_id)
        return named[0]

    async def _blocks(self, net_id: str) -> dict:
        """block index -> live claim item."""
        out = {}
        for item in (await self.kv.read(net_id)).values():
            if not item.deleted and item.key.startswith("block:"):
                out[int(item.data["index"])] = item
        return out

    # -- INetworkBackend ------------------------------------------------------------------

    async def list_networks(self, ctx) -> list[Network]:
        nets = [n for n, _ in (await self._defs()).values()
                if n.project_id == ctx.project_id or n.shared]
        return sorted(nets, key=lambda n: (n.created_at, n.id))

    async def get_network(self, ctx, name_or_id) -> Network:
        return (await self._find(ctx, name_or_id))[0]

    async def create_network(self, ctx, name, cidr=None, shared=False) -> Network:
        if shared and not ctx.is_admin:
            raise net_errors.PolicyForbidden(action="network:create:shared")
        defs = await self._defs()
        if any(n.name == name and n.project_id == ctx.project_id for n, _ in defs.values()):
            raise net_errors.NetworkAlreadyExists(name=name)
        if cidr is None:
            cidr = R.free_subnet(self.config.auto_cidr_pool, [n.cidr for n, _ in defs.values()])
            if cidr is None:
                raise net_errors.NetworkError(reason=f"no free /24 is left in "
                                                     f"{self.config.auto_cidr_pool}")
        else:
            try:
                cidr = str(R.parse_cidr(cidr))
            except ValueError as e:
                raise errors.InvalidInput(field="cidr", reason=str(e)) from e
        net_id = self._new_id()
        vni = R.vni_for(net_id, {n.segmentation_id for n, _ in defs.values()})
        net = Network(id=net_id, name=name, project_id=ctx.project_id, shared=bool(shared),
                      cidr=cidr, gateway=None, mtu=self.config.mtu, backend="vxlan",
                      segmentation_id=vni, created_at=self._now_text())
        await self.kv.write(R.NetItem(R.net_key(net_id), R.DEFS, net.to_dict(),
                                      self._version()))
        log.info("network.created id={id} name={name} project={project} cidr={cidr} vni={vni}",
                 id=net_id, name=name, project=ctx.project_id, cidr=cidr, vni=vni)
        return net

    async def delete_network(self, ctx, name_or_id) -> None:
        net, item = await self._find(ctx, name_or_id)
        if net.project_id != ctx.project_id and not ctx.is_admin:
            raise net_errors.PolicyForbidden(action="network:delete")
        claims = await self._blocks(net.id)
        if claims:
            raise net_errors.NetworkInUse(network=net.name or net.id, count=len(claims))
        await self.kv.write(attrs.evolve(item, deleted=True, version=self._version(item)))
        log.info("network.deleted id={id}", id=net.id)

    async def default_network(self, ctx) -> Network | None:
        nets = await self.list_networks(ctx)
        own = [n for n in nets if n.project_id == ctx.project_id]
        shared = [n for n in nets if n.shared and n.project_id != ctx.project_id]
        return (own or shared or [None])[0]

    async def allocate(self, ctx, container_uuid, host, requests) -> list[Port]:
        if host != self.node:
            raise net_errors.NetworkError(reason=f"ports of node {host} are allocated "
                                                 f"there, not on {self.node}")
        made: list[Port] = []
        try:
            for req in requests:
                if req.get("port"):
                    raise errors.InvalidInput(field="nets", reason=(
                        "the vxlan network backend has no pre-made ports; pass "
                        "network (and v4-fixed-ip) instead of port"))
                net, _ = await self._find(ctx, req.get("network") or "")
                made.append(await self._allocate_one(net, container_uuid,
                                                     req.get("v4-fixed-ip") or None,
                                                     ctx.project_id))
        except BaseException:
            if made:
                await self.release(ctx, container_uuid, made)
            raise
        return made

    async def _allocate_one(self, net: Network, container_uuid: str,
                            fixed_ip: str | None, project: str = "") -> Port:
        await self._lock.acquire()
        try:
            size = self.config.block_size
            used = {p.ip_address for p in self.ports.values() if p.net_id == net.id}
            claims = await self._blocks(net.id)
            mine = sorted(i for i, c in claims.items() if c.data.get("node") == self.node)
            address = None
            if fixed_ip is not None:
                if not R.in_subnet(net.cidr, fixed_ip):
                    raise errors.InvalidInput(field="v4-fixed-ip", reason=(
                        f"{fixed_ip} is not a host address of {net.cidr}"))
                index = R.block_of(net.cidr, size, fixed_ip)
                owner = claims.get(index)
                if fixed_ip in used or (owner is not None
                                        and owner.data.get("node") != self.node):
                    raise net_errors.AddressInUse(address=fixed_ip, network=net.id)
                if owner is None:
                    await self._claim(net, index)
                address = fixed_ip
            else:
                for index in mine:
                    free = [a for a in R.block_addresses(net.cidr, size, index, net.gateway)
                            if a not in used]
                    if free:
                        address = free[0]
                        break
                if address is None:
                    for index in range(R.block_count(net.cidr, size)):
                        if index in claims:
                            continue
                        free = R.block_addresses(net.cidr, size, index, net.gateway)
                        if free:
                            await self._claim(net, index)
                            address = free[0]
                            break
                if address is None:
                    raise net_errors.NetworkError(reason=f"network {net.name} ({net.cidr}) "
                                                         "has no free address left")
            port = Port(id=self._new_id(), net_id=net.id, mac=R.mac_for(address),
                        fixed_ips=({"subnet_id": net.id, "ip_address": address},),
                        mtu=net.mtu, vif_type="bridge",
                        vif_details={"bridge_name": dataplane.bridge_name(net.segmentation_id),
                                     "vni": net.segmentation_id, "cidr": net.cidr},
                        security_groups=(), device_id=container_uuid, host=self.node)
            self.ports[port.id] = port
            self.security[port.id] = {"exposed_ports": {}, "project": project or ""}
            self._save_ports()
        finally:
            self._lock.release()
        try:
            await self._publish_member(port)
        except BaseException:
            await self.release(None, container_uuid, [port])
            raise
        await self._sync_net(net.id)
        log.info("network.port.allocated port={port} net={net} ip={ip} container={uuid}",
                 port=port.id, net=net.id, ip=port.ip_address, uuid=container_uuid)
        return port

    async def _claim(self, net: Network, index: int) -> None:
        item = R.NetItem(R.block_key(net.id, index), net.id,
                         {"index": index, "node": self.node, "vtep": self.config.local_ip},
                         self._version())
        await self.kv.write(item)
        # two nodes claiming one block at once: the newest copy wins everywhere;
        # the loser sees it on this re-read and does not use the block
        won = (await self.kv.read(net.id)).get(item.key)
        if won is None or won.deleted or won.data.get("node") != self.node:
            raise net_errors.NetworkError(reason=f"block {index} of network {net.id} was "
                                                 "claimed by another node at the same time; retry")
        log.info("network.block.claimed net={net} block={index}", net=net.id, index=index)
        await self._announce(net.id)

    async def _announce(self, net_id: str) -> None:
        if self._client is None:
            return
        for name, node in sorted(self.kv.members().items()):
            if name == self.node:
                continue
            try:
                await self._client.call(node, messages.NetworkChanged(net_id))
            except errors.ZundError as e:
                log.info("network.announce_failed node={node} reason={r}", node=name, r=str(e))

    async def release(self, ctx, container_uuid, ports) -> None:
        nets = set()
        gone = []
        for p in ports:
            held = self.ports.pop(p.id, None)
            self.security.pop(p.id, None)
            self.applied.pop(p.id, None)
            if held is not None:
                nets.add(held.net_id)
                gone.append(held)
                if self.dataplane is not None:
                    await self.dataplane.drop_security(held)
        self._save_ports()
        for held in gone:
            await self._forget_member(held)
        for net_id in nets:
            await self._release_blocks(net_id)
            await self._sync_net(net_id)
            self._announce_soon(net_id)

    async def _release_blocks(self, net_id: str) -> None:
        """Give back this node's blocks of ``net_id`` that hold none of its ports."""
        try:
            claims = await self._blocks(net_id)
            defs = await self._defs()
        except errors.ServiceUnavailable as e:
            log.info("network.block.release_later net={net} reason={r}", net=net_id, r=str(e))
            return
        if net_id not in defs:
            return
        net = defs[net_id][0]
        used = {R.block_of(net.cidr, self.config.block_size, p.ip_address)
                for p in self.ports.values() if p.net_id == net_id}
        changed = False
        for index, item in claims.items():
            if item.data.get("node") == self.node and index not in used:
                await self.kv.write(attrs.evolve(item, deleted=True,
                                                 version=self._version(item)))
                changed = True
        if changed:
            await self._announce(net_id)

    async def update_security(self, ctx, port, security_groups, exposed_ports) -> Port:
        held = self.ports.get(port.id, port)
        updated = attrs.evolve(held, security_groups=tuple(security_groups or ()))
        if held.id in self.ports:
            self.ports[held.id] = updated
        known = self.security.get(held.id) or {}
        self.security[held.id] = {"exposed_ports": dict(exposed_ports or {}),
                                  "project": known.get("project")
                                  or (ctx.project_id if ctx is not None else "") or ""}
        self._save_ports()
        if held.id in self.ports:
            await self._publish_member(updated)
            await self._sync_net(updated.net_id)
            self._announce_soon(updated.net_id)
        return updated

    # -- security groups (membership) ------------------------------------------------------

    def _member_of(self, port: Port) -> dict:
        known = self.security.get(port.id) or {}
        return secgroups.member_data(port, known.get("project") or "", self.node,
                                     known.get("exposed_ports"))

    def _member_version(self, port_id: str, previous: R.NetItem | None) -> tuple:
        version = self._version(previous)
        last = self._member_versions.get(port_id)
        if last is not None and version <= last:
            version = (float(last[0]) + 0.001, self.node)
        self._member_versions[port_id] = version
        return version

    async def _publish_member(self, port: Port, previous: R.NetItem | None = None) -> None:
        item = R.NetItem(R.member_key(port.net_id, port.id), port.net_id,
                         self._member_of(port), self._member_version(port.id, previous))
        await self.kv.write(item)

    async def _forget_member(self, port: Port) -> None:
        """Tombstone the port's membership (retried by nobody if the store is
        unreachable now: the item then names an address no port uses, which
        only ever lets more in to that unused address)."""
        item = R.NetItem(R.member_key(port.net_id, port.id), port.net_id,
                         self._member_of(port), self._member_version(port.id, None),
                         deleted=True)
        try:
            await self.kv.write(item)
        except errors.ZundError as e:
            log.info("network.member.forget_later port={port} reason={r}",
                     port=port.id, r=str(e))
        self._member_versions.pop(port.id, None)

    def _announce_soon(self, net_id: str) -> None:
        """Tell the other nodes without making the caller wait for them (their own
        sync loop catches up within ``sync_interval`` if a push is lost)."""
        d = defer.Deferred.fromCoroutine(self._announce(net_id))
        d.addErrback(lambda f: log.failure("network.announce_failed", failure=f))

    # -- the data plane -------------------------------------------------------------------

    def port(self, port_id: str) -> Port:
        try:
            return self.ports[port_id]
        except KeyError:
            raise net_errors.PortNotFound(port=port_id) from None

    def ports_of(self, container_uuid: str) -> list[Port]:
        return [p for p in self.ports.values() if p.device_id == container_uuid]

    async def sync(self) -> None:
        """Bring every network with a port on this node up to date (the loop)."""
        for net_id in sorted({p.net_id for p in self.ports.values()} | set(self._vnis)):
            try:
                await self._sync_net(net_id)
            except errors.ZundError as e:
                log.info("network.sync_failed net={net} reason={r}", net=net_id, r=str(e))

    async def _sync_net(self, net_id: str) -> None:
        """One network at a time per network: two syncs at once (the loop, an
        allocation, a peer's push) could otherwise leave the older read's rules
        in the kernel."""
        if self.dataplane is None:
            return
        lock = self._net_locks.setdefault(net_id, defer.DeferredLock())
        await lock.acquire()
        try:
            await self._sync_net_locked(net_id)
        finally:
            lock.release()
            if not lock.locked and not lock.waiting and net_id not in self._vnis:
                self._net_locks.pop(net_id, None)

    async def _sync_net_locked(self, net_id: str) -> None:
        local = [p for p in self.ports.values() if p.net_id == net_id]
        if not local:
            self.peers.pop(net_id, None)
            vni = self._vnis.pop(net_id, None)
            if vni is not None:
                await self.dataplane.remove_network(vni)
            return
        vni = int(local[0].vif_details["vni"])
        items = await self.kv.read(net_id)
        live = [i for i in items.values() if not i.deleted]
        claims = [i for i in live if i.key.startswith("block:")]
        vteps = frozenset(c.data["vtep"] for c in claims
                          if c.data.get("node") != self.node and c.data.get("vtep"))
        await self.dataplane.ensure_network(
            vni, local[0].mtu, self.config.local_ip, self.config.vxlan_port, vteps,
            tuple((dataplane.host_end(p.id), p.mtu) for p in local))
        self.peers[net_id] = vteps
        self._vnis[net_id] = vni
        await self._sync_rules(net_id, local, items)

    async def _sync_rules(self, net_id: str, local: list, items: dict) -> None:
        """Republish any of this node's memberships the store lacks (a write lost
        to a partition), then give the data plane the rules that changed."""
        members = {i.data.get("port"): i.data for i in items.values()
                   if not i.deleted and i.key.startswith("member:")}
        for port_id, data in list(members.items()):
            if data.get("node") == self.node and port_id not in self.ports:
                # released while the store was unreachable: forget it now, or its
                # address would stay admitted in its old groups when reused
                stale = items[R.member_key(net_id, port_id)]
                try:
                    await self.kv.write(attrs.evolve(stale, deleted=True,
                                                     version=self._version(stale)))
                    del members[port_id]
                except errors.ZundError as e:
                    log.info("network.member.forget_later port={port} reason={r}",
                             port=port_id, r=str(e))
        for p in local:
            if p.id not in self.ports:
                continue  # released while this sync waited: not a member any more
            want = self._member_of(p)
            if members.get(p.id) != want:
                try:
                    await self._publish_member(p, items.get(R.member_key(net_id, p.id)))
                except errors.ZundError as e:  # next sync retries; rules go on
                    log.info("network.member.publish_later port={port} reason={r}",
                             port=p.id, r=str(e))
                members[p.id] = want
        for p in local:
            if p.id not in self.ports:
                continue  # released meanwhile: its rules went with it
            rules = secgroups.port_rules(
                members[p.id], (self.security.get(p.id) or {}).get("exposed_ports"),
                members.values())
            before = self.applied.get(p.id)
            if before != rules:
                revoked = sorted(set(before.sources) - set(rules.sources)) if before else []
                await self.dataplane.apply_security(p, rules, revoked)
                if p.id not in self.ports:
                    # released (and its rules dropped) while these were applied:
                    # drop them again, or the deleted port's chain would stay
                    await self.dataplane.drop_security(p)
                    continue
                self.applied[p.id] = rules
                log.info("network.secgroup.applied port={port} sources={n} exposed={e}",
                         port=p.id, n=len(rules.sources), e=len(rules.exposed))
