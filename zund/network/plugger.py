"""Wiring ports into Docker containers: the sandbox-namespace model.

A veth moved into a Docker container's namespace is lost when the container
restarts (Docker makes a new namespace). So each networked container gets a small
**sandbox** container (``zund-sbx-<uuid>``, ``[network] sandbox_image`` running
``sleep``) that owns the network namespace; the application container joins it
(``network_mode=container:zund-sbx-<uuid>``) and keeps its interfaces across its
own restarts, dockerd's restart-policy restarts included. The sandbox also holds
the container's hostname (Docker refuses one on a joined container).

Ports are veth pairs: one end on the network's bridge, the other moved into the
sandbox's namespace (found by the sandbox's PID) and named ``eth<N>``.
"""

from __future__ import annotations

from typing import Callable

from twisted.logger import Logger
from zope.interface import implementer

from zund.network import errors as net_errors
from zund.network.dataplane import host_end
from zund.network.interface import IPlugger

log = Logger()

#: label on a sandbox: the uuid of the container it serves
LABEL_SANDBOX = "zund.sandbox.for"
LABEL_NODE = "zund.node"


def sandbox_name(container_uuid: str) -> str:
    return "zund-sbx-" + container_uuid


@implementer(IPlugger)
class DockerPlugger:
    """``api_factory() -> docker.APIClient`` (opened lazily, on the pool);
    ``run_blocking``: the pool; ``dataplane``: ``zund.network.dataplane.Dataplane``."""

    def __init__(self, node: str, api_factory: Callable, run_blocking: Callable, dataplane,
                 sandbox_image: str):
        self.node = node
        self._api_factory = api_factory
        self._api = None
        self._run_blocking = run_blocking
        self.dataplane = dataplane
        self.sandbox_image = sandbox_image

    def _client(self):
        if self._api is None:
            self._api = self._api_factory()
        return self._api

    async def _docker(self, fn):
        import docker

        try:
            return await self._run_blocking(fn)
        except docker.errors.DockerException as e:
            raise net_errors.NetworkError(reason=f"sandbox: {e}") from e

    def network_mode(self, container_uuid: str) -> str:
        return "container:" + sandbox_name(container_uuid)

    async def ensure_sandbox(self, container_uuid: str, hostname: str | None = None) -> int:
        """The sandbox of ``container_uuid`` exists and runs: -> its PID."""
        import docker

        name = sandbox_name(container_uuid)

        def _ensure():
            api = self._client()
            try:
                info = api.inspect_container(name)
            except docker.errors.NotFound:
                host_config = api.create_host_config(
                    network_mode="none", restart_policy={"Name": "unless-stopped"})
                api.create_container(
                    image=self.sandbox_image, command=["sleep", "2147483647"], name=name,
                    hostname=hostname or None,
                    labels={LABEL_SANDBOX: container_uuid, LABEL_NODE: self.node},
                    host_config=host_config)
                info = api.inspect_container(name)
            if not info["State"].get("Running"):
                api.start(name)
                info = api.inspect_container(name)
            return int(info["State"]["Pid"])

        pid = await self._docker(_ensure)
        if pid <= 0:
            raise net_errors.NetworkError(reason=f"sandbox {name} is not running")
        return pid

    async def remove_sandbox(self, container_uuid: str) -> None:
        import docker

        def _remove():
            try:
                self._client().remove_container(sandbox_name(container_uuid), force=True)
            except docker.errors.NotFound:
                pass

        await self._docker(_remove)

    # -- IPlugger -------------------------------------------------------------------------

    async def plug(self, container_uuid, port) -> None:
        pid = await self.ensure_sandbox(container_uuid)
        await self.dataplane.plug_veth(port, pid, None)
        log.info("network.plugged port={port} container={uuid} ip={ip}", port=port.id,
                 uuid=container_uuid, ip=port.ip_address)

    async def unplug(self, container_uuid, port) -> None:
        await self.dataplane.unplug_veth(port)
        log.info("network.unplugged port={port} container={uuid}", port=port.id,
                 uuid=container_uuid)


def guest_vif(port) -> dict:
    """What a micro-VM needs to know of one port (``ContainerSpec.vifs``): the
    TAP's name (the same as a veth's host end, so the security rules, which match
    ``--physdev-out`` by that name, apply to guests too), MAC, address/prefix,
    gateway and MTU. Pure."""
    import ipaddress

    cidr = port.vif_details.get("cidr") or (port.fixed_ips[0].get("cidr")
                                            if port.fixed_ips else None)
    prefix = ipaddress.ip_network(cidr, strict=False).prefixlen if cidr else 32
    return {"tap": host_end(port.id), "mac": port.mac, "mtu": int(port.mtu),
            "address": f"{port.ip_address}/{prefix}",
            "gateway": port.vif_details.get("gateway") or ""}


def qemu_pid(domain_name: str, run_dir: str = "/run/libvirt/qemu") -> int | None:
    """The PID of the qemu process running ``domain_name`` (libvirt's pid file),
    None when it is not running. Blocking."""
    try:
        with open(f"{run_dir}/{domain_name}.pid") as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


@implementer(IPlugger)
class TapPlugger:
    """Micro-VMs (libvirt): libvirt makes each guest NIC's TAP when the domain boots
    (``<interface type='ethernet'>``, named by :func:`guest_vif`); :meth:`plug`,
    called after every boot, puts it on the port's bridge, first moving it out of
    the namespace qemu runs in when that is not the node's. The guest's address is
    on its kernel command line; its init configures it (zund.runtimes.microvm)."""

    def __init__(self, run_blocking: Callable, dataplane, pid_of: Callable = qemu_pid):
        self._run_blocking = run_blocking
        self.dataplane = dataplane
        self._pid_of = pid_of

    async def plug(self, container_uuid, port) -> None:
        from zund.runtimes.base import runtime_object_name

        pid = await self._run_blocking(self._pid_of, runtime_object_name(container_uuid))
        await self.dataplane.adopt_tap(port, host_end(port.id), pid)
        log.info("network.plugged port={port} container={uuid} ip={ip} tap=1", port=port.id,
                 uuid=container_uuid, ip=port.ip_address)

    async def unplug(self, container_uuid, port) -> None:
        # the TAP goes with the guest's qemu; a left-over is removed like a veth
        await self.dataplane.unplug_veth(port)
