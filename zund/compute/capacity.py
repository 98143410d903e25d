"""Allocation-based capacity of this node, in Zun's units.

``*_used`` are sums of the allocations (cpu, memory, disk fields) of the
containers recorded here — not live usage — exactly like Zun's compute node.
"""

from __future__ import annotations

import os
import platform
import uuid as _uuid

import attrs

_NODE_NS = _uuid.UUID("6f1c3c8e-6a59-4d0a-9a55-2d8b5f2f6c10")


def node_uuid(node: str) -> str:
    """Stable uuid of a node, derived from its name (no state needed)."""
    return str(_uuid.uuid5(_NODE_NS, "zund-node:" + node))


@attrs.frozen
class CapacityConfig:
    total_cpus: int = 0
    total_memory_mb: int = 0
    total_disk_gb: int = 0
    reserved_host_cpus: int = 0
    reserved_host_memory_mb: int = 512
    reserved_host_disk_mb: int = 0
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0
    reserve_disk_for_image: float = 0.2
    state_path: str = "/var/lib/zund"


@attrs.frozen
class HostFacts:
    """Read once at start-up (``detect_host``); plain values afterwards."""

    cpus: int
    mem_total_mb: int
    disk_total_gb: int
    architecture: str
    os: str
    kernel_version: str


def _meminfo_mb() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _os_name() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
    except OSError:
        return "Linux"


def detect_host(config: CapacityConfig) -> HostFacts:
    """Totals from config, or from the host where config says 0. Does I/O."""
    cpus = config.total_cpus or (os.cpu_count() or 1)
    mem = config.total_memory_mb or _meminfo_mb()
    if config.total_disk_gb:
        disk = config.total_disk_gb
    else:
        path = config.state_path
        while path and not os.path.exists(path):
            path = os.path.dirname(path)
        st = os.statvfs(path or "/")
        disk = int(st.f_blocks * st.f_frsize / 2**30 * (1 - config.reserve_disk_for_image))
    return HostFacts(cpus=cpus, mem_total_mb=mem, disk_total_gb=disk,
                     architecture=platform.machine(), os=_os_name(),
                     kernel_version=platform.release())


@attrs.frozen
class Usage:
    """What the records held on this node add up to. ``cpu_used`` is the exact sum
    (admission compares it); views round it."""

    cpu_used: float = 0.0
    mem_used_mb: int = 0
    disk_used_gb: int = 0
    containers: int = 0
    #: project_id -> number of its containers here
    tenants: dict = attrs.field(factory=dict)


def holds_capacity(record) -> bool:
    """Only a placed record allocates: a create nobody could place keeps an Error
    record on its entry node (``ContainerRecord.placed`` is False), which holds
    nothing there."""
    return record.placed


def usage_of(records) -> Usage:
    """Sum the allocations (and count the projects) of the records hosted here.
    The one place that decides which records hold capacity."""
    cpu = 0.0
    mem = disk = n = 0
    tenants: dict = {}
    for r in records:
        if not holds_capacity(r):
            continue
        cpu += r.cpu or 0
        mem += r.memory or 0
        disk += r.disk or 0
        n += 1
        tenants[r.project_id] = tenants.get(r.project_id, 0) + 1
    return Usage(cpu_used=cpu, mem_used_mb=int(mem), disk_used_gb=int(disk), containers=n,
                 tenants=tenants)


@attrs.frozen
class Held:
    """Capacity a runtime holds outside any container record: the micro-VM warm
    pool's guests (``LibvirtRuntime.held_capacity``), in allocation units (the
    ``cpu`` and ``memory`` a container of their shape holds). It counts as used
    (``with_held``)."""

    cpus: float = 0.0
    mem_mb: int = 0
    #: how many things hold it (warm guests, booted or booting)
    count: int = 0

    def __add__(self, other: "Held") -> "Held":
        return Held(self.cpus + other.cpus, self.mem_mb + other.mem_mb,
                    self.count + other.count)


def limits(config: CapacityConfig, facts: HostFacts) -> dict:
    """Schedulable limits after reservations and allocation ratios."""
    return {
        "cpus": max(0.0, (facts.cpus - config.reserved_host_cpus) * config.cpu_allocation_ratio),
        "mem_mb": max(0, int((facts.mem_total_mb - config.reserved_host_memory_mb)
                             * config.ram_allocation_ratio)),
        "disk_gb": max(0, int((facts.disk_total_gb - config.reserved_host_disk_mb / 1024)
                              * config.disk_allocation_ratio)),
    }


def with_held(used: Usage, held: Held | None) -> Usage:
    """``used`` plus what runtimes hold outside container records (warm guests):
    what the node reports as used, to the bidder, in its gossip metadata and in
    ``/v1/hosts`` alike. Held capacity is no container: the counts stay."""
    if held is None or not held.count:
        return used
    return attrs.evolve(used, cpu_used=used.cpu_used + held.cpus,
                        mem_used_mb=used.mem_used_mb + held.mem_mb)


def host_info(node: str, facts: HostFacts, used: Usage, labels: dict,
              runtimes: list[str], held: Held | None = None) -> dict:
    """This node as ``/v1/hosts`` shows it (Zun's compute node fields, in Zun's units);
    ``held`` (warm guests) counts as used (``with_held``)."""
    used = with_held(used, held)
    return {
        "uuid": node_uuid(node),
        "hostname": node,
        "mem_total": facts.mem_total_mb,
        "mem_used": used.mem_used_mb,
        "cpus": facts.cpus,
        "cpu_used": round(used.cpu_used, 3),
        "disk_total": facts.disk_total_gb,
        "disk_used": used.disk_used_gb,
        "disk_quota_supported": False,
        "total_containers": used.containers,
        "architecture": facts.architecture,
        "os_type": "linux",
        "os": facts.os,
        "kernel_version": facts.kernel_version,
        "labels": dict(labels),
        "runtimes": list(runtimes),
        "enable_cpu_pinning": False,
    }
