"""Lifeguard §IV-A local health ("awareness", memberlist awareness.go).

A node that misses acks or has to refute suspicions about itself is probably
the slow one; it scales its own probe interval and timeouts up so it stops
accusing healthy peers.
"""

from __future__ import annotations


class Awareness:
    """Health score in ``[0, max_multiplier - 1]``; 0 is healthy."""

    def __init__(self, max_multiplier: int):
        if max_multiplier < 1:
            raise ValueError("max_multiplier must be >= 1")
        self.max_multiplier = max_multiplier
        self.score = 0

    def apply_delta(self, delta: int) -> None:
        """memberlist awareness.ApplyDelta: clamp to [0, max-1]."""
        self.score = min(max(self.score + delta, 0), self.max_multiplier - 1)

    def scale(self, timeout_s: float) -> float:
        """memberlist awareness.ScaleTimeout: timeout * (score + 1)."""
        return timeout_s * (self.score + 1)
