"""The node's event journal: a bounded, in-memory log of what this node did and saw
(placed, won bid, started, stopped, died, member joined/suspect/dead, healed...).

Operators read it with ``zund events [--follow] [--json]`` over the local control
socket (``zund.api.control``); every event is also one structured log line
(``event.<kind> key=value ...``) for journald. The journal keeps the last
``capacity`` events (older ones are dropped and counted): it is a window on
recent activity, not an audit trail.

Sources are adapters that turn what the parts already announce into events:

- :meth:`EventJournal.on_record_change`: the store's change listener (this node's
  records: a new record here = the node won the bid for it; status transitions =
  started / stopped (asked) / died (not asked) / failed; deleted);
- :meth:`EventJournal.on_member`: the gossip service's member listener
  (joined, suspect, dead, left, and alive again after suspect/dead = healed);
- :meth:`EventJournal.on_placement`: the coordinator's outcome on the entry node.

Pure apart from the log line: time comes from the injected clock.
"""

from __future__ import annotations

import collections
import datetime
from typing import Callable

import attrs
from twisted.logger import Logger

log = Logger(namespace="zund.events")

#: event kinds, stable names (documented in docs/design.md)
KINDS = ("placed", "unplaceable", "won_bid", "started", "stopped", "died", "failed",
         "deleted", "member_joined", "member_suspect", "member_dead", "member_left",
         "healed", "console_opened", "console_closed")


@attrs.frozen
class Event:
    """One journal entry; ``seq`` increases by one per event on this node."""

    seq: int
    time: float  # clock seconds (Unix time on the real reactor)
    node: str
    kind: str
    fields: dict = attrs.field(factory=dict)

    def to_json(self) -> dict:
        return {"seq": self.seq, "time": self.time,
                "at": datetime.datetime.fromtimestamp(self.time, datetime.timezone.utc)
                .isoformat(timespec="milliseconds"),
                "node": self.node, "kind": self.kind, **{"fields": dict(self.fields)}}


def format_event(e: dict) -> str:
    """One human line for ``zund events`` (``e`` as :meth:`Event.to_json`)."""
    fields = " ".join(f"{k}={v}" for k, v in sorted(e.get("fields", {}).items()))
    return f"{e['at']} {e['node']} {e['kind']}" + (f" {fields}" if fields else "")


#: events every create or delete goes through: logged at debug, not info
ROUTINE_KINDS = frozenset({"placed", "won_bid", "started", "stopped", "deleted"})


class EventJournal:
    """Bounded journal of one node. ``clock``: IReactorTime; ``capacity``: events
    kept. Followers (``subscribe``) are called synchronously for each new event and
    must not block. Who may call ``record``: the adapters below and the console."""

    def __init__(self, node: str, clock, capacity: int = 1000):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.node = node
        self._clock = clock
        self._events: collections.deque = collections.deque(maxlen=capacity)
        self._seq = 0
        self.dropped = 0
        self._followers: list[Callable[[Event], None]] = []
        #: uuid -> (status, task_state) last seen, for transitions
        self._records: dict[str, tuple] = {}
        #: member name -> last state seen, for "healed"
        self._members: dict[str, str] = {}

    # -- the journal ------------------------------------------------------------------

    def record(self, kind: str, /, **fields) -> Event:
        self._seq += 1
        event = Event(self._seq, float(self._clock.seconds()), self.node, kind,
                      {k: v for k, v in fields.items() if v is not None})
        if len(self._events) == self._events.maxlen:
            self.dropped += 1
        self._events.append(event)
        # routine steps of every create/delete at debug: at INFO they were ~3 lines
        # per create and ~3% of a node's CPU under load (issue 13); the journal
        # keeps them all the same
        emit = log.debug if kind in ROUTINE_KINDS else log.info
        emit("event." + kind + " node={node} seq={seq}", node=self.node, seq=event.seq,
             **event.fields)
        for follower in list(self._followers):
            try:
                follower(event)
            except Exception:
                log.failure("events.follower_failed")
        return event

    def since(self, seq: int = 0, limit: int | None = None) -> list[Event]:
        """Events with ``seq`` greater than the given one, oldest first."""
        out = [e for e in self._events if e.seq > seq]
        return out[-limit:] if limit else out

    @property
    def last_seq(self) -> int:
        return self._seq

    def subscribe(self, follower: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``follower(event)`` for each new event; returns the unsubscriber."""
        self._followers.append(follower)

        def unsubscribe():
            if follower in self._followers:
                self._followers.remove(follower)

        return unsubscribe

    # -- adapters -----------------------------------------------------------------------

    def seed_records(self, records) -> None:
        """The records this node holds at start (no events for them)."""
        for rec in records:
            self._records[rec.uuid] = (rec.status, rec.task_state)

    def on_record_change(self, change) -> None:
        """``Store.add_listener``: this node's records changed."""
        uuid, rec = change.uuid, change.record
        before = self._records.get(uuid)
        if rec is None:
            self._records.pop(uuid, None)
            if before is not None:
                self.record("deleted", container=uuid)
            return
        self._records[uuid] = (rec.status, rec.task_state)
        common = {"container": uuid, "name": rec.name, "project": rec.project_id}
        if before is None:
            if rec.host is None and rec.status == "Error":
                self.record("unplaceable", reason=rec.status_reason, **common)
            else:
                self.record("won_bid", runtime=rec.runtime, image=rec.image, **common)
            return
        status, task_state = before
        if rec.status == status:
            return
        if rec.status == "Running":
            self.record("started", **common)
        elif rec.status == "Stopped" and status == "Running":
            if task_state is not None or rec.task_state is not None:
                self.record("stopped", **common)
            else:  # nobody asked: the process ended on its own (or was killed)
                self.record("died", exit_code=rec.exit_code, **common)
        elif rec.status == "Error":
            self.record("failed", reason=rec.status_reason, **common)

    def on_member(self, kind: str, member) -> None:
        """``GossipService.add_listener``: a member changed."""
        if member.name == self.node:
            return
        before = self._members.get(member.name)
        self._members[member.name] = kind
        if kind == "join":
            self.record("member_joined", member=member.name, addr=member.addr)
        elif kind == "suspect":
            self.record("member_suspect", member=member.name, incarnation=member.incarnation)
        elif kind == "dead":
            self.record("member_dead", member=member.name)
        elif kind == "leave":
            self.record("member_left", member=member.name)
        elif kind == "alive" and before in ("suspect", "dead"):
            self.record("healed", member=member.name, was=before)

    def on_placement(self, outcome: str, uuid: str, decision: dict) -> None:
        """The coordinator's outcome for a create that entered here."""
        if outcome == "placed":
            self.record("placed", container=uuid, winner=decision.get("winner"),
                        elapsed_s=decision.get("elapsed_s"))
        else:
            self.record("unplaceable", container=uuid, reason=decision.get("why"))
