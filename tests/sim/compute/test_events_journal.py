"""The event journal: bounds, transitions read from record changes, heals."""

import attrs
from twisted.internet.task import Clock

from zund.events import EventJournal, format_event
from zund.records import ContainerRecord
from zund.store import RecordChange


@attrs.frozen
class Member:
    name: str
    addr: str = "127.0.0.9:9519"
    incarnation: int = 1


def rec(status, task_state=None, **kw):
    return ContainerRecord(uuid="u1", project_id="p", user_id="u", image="busybox",
                           name="web", status=status, task_state=task_state, host="n1", **kw)


def change(r):
    return RecordChange(uuid="u1", generation=1, record=r)


def test_the_journal_keeps_the_last_capacity_events_and_counts_the_rest():
    """Beyond capacity the oldest events go; since() pages by sequence."""
    j = EventJournal("n1", Clock(), capacity=10)
    for i in range(15):
        j.record("healed", member=f"m{i}")
    assert [e.seq for e in j.since(0)] == list(range(6, 16)) and j.dropped == 5
    assert [e.seq for e in j.since(13)] == [14, 15]


def test_a_stop_nobody_asked_for_is_died_and_an_asked_one_is_stopped():
    """Running -> Stopped with no task is 'died' (with the exit code); with the
    stopping task it is 'stopped'."""
    j = EventJournal("n1", Clock())
    j.on_record_change(change(rec("Creating")))
    j.on_record_change(change(rec("Running")))
    j.on_record_change(change(rec("Stopped", exit_code=137)))
    j.on_record_change(change(rec("Running")))
    j.on_record_change(change(rec("Running", task_state="stopping")))
    j.on_record_change(change(rec("Stopped")))
    j.on_record_change(RecordChange(uuid="u1", generation=9, record=None))
    kinds = [e.kind for e in j.since(0)]
    assert kinds == ["won_bid", "started", "died", "started", "stopped", "deleted"]
    assert j.since(0)[2].fields["exit_code"] == 137


def test_a_member_alive_again_after_suspicion_is_healed():
    """join, suspect, alive -> member_joined, member_suspect, healed; own node ignored."""
    j = EventJournal("n1", Clock())
    for kind in ("join", "suspect", "alive", "alive"):
        j.on_member(kind, Member("n2"))
    j.on_member("dead", Member("n1"))
    assert [e.kind for e in j.since(0)] == ["member_joined", "member_suspect", "healed"]


def test_followers_hear_each_new_event_until_they_unsubscribe():
    """subscribe() delivers new events synchronously; the unsubscriber stops it."""
    j = EventJournal("n1", Clock())
    heard = []
    stop = j.subscribe(heard.append)
    j.record("placed", container="u1", winner="n2")
    stop()
    j.record("placed", container="u2", winner="n3")
    assert [e.fields["container"] for e in heard] == ["u1"]
    line = format_event(heard[0].to_json())
    assert "n1 placed" in line and "winner=n2" in line
