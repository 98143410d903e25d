"""Container endpoints with the exact request shapes python-zunclient / OSC send
(zun-api.md §5.1, §5.2, §7), over the real node-local stack (LocalContainers →
ContainerManager → Store, fake runtime). Tests assert on answers and state."""

import base64
import io
import re
import tarfile

import pytest

from tests.support.client import USER_TOKEN
from tests.sim.api.conftest import RUNNER
from tests.pure.api.test_api_schemas import OSC_RUN_BODY
from zund.common import errors
from zund.runtimes.fake import TEST_IMAGE

ZUN_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


def osc_run_body(**changes):
    body = dict(OSC_RUN_BODY, image=TEST_IMAGE)
    body.update(changes)
    return body


# -- create -----------------------------------------------------------------------

def test_osc_run_creates_and_answers_202_with_location(client, stack):
    """`appcontainer run` body (numbers as strings) + ?run=true -> 202, Location, view;
    the container then runs."""
    r = client.post("/v1/containers?run=true", json=osc_run_body())
    assert r.status == 202, r.body
    body = r.json
    assert r.headers["location"] == f"http://127.0.0.1:9517/v1/containers/{body['uuid']}"
    assert body["status"] == "Creating"
    assert body["memory"] == "256" and body["cpu"] == 0.5
    assert body["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": "3"}
    assert body["command"] == ["sleep", "100"]
    stack.settle()
    rec = stack.get(body["uuid"])
    assert rec.status == "Running"
    assert rec.memory == 256 and rec.cpu == 0.5
    assert rec.restart_policy == {"Name": "on-failure", "MaximumRetryCount": 3}


def test_create_without_run_and_generated_name(client, stack):
    """Without run the container stops at Created; a name and the cpu/memory
    defaults are filled in by the API."""
    r = client.post("/v1/containers", json={"image": TEST_IMAGE})
    assert r.status == 202
    assert r.json["name"].endswith("-container")
    assert r.json["memory"] == "512" and r.json["cpu"] == 1.0
    stack.settle()
    assert stack.get(r.json["uuid"]).status == "Created"


def test_create_with_empty_json_body_names_image(client):
    """An empty body is a 400 naming the missing image."""
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
def test_create_bad_input_is_400_naming_the_field(client, stack, body, field):
    """Bad create input is a 400 naming the field; nothing is created."""
    r = client.post("/v1/containers", json=body)
    assert r.status == 400
    assert r.error["title"].startswith(f"Invalid input for field '{field}'")
    assert r.error["code"] == "container.invalid-input"
    assert stack.run(stack.store.list_containers()) == []


def test_create_field_newer_than_version_is_400(client):
    """A field newer than the request's microversion is refused."""
    r = client.post("/v1/containers", json={"image": "cirros", "hostname": "hh"},
                    version="1.8")
    assert r.status == 400
    assert "only supported from version 1.9" in r.error["title"]


def test_privileged_is_denied_even_to_admin(client):
    """container:create:privileged is denied by default."""
    r = client.post("/v1/containers", json={"image": "cirros", "privileged": True})
    assert r.status == 403
    assert r.error["title"] == "Policy doesn't allow container:create:privileged to be performed."


@pytest.mark.parametrize("field, value", [("runtime", "runc"), ("host", "node1"),
                                          ("image_pull_policy", "always")])
def test_admin_only_create_fields_forbidden_for_members(client, field, value):
    """runtime, host and image_pull_policy are admin-only create fields."""
    r = client.post("/v1/containers", json={"image": TEST_IMAGE, field: value},
                    token=USER_TOKEN)
    assert r.status == 403
    ok = client.post("/v1/containers", json={"image": TEST_IMAGE, field: value})
    assert ok.status == 202


def test_user_project_token_creates_in_that_project(client, stack):
    """The container belongs to the caller's user and project."""
    r = client.post("/v1/containers", json={"image": TEST_IMAGE}, token=USER_TOKEN)
    assert r.json["project_id"] == "projA" and r.json["user_id"] == "alice"
    assert "host" not in r.json
    rec = stack.get(r.json["uuid"])
    assert (rec.project_id, rec.user_id) == ("projA", "alice")


# -- list / show ---------------------------------------------------------------------

def test_member_sees_only_own_project(client, stack):
    """A member lists only its project's containers, without admin-only keys."""
    stack.add(name="mine", project_id="projA")
    stack.add(name="theirs", project_id="projB")
    r = client.get("/v1/containers", token=USER_TOKEN)
    assert [c["name"] for c in r.json["containers"]] == ["mine"]
    assert r.json["next"] is None
    item = r.json["containers"][0]
    for key in ("host", "runtime", "privileged", "image_pull_policy"):
        assert key not in item


def test_all_projects_requires_admin(client, stack):
    """all_projects is admin-only and lists every project."""
    stack.add(name="a", project_id="projA")
    stack.add(name="b", project_id="projB")
    r = client.get("/v1/containers?all_projects=1", token=USER_TOKEN)
    assert r.status == 403
    r = client.get("/v1/containers?all_projects=1")
    assert len(r.json["containers"]) == 2
    assert r.json["containers"][0]["host"] == "node1"


def test_list_filters_are_exact_matches(client, stack):
    """List filters match exactly (memory as a string, booleans parsed)."""
    stack.add(name="a", status="Running", memory=512)
    stack.add(name="b", status="Stopped", memory=256, auto_remove=False)
    stack.add(name="c", status="Created", memory=256, auto_remove=True)
    names = lambda q: [c["name"] for c in client.get("/v1/containers?" + q).json["containers"]]
    assert names("status=Running") == ["a"]
    assert names("memory=256") == ["b", "c"]
    assert names("auto_remove=True") == ["c"]
    assert names(f"name=a&image={TEST_IMAGE}") == ["a"]


def test_unknown_list_parameter_is_400(client):
    """Unknown list parameters are named in a 400."""
    r = client.get("/v1/containers?colour=blue")
    assert r.status == 400 and r.error["title"] == "Unknown parameters: colour"


def test_pagination_with_next_link_and_marker(client, stack):
    """limit/marker/sort pages, with a next link until the last page."""
    recs = [stack.add(name=f"c{i}", status="Created") for i in range(5)]
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
    """A marker that names no container is a 400."""
    r = client.get("/v1/containers?marker=8b3a1c1e-0000-4000-8000-000000000000")
    assert r.status == 400 and "Marker" in r.error["title"]


@pytest.mark.parametrize("query", ["limit=0", "limit=-1", "sort_dir=sideways",
                                   "sort_key=nonsense"])
def test_bad_paging_params_are_400(client, query):
    """Out-of-range paging parameters are a 400."""
    assert client.get("/v1/containers?" + query).status == 400


def test_show_by_uuid_and_by_name(client, stack):
    """show finds a container by uuid or by name; times in Zun's format."""
    rec = stack.add(name="web")
    a = client.get(f"/v1/containers/{rec.uuid}?all_projects=False")
    b = client.get("/v1/containers/web")
    assert a.status == b.status == 200
    assert a.json["uuid"] == b.json["uuid"] == rec.uuid
    assert a.json["status"] == "Running"
    assert ZUN_TIME.match(a.json["created_at"])


def test_member_cannot_see_other_projects_container(client, stack):
    """Another project's container is 404 to a member; all_projects is 403."""
    rec = stack.add(name="secret", project_id="projB")
    assert client.get(f"/v1/containers/{rec.uuid}", token=USER_TOKEN).status == 404
    assert client.get(f"/v1/containers/{rec.uuid}?all_projects=True",
                      token=USER_TOKEN).status == 403


def test_ambiguous_name_is_409(client, stack):
    """Two containers with one name: asking by name is a 409."""
    stack.add(name="dup", status="Created")
    stack.add(name="dup", status="Created")
    r = client.get("/v1/containers/dup")
    assert r.status == 409 and "uuid" in r.error["title"]


# -- delete ----------------------------------------------------------------------------

def test_osc_delete_is_204(client, stack):
    """Deleting a stopped container answers 204 and it goes away."""
    rec = stack.add(name="c", status="Stopped")
    r = client.delete(f"/v1/containers/{rec.uuid}?force=False&stop=False&all_projects=False")
    assert r.status == 204 and r.body == b""
    stack.settle()
    assert client.get(f"/v1/containers/{rec.uuid}").status == 404


def test_delete_running_is_409_unless_stop(client, stack):
    """A running container is deleted only with stop=True (or force)."""
    rec = stack.add(name="c", status="Running")
    r = client.delete(f"/v1/containers/{rec.uuid}?force=False&stop=False&all_projects=False")
    assert r.status == 409
    assert r.error["title"] == f"Cannot delete container {rec.uuid} in Running state."
    r = client.delete(f"/v1/containers/{rec.uuid}?force=False&stop=True&all_projects=False")
    assert r.status == 204
    stack.settle()
    assert client.get(f"/v1/containers/{rec.uuid}").status == 404


def test_force_delete_is_admin_only(client, stack):
    """force=True needs container:delete_force; a member is refused, admin not."""
    rec = stack.add(name="c", status="Running", project_id="projA")
    r = client.delete(f"/v1/containers/{rec.uuid}?force=True", token=USER_TOKEN)
    assert r.status == 403
    assert stack.get(rec.uuid).status == "Running"
    assert client.delete(f"/v1/containers/{rec.uuid}?force=True").status == 204


# -- lifecycle actions -----------------------------------------------------------------------

@pytest.mark.parametrize("action, status, after", [
    ("start", "Stopped", "Running"), ("stop", "Running", "Stopped"),
    ("reboot", "Running", "Running"), ("pause", "Running", "Paused"),
    ("unpause", "Paused", "Running"), ("kill", "Running", "Stopped"),
])
def test_async_actions_answer_202_null(client, stack, action, status, after):
    """Lifecycle actions answer 202 with a JSON null and reach their state."""
    rec = stack.add(name="c", status=status)
    r = client.post(f"/v1/containers/{rec.uuid}/{action}")
    assert r.status == 202 and r.body == b"null"
    assert r.headers["content-type"] == "application/json"
    stack.settle()
    assert stack.get(rec.uuid).status == after


def test_start_running_container_is_409_with_zun_message(client, stack):
    """Starting a running container is Zun's invalid-state 409."""
    rec = stack.add(name="c", status="Running")
    r = client.post(f"/v1/containers/{rec.uuid}/start")
    assert r.status == 409
    assert r.error["title"] == f"Cannot start container {rec.uuid} in Running state."
    assert r.error["code"] == "container.invalid-state-exception"


def test_kill_with_signal_and_none_means_default(client, stack):
    """kill takes a signal name; signal=None is the runtime's default."""
    rec = stack.add(name="c", status="Running")
    assert client.post(f"/v1/containers/{rec.uuid}/kill?signal=SIGTERM").status == 202
    stack.settle()
    assert stack.get(rec.uuid).status == "Stopped"
    assert client.post(f"/v1/containers/{rec.uuid}/start").status == 202
    stack.settle()
    assert client.post(f"/v1/containers/{rec.uuid}/kill?signal=None").status == 202
    stack.settle()
    assert stack.get(rec.uuid).status == "Stopped"


def test_member_cannot_act_on_other_project(client, stack):
    """Another project's container is 404 to a member's action."""
    rec = stack.add(name="c", status="Stopped", project_id="projB")
    assert client.post(f"/v1/containers/{rec.uuid}/start", token=USER_TOKEN).status == 404
    assert stack.get(rec.uuid).status == "Stopped"


def test_rebuild_of_an_unknown_container_is_404(client, stack):
    """Rebuild (tests/sim/api/test_mounts.py) of a container nobody holds: 404."""
    assert client.post("/v1/containers/nope/rebuild?image=nginx").status == 404


# -- synchronous actions ----------------------------------------------------------------------

def test_logs_is_a_json_string(client, stack):
    """logs answers the container's output as one JSON string."""
    rec = stack.add(name="c", status="Running",
                    command=["sh", "-c", "echo hello; " + RUNNER[2]])
    r = client.get(f"/v1/containers/{rec.uuid}/logs?stdout=True&stderr=True"
                   "&timestamps=False&tail=10")
    assert r.status == 200 and r.json == "hello\n"


def test_logs_since_and_tail_all(client, stack):
    """tail=all and a since timestamp are accepted; neither stream means both."""
    rec = stack.add(name="c", status="Stopped", command=["sh", "-c", "echo bye"])
    r = client.get(f"/v1/containers/{rec.uuid}/logs?tail=all&since=1520193000&stdout=false"
                   "&stderr=false")
    assert r.status == 200 and r.json == "bye\n"


def test_osc_exec_splits_the_quoted_command(client, stack):
    """OSC's quoted exec command is split and run; output and exit code returned."""
    rec = stack.add(name="c", status="Running")
    r = client.post(f"/v1/containers/{rec.uuid}/execute"
                    "?command=%22sh%22+%22-c%22+%22echo+hi%22")
    assert r.status == 200
    assert r.json == {"output": "hi\n", "exit_code": 0, "exec_id": None, "proxy_url": None}


def test_interactive_exec_is_a_clear_400(client, stack):
    """Interactive exec needs a websocket proxy zund does not have: 400."""
    rec = stack.add(name="c", status="Running")
    r = client.post(f"/v1/containers/{rec.uuid}/execute?command=%22sh%22"
                    "&interactive=True&run=False")
    assert r.status == 400 and "websocket proxy" in r.error["title"]


def test_exec_on_stopped_container_is_409(client, stack):
    """exec needs a running container."""
    rec = stack.add(name="c", status="Stopped")
    r = client.post(f"/v1/containers/{rec.uuid}/execute?command=ls")
    assert r.status == 409


@pytest.mark.parametrize("method, action", [("GET", "attach"), ("POST", "resize?w=1&h=2"),
                                            ("POST", "execute_resize?exec_id=x&w=1&h=2")])
def test_tty_features_are_clear_400(client, stack, method, action):
    """TTY features answer a clear 400 for a container, 404 for an unknown one."""
    rec = stack.add(name="c", status="Running")
    r = client.request(method, f"/v1/containers/{rec.uuid}/{action}")
    assert r.status == 400 and "websocket proxy" in r.error["title"]
    assert client.request(method, f"/v1/containers/nope/{action}").status == 404


def test_top_ps_args_none_means_default(client, stack):
    """top with ps_args=None lists the processes with the default columns."""
    rec = stack.add(name="c", status="Running")
    r = client.get(f"/v1/containers/{rec.uuid}/top?ps_args=None")
    assert r.status == 200
    assert "PID" in r.json["Titles"] and r.json["Processes"]


def test_stats(client, stack):
    """stats reports the memory limit of the container."""
    rec = stack.add(name="c", status="Running", memory=256)
    r = client.get(f"/v1/containers/{rec.uuid}/stats")
    assert r.status == 200 and r.json["MEM LIMIT(MiB)"] == 256.0


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_archive_round_trip_is_base64(client, stack):
    """put_archive then get_archive returns the file, base64 from 1.25."""
    rec = stack.add(name="c", status="Running")
    r = client.post(f"/v1/containers/{rec.uuid}/put_archive?path=%2Ftmp",
                    json={"data": base64.b64encode(_tar("note.txt", b"TAR")).decode()})
    assert r.status == 200
    r = client.get(f"/v1/containers/{rec.uuid}/get_archive?path=%2Ftmp%2Fnote.txt")
    assert r.status == 200
    assert r.json["stat"]["name"] == "note.txt"
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(r.json["data"]))) as tar:
        assert tar.extractfile("note.txt").read() == b"TAR"
    r = client.post(f"/v1/containers/{rec.uuid}/put_archive?path=%2Ftmp",
                    json={"data": "!!not base64!!"})
    assert r.status == 400


def test_commit_answers_202_with_image_uuid(client, stack):
    """commit answers 202 with the new image's id; a repository is required."""
    rec = stack.add(name="c", status="Running")
    r = client.post(f"/v1/containers/{rec.uuid}/commit?repository=repo&tag=v1")
    assert r.status == 202 and r.json["uuid"]
    assert client.post(f"/v1/containers/{rec.uuid}/commit").status == 400


def test_patch_update_with_osc_set_body(client, stack):
    """PATCH with OSC's `set` body changes memory and cpu; unknown fields are 400."""
    rec = stack.add(name="c", status="Running", memory=512, cpu=1.0)
    r = client.patch(f"/v1/containers/{rec.uuid}", json={"memory": "1024", "cpu": "2"})
    assert r.status == 200
    assert r.json["memory"] == "1024" and r.json["cpu"] == 2.0
    got = stack.get(rec.uuid)
    assert (got.memory, got.cpu) == (1024, 2.0)
    assert client.patch(f"/v1/containers/{rec.uuid}", json={"image": "x"}).status == 400


def test_resize_container_from_1_19(client, stack):
    """resize_container (1.19+) answers 202 with the resized view."""
    rec = stack.add(name="c", status="Running", memory=512, cpu=1.0)
    r = client.post(f"/v1/containers/{rec.uuid}/resize_container?cpu=2&memory=256",
                    version="1.19")
    assert r.status == 202 and r.json["memory"] == "256" and r.json["cpu"] == 2.0
    assert stack.get(rec.uuid).memory == 256


def test_rename_before_1_14(client, stack):
    """rename (before 1.14) changes the name."""
    rec = stack.add(name="old", status="Running")
    r = client.post(f"/v1/containers/{rec.uuid}/rename?name=new", version="1.13")
    assert r.status == 200 and r.json["name"] == "new"
    assert stack.get(rec.uuid).name == "new"


def test_network_list_shape(client, stack):
    """network_list answers Zun's nested shape of the container's addresses."""
    rec = stack.add(name="c", status="Running")
    r = client.get(f"/v1/containers/{rec.uuid}/network_list")
    assert r.status == 200
    nets = r.json["networks"]
    assert nets == [{"net_id": net, "port_id": addrs[0].get("port") if addrs else None,
                     "fixed_ips": [{"subnet_id": a.get("subnet_id"), "version": a.get("version"),
                                    "ip_address": a.get("addr")} for a in addrs]}
                    for net, addrs in stack.get(rec.uuid).addresses.items()]


def test_container_actions_list_and_show(client, stack):
    """A member sees its container's actions; tracebacks only for admins."""
    rec = stack.add(name="c", status="Stopped", project_id="projA", user_id="alice")
    assert client.post(f"/v1/containers/{rec.uuid}/start", token=USER_TOKEN).status == 202
    stack.settle()
    r = client.get(f"/v1/containers/{rec.uuid}/container_actions", token=USER_TOKEN)
    acts = r.json["containerActions"]
    assert [a["action"] for a in acts] == ["start", "stop", "create"]
    start = acts[0]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$", start["start_time"])
    r = client.get(f"/v1/containers/{rec.uuid}/container_actions/{start['request_id']}",
                   token=USER_TOKEN)
    assert r.status == 200 and r.json["events"]
    assert all(e["traceback"] is None for e in r.json["events"])
    assert client.get(f"/v1/containers/{rec.uuid}/container_actions/req-nope").status == 404


def test_failed_action_traceback_shown_to_admin_only(client, stack):
    """An action that failed keeps its traceback; the owner blanks it for members."""
    rec = stack.add(name="c", status="Running", project_id="projA", user_id="alice")
    stack.runtime.fail_next("stop", errors.RuntimeFailure(reason="engine exploded"))
    client.post(f"/v1/containers/{rec.uuid}/stop", token=USER_TOKEN)
    stack.settle()
    acts = client.get(f"/v1/containers/{rec.uuid}/container_actions").json["containerActions"]
    rid = [a for a in acts if a["action"] == "stop"][0]["request_id"]
    path = f"/v1/containers/{rec.uuid}/container_actions/{rid}"
    admin = client.get(path).json["events"]
    member = client.get(path, token=USER_TOKEN).json["events"]
    assert any(e["traceback"] for e in admin)
    assert all(e["traceback"] is None for e in member)
