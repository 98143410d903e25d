"""Transmit-limited broadcast queue (memberlist queue.go TransmitLimitedQueue).

Messages about members are piggybacked on every outgoing packet and sent by
periodic gossip.  Each is sent ``retransmit_mult * ceil(log10(n + 1))`` times
(SWIM §4.4 infection-style dissemination), least-transmitted first, and a newer
message about a member replaces any older one still queued.
"""

from __future__ import annotations

import attrs

from zund.gossip.config import retransmit_limit


@attrs.define
class _Broadcast:
    key: str
    message: object
    size: int
    seq: int
    transmits: int = 0


class BroadcastQueue:
    """Bounded queue; ``key`` (the member name) is the invalidation key."""

    def __init__(self, retransmit_mult: int, max_items: int):
        self.retransmit_mult = retransmit_mult
        self.max_items = max_items
        self._items: dict[str, _Broadcast] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._items)

    def queue(self, key: str, message: object, size: int) -> None:
        """Enqueue, replacing (invalidating) any queued message about ``key``."""
        self._seq += 1
        self._items.pop(key, None)
        self._items[key] = _Broadcast(key=key, message=message, size=size, seq=self._seq)
        if len(self._items) > self.max_items:
            self._prune()

    def _prune(self) -> None:
        # memberlist queue.Prune: drop the most-transmitted (oldest) first.
        ordered = sorted(self._items.values(), key=lambda b: (-b.transmits, b.seq))
        for item in ordered[: len(self._items) - self.max_items]:
            del self._items[item.key]

    def get(self, overhead: int, budget: int, n: int) -> list:
        """Messages to piggyback, fitting ``budget`` bytes with ``overhead`` each.

        memberlist queue.GetBroadcasts: fewest transmits first, then newest;
        a message that reached the retransmit limit leaves the queue.
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
            item.transmits += 1
            if item.transmits >= limit:
                del self._items[item.key]
            if free < overhead + 8:
                break
        return out

    def pending(self) -> list:
        """Queued messages, oldest first (for tests and introspection)."""
        return [b.message for b in sorted(self._items.values(), key=lambda b: b.seq)]

    def clear(self) -> None:
        self._items.clear()
