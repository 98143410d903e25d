"""What a node tells its peers about itself: the gossip metadata blob.

``zund/gossip`` carries it as opaque bytes; this module decides what is inside
(DESIGN.md "Gossip metadata"). Packed with msgpack and bounded to
``MAX_META_BYTES``; the tenant table is cut to the top K projects (with a flag)
so the blob always fits.

Two values live here:

- ``NodeMeta``: the typed, decoded metadata of one node. A blob is decoded once
  per gossip version (``decode``; ``zund.cluster.view.ClusterView`` caches it) and
  everything else (policies, the coordinator, ``/v1/hosts``, ``zund peers``) reads
  its attributes, never the wire dict.
- ``NodeFacts`` / ``LocalNode``: what this node says about itself besides its
  capacity (az, runtimes, labels, addresses, draining). ``LocalNode`` is the one
  place that value changes; the bidder and the announcer read ``LocalNode.facts``.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import attrs
import msgpack

from zund.compute import capacity

SCHEMA_VERSION = 1
MAX_META_BYTES = 1024
DEFAULT_TOP_K = 16


# -- this node's own facts ---------------------------------------------------------

def _str_tuple(value) -> tuple:
    return tuple(str(v) for v in value)


@attrs.frozen
class NodeFacts:
    """What a node states about itself, apart from capacity. ``api``/``peer`` are
    ``host:port`` ("" until the listening ports are known)."""

    az: str = "nova"
    runtimes: tuple = attrs.field(default=(), converter=_str_tuple)
    labels: Mapping = attrs.field(factory=dict, converter=dict)
    api: str = ""
    peer: str = ""
    draining: bool = False
    #: the operator's reason (and drain progress) shown as the service's
    #: ``disabled_reason`` (zund.cluster.healer)
    disabled_reason: str = ""


class LocalNode:
    """The one mutable cell holding this node's ``NodeFacts``.

    The service tree sets the runtimes once they are open and the addresses once
    the ports listen; an operator action may set ``draining``. Readers (bidder,
    announcer) read ``facts`` each time, so a change shows on the next bid and the
    next announcement; ``listeners`` (``callable(NodeFacts)``) hear every change.
    Reactor thread only.
    """

    def __init__(self, facts: NodeFacts | None = None):
        self._facts = facts if facts is not None else NodeFacts()
        self.listeners: list[Callable[[NodeFacts], None]] = []

    @property
    def facts(self) -> NodeFacts:
        return self._facts

    def update(self, **changes) -> NodeFacts:
        """Replace some fields (``az``, ``runtimes``, ``labels``, ``api``, ``peer``,
        ``draining``); listeners run only when something changed."""
        new = attrs.evolve(self._facts, **changes)
        if new != self._facts:
            self._facts = new
            for fn in list(self.listeners):
                fn(new)
        return new

    def set_addresses(self, *, api: str | None = None, peer: str | None = None) -> NodeFacts:
        changes = {k: v for k, v in (("api", api), ("peer", peer)) if v is not None}
        return self.update(**changes)

    def set_draining(self, draining: bool) -> NodeFacts:
        return self.update(draining=bool(draining))


# -- the decoded metadata -------------------------------------------------------------

@attrs.frozen
class NodeCapacity:
    """Schedulable totals (after reservations and allocation ratios: ``capacity.limits``)
    and what committed records use of them."""

    cpus: float = 0.0
    cpu_used: float = 0.0
    mem_mb: int = 0
    mem_used_mb: int = 0
    disk_gb: int = 0
    disk_used_gb: int = 0
    containers: int = 0
    #: the part of ``*_used`` that warm guests hold and the node gives up for a
    #: container (``policies.NodeState.yield_cpu``); 0 from an older node
    yield_cpu: float = 0.0
    yield_mem_mb: int = 0


@attrs.frozen
class HostHardware:
    """The host's own totals and identity, as ``/v1/hosts`` shows them."""

    cpus: int = 0
    mem_mb: int = 0
    disk_gb: int = 0
    arch: str | None = None
    os: str | None = None
    kernel: str | None = None


@attrs.frozen
class NodeMeta:
    """One node's gossip metadata, decoded and typed (DESIGN.md "Gossip metadata")."""

    az: str = "nova"
    runtimes: tuple = ()
    labels: Mapping = attrs.field(factory=dict)
    api: str = ""
    peer: str = ""
    cap: NodeCapacity = attrs.field(factory=NodeCapacity)
    #: None when the node did not say (an older node)
    host: HostHardware | None = None
    tenants: Mapping = attrs.field(factory=dict)
    tenants_truncated: bool = False
    #: how many projects the node hosts (``tenants`` may hold only the top K)
    ntenants: int = 0
    draining: bool = False
    disabled_reason: str = ""

    def to_wire(self) -> dict:
        """The msgpack-ready dict (schema ``SCHEMA_VERSION``)."""
        h = self.host
        return {
            "v": SCHEMA_VERSION, "az": self.az, "runtimes": list(self.runtimes),
            "labels": dict(self.labels), "api": self.api, "peer": self.peer,
            "cap": attrs.asdict(self.cap),
            "host": {} if h is None else {"cpus": h.cpus, "mem_mb": h.mem_mb,
                                          "disk_gb": h.disk_gb, "arch": h.arch,
                                          "os": h.os, "kernel": h.kernel},
            "tenants": dict(self.tenants), "tenants_truncated": self.tenants_truncated,
            "ntenants": self.ntenants, "draining": self.draining,
            "disabled_reason": self.disabled_reason,
        }

    @classmethod
    def from_wire(cls, d: dict) -> "NodeMeta":
        """From a decoded wire dict. Raises TypeError/ValueError on a wrong shape
        (``decode`` turns that into None: hostile input is dropped, never raised)."""
        if not isinstance(d, dict):
            raise TypeError("metadata is not a map")
        cap = _map(d.get("cap"))
        host = _map(d.get("host"))
        return cls(
            az=_opt_str(d.get("az")) or "nova",
            runtimes=tuple(_str(r) for r in _list(d.get("runtimes"))),
            labels={_str(k): _str(v) for k, v in _map(d.get("labels")).items()},
            api=_opt_str(d.get("api")) or "", peer=_opt_str(d.get("peer")) or "",
            cap=NodeCapacity(
                cpus=_num(cap.get("cpus"), float), cpu_used=_num(cap.get("cpu_used"), float),
                mem_mb=_num(cap.get("mem_mb"), int),
                mem_used_mb=_num(cap.get("mem_used_mb"), int),
                disk_gb=_num(cap.get("disk_gb"), int),
                disk_used_gb=_num(cap.get("disk_used_gb"), int),
                containers=_num(cap.get("containers"), int),
                yield_cpu=_num(cap.get("yield_cpu"), float),
                yield_mem_mb=_num(cap.get("yield_mem_mb"), int)),
            host=None if not host else HostHardware(
                cpus=_num(host.get("cpus"), int), mem_mb=_num(host.get("mem_mb"), int),
                disk_gb=_num(host.get("disk_gb"), int), arch=_opt_str(host.get("arch")),
                os=_opt_str(host.get("os")), kernel=_opt_str(host.get("kernel"))),
            tenants={_str(k): _num(v, int) for k, v in _map(d.get("tenants")).items()},
            tenants_truncated=bool(d.get("tenants_truncated", False)),
            ntenants=_num(d.get("ntenants", len(_map(d.get("tenants")))), int),
            draining=bool(d.get("draining", False)),
            disabled_reason=(_opt_str(d.get("disabled_reason")) or "")[:200])

    @property
    def hardware(self) -> HostHardware:
        """The host's own totals, or the schedulable ones when the node did not say."""
        if self.host is not None:
            return self.host
        return HostHardware(cpus=int(self.cap.cpus), mem_mb=self.cap.mem_mb,
                            disk_gb=self.cap.disk_gb)

    def summary(self) -> dict:
        """Free capacity and occupancy, for `zund peers`."""
        return {
            "cpu_free": round(self.cap.cpus - self.cap.cpu_used, 2),
            "mem_free_mb": self.cap.mem_mb - self.cap.mem_used_mb,
            "containers": self.cap.containers,
            "tenants": self.ntenants,
            "az": self.az,
            "runtimes": list(self.runtimes),
            "draining": self.draining,
        }


def _map(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError("expected a map")
    return value


def _list(value) -> list:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise TypeError("expected a list")
    return list(value)


def _str(value) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _opt_str(value) -> str | None:
    return None if value is None else _str(value)


def _num(value, kind):
    if value is None:
        return kind(0)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("expected a number")
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return kind(value)


# -- build / encode / decode --------------------------------------------------------------

def build(facts: NodeFacts, usage: capacity.Usage, limits: dict, tenants: dict[str, int],
          top_k: int = DEFAULT_TOP_K, host: capacity.HostFacts | None = None,
          yieldable: capacity.Held | None = None) -> NodeMeta:
    """This node's metadata from its facts, its usage and its limits (``capacity.limits``);
    ``yieldable``: what of ``usage`` warm guests hold that the node gives up for a
    container (``ContainerManager.yieldable_capacity``)."""
    ranked = sorted(tenants.items(), key=lambda kv: (-kv[1], kv[0]))
    return NodeMeta(
        az=facts.az, runtimes=tuple(facts.runtimes), labels=dict(facts.labels),
        api=facts.api, peer=facts.peer,
        cap=NodeCapacity(cpus=limits["cpus"], cpu_used=round(usage.cpu_used, 3),
                         mem_mb=limits["mem_mb"], mem_used_mb=usage.mem_used_mb,
                         disk_gb=limits["disk_gb"], disk_used_gb=usage.disk_used_gb,
                         containers=usage.containers,
                         yield_cpu=round(yieldable.cpus, 3) if yieldable else 0.0,
                         yield_mem_mb=yieldable.mem_mb if yieldable else 0),
        # the host's own totals (what /v1/hosts shows); ``cap`` holds the
        # schedulable limits after reservations and allocation ratios
        host=None if host is None else HostHardware(
            cpus=host.cpus, mem_mb=host.mem_total_mb, disk_gb=host.disk_total_gb,
            arch=host.architecture, os=host.os, kernel=host.kernel_version),
        tenants=dict(ranked[:top_k]), tenants_truncated=len(ranked) > top_k,
        ntenants=len(ranked), draining=facts.draining,
        disabled_reason=facts.disabled_reason)


def encode(meta: NodeMeta) -> bytes:
    """Pack; shrink the tenant table until the blob fits MAX_META_BYTES."""
    wire = meta.to_wire()
    blob = msgpack.packb(wire, use_bin_type=True)
    while len(blob) > MAX_META_BYTES and wire.get("tenants"):
        keep = max(0, len(wire["tenants"]) // 2)
        wire["tenants"] = dict(list(wire["tenants"].items())[:keep])
        wire["tenants_truncated"] = True
        blob = msgpack.packb(wire, use_bin_type=True)
    if len(blob) > MAX_META_BYTES:
        wire["labels"] = {}
        blob = msgpack.packb(wire, use_bin_type=True)
    if len(blob) > MAX_META_BYTES:
        raise ValueError(f"metadata of {len(blob)} bytes exceeds {MAX_META_BYTES}")
    return blob


def decode(blob: bytes) -> NodeMeta | None:
    """The typed metadata, or None when the blob is empty, malformed or not ours."""
    if not blob:
        return None
    try:
        wire = msgpack.unpackb(blob, raw=False, strict_map_key=True, max_bin_len=MAX_META_BYTES,
                               max_str_len=MAX_META_BYTES, max_map_len=256, max_array_len=256)
    except (ValueError, msgpack.UnpackException, TypeError):
        return None
    if not isinstance(wire, dict) or wire.get("v") != SCHEMA_VERSION:
        return None
    try:
        return NodeMeta.from_wire(wire)
    except (TypeError, ValueError, OverflowError):
        return None


def summary(meta: NodeMeta | None) -> dict:
    """Free capacity and occupancy, for `zund peers` ({} when unknown)."""
    return {} if meta is None else meta.summary()
