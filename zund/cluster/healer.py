"""Self-healing, drain and forced-down without a controller (issue 11 items 3, 4).

Why: a node is the single authority for its containers, so when it dies nobody
runs them. Its records survive as replica copies (``zund.cluster.replicas``);
the holders of those copies re-place the ``auto_heal`` ones.

- **Who heals.** For a copy of container ``uuid`` whose owner is gone (gossip
  ``dead``/``left``, or forced down by an operator), exactly one node acts: the
  first of ``holders(uuid, owner, live members, R)`` — the same rendezvous order
  the replicator uses, computed over the live members, so every node names the
  same healer, and when that healer dies too the next one in the order takes over
  on its next tick (the replicator hands the copies on to it).
- **How.** A normal bid round (``Coordinator.place``) with the container's own
  uuid, name and spec, for the record's own project and user. The decision carries
  ``heal = {from, generation, because}``; the winner's lifecycle starts the new
  record's generation at the dead copy's plus :data:`HEAL_GENERATION_STEP` (so no
  write the dead node made after its last replicated copy can outrank it) and
  writes a ``heal`` action "healed from node X to node Y, because Z".
- **Exactly once.** Before placing, every live node is asked whether it holds the
  uuid (LOCATE); any node not answering postpones the heal to a later tick, so a
  commit whose answer was lost (the coordinator resolves it or fails with 503) is
  found instead of placed twice. The gone owner itself is asked too (at most
  ``owner_probe_s``): gossip can call a node dead that still answers its peer
  port (lost UDP; a partition healing, where gossip lags), and an answer — held,
  not found, or an error it sent itself — means it is alive, so the heal waits.
  Only no answer (refused, timed out, unreachable) lets it go on; a forced-down
  owner is not asked.
- **The dead node returns.** :meth:`Healer.check_moved` (at start, on each change
  of the live membership, once more ``hold_max_s`` after such a change — a heal
  a peer had in flight may commit after the first look — and every
  ``check_interval_s``) asks the live nodes
  about this node's own ``auto_heal`` records: one another node holds with a
  higher generation moved; the local copy is removed (runtime object removed
  without being started, then the record), so no twin is kept. Its tombstone is
  lower than the new owner's generation and cannot hide it.
- **Drain** (``service disable`` / ``zund drain``): this node sets ``draining``
  (gossiped: it stops winning bids) and moves its ``auto_heal`` containers one at
  a time with the same mechanism — a cold move: the local runtime object is
  removed first, then the copy is placed elsewhere, then the local record goes
  (no host with room: made again here, and the drain waits);
  ``disabled_reason`` carries the progress.
- **Forced down** (``service force_down``): every node is told (peer op
  ``SERVICE_STATE``) and from then on sees that node as ``dead`` through
  :class:`ServiceMarks` (placement, replicas, reads, healing), without waiting for
  gossip.

Who may call: the composition root builds :class:`ServiceMarks` and
:class:`Healer`; the peer server hands ``SERVICE_STATE`` to
:meth:`Healer.apply_service_state`; the API and the control socket call
:meth:`Healer.set_service_state` (via :class:`ServiceAdmin`).
"""

from __future__ import annotations

import collections
import json
import os
from typing import Callable

import attrs
from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from zund.cluster.facade import hint_labels
from zund.cluster.messages import ServiceMarksExchange, ServiceStateRequest
from zund.cluster.peer_client import PeerTimeout, PeerUnreachable
from zund.cluster.replicas import GONE_STATES, LIVE_STATES, holders
from zund.cluster.types import NodeView, PlacementRequest
from zund.common import errors
from zund.common.context import RequestContext
from zund.compute.volumes import named_volumes
from zund.records import ContainerRecord, CreateRequest

log = Logger()

#: a healed record's generation starts this much above the dead copy's
HEAL_GENERATION_STEP = 1 << 20
#: restart policies whose containers are healed (with ``auto_heal``)
HEALED_POLICIES = frozenset({"always"})
#: statuses never healed: being removed, or never placed
NOT_HEALED_STATUSES = frozenset({"Deleting"})


def heals(rec: ContainerRecord | None) -> bool:
    """Whether ``rec`` is a container self-healing moves: Zun's ``auto_heal`` with
    restart policy ``always``, placed on a node, not being deleted."""
    if rec is None or not rec.auto_heal or not rec.placed:
        return False
    policy = (rec.restart_policy or {}).get("Name") or (rec.restart_policy or {}).get("name")
    return policy in HEALED_POLICIES and rec.status not in NOT_HEALED_STATUSES


def request_of(rec: ContainerRecord) -> CreateRequest:
    """The create request that makes ``rec`` again elsewhere (same name and spec,
    started; no host pinning: the old host is the one it leaves)."""
    return CreateRequest(
        image=rec.image, name=rec.name or rec.uuid, cpu=float(rec.cpu or 0),
        memory=int(rec.memory or 0), disk=rec.disk,
        command=tuple(rec.command) if rec.command is not None else None,
        entrypoint=tuple(rec.entrypoint) if rec.entrypoint is not None else None,
        cpu_policy=rec.cpu_policy, workdir=rec.workdir, hostname=rec.hostname,
        environment=dict(rec.environment), labels=dict(rec.labels),
        restart_policy=rec.restart_policy, image_driver=rec.image_driver,
        image_pull_policy=rec.image_pull_policy, interactive=rec.interactive, tty=rec.tty,
        auto_remove=rec.auto_remove, auto_heal=rec.auto_heal, privileged=rec.privileged,
        runtime=rec.runtime, exposed_ports=dict(rec.exposed_ports),
        healthcheck=dict(rec.healthcheck), hints=dict(rec.hints), run=True,
        registry_id=rec.registry_id, mounts=tuple(dict(m) for m in rec.mounts))


def placement_request(rec: ContainerRecord, request: CreateRequest,
                      ctx: RequestContext) -> PlacementRequest:
    """The bid round's question for re-placing ``rec`` (its own uuid and size)."""
    return PlacementRequest(
        request_id=ctx.request_id, uuid=rec.uuid, project_id=rec.project_id,
        user_id=rec.user_id, cpu=float(request.cpu), memory_mb=int(request.memory),
        disk_gb=int(request.disk or 0), runtime=rec.runtime or "runc",
        availability_zone=None, labels=hint_labels(request.hints), requested_host=None,
        volumes=tuple(named_volumes(request.mounts)), image=rec.image or "")


class ServiceMarks:
    """Operator marks that every node applies to its gossip view: nodes forced
    down (Zun's ``forced_down``) read as ``dead``.

    Each mark is ``host -> (stamp, forced_down)``, last writer wins by stamp (the
    receiving node's clock when an operator's ``SERVICE_STATE`` arrives). Marks
    survive a restart (``path``: a small JSON file, written atomically on every
    change, read by :meth:`load` in ``Healer.startService``) and travel between
    nodes (``SERVICE_MARKS``, :meth:`merge`): a node that joins later, or was
    down when the operator acted, learns them from its peers. A cleared mark
    (``forced_down`` false) is kept as such so an older "forced" copy cannot
    come back. A missing or malformed file is no marks, never an error.
    ``local``: this node's name; its own mark is kept and passed on, but it never
    reads itself as dead."""

    #: marks kept at most (one per node ever marked)
    MAX_MARKS = 4096
    #: the file is refused above this size
    MAX_BYTES = 512 * 1024

    def __init__(self, path: str | None = None, local: str | None = None):
        self.forced_down: set[str] = set()
        self.path = path
        self.local = local
        self.stamps: dict[str, tuple[float, bool]] = {}

    def set(self, host: str, forced_down: bool, stamp: float) -> None:
        """An operator's mark, applied whatever this node knew (it is the newest)."""
        old = self.stamps.get(host)
        if old is not None and stamp <= old[0]:
            stamp = old[0] + 1e-3  # never behind what this node already kept
        self._put(host, stamp, forced_down)
        self.save()

    def merge(self, marks) -> list[str]:
        """Keep each ``(host, stamp, forced_down)`` newer than this node's; returns
        the hosts whose mark changed."""
        changed = []
        for host, stamp, forced in marks:
            old = self.stamps.get(host)
            if old is not None and (stamp, forced) <= old:
                continue
            if old is None and len(self.stamps) >= self.MAX_MARKS:
                continue
            self._put(host, stamp, forced)
            changed.append(host)
        if changed:
            self.save()
        return changed

    def entries(self) -> tuple:
        return tuple((h, t, f) for h, (t, f) in sorted(self.stamps.items()))

    def _put(self, host: str, stamp: float, forced: bool) -> None:
        self.stamps[host] = (float(stamp), bool(forced))
        if forced and host != self.local:
            self.forced_down.add(host)
        else:
            self.forced_down.discard(host)

    def load(self) -> None:
        """Read the marks saved by a previous run (startService: no I/O before)."""
        if not self.path:
            return
        try:
            with open(self.path, "rb") as f:
                data = f.read(self.MAX_BYTES + 1)
            doc = json.loads(data) if len(data) <= self.MAX_BYTES else {}
            marks = [(str(h), float(t), bool(f)) for h, t, f in doc.get("marks", [])
                     if isinstance(h, str)] if doc.get("v") == 1 else []
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, AttributeError) as e:
            log.warn("healer.marks_unreadable path={path} error={error}", path=self.path,
                     error=str(e))
            return
        for host, stamp, forced in marks[:self.MAX_MARKS]:
            self._put(host, stamp, forced)

    def save(self) -> None:
        if not self.path:
            return
        tmp = f"{self.path}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump({"v": 1, "marks": [list(e) for e in self.entries()]}, f)
            os.replace(tmp, self.path)
        except OSError as e:
            log.warn("healer.marks_not_saved path={path} error={error}", path=self.path,
                     error=str(e))

    def wrap(self, nodes: Callable[[], list[NodeView]]) -> Callable[[], list[NodeView]]:
        def view() -> list[NodeView]:
            if not self.forced_down:
                return nodes()
            return [attrs.evolve(n, state="dead") if n.name in self.forced_down
                    and n.state not in GONE_STATES else n for n in nodes()]
        return view


class Healer(service.Service):
    """Heals gone owners' ``auto_heal`` containers, removes this node's moved
    copies and drains this node (see the module doc).

    ``node``: this node; ``store``: its Store; ``view``: ``() -> list[NodeView]``
    (already wrapped by ``marks``); ``coordinator``: a ``Coordinator``;
    ``client``: the PeerClient (locate, call); ``lifecycle``: this node's
    ``Lifecycle`` (``do_delete``); ``local``: its ``LocalNode``; ``clock``;
    ``replicas``: R; ``tick_s``: how often gone owners are looked for;
    ``check_interval_s``: how often moved copies are looked for;
    ``retry_s``: the pause after a heal that could not be done.
    ``stats`` counts healed, heal_failed, postponed, moved_removed, drained.
    """

    name = "healer"

    def __init__(self, node: str, store, view: Callable[[], list[NodeView]], coordinator,
                 client, lifecycle, local, clock, marks: ServiceMarks | None = None, *,
                 replicas: int = 2, tick_s: float = 1.0, check_interval_s: float = 300.0,
                 retry_s: float = 5.0, max_parallel: int = 4, hold_max_s: float = 30.0,
                 owner_probe_s: float = 1.0,
                 resume: Callable | None = None,
                 new_request_id: Callable[[], str] | None = None):
        self.node = node
        self.store = store
        self.view = view
        self.coordinator = coordinator
        self.client = client
        self.lifecycle = lifecycle
        self.local = local
        self.clock = clock
        self.marks = marks if marks is not None else ServiceMarks(local=node)
        if self.marks.local is None:
            self.marks.local = node
        self.replicas = replicas
        self.tick_s = tick_s
        self.check_interval_s = check_interval_s
        self.retry_s = retry_s
        self.max_parallel = max_parallel
        self.owner_probe_s = owner_probe_s
        self._new_request_id = new_request_id
        #: ``async resume(uuid, action)``: start-up recovery's held work
        #: (``Reconciler.resume``); ``hold_max_s``: how long held work waits for a
        #: first peer before a lone node resumes it
        self.resume = resume
        self.hold_max_s = hold_max_s
        #: uuid -> the recovery action held until the moved check (create, start...)
        self.held: dict[str, str] = {}
        self._started_at = 0.0
        self.stats: collections.Counter = collections.Counter()
        #: uuid -> clock time before which it is not tried again
        self._not_before: dict[str, float] = {}
        self._inflight: set[str] = set()
        self._members: frozenset = frozenset()
        self._next_check = 0.0
        self._recheck_at = 0.0
        self._checking: defer.Deferred | None = None
        self._draining: defer.Deferred | None = None
        self._drain_reason: str = ""
        self._loop: task.LoopingCall | None = None
        self._active = False
        #: uuid -> seconds from the first tick that saw its owner gone to the heal
        self.heal_times: dict[str, float] = {}
        self._gone_seen: dict[str, float] = {}

    # -- lifecycle -----------------------------------------------------------------

    def startService(self):
        super().startService()
        self.marks.load()
        self._active = True
        self._next_check = self.clock.seconds()
        self._started_at = self.clock.seconds()
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.tick_s, now=False)

    def stopService(self):
        super().stopService()
        self._active = False
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def _spawn(self, coro, what: str) -> defer.Deferred:
        d = defer.Deferred.fromCoroutine(coro)
        d.addErrback(lambda f: log.failure("healer.{what}_failed", f, what=what))
        return d

    def _request_id(self) -> str:
        if self._new_request_id is not None:
            return self._new_request_id()
        return RequestContext(user_id="", project_id="").request_id

    # -- the view ------------------------------------------------------------------

    def _live(self) -> dict[str, NodeView]:
        return {n.name: n for n in self.view() if n.state in LIVE_STATES and n.peer}

    def _gone(self) -> set[str]:
        """Owners whose containers are healed: declared dead (or forced down, which
        the view shows as dead). A node that left gracefully is coming back."""
        return {n.name for n in self.view() if n.state == "dead"} - {self.node}

    def has_majority(self) -> bool:
        """Split-brain guard: this node heals only while it sees a strict majority of
        the members it knows alive (itself included). A node cut off from the
        others sees them all dead, but it cannot tell a partition from their death:
        the minority side must not re-place containers the majority still runs.
        Members an operator forced down do not count (the operator says they are
        gone), nor do members that left gracefully. Suspect members count among the
        members but not among the alive: a node whose side of a cut is still being
        detected (the far side partly suspect, partly dead) must not see a majority
        in the suspects it cannot reach. A 2-node cluster therefore heals only from
        a forced-down node (``service forcedown``)."""
        alive, doubtful = {self.node}, set()
        for n in self.view():
            if n.state == "alive":
                alive.add(n.name)
            elif n.state in LIVE_STATES or (
                    n.state == "dead" and n.name not in self.marks.forced_down):
                doubtful.add(n.name)  # suspect, or dead
        doubtful -= alive
        return 2 * len(alive) > len(alive) + len(doubtful)

    def healer_of(self, uuid: str, owner: str) -> str | None:
        """The node that heals ``uuid`` of gone ``owner``: the first live holder."""
        members = (set(self._live()) | {self.node}) - {owner}
        order = holders(uuid, owner, members, self.replicas)
        return order[0] if order else None

    def _tick(self) -> None:
        if not self._active:
            return
        now = self.clock.seconds()
        members = frozenset(self._live()) | {self.node}
        if members != self._members:
            joined = members - self._members
            self._members = members
            self._next_check = now
            # and once more after hold_max_s: a heal of one of our records that a
            # peer had in flight when it came back commits after this first look
            self._recheck_at = now + self.hold_max_s
            if joined:
                # a node that joined (or this node, joining) may have missed marks
                self._spawn(self.sync_marks(), "sync_marks")
        recheck = 0.0 < self._recheck_at <= now
        if (now >= self._next_check or recheck) \
                and (self._checking is None or self._checking.called):
            if recheck:
                self._recheck_at = 0.0
            # for hold_max_s after a start, look again every retry_s: a peer that
            # still took this node for dead may finish a heal of a record this node
            # resumed; its higher generation wins and this copy must go now, not
            # check_interval_s later (a twin found by the chaos campaign)
            soon = now - self._started_at < self.hold_max_s
            self._next_check = now + (self.retry_s if soon else self.check_interval_s)
            self._checking = self._spawn(self.check_moved(), "check_moved")
        if self.local.facts.draining and (self._draining is None or self._draining.called):
            self._draining = self._spawn(self.drain_step(), "drain")
        self._spawn(self.heal_gone(), "heal")

    # -- healing gone owners' containers ------------------------------------------------

    async def heal_gone(self) -> int:
        """Start a heal of every copy this node must heal; returns how many started."""
        gone = self._gone()
        if not gone:
            self._gone_seen.clear()
            return 0
        if not self.has_majority():
            if not self.stats["no_majority"]:
                log.warn("healer.no_majority gone={gone}", gone=",".join(sorted(gone)))
            self.stats["no_majority"] += 1
            return 0
        now = self.clock.seconds()
        started = 0
        for copy in await self.store.list_replicas(sorted(gone)):
            rec = copy.record
            if not heals(rec) or copy.owner not in gone:
                continue
            self._gone_seen.setdefault(copy.uuid, now)
            if copy.uuid in self._inflight or self._not_before.get(copy.uuid, 0) > now:
                continue
            if len(self._inflight) >= self.max_parallel:
                break
            if self.healer_of(copy.uuid, copy.owner) != self.node:
                continue
            because = (f"node {copy.owner} was forced down"
                       if copy.owner in self.marks.forced_down
                       else f"node {copy.owner} was declared dead")
            self._inflight.add(copy.uuid)
            started += 1
            d = self._spawn(self.heal(rec, copy.owner, copy.generation, because), "heal")
            d.addBoth(lambda _r, u=copy.uuid: self._inflight.discard(u))
        return started

    async def _held_elsewhere(self, uuid: str, exclude: str | None = None):
        """(node, record) of a live node (not ``exclude``) holding ``uuid``; None
        when every live node answered that it does not; raises
        ``ServiceUnavailable`` when some did not answer (the heal waits)."""
        ctx = RequestContext.admin()
        live = [n for name, n in self._live().items() if name not in (self.node, exclude)]
        calls = [defer.Deferred.fromCoroutine(self.client.locate(n, ctx, uuid, True))
                 for n in live]
        results = await defer.DeferredList(calls, consumeErrors=True)
        unanswered = []
        for node, (ok, value) in zip(live, results):
            if ok:
                return node.name, value
            if not value.check(errors.ContainerNotFound):
                unanswered.append(node.name)
        if unanswered:
            raise errors.ServiceUnavailable(
                reason=f"no answer from {', '.join(sorted(unanswered))}")
        return None

    async def _owner_answers(self, uuid: str, owner: str) -> bool:
        """Whether ``owner`` (gone in gossip) still answers a LOCATE of ``uuid``
        within ``owner_probe_s``: held, not found, or an error of its own (a 503
        while it starts or stops, say), it is alive. No answer (refused, timed out,
        unreachable, an answer not sealed for this request: the peer client's
        PeerTimeout / PeerUnreachable) is what a dead node gives; so does a node
        whose answer is lost, which is why this only ever postpones a heal."""
        node = next((n for n in self.view() if n.name == owner), None)
        if node is None or not node.peer:
            return False
        call = defer.Deferred.fromCoroutine(
            self.client.locate(node, RequestContext.admin(), uuid, True))
        call.addTimeout(self.owner_probe_s, self.clock)
        try:
            await call
        except (PeerTimeout, PeerUnreachable, defer.TimeoutError, defer.CancelledError):
            return False  # no answer (the peer client's transport failures)
        except errors.ZundError:
            return True  # an answer: not found (deleted there), busy, or a refusal
        return True

    async def heal(self, rec: ContainerRecord, source: str, generation: int,
                   because: str) -> bool:
        """Re-place ``rec`` (last held by ``source`` at ``generation``) through a bid
        round. True when it is now held by a live node (placed here or found)."""
        try:
            try:
                await self.store.get_container(rec.uuid)
                held = (self.node, None)  # this node holds it already
            except errors.ContainerNotFound:
                held = await self._held_elsewhere(rec.uuid, exclude=source)
            if held is None and source not in self.marks.forced_down \
                    and await self._owner_answers(rec.uuid, source):
                # gossip calls the owner dead but it answers: a partition healing
                # (gossip lags the peer port) or lost UDP. It runs the container,
                # or deleted it; either way healing would make a twin or a ghost.
                self.stats["owner_answered"] += 1
                self._not_before[rec.uuid] = self.clock.seconds() + self.retry_s
                log.info("healer.owner_answers uuid={uuid} owner={source}",
                         uuid=rec.uuid, source=source)
                return False
            if held is not None:
                log.info("healer.already_held uuid={uuid} node={node}", uuid=rec.uuid,
                         node=held[0])
                self._not_before[rec.uuid] = self.clock.seconds() + 60.0
                return True
            request = request_of(rec)
            ctx = RequestContext(user_id=rec.user_id, project_id=rec.project_id,
                                 request_id=self._request_id())
            preq = placement_request(rec, request, ctx)
            note = {"heal": {"from": source, "generation": int(generation),
                             "because": because}}
            record, decision = await self.coordinator.place(preq, ctx, request, note=note)
        except errors.ZundError as e:
            self.stats["heal_failed"] += 1
            self._not_before[rec.uuid] = self.clock.seconds() + self.retry_s
            log.info("healer.heal_postponed uuid={uuid} from={source} reason={reason}",
                     uuid=rec.uuid, source=source, reason=f"{type(e).__name__}: {e}")
            return False
        self.stats["healed"] += 1
        self._not_before[rec.uuid] = self.clock.seconds() + 60.0
        seen = self._gone_seen.get(rec.uuid)
        if seen is not None:
            self.heal_times[rec.uuid] = self.clock.seconds() - seen
        log.info("healer.healed uuid={uuid} from={source} to={target} because={because}",
                 uuid=rec.uuid, source=source, target=decision.get("winner"),
                 because=because)
        return True

    # -- this node's moved copies --------------------------------------------------------

    def hold_for_check(self, uuid: str, action: str) -> None:
        """Start-up recovery hands over an ``auto_heal`` record it would create or
        start (``Reconciler.hold``): it is started only once no live node holds it."""
        self.held[uuid] = action

    async def check_moved(self) -> int:
        """Remove this node's ``auto_heal`` records that another live node now holds
        with a higher generation (healed or drained away while this node was gone);
        resume the held recovery work of the others. Returns how many were removed."""
        removed = 0
        lone = not (set(self._live()) - {self.node})
        if lone and self.held and self.clock.seconds() - self._started_at < self.hold_max_s:
            # nobody known yet (gossip is joining): held work waits for a peer
            self._next_check = min(self._next_check, self.clock.seconds() + self.tick_s)
            return 0
        for rec in await self.store.list_containers():
            if not rec.auto_heal or rec.uuid in self._inflight:
                continue
            try:
                held = await self._held_elsewhere(rec.uuid)
            except errors.ServiceUnavailable:
                self._next_check = min(self._next_check, self.clock.seconds() + self.retry_s)
                continue
            if held is not None:
                node, other = held
                if other is None or other.generation > rec.generation:
                    self.held.pop(rec.uuid, None)
                    await self._remove_stale(rec, node)
                    removed += 1
                    continue
            action = self.held.pop(rec.uuid, None)
            if action is not None and self.resume is not None:
                log.info("healer.resume_held uuid={uuid} action={action}", uuid=rec.uuid,
                         action=action)
                await self.resume(rec.uuid, action)
        return removed

    async def _remove_stale(self, rec: ContainerRecord, holder: str) -> None:
        log.warn("healer.stale_copy_removed uuid={uuid} held_by={holder}",
                 uuid=rec.uuid, holder=holder)
        self.stats["moved_removed"] += 1
        await self.lifecycle.do_delete(rec.uuid, True)

    # -- drain and forced down -------------------------------------------------------

    async def drain_step(self) -> bool:
        """Move one of this node's ``auto_heal`` containers away (drain). False
        when none is left (or the move must wait)."""
        left = [r for r in await self.store.list_containers() if heals(r)]
        total_moved = self.stats["drained"]
        self._progress(total_moved, len(left))
        if not left:
            return False
        rec = sorted(left, key=lambda r: (r.created_at, r.uuid))[0]
        because = f"node {self.node} is disabled"
        if self._drain_reason:
            because += f" ({self._drain_reason})"
        self._inflight.add(rec.uuid)
        try:
            held = await self._held_elsewhere(rec.uuid)
            if held is None:
                # a cold move: this copy stops (its runtime object goes) before the
                # new one is placed, so two never run at once
                await self.lifecycle.runtime(rec).remove(rec.uuid, force=True)
                if not await self._move(rec, because):
                    # nowhere to go: made again here, and the drain waits
                    log.info("healer.drain_no_host uuid={uuid}", uuid=rec.uuid)
                    await self.lifecycle.resume_create(rec.uuid)
                    return False
            await self._remove_stale(rec, held[0] if held else "elsewhere")
        except errors.ZundError as e:
            log.info("healer.drain_postponed uuid={uuid} reason={reason}", uuid=rec.uuid,
                     reason=str(e))
            return False
        finally:
            self._inflight.discard(rec.uuid)
        self.stats["drained"] += 1
        self._progress(self.stats["drained"], len(left) - 1)
        return True

    async def _move(self, rec: ContainerRecord, because: str) -> bool:
        request = request_of(rec)
        ctx = RequestContext(user_id=rec.user_id, project_id=rec.project_id,
                             request_id=self._request_id())
        preq = placement_request(rec, request, ctx)
        note = {"heal": {"from": self.node, "generation": int(rec.generation),
                         "because": because}}
        try:
            await self.coordinator.place(preq, ctx, request, note=note)
        except errors.NoValidHost:
            return False
        return True

    def _progress(self, moved: int, left: int) -> None:
        reason = self._drain_reason or "disabled"
        text = f"{reason} (draining: {moved} moved, {left} left)" if left else \
            f"{reason} (drained: {moved} moved)"
        self.local.update(disabled_reason=text[:200])

    def exchange_marks(self, msg: ServiceMarksExchange) -> tuple:
        """A peer's ``SERVICE_MARKS``: keep its newer marks, answer with ours."""
        self._merge_marks(msg.marks)
        return self.marks.entries()

    def _merge_marks(self, marks) -> None:
        for host in self.marks.merge(marks):
            log.info("healer.mark_learned host={host} forced_down={forced}", host=host,
                     forced=host in self.marks.forced_down)
            if host == self.node and host in self.marks.forced_down:
                self._next_check = self.clock.seconds()  # our copies may move

    async def sync_marks(self, fanout: int = 3) -> int:
        """Exchange marks with up to ``fanout`` live peers (sorted by name, so the
        choice needs no randomness); returns how many answered."""
        peers = sorted((n for name, n in self._live().items() if name != self.node),
                       key=lambda n: n.name)[:fanout]
        if not peers:
            return 0
        msg = ServiceMarksExchange(self.marks.entries())
        results = await defer.DeferredList(
            [defer.Deferred.fromCoroutine(self.client.call(n, msg)) for n in peers],
            consumeErrors=True)
        answered = 0
        for n, (ok, value) in zip(peers, results):
            if ok:
                answered += 1
                self._merge_marks(value)
            else:
                log.info("healer.marks_not_synced node={node} reason={reason}",
                         node=n.name, reason=value.getErrorMessage())
        return answered

    def apply_service_state(self, msg: ServiceStateRequest) -> dict:
        """A ``SERVICE_STATE`` from an operator's entry node (or this node's own)."""
        if msg.forced_down is not None:
            # a node never reads itself as dead (ServiceMarks.local), but keeps its
            # own mark to pass it on
            self.marks.set(msg.host, bool(msg.forced_down), self.clock.seconds())
            if msg.forced_down and msg.host == self.node:
                self._next_check = self.clock.seconds()  # our copies may move
        if msg.disabled is not None and msg.host == self.node:
            if msg.disabled:
                self._drain_reason = msg.reason or ""
                self.local.update(draining=True,
                                  disabled_reason=(msg.reason or "disabled")[:200])
            else:
                self._drain_reason = ""
                self.local.update(draining=False, disabled_reason="")
        return self.state_of(msg.host)

    def state_of(self, host: str) -> dict:
        """``disabled``, ``disabled_reason``, ``forced_down`` of ``host`` as this node
        knows them (gossip for others; its own facts for itself)."""
        if host == self.node:
            facts = self.local.facts
            disabled, reason = facts.draining, facts.disabled_reason or None
        else:
            meta = next((n.meta for n in self.view() if n.name == host), None)
            disabled = bool(meta and meta.draining)
            reason = (meta.disabled_reason or None) if meta else None
        return {"host": host, "disabled": disabled, "disabled_reason": reason,
                "forced_down": host in self.marks.forced_down}

    async def set_service_state(self, host: str, *, disabled: bool | None = None,
                                reason: str | None = None,
                                forced_down: bool | None = None) -> dict:
        """An operator's change, from any node: ``disabled`` goes to ``host`` itself
        (it drains and gossips it); ``forced_down`` to every live node. Raises
        ``ContainerNotFound``-like ``NotFound`` when ``host`` is unknown and
        ``ServiceUnavailable`` when ``host`` (for a disable) does not answer."""
        nodes = {n.name: n for n in self.view()}
        if host not in nodes and host != self.node:
            raise errors.InvalidInput(field="host", reason=f"unknown host {host}")
        if disabled is not None:
            if host == self.node:
                self.apply_service_state(ServiceStateRequest(host, disabled, reason, None))
            else:
                await self.client.call(nodes[host],
                                       ServiceStateRequest(host, disabled, reason, None))
        if forced_down is not None:
            self.apply_service_state(ServiceStateRequest(host, None, None, forced_down))
            targets = [n for name, n in self._live().items() if name != self.node]
            if host in nodes and nodes[host].peer and host != self.node:
                # best effort: a forced-down node that still answers removes its
                # copies once they moved (its periodic check does it otherwise)
                targets.append(nodes[host])
            one = ServiceStateRequest(host, None, None, forced_down)
            results = await defer.DeferredList(
                [defer.Deferred.fromCoroutine(self.client.call(n, one)) for n in targets],
                consumeErrors=True)
            for n, (ok, value) in zip(targets, results):
                if not ok:
                    log.info("healer.service_state_not_sent node={node} reason={reason}",
                             node=n.name, reason=value.getErrorMessage())
        state = self.state_of(host)
        if disabled is not None:
            state.update(disabled=disabled, disabled_reason=reason if disabled else None)
        return state
