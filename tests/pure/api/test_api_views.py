"""Pure tests of the JSON views (zun-api.md §6.2, §10)."""

import datetime

from zund.api import views
from zund.api.microversions import v
from zund.records import ActionEvent, ActionRecord, ContainerRecord, utcnow

BASE = "http://h:9517"
T = datetime.datetime(2018, 3, 4, 19, 48, 49, 123456)


def _rec(**kw):
    kw.setdefault("uuid", "u-1")
    return ContainerRecord(project_id="p", user_id="u", image="cirros", name="c", cpu=1,
                           memory=512, restart_policy={"Name": "on-failure",
                                                       "MaximumRetryCount": 3},
                           created_at=T, updated_at=T, host="node1", runtime="runc", **kw)


def test_container_view_wire_types():
    """memory is a string of MiB, cpu a float, retry count a string, times without µs."""
    out = views.container(_rec(), BASE, views.ADMIN_ONLY_CONTAINER_KEYS)
    assert out["memory"] == "512" and out["cpu"] == 1.0 and isinstance(out["cpu"], float)
    assert out["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": "3"}
    assert out["created_at"] == "2018-03-04 19:48:49"
    assert out["updated_at"] == "2018-03-04 19:48:49"
    assert out["links"] == [{"href": f"{BASE}/v1/containers/u-1", "rel": "self"},
                            {"href": f"{BASE}/containers/u-1", "rel": "bookmark"}]
    assert set(out) == set(views.CONTAINER_KEYS)
    assert "container_id" not in out and "exposed_ports" not in out


def test_admin_only_keys_are_omitted_entirely():
    """Non-admins do not see host/runtime/privileged/image_pull_policy keys at all."""
    out = views.container(_rec(), BASE, ())
    for key in ("host", "runtime", "privileged", "image_pull_policy"):
        assert key not in out
    assert views.container(_rec(), BASE, ("host",))["host"] == "node1"


def test_next_link_only_when_page_is_full():
    items = [{"uuid": "a"}, {"uuid": "b"}]
    assert views.next_link(BASE, "containers", items, 3, "id", "asc") is None
    assert views.next_link(BASE, "containers", items, 2, "name", "desc") == (
        f"{BASE}/v1/containers?sort_key=name&sort_dir=desc&limit=2&marker=b")


def test_host_view_whitelists_keys():
    info = {k: 1 for k in views.HOST_KEYS if k != "links"}
    info.update(uuid="h1", rp_uuid="hidden", numa_topology={})
    out = views.host(info, BASE)
    assert list(out) == list(views.HOST_KEYS)
    assert out["links"][0]["href"] == f"{BASE}/v1/hosts/h1"


def test_action_views_use_iso_microsecond_times():
    act = ActionRecord(container_uuid="u", action="start", request_id="req-1", user_id="u",
                       project_id="p", start_time=T, finish_time=T, message=None,
                       events=[ActionEvent(event="e", start_time=T, finish_time=T,
                                           result="Success", traceback="tb")])
    out = views.action(act, v("1.40"))
    assert out["start_time"] == "2018-03-04T19:48:49.123456"
    assert out["finish_time"] == "2018-03-04T19:48:49.123456"
    assert "finish_time" not in views.action(act, v("1.32"))
    shown = views.action_with_events(act, v("1.40"), show_traceback=False)
    assert shown["events"] == [{"event": "e", "start_time": "2018-03-04T19:48:49.123456",
                                "finish_time": "2018-03-04T19:48:49.123456",
                                "result": "Success", "traceback": None}]


def test_discovery_document():
    doc = views.discovery(BASE, "1.1", "1.40")
    (ver,) = doc["versions"]
    assert ver["status"] == "CURRENT" and ver["min_version"] == "1.1"
    assert ver["max_version"] == "1.40" and doc["default_version"] == ver
    assert ver["links"] == [{"href": f"{BASE}/v1/", "rel": "self"}]


def test_status_detail_is_as_of_the_answer_not_the_last_write():
    """A running container's "Up …" text is derived when the view is made: a record
    written ten minutes ago (with the detail of that moment) answers "Up 10 minutes"
    now, and a stopped one counts from its finish."""
    now = utcnow()
    started = now - datetime.timedelta(minutes=10, seconds=5)
    rec = _rec(status="Running", started_at=started, status_detail="Up 1 second")
    assert views.container(rec, BASE)["status_detail"] == "Up 10 minutes"
    rec = _rec(status="Stopped", exit_code=3, started_at=started,
               finished_at=now - datetime.timedelta(hours=3, minutes=1),
               status_detail="Exited(3) 1 second ago")
    assert views.container(rec, BASE)["status_detail"] == "Exited(3) 3 hours ago"
    assert views.container(_rec(status="Error", status_reason="boom"),
                           BASE)["status_detail"] is None
    assert views.container(_rec(status="Created"), BASE)["status_detail"] == "Created"
