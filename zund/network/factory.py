"""Builds the node's network parts from ``[network]`` (called by ``zund.service``).

-> :class:`NetworkParts` (``backend`` None with ``driver = none``). The service
tree gets ``services`` (the backend's replicated store and sync loop, the
plugger's thread pool); the lifecycle gets ``node`` (``NodeNetworks``); the peer
server gets ``backend`` as ``handlers.networks``; the API gets ``backend``.
"""

from __future__ import annotations

from typing import Callable

import attrs
from twisted.application import service

from zund.network.node import NodeNetworks


@attrs.frozen
class NetworkParts:
    backend: object = None
    node: NodeNetworks | None = None
    services: tuple = ()


class _PoolService(service.Service):
    def __init__(self, pool):
        self.name = "network-pool"
        self._pool = pool

    def startService(self):
        super().startService()
        self._pool.start()

    def stopService(self):
        super().stopService()
        self._pool.stop()


def build(conf, reactor, node: str, *, view: Callable | None, client, state_path: str | None,
          wire_docker: bool, local_ip: str, new_id: Callable | None = None) -> NetworkParts:
    """``wire_docker``: the node runs a real runtime, Docker or libvirt (else ports
    are allocated and shown but not wired: simulations, the fake runtime)."""
    nc = conf.network
    if nc.driver == "none":
        return NetworkParts()
    services = []
    dataplane = plugger = guest_plugger = None
    if wire_docker:
        import docker

        from zund.network.dataplane import Dataplane
        from zund.network.plugger import DockerPlugger, TapPlugger
        from zund.runtimes.executor import make_run_blocking

        run_blocking, pool = make_run_blocking(reactor, nc.max_workers, name="zund-network")
        services.append(_PoolService(pool))
        dataplane = Dataplane(run_blocking)
        plugger = DockerPlugger(node, lambda: docker.APIClient(base_url=conf.docker.api_url),
                                run_blocking, dataplane, nc.sandbox_image)
        guest_plugger = TapPlugger(run_blocking, dataplane)
    if nc.driver == "vxlan":
        from zund.network.vxlan import VxlanConfig, VxlanNetworks

        backend = VxlanNetworks(
            VxlanConfig(node=node, local_ip=nc.local_ip or local_ip,
                        underlay_mtu=nc.underlay_mtu, vxlan_port=nc.vxlan_port,
                        block_size=nc.block_size, auto_cidr_pool=nc.auto_cidr_pool,
                        sync_interval_s=nc.sync_interval),
            reactor, view=view, client=client, state_path=state_path, dataplane=dataplane,
            new_id=new_id)
        services.append(backend)
    else:  # neutron (zund.network.neutron, issue 16 §3)
        from zund.network import neutron

        backend = neutron.from_conf(conf, reactor, node)
        # an interface is not a type: isinstance() is always False here, and an
        # unstarted backend's thread pool would queue every Neutron call forever
        if service.IService.providedBy(backend):
            services.append(backend)
    return NetworkParts(backend=backend, node=NodeNetworks(node, backend, plugger, guest_plugger),
                        services=tuple(services))
