"""What a node's container lifecycle asks of the network (the one place that joins
``INetworkBackend`` and ``IPlugger`` to containers).

Called by ``zund.compute.lifecycle.Lifecycle`` on the owner node:

- :meth:`allocate` when the create is accepted (ports made, ``addresses`` and
  ``security_groups`` set on the record before it is first stored);
- :meth:`prepare` right before the runtime object is made (sandbox + veths; the
  spec joins the sandbox's namespace);
- :meth:`ensure` before a start or reboot (a sandbox lost with a host reboot is
  made again with the same ports: same MAC, same address);
- :meth:`release` after the runtime object is removed;
- :meth:`attach` / :meth:`detach` for Zun's network_attach / network_detach.

The Docker runtime (``runc``) is wired through the sandbox plugger; micro-VMs
(``microvm``) through the TAP plugger: :meth:`prepare` puts the ports on the spec
(``vifs``: the domain's NICs and the guest's addresses) and :meth:`started`, after
every boot, puts the TAPs libvirt made on the bridges. A guest's NICs are fixed when
its domain is defined: attach/detach are ``NotSupportedByRuntime`` for it (as for
other runtimes, whose ports are allocated and shown but not wired).
"""

from __future__ import annotations

import attrs
from twisted.logger import Logger

from zund.common import errors
from zund.common.context import RequestContext
from zund.network import errors as net_errors

log = Logger()

#: the runtimes whose containers are wired (zund.runtimes.docker is "runc")
WIRED_RUNTIMES = ("runc",)
#: runtimes whose ports are TAPs given to a guest at boot (zund.runtimes.libvirt)
GUEST_RUNTIMES = ("microvm",)


def address_entries(ports, preserve: bool = False) -> dict:
    """Zun's ``addresses``: {net_id: [{addr, version, port, preserve_on_delete,
    subnet_id, mac_addr}]}."""
    out: dict = {}
    for p in ports:
        for ip in p.fixed_ips:
            out.setdefault(p.net_id, []).append({
                "addr": ip["ip_address"], "version": 4, "port": p.id,
                "preserve_on_delete": preserve, "subnet_id": ip.get("subnet_id"),
                "mac_addr": p.mac})
    return out


def port_ids(addresses: dict) -> list[str]:
    return [a["port"] for addrs in (addresses or {}).values() for a in addrs if a.get("port")]


class NodeNetworks:
    """``backend``: INetworkBackend with ``ports_of(container_uuid)`` and
    ``port(port_id)`` for this node's ports; ``plugger``: the DockerPlugger (None:
    ports are allocated but not wired, e.g. simulations)."""

    def __init__(self, node: str, backend, plugger=None, guest_plugger=None):
        self.node = node
        self.backend = backend
        self.plugger = plugger
        self.guest_plugger = guest_plugger

    def _wired(self, rec) -> bool:
        return self.plugger is not None and (rec.runtime or "runc") in WIRED_RUNTIMES

    def _guest(self, rec) -> bool:
        return self.guest_plugger is not None and rec.runtime in GUEST_RUNTIMES

    async def allocate(self, ctx, rec, nets, security_groups=(), exposed_ports=None) -> None:
        if not nets:
            return
        ports = await self.backend.allocate(ctx, rec.uuid, self.node, list(nets))
        if security_groups or exposed_ports:
            ports = [await self.backend.update_security(ctx, p, list(security_groups),
                                                        dict(exposed_ports or {}))
                     for p in ports]
        rec.addresses = address_entries(ports)
        rec.security_groups = list(security_groups)

    async def prepare(self, rec, spec):
        """Wire the record's ports; -> the spec to create the runtime object with."""
        ports = self.backend.ports_of(rec.uuid)
        if ports and self._guest(rec):
            from zund.network.plugger import guest_vif
            return attrs.evolve(spec, vifs=tuple(guest_vif(p) for p in ports))
        if not ports or not self._wired(rec):
            return spec
        await self.plugger.ensure_sandbox(rec.uuid, rec.hostname)
        for p in ports:
            await self.plugger.plug(rec.uuid, p)
        return attrs.evolve(spec, network_mode=self.plugger.network_mode(rec.uuid))

    async def ensure(self, rec) -> None:
        ports = self.backend.ports_of(rec.uuid)
        if ports and self._wired(rec):
            for p in ports:
                await self.plugger.plug(rec.uuid, p)

    async def started(self, rec) -> None:
        """After the runtime booted ``rec`` (create with run, start, reboot): a
        guest's fresh TAPs go on their bridges (Docker's veths need nothing)."""
        if self._guest(rec):
            for p in self.backend.ports_of(rec.uuid):
                await self.guest_plugger.plug(rec.uuid, p)

    async def release(self, rec) -> None:
        ports = self.backend.ports_of(rec.uuid)
        if self._guest(rec) and ports:
            for p in ports:
                await self.guest_plugger.unplug(rec.uuid, p)
        if self._wired(rec) and ports:
            for p in ports:
                await self.plugger.unplug(rec.uuid, p)
        if self.plugger is not None and self._wired(rec) and ports:
            await self.plugger.remove_sandbox(rec.uuid)
        if ports:
            await self.backend.release(RequestContext.admin(rec.project_id), rec.uuid, ports)

    async def attach(self, ctx, rec, request: dict) -> None:
        """Zun network_attach: a new port on ``request["network"]`` (a net id the
        API resolved), wired live when the container runs."""
        if not self._wired(rec) and self.plugger is not None:
            raise errors.NotSupportedByRuntime(action="network_attach", runtime=rec.runtime)
        if any(net == request.get("network") for net in (rec.addresses or {})):
            raise errors.InvalidInput(field="network", reason=(
                f"container {rec.uuid} is already attached to network {request['network']}"))
        [port] = await self.backend.allocate(ctx, rec.uuid, self.node, [request])
        try:
            if rec.security_groups or rec.exposed_ports:
                # the new port is in the container's groups (or its exposed-port
                # group), not in default
                port = await self.backend.update_security(
                    ctx, port, list(rec.security_groups or ()), dict(rec.exposed_ports or {}))
            if self._wired(rec):
                await self.plugger.plug(rec.uuid, port)
        except BaseException:
            await self.backend.release(ctx, rec.uuid, [port])
            raise
        addresses = dict(rec.addresses or {})
        addresses.update(address_entries([port]))
        rec.addresses = addresses

    async def detach(self, ctx, rec, network: str | None = None, port_id: str | None = None):
        """Zun network_detach: by network id (1.6) or by port (1.17)."""
        ids = []
        for net_id, addrs in (rec.addresses or {}).items():
            for a in addrs:
                if (network is not None and net_id == network) or \
                        (port_id is not None and a.get("port") == port_id):
                    ids.append(a["port"])
        if not ids:
            if port_id is not None:
                raise net_errors.PortNotFound(port=port_id)
            raise errors.InvalidInput(field="network", reason=(
                f"container {rec.uuid} is not attached to network {network}"))
        ports = [p for p in self.backend.ports_of(rec.uuid) if p.id in ids]
        if self._wired(rec):
            for p in ports:
                await self.plugger.unplug(rec.uuid, p)
        await self.backend.release(ctx, rec.uuid, ports)
        rec.addresses = {net: [a for a in addrs if a.get("port") not in ids]
                         for net, addrs in (rec.addresses or {}).items()}
        rec.addresses = {net: addrs for net, addrs in rec.addresses.items() if addrs}

    async def update_security(self, ctx, rec, security_groups) -> None:
        for p in self.backend.ports_of(rec.uuid):
            await self.backend.update_security(ctx, p, list(security_groups),
                                               dict(rec.exposed_ports or {}))
        rec.security_groups = list(security_groups)


async def act(lifecycle, ctx, rec, action: str, args: dict):
    """The owner's half of ``IContainers.network_action``: under the container's
    lock, on the record as stored; -> the updated record."""
    networks = lifecycle.networks
    if networks is None:
        raise errors.InvalidInput(field="network", reason=(
            "this node has no network backend ([network] driver = none)"))
    async with lifecycle.locks[rec.uuid]:
        fresh = await lifecycle.store.get_container(rec.uuid)
        if fresh.task_state is not None:
            raise errors.ContainerBusy(action=f"network_{action}", uuid=fresh.uuid,
                                       task_state=fresh.task_state)
        if action == "attach":
            await networks.attach(ctx, fresh, {k: v for k, v in args.items()
                                               if k in ("network", "v4-fixed-ip", "port")})
        elif action == "detach":
            await networks.detach(ctx, fresh, args.get("network"), args.get("port"))
        elif action == "security_groups":
            groups = [g for g in fresh.security_groups or [] if g not in args.get("remove", [])]
            for g in args.get("add", []):
                if g in groups:
                    raise errors.InvalidInput(field="name", reason=(
                        f"security group {g} is already added to container {fresh.uuid}"))
                groups.append(g)
            for g in args.get("remove", []):
                if g not in (fresh.security_groups or []):
                    raise errors.InvalidInput(field="name", reason=(
                        f"security group {g} is not added to container {fresh.uuid}"))
            await networks.update_security(ctx, fresh, groups)
        else:
            raise errors.InvalidInput(field="action", reason=f"unknown network action {action}")
        await lifecycle.store.save_container(fresh)
        log.info("network.container.{action}", action=action, uuid=fresh.uuid)
        return fresh
