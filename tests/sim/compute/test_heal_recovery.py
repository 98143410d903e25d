"""Start-up recovery with a healer (issue 11 item 3): an ``auto_heal`` record that
recovery would create or start waits for the moved check and is never started
before it; a heal commit outranks the old copy and says where it came from."""

from __future__ import annotations

from zund.compute.lifecycle import HEAL_GENERATION_STEP
from zund.records import new_record

from .test_manager import ADMIN, CTX, Harness, create, request

HEALED = {"auto_heal": True, "restart_policy": {"Name": "always", "MaximumRetryCount": 0}}
UUID = "7c0e1d2a-4b5f-4c6d-8e9f-0a1b2c3d4e5f"


def _acknowledged_auto_heal_create(h: Harness):
    rec = new_record(UUID, "p1", "u1", request(True, **HEALED), host="n1", runtime="runc",
                     availability_zone=None, status="Creating",
                     task_state="container_creating")
    h.run(h.store.create_container(rec, action=("create", "req-crash", "u1", "p1",
                                                "compute__do_container_create")))
    return rec


def test_recovery_holds_an_auto_heal_create_and_starts_nothing_until_resumed(tmp_path):
    """With a hold set, an interrupted auto_heal create is handed over and no
    runtime object is made; resumed, it reaches Running."""
    h = Harness(tmp_path)
    rec = _acknowledged_auto_heal_create(h)
    held = {}
    h.manager.reconciler.hold = lambda uuid, action: held.__setitem__(uuid, action)
    h.start()
    h.settle()
    assert held == {rec.uuid: "create"}
    assert h.run(h.runtime.list("n1")) == []
    assert h.get(rec.uuid).status == "Creating"
    h.run(h.manager.reconciler.resume(rec.uuid, "create"))
    h.settle()
    assert h.get(rec.uuid).status == "Running"
    h.stop()


def test_recovery_without_a_hold_resumes_an_auto_heal_create_at_once(tmp_path):
    """No healer (a lone manager): the interrupted auto_heal create resumes as any."""
    h = Harness(tmp_path)
    rec = _acknowledged_auto_heal_create(h)
    h.start()
    h.settle()
    assert h.get(rec.uuid).status == "Running"
    h.stop()


def test_a_heal_commit_outranks_the_old_copy_and_records_where_it_came_from(tmp_path):
    """A create whose placement carries ``heal`` starts its generation above the
    dead copy's and lists a heal action "healed from node X to node n1, because Z"."""
    h = Harness(tmp_path)
    h.start()
    rec = create(h, ctx=CTX, uuid=UUID, name="web", **HEALED,
                 placement={"winner": "n1",
                            "heal": {"from": "n9", "generation": 41,
                                     "because": "node n9 was declared dead"}})
    h.settle()
    assert h.get(rec.uuid).generation > 41 + HEAL_GENERATION_STEP - 1
    actions = h.run(h.manager.list_actions(ADMIN, h.get(rec.uuid)))
    heal = [a for a in actions if a.action == "heal"]
    assert [a.message for a in heal] == [
        "healed from node n9 to node n1, because node n9 was declared dead"]
    h.stop()
