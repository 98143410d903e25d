"""Container endpoints with the exact request shapes python-zunclient / OSC send
(zun-api.md §5.1, §5.2, §7), over an in-memory FakeManager."""

import base64

import pytest

from tests.api.client import USER_TOKEN
from tests.unit.test_api_schemas import OSC_RUN_BODY


# -- create -----------------------------------------------------------------------

def test_osc_run_creates_and_answers_202_with_location(client, manager):
    """`appcontainer run` body (numbers as strings) + ?run=true -> 202, Location, view."""
    r = client.post("/v1/containers?run=true", json=OSC_RUN_BODY)
    assert r.status == 202, r.body
    body = r.json
    assert r.headers["location"] == f"http://127.0.0.1:9517/v1/containers/{body['uuid']}"
    assert body["status"] == "Creating"
    assert body["memory"] == "256" and body["cpu"] == 0.5
    assert body["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": "3"}
    assert body["command"] == ["sleep", "100"]
    (call,) = [c for c in manager.calls if c[0] == "create"]
    _, request, run = call
    assert run is True
    assert request["memory"] == 256 and request["cpu"] == 0.5
    assert request["restart_policy"]["MaximumRetryCount"] == 3


def test_create_without_run_and_generated_name(client, manager):
    r = client.post("/v1/containers", json={"image": "nginx"})
    assert r.status == 202
    assert r.json["name"].endswith("-container")
    assert manager.calls[0][2] is False
    assert r.json["memory"] == "512" and r.json["cpu"] == 1.0


def test_create_with_empty_json_body_names_image(client):
    r = client.post("/v1/containers", data=b"")
    assert r.status == 400
    assert r.error["title"] == "Invalid input for field 'image': 'image' is a required property."


@pytest.mark.parametrize("body, field", [
    ({"image": "cirros", "memory": "512M"}, "memory"),
    ({"image": "cirros", "cpu": "100"}, "cpu"),
    ({"image": "cirros", "name": "@bad"}, "name"),
    ({"image": "cirros", "bogus": True}, "bogus"),
    ({"image": 42}, "image"),
])
def test_create_bad_input_is_400_naming_the_field(client, body, field):
    r = client.post("/v1/containers", json=body)
    assert r.status == 400
    assert r.error["title"].startswith(f"Invalid input for field '{field}'")
    assert r.error["code"] == "container.invalid-input"


def test_create_field_newer_than_version_is_400(client):
    r = client.post("/v1/containers", json={"image": "cirros", "hostname": "hh"},
                    version="1.8")
    assert r.status == 400
    assert "only supported from version 1.9" in r.error["title"]


def test_privileged_is_denied_even_to_admin(client):
    r = client.post("/v1/containers", json={"image": "cirros", "privileged": True})
    assert r.status == 403
    assert r.error["title"] == "Policy doesn't allow container:create:privileged to be performed."


@pytest.mark.parametrize("field, value", [("runtime", "runc"), ("host", "node1"),
                                          ("image_pull_policy", "always")])
def test_admin_only_create_fields_forbidden_for_members(client, field, value):
    r = client.post("/v1/containers", json={"image": "cirros", field: value}, token=USER_TOKEN)
    assert r.status == 403
    ok = client.post("/v1/containers", json={"image": "cirros", field: value})
    assert ok.status == 202


def test_user_project_token_creates_in_that_project(client, manager):
    r = client.post("/v1/containers", json={"image": "cirros"}, token=USER_TOKEN)
    assert r.json["project_id"] == "projA" and r.json["user_id"] == "alice"
    assert "host" not in r.json


# -- list / show ---------------------------------------------------------------------

def test_member_sees_only_own_project(client, manager):
    manager.add(name="mine", project_id="projA")
    manager.add(name="theirs", project_id="projB")
    r = client.get("/v1/containers", token=USER_TOKEN)
    assert [c["name"] for c in r.json["containers"]] == ["mine"]
    assert r.json["next"] is None
    item = r.json["containers"][0]
    for key in ("host", "runtime", "privileged", "image_pull_policy"):
        assert key not in item


def test_all_projects_requires_admin(client, manager):
    manager.add(name="a", project_id="projA")
    manager.add(name="b", project_id="projB")
    r = client.get("/v1/containers?all_projects=1", token=USER_TOKEN)
    assert r.status == 403
    r = client.get("/v1/containers?all_projects=1")
    assert len(r.json["containers"]) == 2
    assert r.json["containers"][0]["host"] == "node1"


def test_list_filters_are_exact_matches(client, manager):
    manager.add(name="a", status="Running", memory=512, project_id="demo")
    manager.add(name="b", status="Stopped", memory=256, project_id="demo", auto_remove=True)
    names = lambda q: [c["name"] for c in client.get("/v1/containers?" + q).json["containers"]]
    assert names("status=Running") == ["a"]
    assert names("memory=256") == ["b"]
    assert names("auto_remove=True") == ["b"]
    assert names("name=a&image=cirros") == ["a"]


def test_unknown_list_parameter_is_400(client):
    r = client.get("/v1/containers?colour=blue")
    assert r.status == 400 and r.error["title"] == "Unknown parameters: colour"


def test_pagination_with_next_link_and_marker(client, manager):
    recs = [manager.add(name=f"c{i}", project_id="demo") for i in range(5)]
    r = client.get("/v1/containers/?limit=2&sort_key=name")
    page = r.json
    assert [c["name"] for c in page["containers"]] == ["c0", "c1"]
    assert page["next"] == ("http://127.0.0.1:9517/v1/containers?sort_key=name&sort_dir=asc"
                            f"&limit=2&marker={recs[1].uuid}")
    r2 = client.get(page["next"].replace("http://127.0.0.1:9517", ""))
    assert [c["name"] for c in r2.json["containers"]] == ["c2", "c3"]
    r3 = client.get(f"/v1/containers?limit=2&sort_key=name&marker={recs[3].uuid}")
    assert [c["name"] for c in r3.json["containers"]] == ["c4"] and r3.json["next"] is None
    desc = client.get("/v1/containers?sort_key=name&sort_dir=desc").json["containers"]
    assert [c["name"] for c in desc] == ["c4", "c3", "c2", "c1", "c0"]


def test_unknown_marker_is_400(client):
    r = client.get("/v1/containers?marker=8b3a1c1e-0000-4000-8000-000000000000")
    assert r.status == 400 and "Marker" in r.error["title"]


@pytest.mark.parametrize("query", ["limit=0", "limit=-1", "sort_dir=sideways",
                                   "sort_key=nonsense"])
def test_bad_paging_params_are_400(client, query):
    assert client.get("/v1/containers?" + query).status == 400


def test_show_by_uuid_and_by_name(client, manager):
    rec = manager.add(name="web", project_id="demo")
    a = client.get(f"/v1/containers/{rec.uuid}?all_projects=False")
    b = client.get("/v1/containers/web")
    assert a.status == b.status == 200
    assert a.json["uuid"] == b.json["uuid"] == rec.uuid
    assert a.json["created_at"] == "2018-03-04 19:48:49"


def test_member_cannot_see_other_projects_container(client, manager):
    rec = manager.add(name="secret", project_id="projB")
    assert client.get(f"/v1/containers/{rec.uuid}", token=USER_TOKEN).status == 404
    assert client.get(f"/v1/containers/{rec.uuid}?all_projects=True",
                      token=USER_TOKEN).status == 403


def test_ambiguous_name_is_409(client, manager):
    manager.add(name="dup", project_id="demo")
    manager.add(name="dup", project_id="demo")
    r = client.get("/v1/containers/dup")
    assert r.status == 409 and "uuid" in r.error["title"]


# -- delete ----------------------------------------------------------------------------

def test_osc_delete_is_204(client, manager):
    rec = manager.add(name="c", status="Stopped")
    r = client.delete(f"/v1/containers/{rec.uuid}?force=False&stop=False&all_projects=False")
    assert r.status == 204 and r.body == b""
    assert client.get(f"/v1/containers/{rec.uuid}").status == 404


def test_delete_running_is_409_unless_stop(client, manager):
    rec = manager.add(name="c", status="Running")
    r = client.delete(f"/v1/containers/{rec.uuid}?force=False&stop=False&all_projects=False")
    assert r.status == 409
    assert r.error["title"] == f"Cannot delete container {rec.uuid} in Running state."
    r = client.delete(f"/v1/containers/{rec.uuid}?force=False&stop=True&all_projects=False")
    assert r.status == 204
    assert ("delete", rec.uuid, False, True) in manager.calls


def test_force_delete_is_admin_only(client, manager):
    rec = manager.add(name="c", status="Running", project_id="projA")
    r = client.delete(f"/v1/containers/{rec.uuid}?force=True", token=USER_TOKEN)
    assert r.status == 403
    assert client.delete(f"/v1/containers/{rec.uuid}?force=True").status == 204


# -- lifecycle actions -----------------------------------------------------------------------

@pytest.mark.parametrize("action, status, after", [
    ("start", "Stopped", "Running"), ("stop", "Running", "Stopped"),
    ("reboot", "Running", "Running"), ("pause", "Running", "Paused"),
    ("unpause", "Paused", "Running"), ("kill", "Running", "Stopped"),
])
def test_async_actions_answer_202_null(client, manager, action, status, after):
    rec = manager.add(name="c", status=status)
    r = client.post(f"/v1/containers/{rec.uuid}/{action}")
    assert r.status == 202 and r.body == b"null"
    assert r.headers["content-type"] == "application/json"
    assert rec.status == after


def test_start_running_container_is_409_with_zun_message(client, manager):
    rec = manager.add(name="c", status="Running")
    r = client.post(f"/v1/containers/{rec.uuid}/start")
    assert r.status == 409
    assert r.error["title"] == f"Cannot start container {rec.uuid} in Running state."
    assert r.error["code"] == "container.invalid-state-exception"


def test_kill_passes_signal_and_none_means_default(client, manager):
    rec = manager.add(name="c", status="Running")
    client.post(f"/v1/containers/{rec.uuid}/kill?signal=SIGTERM")
    rec.status = "Running"
    client.post(f"/v1/containers/{rec.uuid}/kill?signal=None")
    assert [c for c in manager.calls if c[0] == "kill_signal"] == [
        ("kill_signal", "SIGTERM"), ("kill_signal", None)]


def test_member_cannot_act_on_other_project(client, manager):
    rec = manager.add(name="c", status="Stopped", project_id="projB")
    assert client.post(f"/v1/containers/{rec.uuid}/start", token=USER_TOKEN).status == 404


def test_rebuild_without_manager_support_is_501(client, manager):
    rec = manager.add(name="c", status="Running")
    r = client.post(f"/v1/containers/{rec.uuid}/rebuild?image=nginx")
    assert r.status == 501 and "rebuild" in r.error["title"]


def test_rebuild_calls_manager_when_available(client, manager):
    rec = manager.add(name="c", status="Running")
    seen = []

    async def rebuild(ctx, rec, image=None, image_driver=None):
        seen.append((rec.uuid, image, image_driver))
    manager.rebuild = rebuild
    r = client.post(f"/v1/containers/{rec.uuid}/rebuild?image=nginx&image_driver=None")
    assert r.status == 202 and seen == [(rec.uuid, "nginx", None)]


# -- synchronous actions ----------------------------------------------------------------------

def test_logs_is_a_json_string(client, manager):
    rec = manager.add(name="c", status="Running")
    r = client.get(f"/v1/containers/{rec.uuid}/logs?stdout=True&stderr=True"
                   "&timestamps=False&tail=10")
    assert r.status == 200 and r.json == "hello\n"
    assert ("logs", True, True, False, 10, None) in manager.calls


def test_logs_since_and_tail_all(client, manager):
    rec = manager.add(name="c", status="Stopped")
    client.get(f"/v1/containers/{rec.uuid}/logs?tail=all&since=1520193000&stdout=false"
               "&stderr=false")
    assert ("logs", True, True, False, None, 1520193000.0) in manager.calls


def test_osc_exec_splits_the_quoted_command(client, manager):
    rec = manager.add(name="c", status="Running")
    r = client.post(f"/v1/containers/{rec.uuid}/execute"
                    "?command=%22sh%22+%22-c%22+%22echo+hi%22")
    assert r.status == 200
    assert r.json == {"output": "echo hi\n", "exit_code": 0, "exec_id": None,
                      "proxy_url": None}
    assert ("execute", ["sh", "-c", "echo hi"]) in manager.calls


def test_interactive_exec_is_a_clear_400(client, manager):
    rec = manager.add(name="c", status="Running")
    r = client.post(f"/v1/containers/{rec.uuid}/execute?command=%22sh%22"
                    "&interactive=True&run=False")
    assert r.status == 400 and "websocket proxy" in r.error["title"]


def test_exec_on_stopped_container_is_409(client, manager):
    rec = manager.add(name="c", status="Stopped")
    r = client.post(f"/v1/containers/{rec.uuid}/execute?command=ls")
    assert r.status == 409


@pytest.mark.parametrize("method, action", [("GET", "attach"), ("POST", "resize?w=1&h=2"),
                                            ("POST", "execute_resize?exec_id=x&w=1&h=2")])
def test_tty_features_are_clear_400(client, manager, method, action):
    rec = manager.add(name="c", status="Running")
    r = client.request(method, f"/v1/containers/{rec.uuid}/{action}")
    assert r.status == 400 and "websocket proxy" in r.error["title"]


def test_top_ps_args_none_means_default(client, manager):
    rec = manager.add(name="c", status="Running")
    r = client.get(f"/v1/containers/{rec.uuid}/top?ps_args=None")
    assert r.status == 200 and r.json["Titles"] == ["PID", "CMD"]
    assert ("top", None) in manager.calls


def test_stats(client, manager):
    rec = manager.add(name="c", status="Running")
    r = client.get(f"/v1/containers/{rec.uuid}/stats")
    assert r.status == 200 and r.json["MEM LIMIT(MiB)"] == 512.0


def test_archive_round_trip_is_base64(client, manager):
    rec = manager.add(name="c", status="Running")
    r = client.get(f"/v1/containers/{rec.uuid}/get_archive?path=%2Fetc%2Fhosts")
    assert r.status == 200
    assert base64.b64decode(r.json["data"]) == b"tar\x00bytes"
    assert r.json["stat"]["name"] == "hosts"
    r = client.post(f"/v1/containers/{rec.uuid}/put_archive?path=%2Ftmp",
                    json={"data": base64.b64encode(b"TAR").decode()})
    assert r.status == 200 and ("put_archive", "/tmp", b"TAR") in manager.calls
    r = client.post(f"/v1/containers/{rec.uuid}/put_archive?path=%2Ftmp",
                    json={"data": "!!not base64!!"})
    assert r.status == 400


def test_commit_answers_202_with_image_uuid(client, manager):
    rec = manager.add(name="c", status="Running")
    r = client.post(f"/v1/containers/{rec.uuid}/commit?repository=repo&tag=v1")
    assert r.status == 202 and r.json == {"uuid": "sha256:abc"}
    assert ("commit", "repo", "v1") in manager.calls
    assert client.post(f"/v1/containers/{rec.uuid}/commit").status == 400


def test_patch_update_with_osc_set_body(client, manager):
    rec = manager.add(name="c", status="Running", memory=512, cpu=1.0)
    r = client.patch(f"/v1/containers/{rec.uuid}", json={"memory": "1024", "cpu": "2"})
    assert r.status == 200
    assert r.json["memory"] == "1024" and r.json["cpu"] == 2.0
    assert client.patch(f"/v1/containers/{rec.uuid}", json={"image": "x"}).status == 400


def test_resize_container_from_1_19(client, manager):
    rec = manager.add(name="c", status="Running", memory=512, cpu=1.0)
    r = client.post(f"/v1/containers/{rec.uuid}/resize_container?cpu=2&memory=256",
                    version="1.19")
    assert r.status == 202 and r.json["memory"] == "256" and r.json["cpu"] == 2.0


def test_rename_before_1_14(client, manager):
    rec = manager.add(name="old", status="Running")
    r = client.post(f"/v1/containers/{rec.uuid}/rename?name=new", version="1.13")
    assert r.status == 200 and r.json["name"] == "new"


def test_network_list_shape(client, manager):
    rec = manager.add(name="c", status="Running", addresses={
        "bridge": [{"addr": "172.17.0.2", "version": 4, "port": None, "subnet_id": None,
                    "preserve_on_delete": False}]})
    r = client.get(f"/v1/containers/{rec.uuid}/network_list")
    assert r.json == {"networks": [{"net_id": "bridge", "port_id": None, "fixed_ips": [
        {"subnet_id": None, "version": 4, "ip_address": "172.17.0.2"}]}]}


def test_container_actions_list_and_show(client, manager):
    rec = manager.add(name="c", status="Stopped", project_id="projA")
    client.post(f"/v1/containers/{rec.uuid}/start", token=USER_TOKEN)
    r = client.get(f"/v1/containers/{rec.uuid}/container_actions", token=USER_TOKEN)
    (act,) = r.json["containerActions"]
    assert act["action"] == "start" and act["start_time"] == "2018-03-04T19:48:49.123456"
    r = client.get(f"/v1/containers/{rec.uuid}/container_actions/{act['request_id']}",
                   token=USER_TOKEN)
    assert r.status == 200 and r.json["events"][0]["traceback"] is None
    r = client.get(f"/v1/containers/{rec.uuid}/container_actions/{act['request_id']}")
    assert r.json["events"][0]["traceback"] == "tb"
    assert client.get(f"/v1/containers/{rec.uuid}/container_actions/req-nope").status == 404
