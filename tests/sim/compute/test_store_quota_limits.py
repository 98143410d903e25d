"""Store: quota limit replicas (zund.cluster.quota) are durable, newest version wins."""

from zund.store import Store

from .conftest import run_sync, sync_blocking


def _open(path) -> Store:
    s = Store(str(path), run_blocking=sync_blocking)
    run_sync(s.open())
    return s


def test_quota_limits_survive_reopen_with_their_version(tmp_path):
    """Limits kept before close read back after reopening the file, version included."""
    s = _open(tmp_path / "z.sqlite")
    assert run_sync(s.put_quota_limits("project:p1", {"containers": 20, "cpu": -1},
                                       (100.5, "node-2")))
    assert run_sync(s.put_quota_limits("class:default", {}, (7.0, "node-1")))
    run_sync(s.close())
    s2 = _open(tmp_path / "z.sqlite")
    assert run_sync(s2.list_quota_limits()) == {
        "project:p1": ({"containers": 20, "cpu": -1}, (100.5, "node-2")),
        "class:default": ({}, (7.0, "node-1")),
    }


def test_an_older_or_equal_quota_limits_version_is_not_kept(tmp_path):
    """A copy older than (or as old as) the held one changes nothing; a newer one replaces it."""
    s = _open(tmp_path / "z.sqlite")
    run_sync(s.put_quota_limits("project:p1", {"containers": 5}, (10.0, "node-1")))
    assert not run_sync(s.put_quota_limits("project:p1", {"containers": 9}, (9.0, "node-3")))
    assert not run_sync(s.put_quota_limits("project:p1", {"containers": 9}, (10.0, "node-1")))
    assert run_sync(s.list_quota_limits())["project:p1"] == ({"containers": 5}, (10.0, "node-1"))
    assert run_sync(s.put_quota_limits("project:p1", {"containers": 9}, (10.0, "node-2")))
    assert run_sync(s.list_quota_limits())["project:p1"] == ({"containers": 9}, (10.0, "node-2"))
