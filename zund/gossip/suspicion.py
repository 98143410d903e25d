"""Lifeguard §IV-B dynamic suspicion timeouts (memberlist suspicion.go).

A suspicion starts at ``max`` and shrinks towards ``min`` as independent
members confirm it, so a truly dead node is declared quickly while a lone
(possibly slow) accuser has to wait long enough for a refutation.
"""

from __future__ import annotations

import math


def suspicion_timeout(suspicion_mult: int, n: int, probe_interval_s: float) -> float:
    """memberlist util.go suspicionTimeout: the *minimum* suspicion time.

    ``suspicion_mult * max(1, log10(max(1, n))) * probe_interval``.  The outer
    ``max(1, ...)`` is memberlist's guard that keeps clusters under 10 nodes from
    getting a sub-``suspicion_mult`` window (log10(2) would allow 1.2 s at 4x).
    """
    node_scale = max(1.0, math.log10(max(1.0, float(n))))
    return suspicion_mult * node_scale * probe_interval_s


def expected_confirmations(suspicion_mult: int, n: int) -> int:
    """memberlist state.go suspectNode: k = mult - 2, or 0 if n - 2 < k.

    ``n - 2`` leaves out ourselves and the suspect: the peers that could confirm.
    """
    k = suspicion_mult - 2
    if n - 2 < k:
        k = 0
    return max(k, 0)


def remaining_suspicion_time(n: int, k: int, elapsed_s: float, min_s: float, max_s: float) -> float:
    """memberlist suspicion.go remainingSuspicionTime.

    timeout = max - (max - min) * log(n + 1) / log(k + 1), floored to ms and
    never below min; minus what already elapsed.  ``n`` is the number of
    confirmations so far, ``k`` the number expected.
    """
    if k < 1:
        raw = min_s
    else:
        frac = math.log(n + 1.0) / math.log(k + 1.0)
        raw = max_s - frac * (max_s - min_s)
    timeout = math.floor(1000.0 * raw) / 1000.0
    if timeout < min_s:
        timeout = min_s
    return timeout - elapsed_s


class Suspicion:
    """One suspicion about one member.  Pure: the caller owns the timer.

    ``deadline`` is the absolute time at which the suspect is declared dead
    unless refuted; ``confirm`` moves it earlier.
    """

    def __init__(self, from_name: str, k: int, min_s: float, max_s: float, start: float):
        self.k = k
        self.min_s = min_s
        self.max_s = max_s
        self.start = start
        self.n = 0
        # The accuser that started the suspicion cannot also confirm it.
        self.confirmations = {from_name}
        self.deadline = start + (max_s if k >= 1 else min_s)

    def confirm(self, from_name: str, now: float) -> bool:
        """Count an independent confirmation; True if it was new (re-gossip it).

        memberlist suspicion.Confirm: at most k confirmations, one per peer.
        """
        if self.n >= self.k:
            return False
        if from_name in self.confirmations:
            return False
        self.confirmations.add(from_name)
        self.n += 1
        remaining = remaining_suspicion_time(self.n, self.k, now - self.start, self.min_s, self.max_s)
        self.deadline = now + max(remaining, 0.0)
        return True
