"""Composition root: builds every object of a node from config and owns the
start/stop order.

Start: store -> runtimes -> compute manager (recovery) -> API listening -> READY=1.
Stop:  STOPPING=1 -> API stops accepting -> manager finishes in-flight work ->
       runtimes -> store.

Components receive plain frozen config values built here, never the ConfigOpts.
"""

from __future__ import annotations

import os
import random

import attrs
from importlib.metadata import entry_points
from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.web.server import Site

from zund.common import errors, sdnotify
from zund.compute import capacity
from zund.compute.manager import ContainerManager, ManagerConfig
from zund.store import Store

log = Logger()


def manager_config(conf) -> ManagerConfig:
    return ManagerConfig(
        node=conf.host,
        default_runtime=conf.default_runtime,
        default_cpu=conf.default_cpu,
        default_memory_mb=conf.default_memory,
        unique_name_scope=conf.compute.unique_container_name_scope,
        image_pull_policy=conf.compute.image_pull_policy,
        sync_interval_s=float(conf.sync_container_state_interval),
        availability_zone=conf.default_availability_zone,
        shutdown_timeout_s=float(conf.shutdown_timeout),
    )


def capacity_config(conf) -> capacity.CapacityConfig:
    c = conf.compute
    return capacity.CapacityConfig(
        total_cpus=c.total_cpus, total_memory_mb=c.total_memory_mb,
        total_disk_gb=c.total_disk_gb, reserved_host_cpus=c.reserved_host_cpus,
        reserved_host_memory_mb=c.reserved_host_memory_mb,
        reserved_host_disk_mb=c.reserved_host_disk_mb,
        cpu_allocation_ratio=c.cpu_allocation_ratio,
        ram_allocation_ratio=c.ram_allocation_ratio,
        disk_allocation_ratio=c.disk_allocation_ratio,
        reserve_disk_for_image=c.reserve_disk_for_image,
        state_path=conf.state_path,
    )


def load_runtime_factory(name: str):
    """The ``zund.runtimes`` entry point called ``name``."""
    for ep in entry_points(group="zund.runtimes"):
        if ep.name == name:
            return ep.load()
    raise errors.RuntimeUnavailable(runtime=name, reason="no such runtime driver installed")


@attrs.define
class NodeParts:
    """Everything a node is made of (useful to tests)."""

    store: Store
    runtimes: dict
    manager: ContainerManager
    api: object
    closers: list = attrs.field(factory=list)


class NodeService(service.MultiService):
    """One zund node. ``startService``/``stopService`` return Deferreds that the
    command line waits for."""

    name = "zund"

    def __init__(self, conf, reactor, rng: random.Random | None = None,
                 runtimes: dict | None = None):
        super().__init__()
        self.conf = conf
        self.reactor = reactor
        self.rng = rng or random.Random()
        self._injected_runtimes = runtimes
        self.parts: NodeParts | None = None
        self._port = None
        self.api_address: tuple[str, int] | None = None
        self.started = defer.Deferred()

    # building -----------------------------------------------------------------

    def _build_runtimes(self) -> tuple[dict, list]:
        if self._injected_runtimes is not None:
            return dict(self._injected_runtimes), []
        runtimes, closers = {}, []
        for name in self.conf.enabled_runtimes:
            factory = load_runtime_factory(name)
            rt, close = factory(self.conf, self.reactor)
            runtimes[rt.name] = rt
            if close is not None:
                closers.append(close)
        return runtimes, closers

    def build(self) -> NodeParts:
        from zund.api.app import ApiConfig, ZunAPI  # the API layer sits above compute
        from zund.api.policy import make_enforcer

        conf = self.conf
        store = Store(os.path.join(conf.state_path, "zund.sqlite"), reactor=self.reactor)
        runtimes, closers = self._build_runtimes()
        manager = ContainerManager(manager_config(conf), store, runtimes, self.reactor,
                                   capacity_config=capacity_config(conf))
        api = ZunAPI(manager, ApiConfig.from_conf(conf), make_enforcer(conf),
                     clock=self.reactor, rng=self.rng)
        return NodeParts(store=store, runtimes=runtimes, manager=manager, api=api,
                         closers=closers)

    # lifecycle ------------------------------------------------------------------

    def startService(self):
        service.Service.startService(self)
        d = defer.Deferred.fromCoroutine(self._start())
        d.addCallbacks(self.started.callback, self.started.errback)
        return self.started

    async def _start(self):
        conf = self.conf
        os.makedirs(conf.state_path, exist_ok=True)
        self.parts = parts = self.build()
        await parts.store.open()
        for name, rt in parts.runtimes.items():
            await rt.open()
            log.info("node.runtime.ready", runtime=name)
        await parts.manager.startService()
        ep = endpoints.TCP4ServerEndpoint(self.reactor, conf.api.port,
                                          interface=conf.api.host_ip)
        site = Site(parts.api.resource())
        site.noisy = False
        self._port = await ep.listen(site)
        addr = self._port.getHost()
        self.api_address = (addr.host, addr.port)
        log.info("node.ready", node=conf.host, api=f"{addr.host}:{addr.port}")
        sdnotify.notify("READY=1\nSTATUS=serving the Zun API")

    def stopService(self):
        service.Service.stopService(self)
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self):
        sdnotify.notify("STOPPING=1")
        log.info("node.stopping", node=self.conf.host)
        if self._port is not None:
            await self._port.stopListening()
            self._port = None
        parts = self.parts
        if parts is None:
            return
        if parts.manager.running:
            await parts.manager.stopService()
        for name, rt in parts.runtimes.items():
            try:
                await rt.close()
            except Exception:
                log.failure("node.runtime.close_failed", runtime=name)
        for close in parts.closers:
            await defer.maybeDeferred(close)
        await parts.store.close()
        log.info("node.stopped", node=self.conf.host)
