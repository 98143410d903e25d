"""Pure tier: the healer's last look before a heal (``Healer._owner_answers``).

Gossip calls the owner gone; before re-placing its container the healer asks the
owner itself. Any answer of the owner's own, a record, "not found", or an error it
sent (a 503 while it starts or stops), means it is alive and the heal must wait.
Only no answer (refused, timed out, unreachable, a reply not sealed for the
request) lets the heal go on."""

from __future__ import annotations

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from zund.cluster.healer import Healer
from zund.cluster.peer_client import PeerRefused, PeerTimeout, PeerUnreachable
from zund.cluster.types import NodeView
from zund.common import errors

OWNER = "n2"


class Owner:
    """The owner's end of a LOCATE: answers, raises, or never answers."""

    def __init__(self, outcome):
        self.outcome = outcome
        self.asked = 0

    async def locate(self, node, ctx, uuid, include_gone):
        self.asked += 1
        if self.outcome == "silent":
            await defer.Deferred()  # no reply ever comes
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def ask(outcome, advance_s: float = 0.0):
    """``_owner_answers`` against an owner behaving as ``outcome`` -> (result, owner)."""
    view = [NodeView("n1", "alive", "n1:1", "n1:2", None),
            NodeView(OWNER, "dead", f"{OWNER}:1", f"{OWNER}:2", None)]
    owner, clock = Owner(outcome), Clock()
    h = Healer("n1", None, lambda: view, None, owner, None, None, clock, owner_probe_s=1.0)
    d = defer.ensureDeferred(h._owner_answers("c-1", OWNER))
    clock.advance(advance_s)
    results = []
    d.addBoth(results.append)
    assert results, "the probe did not end"
    assert not isinstance(results[0], BaseException), results[0]
    return results[0], owner


@pytest.mark.parametrize("answer", [
    {"node": OWNER, "generation": 3},
    errors.ContainerNotFound(ident="c-1"),
    errors.ServiceUnavailable(reason=f"peer {OWNER} answered locate with HTTP 503"),
    errors.Conflict(reason="busy"),
], ids=["held", "not-found", "its-own-503", "its-own-refusal"])
def test_any_answer_of_the_owners_own_means_alive(answer):
    alive, owner = ask(answer)
    assert alive is True
    assert owner.asked == 1


@pytest.mark.parametrize("failure", [
    PeerRefused(reason="connection refused"),
    PeerUnreachable(reason="connection reset"),
    PeerTimeout(reason="no answer in time"),
], ids=["refused", "unreachable", "peer-client-timeout"])
def test_no_answer_lets_the_heal_go_on(failure):
    alive, _ = ask(failure)
    assert alive is False


def test_an_owner_that_never_answers_is_given_up_after_the_probe_time():
    alive, owner = ask("silent", advance_s=1.0)
    assert alive is False
    assert owner.asked == 1


def test_an_owner_missing_from_the_view_is_not_asked():
    view = [NodeView("n1", "alive", "n1:1", "n1:2", None)]
    owner = Owner({"node": OWNER})
    h = Healer("n1", None, lambda: view, None, owner, None, None, Clock())
    results = []
    defer.ensureDeferred(h._owner_answers("c-1", OWNER)).addBoth(results.append)
    assert results == [False]
    assert owner.asked == 0
