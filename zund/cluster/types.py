"""Plain values exchanged by the placement parts (coordinator, bidder, peer RPC).

Everything here is msgpack-friendly via ``to_wire()`` / ``from_wire()``.
"""

from __future__ import annotations

import attrs
from zope.interface import Interface


@attrs.frozen
class PlacementRequest:
    """What a coordinator asks bidders about. Units: cpu vCPUs, memory MiB, disk GiB."""

    request_id: str
    uuid: str                      # chosen by the entry node; the record keeps it
    project_id: str
    user_id: str
    cpu: float
    memory_mb: int
    disk_gb: int = 0
    runtime: str = "runc"
    availability_zone: str | None = None
    labels: dict = attrs.field(factory=dict)   # hints label:k=v -> {k: v}
    requested_host: str | None = None           # admin-only `host` field
    #: the project's named volumes the create mounts: a node that holds them is
    #: preferred (``policies.VOLUME_WIDTH``; zund.compute.volumes)
    volumes: tuple = ()
    #: the image it runs: a bidder that sets warm guests aside for it picks one of
    #: its own shape first (``LibvirtRuntime.yield_capacity``)
    image: str = ""

    def to_wire(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_wire(cls, d: dict) -> "PlacementRequest":
        known = {a.name for a in attrs.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@attrs.frozen
class Bid:
    node: str
    reservation_id: str
    score: float
    expires_at: float  # bidder's clock, informational


@attrs.frozen
class Decline:
    node: str
    reason: str
    #: declined only for reservations held by placements in flight (its committed
    #: records alone would admit the request): it may pass once those commit or are
    #: released, so the coordinator asks again for a while (``PlacementConfig.busy_wait_s``)
    transient: bool = False


@attrs.frozen
class NodeView:
    """One peer as the gossip view shows it (the coordinator's candidate input)."""

    name: str
    state: str           # alive | suspect | dead | left
    api: str             # host:port of its Zun API
    peer: str            # host:port of its peer RPC
    meta: object         # zund.cluster.metadata.NodeMeta, or None if unknown
    #: when its gossip state last changed (epoch seconds on the gossip clock);
    #: None when unknown
    changed_at: float | None = None


class IPeerClient(Interface):
    """Node-to-node calls a coordinator makes (peer RPC, or in-memory in simulations)."""

    async def bid(node: NodeView, request: PlacementRequest):
        """-> Bid | Decline. Network failure/timeouts -> Decline(reason=...)."""

    async def commit(node: NodeView, reservation_id: str, ctx, uuid: str, placement: dict,
                     request):
        """Turn the reservation into the container ``uuid`` on ``node``, created from
        the ``zund.records.CreateRequest`` ``request`` for the RequestContext ``ctx``;
        ``placement`` is the entry node's decision. Returns the ContainerRecord.
        Raises zund.common.errors.ZundError subclasses on refusal (e.g.
        ReservationExpired) and ServiceUnavailable on network failure."""

    async def bid_commit(node: NodeView, request: PlacementRequest, reservation_id: str, ctx,
                         placement: dict | None, create, bar: float | None = None,
                         on_load=None):
        """The placement fast path: ``node`` bids for ``request`` and, if it would
        (and its own score is not below ``bar``), commits at once under the
        coordinator-chosen ``reservation_id``. -> the ContainerRecord, or a Decline.
        Raises as ``commit`` does (an unknown outcome is resolved with
        ``commit_status``). ``on_load(dict)``, when given, hears the node's load
        after its answer (accept or decline) when the answer carries one; the
        coordinator ranks by it until that node's next metadata."""

    async def release(node: NodeView, reservation_id: str) -> None:
        """Best effort; never raises."""

    async def commit_status(node: NodeView, ctx, uuid: str, reservation_id: str):
        """-> the ContainerRecord ``uuid`` when ``node`` holds it, else None (and the
        reservation is then fenced on ``node``: no later COMMIT of it succeeds).
        Raises ServiceUnavailable when ``node`` does not answer."""
