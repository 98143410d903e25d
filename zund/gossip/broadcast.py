"""Transmit-limited broadcast queue (memberlist queue.go TransmitLimitedQueue).

Messages about members are piggybacked on every outgoing packet and sent by
periodic gossip.  Each is sent ``retransmit_mult * ceil(log10(n + 1))`` times
(SWIM §4.4 infection-style dissemination), least-transmitted first, and a newer
message about a member replaces any older one still queued -- except that
suspicions of one member by different senders (``queue(..., sender=)``) stand
side by side: they are Lifeguard's independent confirmations, and memberlist's
replacing one by the next meant a suspector could relay another's suspicion
instead of its own, so the members it told counted one confirmation too few.

zund departs from memberlist in what counts as a transmission: a send spends
the budget only when it goes to a member believed reachable (the caller says so:
alive, neither suspect nor dead) that has not had this message from us yet.
During a partition the targets are drawn from every member, unreachable ones
included, and random targets repeat, so memberlist's limit could be spent on
unreachable or already-told members and a majority member sometimes missed
``suspect``/``dead`` news and waited for its own suspicion timeout.  A message
still leaves the queue after ``UNCOUNTED_FACTOR`` times its limit in sends of
any kind, so news about (or for) a cluster that is all unreachable does not
circulate forever.
"""

from __future__ import annotations

import attrs

from zund.gossip.config import retransmit_limit

#: sends of any kind (counted or not) after which a message leaves the queue,
#: as a multiple of its retransmit limit
UNCOUNTED_FACTOR = 3


@attrs.define
class _Broadcast:
    key: tuple  # (member, sender of a suspicion or None)
    message: object
    size: int
    seq: int
    transmits: int = 0  # sends to distinct members believed reachable (the budget)
    sends: int = 0      # every send, the counted ones included
    told: set = attrs.field(factory=set)  # the members among them


class BroadcastQueue:
    """Bounded queue; ``key`` (the member name) is the invalidation key."""

    def __init__(self, retransmit_mult: int, max_items: int):
        self.retransmit_mult = retransmit_mult
        self.max_items = max_items
        self._items: dict[tuple, _Broadcast] = {}   # (member, sender or None) -> item
        self._by_key: dict[str, set] = {}           # member -> its item keys
        self._seq = 0

    def __len__(self) -> int:
        return len(self._items)

    def queue(self, key: str, message: object, size: int, sender: str | None = None) -> None:
        """Enqueue, replacing (invalidating) any queued message about ``key``; with
        ``sender`` (a suspicion), only the one of that sender and any message
        without one (an alive or dead about ``key``)."""
        self._seq += 1
        keys = self._by_key.setdefault(key, set())
        for old in [k for k in keys if sender is None or k[1] is None or k[1] == sender]:
            keys.discard(old)
            del self._items[old]
        ikey = (key, sender)
        keys.add(ikey)
        self._items[ikey] = _Broadcast(key=ikey, message=message, size=size, seq=self._seq)
        if len(self._items) > self.max_items:
            self._prune()

    def _drop(self, ikey: tuple) -> None:
        del self._items[ikey]
        keys = self._by_key[ikey[0]]
        keys.discard(ikey)
        if not keys:
            del self._by_key[ikey[0]]

    def _prune(self) -> None:
        # memberlist queue.Prune: drop the most-transmitted (oldest) first.
        ordered = sorted(self._items.values(), key=lambda b: (-b.transmits, b.seq))
        for item in ordered[: len(self._items) - self.max_items]:
            self._drop(item.key)

    def get(self, overhead: int, budget: int, n: int, counted: bool = True,
            to: str | None = None) -> list:
        """Messages to piggyback, fitting ``budget`` bytes with ``overhead`` each.

        memberlist queue.GetBroadcasts: fewest transmits first, then newest;
        a message that reached the retransmit limit leaves the queue.
        ``counted``: the packet goes to a member believed reachable (it spends
        the transmit budget) -- once per member ``to`` when named; otherwise
        only the cap on all sends applies.
        """
        if not self._items or budget <= 0:
            return []
        limit = retransmit_limit(self.retransmit_mult, n)
        ordered = sorted(self._items.values(), key=lambda b: (b.transmits, -b.seq))
        out = []
        free = budget
        for item in ordered:
            cost = item.size + overhead
            if cost > free:
                continue
            free -= cost
            out.append(item.message)
            item.sends += 1
            if counted and (to is None or to not in item.told):
                item.transmits += 1
                if to is not None:
                    item.told.add(to)
            if item.transmits >= limit or item.sends >= UNCOUNTED_FACTOR * limit:
                self._drop(item.key)
            if free < overhead + 8:
                break
        return out

    def mark_told(self, key: str, member: str) -> None:
        """``member`` already has our queued news about ``key`` (the alive or dead,
        not a suspicion): it sent it to us. A send to it then spends no transmit,
        so the budget goes to members that may not have it yet."""
        item = self._items.get((key, None))
        if item is not None:
            item.told.add(member)

    def pending(self) -> list:
        """Queued messages, oldest first (for tests and introspection)."""
        return [b.message for b in sorted(self._items.values(), key=lambda b: b.seq)]

    def clear(self) -> None:
        self._items.clear()
        self._by_key.clear()
