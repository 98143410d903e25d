"""The entry node's coordinator: candidates, a bid round, commit/release, retries.

DESIGN.md "Data flow of one create":

1. candidates = gossip view ∩ filters (alive, not draining, AZ, runtime, labels,
   requested host, fits by metadata, tenant policy by metadata) — the metadata is a
   hint, the bidders decide;
2. sample ceil(probe_ratio·k) of them (k = 1 container), all of them when there are
   at most ``probe_all_below`` ("power of d choices": a random sample keeps
   concurrent coordinators with the same stale view from herding onto one node);
3. ask for bids in parallel, each with ``bid_timeout_s`` (a slow or unreachable
   bidder counts as a decline; its reservation, if any, expires on its own);
4. COMMIT to the best bid (ties broken by ``rng``), RELEASE the others (all but one
   fallback at once, that one after the commit; never awaited: the peer client
   batches releases per bidder, ``peer_client`` "notes"); a commit that failed falls back
   to the next bid only once its outcome is known (exactly once, issue 11 item 1):
   a refusal the node answered, or a connection it refused, is definite; a lost or
   garbled answer is resolved by asking the node (COMMIT_STATUS, retried on the
   clock for ``commit_resolve_s``): "held" is the success it was, "not held" fences
   the reservation there (no late COMMIT can land) and allows the fallback, and no
   answer at all ends the create with ``ServiceUnavailable`` — never a second copy;
5. the fast path (``fast_path``, default on): before step 3 of the first round,
   the best of the sampled candidates by its gossiped metadata (the policy's score;
   a hint) is sent one BID_COMMIT under a reservation id the coordinator chose: the
   node bids against its own truth and, if it would bid, commits at once. One RPC
   instead of d bids, a commit and the releases. A decline or a definite failure
   falls back to the bid round (of the other candidates; that node only when it is
   the only one); an unknown outcome is resolved exactly as a commit's (COMMIT_STATUS
   with that reservation id). Each answer carries the node's load after the bid,
   which this coordinator ranks by instead of that node's metadata until newer
   metadata arrives (``fast_path_fresh_s``, ``note_load``);
6. when nothing was committed, a fresh round (fresh view) asks twice as many nodes
   that were not asked yet — or, when every candidate was asked already, asks them
   again but for those that did not answer — up to ``max_rounds``; then, while a
   candidate's latest decline was transient (it holds reservations of placements in
   flight, and its committed records alone would admit the request), it waits and
   asks again (a pause from ``busy_pause_s`` doubling, for at most ``busy_wait_s``);
   then ``NoValidHost``.

The pure parts (filtering, sampling, ordering) are module functions; ``Coordinator``
is the thin async shell around the peer client. Every choice is recorded in a
``decision`` dict (plain values, bounded size) for the container's action events.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Callable

import attrs
from twisted.internet import defer, task
from twisted.logger import Logger

from zund.cluster import policies
from zund.cluster.peer_client import PeerRefused
from zund.cluster.types import Bid, Decline, NodeView, PlacementRequest
from zund.common import errors

log = Logger()

#: Commit failures after which the next bid is tried: the node can no longer take
#: this reservation (expired, unreachable, runtime gone). Anything else (bad input,
#: quota, name conflict) is the request's fault and reaches the caller unchanged.
FALLBACK_ERRORS = (errors.ReservationExpired, errors.ServiceUnavailable, errors.RuntimeFailure,
                   errors.NoValidHost)

#: The outcome of a commit that raised one of these is unknown (the answer was
#: lost, the node failed half-way): it is asked for before any fallback. A refused
#: connection (``peer_client.PeerRefused``) never delivered the commit: definite.
UNKNOWN_OUTCOME_ERRORS = (errors.ServiceUnavailable, errors.RuntimeFailure)

#: Bids kept reserved as fallbacks while the best one is committed; the rest are
#: released at once (a round of d bids would otherwise hold d slots).
KEEP_FALLBACK_BIDS = 1

#: Names listed per round in a decision are capped (1000-node clusters).
_MAX_LISTED = 32


@attrs.frozen
class PlacementConfig:
    """``[placement]`` values the coordinator and the bidder need (built in service.py)."""

    policy: str = "spread"
    tenant_mode: str = "off"
    reservation_ttl_s: float = 10.0
    probe_ratio: float = 2.0
    #: Sparrow's d = 2 even in a small cluster: asking everyone below 8 nodes made a
    #: 5-node placement ~10 RPCs; a round whose 2 bids both fail asks the others
    probe_all_below: int = 2
    #: a create that mounts named volumes must reach the node holding them (only
    #: that bidder knows it holds them, and scores it first): up to this many
    #: candidates, every one is asked
    volume_probe_all_below: int = 8
    bid_timeout_s: float = 2.0
    max_rounds: int = 2
    #: after ``max_rounds``, how long a create keeps asking again (one round after
    #: each pause) while some candidate declined only for reservations of placements
    #: in flight (``Decline.transient``: a losing bid's release is batched up to the
    #: peer's ``notes_delay_s``; a concurrent placement holds its reservation until
    #: it commits); 0: never
    busy_wait_s: float = 2.0
    #: the first pause before asking again (doubles, at most 0.5 s)
    busy_pause_s: float = 0.05
    #: how long an unknown commit outcome is asked about (COMMIT_STATUS) before the
    #: create gives up with ServiceUnavailable (it never falls back while unknown)
    commit_resolve_s: float = 20.0
    #: first pause between COMMIT_STATUS attempts (doubles, at most 2 s)
    commit_status_retry_s: float = 0.25
    #: the one-shot fast path (BID_COMMIT to the best sampled candidate by its
    #: gossiped metadata); False: every create runs the full bid round
    fast_path: bool = True
    #: the fast path's pick declines (``outbid``) when its own score (its truth)
    #: is below the next sampled candidate's score by this coordinator's view minus
    #: this. None: no bar. The bar compares a fresh truth with a staler view, so
    #: it fires as often as nodes drift by more than this between two
    #: publications: with metadata at most 0.5 s late and no ``fast_path_fresh_s``, about
    #: half the picks under load (bench/placement_real: 510 of 1,000); at most
    #: 0.1 s late (``[gossip] metadata_min_interval``) with ``fast_path_fresh_s``, none of
    #: 1,000 on real processes and 2-3 % in bench/placement.py quality (1.5 % of a
    #: node per placement). Without it that quality is 1.03-1.12x the omniscient
    #: placer's max/mean (docs/design.md "Fast path")
    fast_path_slack: float | None = 0.05
    #: how long the load a BID_COMMIT answer carried (the node's truth) overrides
    #: that node's gossip metadata in this coordinator's fast-path ranking (until
    #: newer metadata arrives); 0: metadata only
    fast_path_fresh_s: float = 1.0


# -- pure helpers -------------------------------------------------------------------

def filter_candidates(req: PlacementRequest, views: list[NodeView], mode: str,
                      policy) -> tuple[list[NodeView], Counter]:
    """Nodes worth asking, and the count of the others by reason category.

    Only ``alive`` nodes with metadata qualify; a suspect node might answer, but a
    bid round is short and there are others to ask.
    """
    chosen: list[NodeView] = []
    filtered: Counter = Counter()
    for v, category in classify(req, views, mode, policy):
        if category is None:
            chosen.append(v)
        else:
            filtered[category] += 1
    return chosen, filtered


def classify(req: PlacementRequest, views: list[NodeView], mode: str,
             policy) -> list[tuple[NodeView, str | None]]:
    """Each view with the category word of why it is filtered out (None: a candidate).

    Categories: ``state-<state>``, ``no-metadata``, or the first word of a policy
    reason (``cpu``, ``memory``, ``disk``, ``runtime``, ``az``, ``labels``, ...)."""
    out: list[tuple[NodeView, str | None]] = []
    for v in views:
        if v.state != "alive":
            out.append((v, f"state-{v.state}"))
        elif not v.meta:
            out.append((v, "no-metadata"))
        else:
            reason = policies.admit(req, policies.NodeState.from_meta(v.name, v.meta), mode,
                                    policy)
            out.append((v, None if reason is None else category_of(reason)))
    return out


def category_of(reason: str) -> str:
    """The stable category word a filter or decline reason starts with ("cpu: ...")."""
    return reason.split(":", 1)[0]


def verdict_of(decline: Decline, busy: set) -> str:
    """The NoValidHost category of ``decline``: "busy" when it was transient (held
    only by reservations in flight; its node is added to ``busy``), else its reason's."""
    if decline.transient is True:
        busy.add(decline.node)
        return "busy"
    return category_of(decline.reason)


#: categories that are a shortage of one resource -> (request field, NodeState free
#: attribute, unit shown after the number)
RESOURCES = {
    "cpu": ("cpu", "cpu_free", ""),
    "memory": ("memory_mb", "mem_free_mb", " MiB"),
    "disk": ("disk_gb", "disk_free_gb", " GiB"),
}


def most_free(classified: list[tuple[NodeView, str | None]]) -> dict[str, float]:
    """For each resource category, the most of it free on any node filtered out for
    lack of it (by gossip metadata: the hint the filter used)."""
    out: dict[str, float] = {}
    for v, category in classified:
        if category in RESOURCES:
            free = getattr(policies.NodeState.from_meta(v.name, v.meta), RESOURCES[category][1])
            out[category] = max(out.get(category, free), max(0, free))
    return out


def _num(x: float) -> str:
    return f"{x:g}"


def _phrase(category: str, count: int, req: PlacementRequest, free: dict) -> str:
    """How the explanation says that ``count`` nodes ended with ``category``."""
    be = "was" if count == 1 else "were"
    if category in RESOURCES:
        field, _, unit = RESOURCES[category]
        needed = f"needed {_num(getattr(req, field) or 0)}{unit}"
        if category in free:
            needed += f", most free {_num(free[category])}{unit}"
        return f"lacked {category} ({needed})"
    if category.startswith("state-"):
        return f"{be} {category[len('state-'):]}"
    labels = ", ".join(f"{k}={v}" for k, v in sorted((req.labels or {}).items()))
    fixed = {
        "no-metadata": "had not announced their capacity yet",
        "draining": f"{be} draining",
        "host": f"{be} not the requested host {req.requested_host}",
        "runtime": f"did not offer runtime {req.runtime}",
        "az": f"{be} not in availability zone {req.availability_zone}",
        "labels": f"did not match the labels {labels}",
        "tenant": "hosted another project (tenant_isolation strict)",
        "outbid": "ranked below another candidate (fast path)",
        "busy": f"{be} held by other placements in flight (try again)",
        "timeout": "did not answer the bid in time",
        "unreachable": f"{be} unreachable",
        "error": "failed to answer the bid",
        "exists": "already held this container",
        "commit": "bid but could not commit the reservation",
        "not-tried": f"bid but {be} not tried (fallbacks failed first)",
        "not-asked": f"passed the filters but {be} not asked (sampled out)",
    }
    return fixed.get(category, f"declined ({category})")


def explain_no_host(req: PlacementRequest, verdicts: dict[str, str], free: dict) -> str:
    """Zun's NoValidHost message with what a user can act on: how many nodes were
    considered and why each group could not take the request, e.g. "There are not
    enough hosts available: 3 nodes considered, 3 lacked cpu (needed 8, most free 2)".

    ``verdicts``: node name -> the category of its last refusal; ``free``: see
    ``most_free``. Pure; groups are listed largest first."""
    head = errors.NoValidHost.message.rstrip(".")
    if not verdicts:
        return f"{head}: no node is known yet (this node has not joined a cluster)"
    n = len(verdicts)
    parts = [f"{n} node{'' if n == 1 else 's'} considered"]
    for category, count in sorted(Counter(verdicts.values()).items(),
                                  key=lambda kv: (-kv[1], kv[0])):
        parts.append(f"{count} {_phrase(category, count, req, free)}")
    return f"{head}: " + ", ".join(parts)


def probe_size(n_candidates: int, probe_ratio: float, probe_all_below: int, round_no: int = 1,
               k: int = 1) -> int:
    """How many to ask in round ``round_no`` (1-based): ceil(probe_ratio·k), doubled
    each later round; everyone when the candidates are few."""
    if n_candidates <= probe_all_below:
        return n_candidates
    size = math.ceil(probe_ratio * k) * 2 ** (round_no - 1)
    return max(1, min(n_candidates, size))


def sample(candidates: list, size: int, rng: random.Random) -> list:
    """``size`` distinct candidates chosen uniformly (all of them, shuffled, when fewer)."""
    if size >= len(candidates):
        out = list(candidates)
        rng.shuffle(out)
        return out
    return rng.sample(candidates, size)


def order_bids(bids: list[Bid], rng: random.Random) -> list[Bid]:
    """Best score first; equal scores in random order (no node is everyone's favourite)."""
    keyed = [(-b.score, rng.random(), b) for b in bids]
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [b for _, _, b in keyed]


def _refused(exc: BaseException) -> bool:
    """Whether ``exc`` says the request never reached the peer (connection refused)."""
    return isinstance(exc, PeerRefused)


def _short(reason: str, limit: int = 160) -> str:
    return reason if len(reason) <= limit else reason[:limit - 1] + "…"


# -- the shell ------------------------------------------------------------------------

class Coordinator:
    """Places requests that arrive at this node (any node can be an entry node).

    ``view``: ``() -> list[NodeView]`` (gossip members incl. this node);
    ``peer_client``: ``IPeerClient``; ``config``: ``PlacementConfig``;
    ``clock``: ``IReactorTime``; ``rng``: ``random.Random``; ``policy``: a policy
    instance (default ``policies.load_policy(config.policy)``).
    """

    def __init__(self, node_name: str, view: Callable[[], list[NodeView]], peer_client, config,
                 clock, rng: random.Random, policy=None):
        if config.tenant_mode not in policies.TENANT_MODES:
            raise ValueError(f"tenant_mode must be one of {policies.TENANT_MODES}")
        self.node_name = node_name
        self._view = view
        self._peers = peer_client
        self.config = config
        self._clock = clock
        self._rng = rng
        self.policy = policy if policy is not None else policies.load_policy(
            getattr(config, "policy", "spread"))
        self.stats = Counter()
        #: node -> (the metadata it supersedes, valid until, load): ``note_load``
        self._fresh: dict[str, tuple] = {}
        #: callables(outcome: "placed"|"no_valid_host", uuid, decision) told of each
        #: outcome (the node's metrics and event journal); must not raise or block
        self.observers: list = []

    def _tell(self, outcome: str, uuid: str, decision: dict) -> None:
        for observer in list(self.observers):
            try:
                observer(outcome, uuid, decision)
            except Exception:
                log.failure("placement.observer_failed")

    async def place(self, req: PlacementRequest, ctx, create, *,
                    note: dict | None = None) -> tuple[object, dict]:
        """Place ``req`` for the RequestContext ``ctx``, committing the
        ``zund.records.CreateRequest`` ``create`` (the uuid is ``req.uuid``; the
        decision travels beside it in the commit): returns (the winner's
        ContainerRecord, decision).

        Raises ``NoValidHost`` (with ``.decision``) when no round produced a commit;
        a commit error outside ``FALLBACK_ERRORS`` propagates (after releasing the
        other bids) with ``.decision`` attached.
        """
        cfg = self.config
        started = self._clock.seconds()
        decision: dict = {
            "entry": self.node_name, "policy": getattr(self.policy, "name", str(self.policy)),
            "tenant_isolation": cfg.tenant_mode, "rounds": [], "winner": None, "why": None,
        }
        # ``note``: extra keys the winner reads in the decision (a heal: zund.cluster.healer)
        decision.update(note or {})
        asked: set[str] = set()
        timed_out: set[str] = set()
        #: node -> category of its latest refusal; resource -> most free (for the
        #: NoValidHost message)
        verdicts: dict[str, str] = {}
        free: dict[str, float] = {}
        seen: set[str] = set()
        #: nodes whose latest answer was a transient decline (``Decline.transient``)
        busy: set[str] = set()
        busy_until = started + max(0.0, getattr(cfg, "busy_wait_s", 0.0))
        pause = getattr(cfg, "busy_pause_s", 0.05)
        round_no = 0
        while True:
            round_no += 1
            if round_no > cfg.max_rounds:
                if not busy or self._clock.seconds() + pause > busy_until:
                    break
                # every candidate refused, some only for reservations in flight
                self.stats["busy_retries"] += 1
                await task.deferLater(self._clock, pause, lambda: None)
                pause = min(pause * 2, 0.5)
            busy = set()
            views = list(self._view())
            classified = classify(req, views, cfg.tenant_mode, self.policy)
            candidates = [v for v, category in classified if category is None]
            filtered = Counter(category for _, category in classified if category is not None)
            verdicts.update((v.name, category) for v, category in classified
                            if category is not None)
            free.update(most_free(classified))
            seen.update(v.name for v in views)
            pool = [v for v in candidates if v.name not in asked]
            if not pool and round_no > 1:
                # Everyone was asked already (a small cluster): declines for capacity or
                # tenancy may have been caused by reservations of concurrent placements
                # that have since been released, so ask the candidates again.
                pool = [v for v in candidates if v.name not in timed_out]
            rnd: dict = {"round": round_no, "candidates": len(candidates),
                         "filtered": dict(filtered), "asked": [], "bids": {}, "declines": {},
                         "commit_failures": {}}
            decision["rounds"].append(rnd)
            if not pool:
                rnd["note"] = "no candidate left to ask"
                break
            all_below = cfg.probe_all_below
            if req.volumes:
                all_below = max(all_below, getattr(cfg, "volume_probe_all_below", 0))
            chosen = sample(pool, probe_size(len(pool), cfg.probe_ratio, all_below, round_no),
                            self._rng)
            fast_asked: list[str] = []
            fallback_note = ""
            if round_no == 1 and self._fast_path_applies(req):
                try:
                    view, outcome = await self._fast_path(chosen, req, ctx, create, decision,
                                                          rnd, started)
                except Exception as e:  # the request's own fault, or an unknown outcome
                    if getattr(e, "decision", None) is None:
                        decision["why"] = f"fast path failed: {type(e).__name__}"
                        e.decision = decision
                    raise
                if outcome is not None and not isinstance(outcome, (Decline, Exception)):
                    self.stats["placed"] += 1
                    self.stats["placed_round_1"] += 1
                    self._tell("placed", req.uuid, decision)
                    return outcome, decision
                # declined, or certainly not taken: the bid round, without that node
                # unless it is the only one (its decline may have been a passing
                # reservation, as a bid round's first round is re-asked in the next)
                asked.add(view.name)
                fast_asked = [view.name]
                fallback_note = f"fast path to {view.name} " + (
                    "declined" if isinstance(outcome, Decline) else "failed") + "; "
                reason = (outcome.reason if isinstance(outcome, Decline)
                          else f"commit: {type(outcome).__name__}")
                verdicts[view.name] = (verdict_of(outcome, busy)
                                       if isinstance(outcome, Decline) else category_of(reason))
                if isinstance(outcome, Exception) or (
                        reason.startswith(("timeout", "unreachable", "error"))
                        and not reason.startswith("error: UnsupportedPeer")):
                    timed_out.add(view.name)  # (a node without BID_COMMIT still bids)
                rest = [v for v in pool if v.name != view.name]
                if not rest:
                    rest = [v for v in pool if v.name not in timed_out]
                if not rest:
                    rnd["asked"] = fast_asked
                    rnd["note"] = "no candidate left to ask"
                    break
                chosen = sample(rest, probe_size(len(rest), cfg.probe_ratio, all_below,
                                                 round_no), self._rng)
            asked.update(v.name for v in chosen)
            rnd["asked"] = (fast_asked + [v.name for v in chosen])[:_MAX_LISTED]
            answers = await self._ask_all(chosen, req)
            by_name = {v.name: v for v in chosen}
            bids = []
            for a in answers:
                if isinstance(a, Bid):
                    bids.append(a)
                    rnd["bids"][a.node] = round(a.score, 6)
                else:
                    rnd["declines"][a.node] = _short(a.reason)
                    verdicts[a.node] = verdict_of(a, busy)
                    if a.reason.startswith(("timeout", "unreachable", "error")):
                        timed_out.add(a.node)
            ordered = order_bids(bids, self._rng)
            # Keep only the best bid and KEEP_FALLBACK_BIDS next ones reserved while
            # committing; every held reservation makes other coordinators' bids decline.
            for b in ordered[1 + KEEP_FALLBACK_BIDS:]:
                verdicts[b.node] = "not-tried"
                self._release(by_name[b.node], b)
            ordered = ordered[:1 + KEEP_FALLBACK_BIDS]
            self.stats["bids"] += len(bids)
            self.stats["declines"] += len(answers) - len(bids)
            try:
                for i, b in enumerate(ordered):
                    try:
                        # the winner records the decision in the container's actions
                        snapshot = {k: v for k, v in decision.items() if k != "rounds"}
                        snapshot.update(winner=b.node, score=round(b.score, 6),
                                        why=fallback_note + self._why(b, ordered, i, round_no),
                                        rounds=decision["rounds"],
                                        # filter + bid rounds, up to sending the commit
                                        elapsed_s=round(self._clock.seconds() - started, 6))
                        record = await self._peers.commit(by_name[b.node], b.reservation_id,
                                                          ctx, req.uuid, snapshot, create)
                    except errors.ZundError as e:
                        record = await self._settle(by_name[b.node], b, ctx, req.uuid, e,
                                                    rnd)
                        if record is None:
                            if not isinstance(e, FALLBACK_ERRORS):
                                raise
                            rnd["commit_failures"][b.node] = _short(
                                f"{type(e).__name__}: {e}")
                            verdicts[b.node] = "commit"
                            self.stats["commit_failures"] += 1
                            # Best effort: frees it now if the failure was on the way back.
                            self._release(by_name[b.node], b)
                            continue
                    decision["winner"] = b.node
                    decision["score"] = round(b.score, 6)
                    decision["why"] = fallback_note + self._why(b, ordered, i, round_no)
                    decision["elapsed_s"] = round(self._clock.seconds() - started, 6)
                    self.stats["placed"] += 1
                    self.stats[f"placed_round_{round_no}"] += 1
                    self._tell("placed", req.uuid, decision)
                    return record, decision
            except Exception as e:  # the request's own fault, or an unknown outcome
                decision["why"] = f"commit refused: {type(e).__name__}"
                e.decision = decision
                raise
            finally:
                winner = decision["winner"]
                for b in ordered:
                    if b.node != winner and b.node not in rnd["commit_failures"]:
                        self._release(by_name[b.node], b)
        decision["why"] = self._why_not(decision)
        decision["elapsed_s"] = round(self._clock.seconds() - started, 6)
        self.stats["no_valid_host"] += 1
        self._tell("no_valid_host", req.uuid, decision)
        # the message becomes the unplaceable record's status_reason: say why
        verdicts.update((name, "not-asked") for name in seen - verdicts.keys())
        exc = errors.NoValidHost(explain_no_host(req, verdicts, free))
        exc.decision = decision
        raise exc

    # -- exactly once ----------------------------------------------------------------------

    async def _settle(self, view: NodeView, bid: Bid, ctx, uuid: str, failure: Exception,
                      rnd: dict):
        """The record when the failed commit took after all; None when it certainly
        did not and never will. Raises ``ServiceUnavailable`` when that cannot be
        known within ``commit_resolve_s`` (no fallback may run: it could make a twin)."""
        if not isinstance(failure, UNKNOWN_OUTCOME_ERRORS) or _refused(failure):
            return None  # the node's own answer, or never delivered: definite
        self.stats["commit_unknown"] += 1
        cfg = self.config
        deadline = self._clock.seconds() + cfg.commit_resolve_s
        pause = cfg.commit_status_retry_s
        attempts = 0
        while True:
            attempts += 1
            try:
                record = await self._peers.commit_status(view, ctx, uuid, bid.reservation_id)
            except errors.ServiceUnavailable as e:
                last = e
            except errors.ZundError as e:  # e.g. a node too old to answer: cannot know
                last = e
                pause = float("inf")
            else:
                rnd.setdefault("commit_resolved", {})[view.name] = (
                    "held" if record is not None else "fenced")
                self.stats["commit_resolved_held" if record is not None
                           else "commit_resolved_fenced"] += 1
                log.info("cluster.placement.commit_resolved uuid={uuid} node={node} "
                         "held={held} attempts={attempts}", uuid=uuid, node=view.name,
                         held=record is not None, attempts=attempts)
                return record
            if self._clock.seconds() + pause > deadline:
                break
            await task.deferLater(self._clock, pause, lambda: None)
            pause = min(pause * 2, 2.0)
        self.stats["commit_unresolved"] += 1
        log.warn("cluster.placement.commit_unresolved uuid={uuid} node={node} "
                 "attempts={attempts} reason={reason}", uuid=uuid, node=view.name,
                 attempts=attempts, reason=str(last))
        exc = errors.ServiceUnavailable(
            reason=f"the placement of container {uuid} on node {view.name} could not be "
                   f"confirmed ({type(failure).__name__}, then {type(last).__name__}); "
                   f"it was not placed anywhere else")
        raise exc from failure

    # -- the fast path -------------------------------------------------------------------

    def _fast_path_applies(self, req: PlacementRequest) -> bool:
        """Whether the first round starts with a BID_COMMIT: on, the peer client has
        it, and the metadata can rank the candidates (only a bidder knows whether it
        holds the request's named volumes: those creates take the bid round)."""
        return (getattr(self.config, "fast_path", False) and not req.volumes
                and hasattr(self._peers, "bid_commit"))

    def new_reservation_id(self) -> str:
        """A reservation id for BID_COMMIT (128 random bits from the injected rng)."""
        return "%032x" % self._rng.getrandbits(128)

    async def _fast_path(self, chosen: list[NodeView], req: PlacementRequest, ctx, create,
                         decision: dict, rnd: dict, started: float):
        """One BID_COMMIT to the best of ``chosen`` by gossiped metadata.

        Returns (that node's view, outcome): the record (placed; ``decision`` is
        complete), a ``Decline``, or the definite failure (an exception in
        ``FALLBACK_ERRORS``: not placed there, and never will be). Raises an error
        that is the request's own fault, or ``ServiceUnavailable`` when the outcome
        cannot be known (``_settle``: never a fallback then)."""
        mode = self.config.tenant_mode
        ranked = []
        for v in chosen:
            state = self._state_of(v)
            ranked.append((-policies.rank_score(self.policy, req, state, mode),
                           self._rng.random(), v))
        ranked.sort(key=lambda t: (t[0], t[1]))
        score, view = -ranked[0][0], ranked[0][2]
        slack = getattr(self.config, "fast_path_slack", None)
        bar = None if slack is None or len(ranked) < 2 else -ranked[1][0] - slack
        rid = self.new_reservation_id()
        why = (f"fast path: best of {len(chosen)} by metadata ({self.policy.name} score "
               f"{score:.4f}), accepted; tenant_isolation={mode}")
        fast = rnd["fast_path"] = {"node": view.name, "of": len(chosen),
                                   "score": round(score, 6)}
        if bar is not None:
            fast["bar"] = round(bar, 6)
        # what the winner records is the decision as it stands if it accepts
        fast["outcome"] = "accepted"
        rnd["asked"] = [view.name]
        snapshot = {k: v for k, v in decision.items() if k != "rounds"}
        snapshot.update(winner=view.name, score=round(score, 6), why=why,
                        rounds=decision["rounds"],
                        elapsed_s=round(self._clock.seconds() - started, 6))
        try:
            outcome = await self._peers.bid_commit(
                view, req, rid, ctx, snapshot, create, bar,
                on_load=lambda load, _v=view: self.note_load(_v, load))
        except errors.ZundError as e:
            outcome = await self._settle(view, Bid(view.name, rid, score, 0.0), ctx, req.uuid,
                                         e, rnd)
            if outcome is None:
                if not isinstance(e, FALLBACK_ERRORS):
                    fast["outcome"] = f"refused: {type(e).__name__}"
                    decision["why"] = f"commit refused: {type(e).__name__}"
                    e.decision = decision
                    raise
                fast["outcome"] = _short(f"failed: {type(e).__name__}: {e}")
                rnd["commit_failures"][view.name] = _short(f"{type(e).__name__}: {e}")
                self.stats["fast_path_failed"] += 1
                return view, e
        if isinstance(outcome, Decline):
            fast["outcome"] = _short(f"declined: {outcome.reason}")
            rnd["declines"][view.name] = _short(outcome.reason)
            self.stats["fast_path_declined"] += 1
            return view, attrs.evolve(outcome, node=view.name)
        decision.update(winner=view.name, score=round(score, 6), why=why,
                        elapsed_s=round(self._clock.seconds() - started, 6))
        self.stats["fast_path_accepted"] += 1
        return view, outcome

    # -- the fresher view ---------------------------------------------------------------

    def note_load(self, view: NodeView, load: dict | None) -> None:
        """Keep ``load`` (``bidding.load_of``: the node's truth, as a BID_COMMIT answer
        carries it) as fresher than ``view.meta`` until that node's next gossip
        metadata arrives or ``fast_path_fresh_s`` passes (``_state_of``)."""
        ttl = getattr(self.config, "fast_path_fresh_s", 0.0)
        if not ttl or not isinstance(load, dict) or view.meta is None:
            return
        self._fresh[view.name] = (view.meta, self._clock.seconds() + ttl, load)
        self.stats["fast_path_loads_heard"] += 1

    def _state_of(self, view: NodeView) -> policies.NodeState:
        """The view of ``view``'s node the fast path ranks by: its gossip metadata,
        overlaid with the load its latest BID_COMMIT answer carried to this
        coordinator while no newer metadata has arrived (so a coordinator sees its
        own placements at once, not after the next publication)."""
        state = policies.NodeState.from_meta(view.name, view.meta)
        entry = self._fresh.get(view.name)
        if entry is not None:
            meta, until, load = entry
            if meta is not view.meta or self._clock.seconds() > until:
                del self._fresh[view.name]
            else:
                try:
                    tenants = dict(state.tenants)
                    project = load.get("project")
                    if project is not None:
                        if load.get("project_n", 0) > 0:
                            tenants[project] = int(load["project_n"])
                        else:
                            tenants.pop(project, None)
                    state = attrs.evolve(state, cpu_used=float(load["cpu_used"]),
                                         mem_used_mb=int(load["mem_used_mb"]),
                                         disk_used_gb=int(load["disk_used_gb"]),
                                         tenants=tenants)
                except (KeyError, TypeError, ValueError):
                    del self._fresh[view.name]
        return state

    # -- bid round ----------------------------------------------------------------------

    async def _ask_all(self, chosen: list[NodeView], req: PlacementRequest) -> list:
        ds = [defer.Deferred.fromCoroutine(self._ask_one(v, req)) for v in chosen]
        return await defer.gatherResults(ds)

    async def _ask_one(self, view: NodeView, req: PlacementRequest) -> Bid | Decline:
        """Never raises: a timeout or a failure is a Decline naming it."""
        timeout = self.config.bid_timeout_s
        try:
            d = defer.ensureDeferred(self._peers.bid(view, req))
            d.addTimeout(timeout, self._clock)
            answer = await d
        except defer.TimeoutError:
            return Decline(view.name, f"timeout: no answer within {timeout:g}s")
        except defer.CancelledError:
            return Decline(view.name, f"timeout: no answer within {timeout:g}s")
        except Exception as e:  # a broken peer must not break the round
            log.failure("cluster.placement.bid_failed node={node}", node=view.name)
            return Decline(view.name, f"error: {type(e).__name__}")
        if not isinstance(answer, (Bid, Decline)):
            return Decline(view.name, f"error: unexpected answer {type(answer).__name__}")
        if answer.node != view.name:  # answers are attributed to whom we asked
            answer = attrs.evolve(answer, node=view.name)
        return answer

    def _release(self, view: NodeView, bid: Bid) -> None:
        """Fire and forget: the client is not kept waiting; the TTL is the safety net."""
        d = defer.ensureDeferred(self._peers.release(view, bid.reservation_id))
        d.addErrback(lambda f: log.failure("cluster.placement.release_failed node={node}", f,
                                           node=view.name))

    # -- explanations ---------------------------------------------------------------------

    def _why(self, winner: Bid, ordered: list[Bid], index: int, round_no: int) -> str:
        mode = self.config.tenant_mode
        tier = ""
        if mode != "off":
            tier = {2: ", hosts the project", 1: ", empty node"}.get(
                int(winner.score % policies.VOLUME_WIDTH // policies.TIER_WIDTH), "")
        if winner.score >= policies.VOLUME_WIDTH:
            tier += ", holds the project's volumes"
        base = (f"best {self.policy.name} score {winner.score:.4f} of {len(ordered)} bid(s)"
                f"{tier}; tenant_isolation={mode}")
        if index:
            base = f"next best after {index} failed commit(s): " + base
        if round_no > 1:
            base += f"; round {round_no}"
        return base

    @staticmethod
    def _why_not(decision: dict) -> str:
        asked = sum(len(r["asked"]) for r in decision["rounds"])
        declines = Counter()
        for r in decision["rounds"]:
            for reason in r["declines"].values():
                declines[reason.split(":", 1)[0]] += 1
        last = decision["rounds"][-1] if decision["rounds"] else {}
        if not asked:
            return f"no candidate passed the filters: {dict(last.get('filtered', {}))}"
        return (f"no bid could be committed after {len(decision['rounds'])} round(s), "
                f"{asked} node(s) asked; declines: {dict(declines)}")
