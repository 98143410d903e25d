"""Start-up recovery of a rebuild interrupted by a crash (zund.compute.rebuild)."""

from __future__ import annotations

from tests.sim.compute.test_manager import Harness, request
from zund.records import new_record


def _interrupted_rebuild(h, status: str):
    rec = new_record("5d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6", "p1", "u1", request(True),
                     host="n1", runtime="runc", availability_zone=None, status=status,
                     task_state="container_rebuilding")
    h.run(h.store.create_container(rec, action=("rebuild", "req-crash", "u1", "p1",
                                                "compute__do_container_rebuild")))
    return rec


def test_a_rebuild_interrupted_after_the_pull_ends_in_error_and_can_be_redone(tmp_path):
    """Crash while Rebuilding (old object maybe removed, new one not made): after the
    restart the container is Error with a reason saying to rebuild again, and a
    rebuild then brings it back to Created with a runtime object."""
    h = Harness(tmp_path)
    rec = _interrupted_rebuild(h, "Rebuilding")
    h.start()
    h.settle()
    got = h.get(rec.uuid)
    assert (got.status, got.task_state) == ("Error", None)
    assert "rebuild" in got.status_reason
    from zund.common.context import RequestContext

    h.run(h.manager.rebuild(RequestContext(user_id="u1", project_id="p1"), got))
    h.settle()
    again = h.get(rec.uuid)
    assert (again.status, again.task_state) == ("Created", None)
    assert [s.uuid for s in h.run(h.runtime.list("n1"))] == [rec.uuid]
    h.stop()
