"""Pure tier: the healer's split-brain guard (``Healer.has_majority``).

A node heals only while it sees a strict majority of the members it knows
alive. Suspect members are members but not alive: during the detection of a
cut, the minority sees the far side partly suspect and partly dead, and must
not count the suspects it cannot reach towards a majority."""

from __future__ import annotations

from twisted.internet.task import Clock

from zund.cluster.healer import Healer, ServiceMarks
from zund.cluster.types import NodeView


def healer(states: dict[str, str], forced=()) -> Healer:
    """A healer on ``n1`` whose gossip view is ``states`` (name -> state)."""
    view = [NodeView(name, state, f"{name}:1", f"{name}:2", None)
            for name, state in states.items()]
    marks = ServiceMarks(local="n1")
    for host in forced:
        marks.set(host, True, 1.0)
    return Healer("n1", None, lambda: view, None, None, None, None, Clock(), marks)


def test_a_minority_mid_detection_does_not_count_suspects_it_cannot_reach():
    """Nodes 4, 5 cut off: node 4 sees 1 dead and 2, 3 still suspect: 2 of 5 alive."""
    h = healer({"n1": "alive", "n5": "alive", "n2": "suspect", "n3": "suspect",
                "n4": "dead"})
    assert not h.has_majority()


def test_the_majority_side_heals_while_the_far_side_is_still_suspect():
    h = healer({"n1": "alive", "n2": "alive", "n3": "alive", "n4": "suspect",
                "n5": "dead"})
    assert h.has_majority()


def test_one_dead_node_of_five_leaves_a_majority():
    assert healer({"n1": "alive", "n2": "alive", "n3": "alive", "n4": "alive",
                   "n5": "dead"}).has_majority()


def test_half_alive_is_not_a_majority():
    assert not healer({"n1": "alive", "n2": "alive", "n3": "dead",
                       "n4": "dead"}).has_majority()


def test_forced_down_and_left_members_are_not_counted():
    """Two of four forced down or left: the other two are all the members there are."""
    h = healer({"n1": "alive", "n2": "alive", "n3": "dead", "n4": "left"}, forced=["n3"])
    assert h.has_majority()


def test_a_two_node_cluster_heals_only_a_forced_down_peer():
    assert not healer({"n1": "alive", "n2": "dead"}).has_majority()
    assert healer({"n1": "alive", "n2": "dead"}, forced=["n2"]).has_majority()
