"""Volumes, file injection (Zun ``mounts``, 1.11 / 1.23) and rebuild on one node:
the API over the real manager and the fake engine, asserting on HTTP answers and
on what the containers see (exec)."""

from __future__ import annotations

import base64
import urllib.parse

from tests.sim.api.conftest import RUNNER
from zund.compute.volumes import volume_name
from zund.runtimes.fake import TEST_IMAGE

ADMIN = "admin:demo"
MEMBER = "alice:projA"
OTHER = "bob:projB"


def run_body(*mounts, **changes):
    body = {"image": TEST_IMAGE, "command": RUNNER, "mounts": list(mounts)}
    body.update(changes)
    return body


def run(client, stack, body, token=MEMBER, version="1.40"):
    r = client.post("/v1/containers?run=true", json=body, token=token, version=version)
    assert r.status == 202, r.body
    stack.settle()
    return r.json["uuid"]


def sh(client, uuid, script, token=MEMBER) -> str:
    """The output of ``sh -c script`` in the container (OSC's quoted exec)."""
    quoted = urllib.parse.quote(f'"sh" "-c" "{script}"')
    r = client.post(f"/v1/containers/{uuid}/execute?command={quoted}", token=token)
    assert r.status == 200, r.body
    return r.json["output"]


def status(client, uuid, token=MEMBER) -> str:
    return client.get(f"/v1/containers/{uuid}", token=token).json["status"]


def act(client, stack, uuid, action, token=MEMBER, query=""):
    r = client.post(f"/v1/containers/{uuid}/{action}{query}", token=token)
    assert r.status in (202, 204), (action, r.status, r.body)
    stack.settle()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- volumes ---------------------------------------------------------------------------------

def test_a_named_volume_keeps_data_across_stop_start_reboot_and_rebuild(client, stack):
    """`run --mount source=data1,destination=/data,size=1`: what is written in /data
    is still there after stop/start, reboot and rebuild."""
    uuid = run(client, stack, run_body({"source": "data1", "destination": "/data",
                                        "size": "1"}))
    assert status(client, uuid) == "Running"
    sh(client, uuid, "echo kept > /data/f")
    act(client, stack, uuid, "stop")
    act(client, stack, uuid, "start")
    act(client, stack, uuid, "reboot")
    assert sh(client, uuid, "cat /data/f") == "kept\n"
    act(client, stack, uuid, "rebuild")
    assert status(client, uuid) == "Running"
    assert sh(client, uuid, "cat /data/f") == "kept\n"


def test_a_named_volume_outlives_its_container_for_the_same_project_only(client, stack):
    """A named volume stays after its container is deleted; the project's next
    container mounting that name sees the data, another project's does not."""
    first = run(client, stack, run_body({"source": "data1", "destination": "/data"}))
    sh(client, first, "echo mine > /data/f")
    assert client.delete(f"/v1/containers/{first}?stop=true").status == 204
    stack.settle()
    again = run(client, stack, run_body({"source": "data1", "destination": "/srv"}))
    assert sh(client, again, "cat /srv/f") == "mine\n"
    theirs = run(client, stack, run_body({"source": "data1", "destination": "/data"}),
                 token=OTHER)
    assert sh(client, theirs, "cat /data/f 2>/dev/null; echo end", token=OTHER) == "end\n"


def test_a_size_only_volume_goes_away_with_its_container(client, stack):
    """`--mount size=1,destination=/scratch`: a volume made for the container and
    removed by its delete (Zun's auto_remove rule); a named one is kept."""
    uuid = run(client, stack, run_body({"size": "1", "destination": "/scratch"},
                                       {"source": "keep", "destination": "/keep"}))
    ours = {n for n, (labels, _tree) in stack.runtime.volumes.items()
            if labels.get("zund.project") == "projA"}
    assert len(ours) == 2 and volume_name("projA", "keep") in ours
    assert client.delete(f"/v1/containers/{uuid}?stop=true").status == 204
    stack.settle()
    left = {n for n, (labels, _tree) in stack.runtime.volumes.items()
            if labels.get("zund.project") == "projA"}
    assert left == {volume_name("projA", "keep")}


def test_mounts_are_not_shown_in_the_container_view(client, stack):
    """The view stays Zun's: no mounts field, no injected content."""
    uuid = run(client, stack, run_body({"type": "bind", "source": b64("secret=1"),
                                        "destination": "/etc/app.conf"}))
    body = client.get(f"/v1/containers/{uuid}", token=MEMBER).body.decode()
    assert "mounts" not in body and b64("secret=1") not in body


# -- file injection (1.23) ---------------------------------------------------------------------

def test_a_bind_mount_injects_the_file_and_a_rebuild_injects_it_again(client, stack):
    """`--mount type=bind,source=<file>,destination=/etc/app.conf`: the content is
    there at start, and again after a rebuild."""
    uuid = run(client, stack, run_body({"type": "bind", "source": b64("answer=42\n"),
                                        "destination": "/etc/app.conf"}))
    assert sh(client, uuid, "cat /etc/app.conf") == "answer=42\n"
    act(client, stack, uuid, "rebuild")
    assert sh(client, uuid, "cat /etc/app.conf") == "answer=42\n"


def test_a_bind_mount_before_1_23_is_refused_naming_the_field(client):
    """File injection is a 1.23 feature: older microversions are refused."""
    r = client.post("/v1/containers", json=run_body(
        {"type": "bind", "source": b64("x"), "destination": "/etc/x"}), token=MEMBER,
        version="1.22")
    assert r.status in (400, 406) and "mounts[0].type" in r.body.decode()


# -- refusals ------------------------------------------------------------------------------------

def test_bad_mounts_are_400_naming_the_field(client):
    """Bad sizes, relative or duplicate destinations, bad names, bad base64: 400."""
    cases = [
        ({"source": "v", "destination": "/d", "size": "0"}, "mounts[0].size"),
        ({"source": "v", "destination": "/d", "size": "-1"}, "mounts[0].size"),
        ({"source": "v", "destination": "/d", "size": "lots"}, "mounts[0].size"),
        ({"source": "v", "destination": "/d", "size": 100000}, "mounts[0].size"),
        ({"destination": "/d"}, "mounts[0].size"),
        ({"source": "v", "destination": "d"}, "mounts[0].destination"),
        ({"source": "v", "destination": "/"}, "mounts[0].destination"),
        ({"source": "v", "destination": "/a/../etc"}, "mounts[0].destination"),
        ({"source": "../x", "destination": "/d"}, "mounts[0].source"),
        ({"type": "bind", "source": "not base64!", "destination": "/d"}, "mounts[0].source"),
        ({"type": "nfs", "source": "v", "destination": "/d"}, "mounts[0].type"),
        ({"source": "v", "destination": "/d", "mode": "rw"}, "mounts[0].mode"),
    ]
    for mount, field in cases:
        r = client.post("/v1/containers", json=run_body(mount), token=MEMBER)
        assert r.status == 400, (mount, r.status)
        assert f"'{field}'" in r.error["detail"], (mount, r.error)
    r = client.post("/v1/containers", json=run_body(
        {"source": "v", "destination": "/d"}, {"source": "w", "destination": "/d/"}),
        token=MEMBER)
    assert r.status == 400 and "'mounts[1].destination'" in r.error["detail"]


def test_binding_a_host_path_is_403_for_a_member_and_allowed_for_an_admin(client, stack):
    """A volume source that is a host path is a bind of the host: admin only (403
    naming mounts[0].source otherwise)."""
    body = run_body({"source": "/etc", "destination": "/host-etc"})
    r = client.post("/v1/containers", json=body, token=MEMBER)
    assert r.status == 403 and "mounts[0].source" in r.body.decode()
    r = client.post("/v1/containers?run=true", json=body, token=ADMIN)
    assert r.status == 202


def test_a_foreign_volume_is_refused_and_the_container_ends_in_error(client, stack):
    """A volume found under the project's name but labelled with another project is
    never mounted: the create ends in Error naming mounts."""
    stack.run(stack.runtime.create_volume(volume_name("projA", "stolen"),
                                          {"zund.project": "projB"}))
    uuid = run(client, stack, run_body({"source": "stolen", "destination": "/d"}))
    shown = client.get(f"/v1/containers/{uuid}", token=MEMBER).json
    assert shown["status"] == "Error" and "another project" in shown["status_reason"]


# -- rebuild -------------------------------------------------------------------------------------

def test_rebuild_with_a_new_image_keeps_uuid_name_and_status(client, stack):
    """`rebuild --image NEW web`: same uuid and name, the new image, Running again,
    recorded as a rebuild action."""
    stack.runtime.add_local_image("zund-test/other:2")
    uuid = run(client, stack, run_body(name="web"))
    act(client, stack, uuid, "rebuild", query="?image=zund-test/other:2")
    shown = client.get("/v1/containers/web", token=MEMBER).json
    assert shown["uuid"] == uuid and shown["image"] == "zund-test/other:2"
    assert shown["status"] == "Running" and shown["task_state"] is None
    actions = client.get(f"/v1/containers/{uuid}/container_actions", token=MEMBER).json
    assert "rebuild" in [a["action"] for a in actions["containerActions"]]


def test_rebuild_of_a_stopped_container_leaves_it_created(client, stack):
    """A container that was not Running is rebuilt but not started (Zun's rule)."""
    uuid = run(client, stack, run_body())
    act(client, stack, uuid, "stop")
    act(client, stack, uuid, "rebuild")
    assert status(client, uuid) == "Created"


def test_rebuild_to_a_missing_image_leaves_the_container_untouched(client, stack):
    """A pull that fails before anything is removed: still Running with its old
    image, the reason in status_reason and the action in Error."""
    uuid = run(client, stack, run_body())
    act(client, stack, uuid, "rebuild", query="?image=127.0.0.1:1/nope:1")
    shown = client.get(f"/v1/containers/{uuid}", token=MEMBER).json
    assert shown["status"] == "Running" and shown["image"] == TEST_IMAGE
    assert "rebuild failed" in shown["status_reason"]


def test_rebuild_is_refused_while_paused_and_for_another_project(client, stack):
    """Zun's VALID_STATES: no rebuild while Paused (409); another project: 404."""
    uuid = run(client, stack, run_body())
    act(client, stack, uuid, "pause")
    assert client.post(f"/v1/containers/{uuid}/rebuild", token=MEMBER).status == 409
    assert client.post(f"/v1/containers/{uuid}/rebuild", token=OTHER).status == 404
