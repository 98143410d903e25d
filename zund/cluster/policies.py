"""Placement policies: score a (request, node) pair, and the filters that veto one.

Pure functions over plain values (STYLE.md §1): no clock, no randomness, no I/O.
The same functions run twice per placement (DESIGN.md "Data flow of one create"):

- on the entry node over a ``NodeState`` built from the node's gossip metadata,
  to choose whom to ask (a hint: it may be stale);
- on the bidder under its node-local lock over a ``NodeState`` built from its own
  store plus its live reservations (the truth: this decides).

A policy is chosen by name among the entry points of group
``zund.placement.policies`` (DESIGN.md "Placement policies"); built in are
``spread`` and ``binpack``. Higher score = better. Scores of the built-in policies
lie in [0, 1]; ``rank_score`` adds ``TIER_WIDTH`` × the tenant tier (0, 1 or 2) on
top, so the tier always dominates the policy's score and ``score // TIER_WIDTH``
recovers the tier.
"""

from __future__ import annotations

import attrs
from stevedore import driver
from stevedore import exception as stevedore_exc

from zund.cluster.metadata import NodeMeta
from zund.cluster.types import PlacementRequest

#: ``[placement] tenant_isolation`` values.
TENANT_MODES = ("off", "prefer", "strict")

#: Rank distance between two tenant tiers; > the range of a policy score ([0, 1]).
TIER_WIDTH = 2.0
#: Rank bonus per named volume the node already holds for the project: above any
#: tenant tier plus policy score (2 × TIER_WIDTH + 1 < 6), so a project's next
#: container goes where its data is; ``score % VOLUME_WIDTH // TIER_WIDTH`` is the tier.
VOLUME_WIDTH = 3 * TIER_WIDTH

#: Slack for float sums of vCPUs (0.1 + 0.2 must fit in 0.3).
EPS = 1e-9


@attrs.frozen
class NodeState:
    """One node's capacity and occupancy as one observer sees it.

    ``cpus``/``mem_mb``/``disk_gb`` are schedulable totals (after host reservations
    and allocation ratios: ``capacity.limits``); ``*_used`` are allocations of
    committed records plus live reservations; ``tenants`` counts containers per
    project, committed plus reserved. ``*_used`` include what warm guests hold;
    ``yield_cpu``/``yield_mem_mb`` is the part of that the node gives up for a
    container (its booted warm guests: ``Bidder._admit``), so a request fits in
    the free capacity plus that.
    """

    name: str
    cpus: float
    mem_mb: int
    disk_gb: int
    cpu_used: float = 0.0
    mem_used_mb: int = 0
    disk_used_gb: int = 0
    tenants: dict = attrs.field(factory=dict)
    az: str | None = None
    runtimes: tuple = ()
    labels: dict = attrs.field(factory=dict)
    draining: bool = False
    yield_cpu: float = 0.0
    yield_mem_mb: int = 0
    #: which of the request's named volumes (``PlacementRequest.volumes``) this node
    #: holds for the request's project (known to the bidder only; empty in gossip)
    volumes: tuple = ()

    @property
    def cpu_free(self) -> float:
        return self.cpus - self.cpu_used

    @property
    def mem_free_mb(self) -> int:
        return self.mem_mb - self.mem_used_mb

    @property
    def disk_free_gb(self) -> int:
        return self.disk_gb - self.disk_used_gb

    @classmethod
    def from_meta(cls, name: str, meta: NodeMeta) -> "NodeState":
        """From a node's decoded gossip metadata (``zund.cluster.metadata.NodeMeta``)."""
        cap = meta.cap
        return cls(
            name=name, cpus=cap.cpus, mem_mb=cap.mem_mb, disk_gb=cap.disk_gb,
            cpu_used=cap.cpu_used, mem_used_mb=cap.mem_used_mb, disk_used_gb=cap.disk_used_gb,
            tenants=dict(meta.tenants), az=meta.az, runtimes=tuple(meta.runtimes),
            labels=dict(meta.labels), draining=meta.draining,
            yield_cpu=cap.yield_cpu, yield_mem_mb=cap.yield_mem_mb)


# -- filters: each returns None (passes) or a short reason ---------------------------
# Reasons start with a stable category word and a colon ("cpu: ..."), so a
# decision record can count them by category.

def fits(req: PlacementRequest, state: NodeState) -> str | None:
    """None when the request's allocation fits in the node's free capacity, with
    what its warm guests would give up (``yield_*``); the reasons count that as free."""
    cpu_free = state.cpu_free + state.yield_cpu
    if req.cpu > cpu_free + EPS:
        return f"cpu: need {req.cpu:g}, free {max(0.0, cpu_free):g} of {state.cpus:g}"
    mem_free = state.mem_free_mb + state.yield_mem_mb
    if req.memory_mb > mem_free:
        return (f"memory: need {req.memory_mb} MiB, "
                f"free {max(0, mem_free)} of {state.mem_mb}")
    if (req.disk_gb or 0) > state.disk_free_gb:
        return f"disk: need {req.disk_gb} GiB, free {max(0, state.disk_free_gb)} of {state.disk_gb}"
    return None


def _others(req: PlacementRequest, state: NodeState) -> list[str]:
    return sorted(p for p, n in state.tenants.items() if n > 0 and p != req.project_id)


def tenant_veto(req: PlacementRequest, state: NodeState, mode: str) -> str | None:
    """``strict`` (DESIGN.md "Placement policies"): a node hosts containers of at most
    one project at a time, so any other project present (committed or reserved) vetoes."""
    if mode != "strict":
        return None
    others = _others(req, state)
    if others:
        return f"tenant: strict isolation, node hosts project {others[0]}"
    return None


def tenant_bonus(req: PlacementRequest, state: NodeState, mode: str) -> float:
    """The tenant tier: 2 = node already hosts the project, 1 = empty node, 0 = others.

    ``prefer`` ranks by it (DESIGN.md). ``strict`` uses it too: filling the nodes a
    project already owns before opening an empty one keeps empty nodes for other
    projects. ``off``: always 0.
    """
    if mode not in ("prefer", "strict"):
        return 0.0
    if state.tenants.get(req.project_id, 0) > 0:
        return 2.0
    if not _others(req, state):
        return 1.0
    return 0.0


def eligible(req: PlacementRequest, state: NodeState) -> str | None:
    """Everything but capacity and tenants: draining, requested host, runtime, AZ, labels."""
    if state.draining:
        return "draining: node is draining"
    if req.requested_host and req.requested_host != state.name:
        return f"host: requested {req.requested_host}"
    if req.runtime not in state.runtimes:
        return f"runtime: {req.runtime} not offered"
    if req.availability_zone and req.availability_zone != state.az:
        return f"az: node is in {state.az}"
    for k, v in (req.labels or {}).items():
        if state.labels.get(k) != v:
            return f"labels: {k}={v} not matched"
    return None


def admit(req: PlacementRequest, state: NodeState, mode: str, policy=None) -> str | None:
    """All filters in order; None when ``state`` may take ``req``, else the first reason."""
    reason = eligible(req, state) or fits(req, state) or tenant_veto(req, state, mode)
    if reason is None and policy is not None:
        reason = policy.veto(req, state)
    return reason


def rank_score(policy, req: PlacementRequest, state: NodeState, mode: str) -> float:
    """What a bid carries: tenant tier first, then the policy's score in [0, 1]."""
    held = len(set(state.volumes) & set(req.volumes or ()))
    return (VOLUME_WIDTH * held + TIER_WIDTH * tenant_bonus(req, state, mode)
            + policy.score(req, state))


# -- policies --------------------------------------------------------------------

def _free_after(total: float, used: float, want: float) -> float:
    """Free fraction of one resource after placing ``want``; 0 when there is none."""
    if total <= 0:
        return 0.0
    return min(1.0, max(0.0, (total - used - want) / total))


class WeightedFreePolicy:
    """Base: the weighted mean of free fractions of cpu and memory after placement.

    Subclasses set ``cpu_weight`` / ``mem_weight`` / ``disk_weight`` (disk counts only
    when the request asks for disk, so disk-less clusters are not skewed).
    """

    name = "weighted-free"
    cpu_weight = 1.0
    mem_weight = 1.0
    disk_weight = 0.0

    def free_fraction(self, req: PlacementRequest, state: NodeState) -> float:
        parts = [(self.cpu_weight, _free_after(state.cpus, state.cpu_used, req.cpu)),
                 (self.mem_weight, _free_after(state.mem_mb, state.mem_used_mb, req.memory_mb))]
        if req.disk_gb and self.disk_weight:
            parts.append((self.disk_weight,
                          _free_after(state.disk_gb, state.disk_used_gb, req.disk_gb)))
        total_w = sum(w for w, _ in parts) or 1.0
        return sum(w * f for w, f in parts) / total_w

    def veto(self, req: PlacementRequest, state: NodeState) -> str | None:
        """A policy may refuse a node outright; the built-ins never do."""
        return None

    def score(self, req: PlacementRequest, state: NodeState) -> float:
        raise NotImplementedError


class SpreadPolicy(WeightedFreePolicy):
    """``spread`` (default): the node with the most free weighted capacity wins."""

    name = "spread"

    def score(self, req: PlacementRequest, state: NodeState) -> float:
        return self.free_fraction(req, state)


class BinpackPolicy(WeightedFreePolicy):
    """``binpack``: the fullest node that still fits wins (keeps whole nodes free)."""

    name = "binpack"

    def score(self, req: PlacementRequest, state: NodeState) -> float:
        return 1.0 - self.free_fraction(req, state)


POLICY_GROUP = "zund.placement.policies"


def load_policy(name: str):
    """An instance of the policy called ``name``: the entry point of that name in group
    ``zund.placement.policies``, loaded by stevedore. Unknown names raise ``ValueError``."""
    try:
        manager = driver.DriverManager(POLICY_GROUP, name, invoke_on_load=True)
    except stevedore_exc.NoMatches as e:
        raise ValueError(
            f"unknown placement policy {name!r} (entry point group {POLICY_GROUP})") from e
    return manager.driver
