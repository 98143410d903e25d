"""Prometheus metrics of one node (``prometheus_client``), served at ``GET /metrics``
on the node's metrics listener (``[metrics] host``/``port``, loopback by default:
Zun has no metrics API and a scrape carries fleet-wide figures, so it is not on the
public API port; expose it deliberately).

One :class:`NodeMetrics` per node owns a private ``CollectorRegistry`` (several
nodes run in one process in the simulated tier, so nothing is global). Two kinds
of figures:

- **observed here**: API requests (route, method, status, latency), console
  sessions, gossip member events, peer RPC calls, placements, runtime call latency
  (``observe_*``, called by the thin hooks the composition root installs);
- **read at scrape time** from counters the parts already keep (``stats`` of the
  coordinator, bidder, peer server and gossip service (probes included), the gossip members, the
  record cache fed by the store's change listener), by :class:`_NodeCollector` —
  no global, no double bookkeeping.

Names follow Prometheus conventions: ``zund_<area>_<what>_total`` for counters,
``_seconds`` for durations, base units only.
"""

from __future__ import annotations

import collections
import inspect
import time
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

#: latency buckets (seconds) shared by the API, peer RPC and bid rounds
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)

#: gossip ``stats`` keys that count dropped packets, and the reason label they get
_GOSSIP_DROPS = {"dropped_decrypt": "decrypt", "dropped_decode": "decode",
                 "dropped_cluster": "cluster", "dropped_version": "version",
                 "dropped_oversize": "oversize"}


class NodeMetrics:
    """The metrics of one node. ``sources`` are read at scrape time (any may be
    None): ``coordinator``, ``bidder``, ``peer_api`` (``.stats`` Counters),
    ``gossip`` (``.stats`` dict and ``.members()``), ``records`` (a
    :class:`RecordCensus`), ``quota`` (its ``ledgers``), ``replicator`` and
    ``replica_holder`` (``.stats``), ``figures`` (name -> callable, gauges)."""

    def __init__(self, node: str, clock=None):
        self.node = node
        #: ``seconds()`` for the latencies measured here (the reactor; a task.Clock in sims)
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.api_requests = Counter(
            "zund_api_requests", "Zun API requests answered, by route and status.",
            ["route", "method", "status"], registry=r)
        self.api_latency = Histogram(
            "zund_api_request_duration_seconds", "Zun API request latency by route.",
            ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.peer_latency = Histogram(
            "zund_peer_rpc_duration_seconds", "Peer RPC call latency by operation.",
            ["op"], buckets=LATENCY_BUCKETS, registry=r)
        self.peer_failures = Counter(
            "zund_peer_rpc_failures", "Peer RPC calls that failed, by operation and error.",
            ["op", "error"], registry=r)
        self.bid_round_latency = Histogram(
            "zund_placement_duration_seconds",
            "Time from a create's first bid round to its outcome on the entry node.",
            ["outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.gossip_member_events = Counter(
            "zund_gossip_member_events", "Membership changes seen, by kind "
            "(suspect = a suspicion raised, alive = a suspicion refuted or a rejoin).",
            ["kind"], registry=r)
        self.console_sessions = Counter(
            "zund_console_sessions", "Interactive console sessions, by kind and how they "
            "ended.", ["kind", "outcome"], registry=r)
        self.runtime_call_latency = Histogram(
            "zund_runtime_call_seconds", "Runtime call latency (create, start, inspect, ...) "
            "as seen by the compute manager, by runtime and call; failed calls included.",
            ["runtime", "call"], buckets=LATENCY_BUCKETS, registry=r)
        self.console_active = Gauge(
            "zund_console_sessions_active", "Console sessions open on this node now.",
            registry=r)
        self.sources: dict = {}
        r.register(_NodeCollector(self))

    # -- hooks the composition root installs ----------------------------------------

    def observe_api(self, route: str, method: str, status: int, seconds: float) -> None:
        self.api_requests.labels(route, method, str(status)).inc()
        self.api_latency.labels(route).observe(max(0.0, seconds))

    def observe_peer(self, op: str, seconds: float, error: str | None) -> None:
        self.peer_latency.labels(op).observe(max(0.0, seconds))
        if error is not None:
            self.peer_failures.labels(op, error).inc()

    def observe_placement(self, outcome: str, seconds: float) -> None:
        self.bid_round_latency.labels(outcome).observe(max(0.0, seconds))

    def observe_member(self, kind: str, member) -> None:
        self.gossip_member_events.labels(kind).inc()

    def observe_runtime_call(self, runtime: str, call: str, seconds: float) -> None:
        self.runtime_call_latency.labels(runtime, call).observe(max(0.0, seconds))

    def timed_runtime(self, rt):
        """``rt`` seen through a view that times its async calls into
        ``zund_runtime_call_seconds`` (the compute lifecycle's ``runtime_view``)."""
        return _TimedRuntime(rt, self)

    # -- exposition -----------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """(body, content type) of a scrape."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _TimedRuntime:
    """Delegates everything to the runtime; its coroutine methods are timed with
    the metrics' clock. Not stored anywhere: made per ``Lifecycle.runtime()``."""

    def __init__(self, rt, metrics: NodeMetrics):
        self._rt = rt
        self._metrics = metrics

    def __getattr__(self, attr):
        value = getattr(self._rt, attr)
        if attr.startswith("_") or not inspect.iscoroutinefunction(value):
            return value
        metrics, runtime = self._metrics, str(getattr(self._rt, "name", "?"))
        seconds = metrics.clock.seconds if metrics.clock is not None else time.monotonic

        async def timed(*args, **kwargs):
            began = seconds()
            try:
                return await value(*args, **kwargs)
            finally:
                metrics.observe_runtime_call(runtime, attr, seconds() - began)

        return timed


class RecordCensus:
    """Containers held by this node by (status, runtime), kept current from the
    store's change listener (``Store.add_listener``) so a scrape needs no I/O.
    ``seed(records)`` once at start with the store's list."""

    def __init__(self):
        self._by_uuid: dict[str, tuple[str, str]] = {}

    def seed(self, records) -> None:
        for rec in records:
            self._by_uuid[rec.uuid] = (str(rec.status), str(rec.runtime or ""))

    def on_change(self, change) -> None:
        if change.record is None:
            self._by_uuid.pop(change.uuid, None)
        else:
            rec = change.record
            self._by_uuid[change.uuid] = (str(rec.status), str(rec.runtime or ""))

    def counts(self) -> collections.Counter:
        return collections.Counter(self._by_uuid.values())


class _NodeCollector:
    """Reads the parts' own counters at scrape time."""

    def __init__(self, metrics: NodeMetrics):
        self._m = metrics

    def describe(self):
        return []  # names depend on the sources present; nothing to pre-register

    def collect(self):
        src = self._m.sources
        coord = src.get("coordinator")
        if coord is not None:
            s = coord.stats
            placements = CounterMetricFamily(
                "zund_placements", "Creates placed by this entry node, by outcome.",
                labels=["outcome"])
            for outcome, key in (("placed", "placed"), ("no_valid_host", "no_valid_host"),
                                 ("commit_failed", "commit_failures"),
                                 ("commit_unknown", "commit_unknown"),
                                 ("commit_unresolved", "commit_unresolved")):
                placements.add_metric([outcome], s.get(key, 0))
            yield placements
            bids = CounterMetricFamily("zund_placement_bids",
                                       "Answers to this node's bid requests, by kind.",
                                       labels=["answer"])
            bids.add_metric(["bid"], s.get("bids", 0))
            bids.add_metric(["decline"], s.get("declines", 0))
            yield bids
            fast = CounterMetricFamily(
                "zund_placement_fast_path",
                "BID_COMMITs this entry node sent (the placement fast path), by outcome: "
                "accepted, declined (the bid round followed) or failed.",
                labels=["outcome"])
            for outcome in ("accepted", "declined", "failed"):
                fast.add_metric([outcome], s.get(f"fast_path_{outcome}", 0))
            yield fast
            yield _counter("zund_placement_busy_retries",
                           "Bid rounds this entry node ran again after a pause because every "
                           "candidate refused, some only for reservations of placements in "
                           "flight ([placement] busy_wait_s).", s.get("busy_retries", 0))
        bidder = src.get("bidder")
        if bidder is not None:
            s = bidder.stats
            fam = CounterMetricFamily("zund_bidder_requests",
                                      "Bid requests this node answered, by outcome.",
                                      labels=["outcome"])
            for key in sorted(s):
                if not key.startswith("decline_reason."):
                    fam.add_metric([key], s[key])
            yield fam
            reasons = CounterMetricFamily("zund_bidder_declines",
                                          "Bids this node declined, by reason.",
                                          labels=["reason"])
            for key in sorted(s):
                if key.startswith("decline_reason."):
                    reasons.add_metric([key.split(".", 1)[1]], s[key])
            yield reasons
        peer_api = src.get("peer_api")
        if peer_api is not None:
            s = peer_api.stats
            yield _counter("zund_peer_server_requests", "Peer RPC requests received.",
                           s.get("requests", 0))
            by_op = CounterMetricFamily("zund_peer_server_operations",
                                        "Peer RPC requests decoded, by operation.",
                                        labels=["op"])
            for key in sorted(s):
                if key.startswith("op."):
                    by_op.add_metric([key[3:]], s[key])
            yield by_op
            refused = CounterMetricFamily("zund_peer_server_refused",
                                          "Peer RPC requests refused, by reason.",
                                          labels=["reason"])
            for key in sorted(s):
                if key.startswith("unauthorized."):
                    refused.add_metric([key.split(".", 1)[1]], s[key])
            for key in ("too_large", "bad_body"):
                refused.add_metric([key], s.get(key, 0))
            yield refused
        gossip = src.get("gossip")
        if gossip is not None:
            s = gossip.stats
            for name, key, doc in (
                    ("zund_gossip_packets_sent", "packets_sent", "Gossip packets sent."),
                    ("zund_gossip_packets_received", "packets_received",
                     "Gossip packets received."),
                    ("zund_gossip_push_pull_failures", "push_pull_failed",
                     "Push-pull exchanges that failed.")):
                yield _counter(name, doc, s.get(key, 0))
            dropped = CounterMetricFamily("zund_gossip_dropped_packets",
                                          "Gossip packets dropped, by reason.",
                                          labels=["reason"])
            for key, reason in _GOSSIP_DROPS.items():
                dropped.add_metric([reason], s.get(key, 0))
            yield dropped
            yield _counter("zund_gossip_probes_sent",
                           "Failure-detector probes (direct pings) this node started.",
                           s.get("probes_sent", 0))
            probes = CounterMetricFamily("zund_gossip_probes",
                                         "Failure-detector probes finished, by result "
                                         "(ack = answered directly or through a relay, "
                                         "timeout = no ack by the deadline, unreachable = "
                                         "ended early: nothing listens at the member's "
                                         "address and every relay said so).",
                                         labels=["result"])
            probes.add_metric(["ack"], s.get("probe_acks", 0))
            probes.add_metric(["timeout"], s.get("probe_timeouts", 0))
            probes.add_metric(["unreachable"], s.get("probes_unreachable", 0))
            yield probes
            yield _counter("zund_gossip_indirect_probes_sent",
                           "Indirect probe requests (SWIM ping-req) sent to relays after a "
                           "direct ping went unanswered.", s.get("indirect_probes_sent", 0))
            members = GaugeMetricFamily("zund_gossip_members",
                                        "Members this node knows, by state.",
                                        labels=["state"])
            by_state = collections.Counter(str(getattr(m.state, "name", m.state)).lower()
                                           for m in gossip.members())
            for state in sorted(set(by_state) | {"alive", "suspect", "dead", "left"}):
                members.add_metric([state], by_state.get(state, 0))
            yield members
        census = src.get("records")
        if census is not None:
            fam = GaugeMetricFamily("zund_containers",
                                    "Containers held by this node, by status and runtime.",
                                    labels=["status", "runtime"])
            for (status, runtime), n in sorted(census.counts().items()):
                fam.add_metric([status, runtime], n)
            yield fam
        for name, stats_of, doc in (
                ("zund_replicator_events", "replicator",
                 "Record copies this node sent to its replica holders, by event."),
                ("zund_replica_holder_events", "replica_holder",
                 "Record copies this node received and kept for other nodes, by event.")):
            part = src.get(stats_of)
            if part is not None:
                fam = CounterMetricFamily(name, doc, labels=["event"])
                for key in sorted(part.stats):
                    fam.add_metric([key], part.stats[key])
                yield fam
        quota = src.get("quota")
        if quota is not None and hasattr(quota, "ledgers"):
            ledgers = dict(quota.ledgers)
            yield GaugeMetricFamily("zund_quota_ledgers",
                                    "Projects whose quota ledger this node holds.",
                                    value=len(ledgers))
            yield GaugeMetricFamily("zund_quota_claims",
                                    "Live (not yet settled) quota claims on this node's "
                                    "ledgers.",
                                    value=sum(len(getattr(ledger, "claims", {}))
                                              for ledger in ledgers.values()))
        microvm = src.get("microvm")
        if microvm is not None:
            s = microvm.pool_stats
            creates = CounterMetricFamily(
                "zund_microvm_creates",
                "Micro-VM containers created, by path: warm (took a booted guest of the "
                "warm pool) or cold (a domain of their own, booted at start).",
                labels=["path"])
            for path in ("warm", "cold"):
                creates.add_metric([path], s.get(f"create_{path}", 0))
            yield creates
            boots = CounterMetricFamily(
                "zund_microvm_warm_boots",
                "Warm-pool refills, by outcome: booted, failed, or no_room (the node had "
                "no room for one more warm guest).", labels=["outcome"])
            for outcome in ("booted", "failed", "no_room"):
                boots.add_metric([outcome], s.get(f"warm_{outcome}", 0))
            yield boots
            yield _counter("zund_microvm_warm_yielded",
                           "Warm guests given up (destroyed) to make room for a container "
                           "that fits on this node only without them.",
                           s.get("warm_yielded", 0))
            pledges = CounterMetricFamily(
                "zund_microvm_warm_pledges",
                "Warm guests set aside for a reservation that needed their room, by "
                "outcome: kept (of the container's shape, kept for its create) or "
                "returned (the reservation made no container: back in the pool); the "
                "others are counted in zund_microvm_warm_yielded.", labels=["outcome"])
            for outcome in ("kept", "returned"):
                pledges.add_metric([outcome], s.get(f"warm_{outcome}", 0))
            yield pledges
            held = microvm.held_capacity()
            yield GaugeMetricFamily("zund_microvm_warm_guests",
                                    "Warm-pool guests booted or booting; each holds its "
                                    "shape's cpu and memory on this node.", value=held.count)
            yield GaugeMetricFamily("zund_microvm_warm_memory_mb",
                                    "Memory (MiB) the warm-pool guests hold on this node.",
                                    value=held.mem_mb)
        for name, read in sorted((src.get("figures") or {}).items()):
            value = _safe(read)
            if value is not None:
                yield GaugeMetricFamily(name, f"{name} (read from the node at scrape time).",
                                        value=value)


def _counter(name: str, doc: str, value) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _safe(read: Callable[[], float]):
    try:
        return float(read())
    except Exception:  # a figure that cannot be read now is left out of this scrape
        return None


def metrics_resource(metrics: NodeMetrics):
    """The metrics listener's twisted.web resource: ``GET /metrics`` (text
    exposition format); anything else is 404."""
    from twisted.web.resource import NoResource, Resource

    class _Root(Resource):
        def getChild(self, path, request):
            if path == b"metrics" and not request.postpath:
                return _Metrics()
            return NoResource()

    class _Metrics(Resource):
        isLeaf = True

        def render_GET(self, request):
            body, ctype = metrics.render()
            request.setHeader(b"Content-Type", ctype.encode())
            return body

    return _Root()
