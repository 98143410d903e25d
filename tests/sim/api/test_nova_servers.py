"""The compute API's servers over the real node-local stack (NovaAPI →
LocalContainers → ContainerManager → SQLite → fake runtime): one set of
containers, two views. Assertions are on HTTP answers and on the containers'
state as the Zun API shows it."""

from __future__ import annotations

import pytest

from tests.support.nova_support import SERVER_IMAGE, NovaClient

ALICE = "alice:projA"


@pytest.fixture
def nova(stack):
    return NovaClient(stack)


def boot(nova, stack, name="web1", **kw) -> str:
    r = nova.create(name, **kw)
    assert r.status == 202, r.body
    stack.settle()
    return r.json["server"]["id"]


def server(nova, sid: str, **kw) -> dict:
    r = nova.get(f"/v2.1/servers/{sid}", **kw)
    assert r.status == 200, r.body
    return r.json["server"]


def act(nova, stack, sid: str, body: dict, **kw):
    r = nova.post(f"/v2.1/servers/{sid}/action", json=body, **kw)
    stack.settle()
    return r


def test_create_answers_202_with_location_and_the_server_becomes_active(nova, stack):
    """POST /servers: 202, Location of the new server, which boots to ACTIVE."""
    r = nova.create("web1", metadata={"tier": "front"})
    assert r.status == 202, r.body
    sid = r.json["server"]["id"]
    assert r.headers["location"].endswith(f"/v2.1/servers/{sid}")
    assert r.headers["x-openstack-request-id"].startswith("req-")
    stack.settle()
    s = server(nova, sid)
    assert (s["status"], s["OS-EXT-STS:vm_state"], s["OS-EXT-STS:power_state"],
            s["OS-EXT-STS:task_state"]) == ("ACTIVE", "active", 1, None)
    assert s["name"] == "web1" and s["metadata"] == {"tier": "front"}
    assert s["flavor"]["original_name"] == "c1.small" and s["flavor"]["ram"] == 512
    assert s["image"]["id"] == SERVER_IMAGE
    assert s["OS-EXT-AZ:availability_zone"] == "nova" and len(s["hostId"]) == 56


def test_a_server_is_a_container_in_the_zun_api_with_metadata_as_labels(nova, stack):
    """A server made through Nova is the same container the Zun API shows."""
    sid = boot(nova, stack, metadata={"tier": "front"})
    c = stack.client().get(f"/v1/containers/{sid}").json
    assert (c["name"], c["status"], c["labels"], c["cpu"], c["memory"]) == (
        "web1", "Running", {"tier": "front"}, 1.0, "512")


def test_a_container_made_through_the_zun_api_is_listed_as_a_server(nova, stack):
    """A Zun container appears in GET /servers/detail with its Nova status."""
    rec = stack.add("zun-made", status="Stopped")
    servers = nova.get("/v2.1/servers/detail").json["servers"]
    assert [(s["id"], s["name"], s["status"]) for s in servers] == [
        (rec.uuid, "zun-made", "SHUTOFF")]


def test_stop_start_reboot_pause_unpause_move_the_server_through_nova_states(nova, stack):
    """Each action answers 202 and the server shows the state Nova names."""
    sid = boot(nova, stack)
    steps = [({"os-stop": None}, "SHUTOFF"), ({"os-start": None}, "ACTIVE"),
             ({"reboot": {"type": "SOFT"}}, "ACTIVE"), ({"reboot": {"type": "HARD"}}, "ACTIVE"),
             ({"pause": None}, "PAUSED"), ({"unpause": None}, "ACTIVE")]
    seen = []
    for body, _ in steps:
        r = act(nova, stack, sid, body)
        assert r.status == 202 and r.body == b"", (body, r.body)
        seen.append(server(nova, sid)["status"])
    assert seen == [status for _, status in steps]


def test_an_action_in_the_wrong_state_is_a_409_conflicting_request(nova, stack):
    """Starting an ACTIVE server is Nova's 409 conflictingRequest."""
    sid = boot(nova, stack)
    r = act(nova, stack, sid, {"os-start": None})
    assert r.status == 409 and r.json["conflictingRequest"]["code"] == 409


def test_an_unknown_action_is_a_400_bad_request(nova, stack):
    """An action zund does not offer is Nova's 400 'There is no such action'."""
    sid = boot(nova, stack)
    r = act(nova, stack, sid, {"shelve": None})
    assert r.status == 400 and "no such action: shelve" in r.json["badRequest"]["message"]


def test_rename_with_put_changes_the_name_in_both_views(nova, stack):
    """PUT /servers/{id} {"server": {"name"}} renames the container."""
    sid = boot(nova, stack)
    r = nova.put(f"/v2.1/servers/{sid}", json={"server": {"name": "web2"}})
    assert r.status == 200 and r.json["server"]["name"] == "web2"
    assert stack.client().get(f"/v1/containers/{sid}").json["name"] == "web2"


def test_console_output_returns_the_containers_logs(nova, stack):
    """os-getConsoleOutput answers the container's log text, tail by length."""
    r = nova.create("echoer", image="zund-test/busybox:latest")
    sid = r.json["server"]["id"]
    stack.settle()
    rec = stack.add("printer", command=["sh", "-c", "echo one; echo two; echo three"],
                    status="Stopped")
    out = act(nova, stack, rec.uuid, {"os-getConsoleOutput": {"length": 2}})
    assert out.status == 200 and out.json == {"output": "two\nthree\n"}
    assert act(nova, stack, sid, {"os-getConsoleOutput": {}}).status == 200


def test_delete_answers_204_and_the_server_is_then_item_not_found(nova, stack):
    """DELETE of a running server stops and deletes it; then 404 itemNotFound."""
    sid = boot(nova, stack)
    r = nova.delete(f"/v2.1/servers/{sid}")
    assert r.status == 204
    stack.settle()
    r = nova.get(f"/v2.1/servers/{sid}")
    assert r.status == 404
    assert r.json == {"itemNotFound": {"code": 404,
                                       "message": f"Instance {sid} could not be found."}}


def test_list_filters_by_name_and_status_and_pages_with_marker_and_limit(nova, stack):
    """name (anchored regex subset), status, limit with servers_links and marker."""
    ids = [boot(nova, stack, name) for name in ("web-a", "web-b", "db-a")]
    act(nova, stack, ids[2], {"os-stop": None})
    names = lambda r: sorted(s["name"] for s in r.json["servers"])  # noqa: E731
    assert names(nova.get("/v2.1/servers?name=^web")) == ["web-a", "web-b"]
    assert names(nova.get("/v2.1/servers?name=a$")) == ["db-a", "web-a"]
    assert names(nova.get("/v2.1/servers/detail?status=SHUTOFF")) == ["db-a"]
    first = nova.get("/v2.1/servers?limit=2")
    assert len(first.json["servers"]) == 2
    href = first.json["servers_links"][0]["href"]
    assert "marker=" in href and "limit=2" in href
    rest = nova.get("/v2.1/servers?limit=2&marker=" + first.json["servers"][-1]["id"])
    assert {s["id"] for s in first.json["servers"] + rest.json["servers"]} == set(ids)
    bad = nova.get("/v2.1/servers?marker=nope")
    assert bad.status == 400 and "marker [nope] not found" in bad.json["badRequest"]["message"]


def test_another_projects_server_is_not_found_and_all_tenants_is_forbidden(nova, stack):
    """A member of another project gets 404 for the server, 403 for all_tenants."""
    sid = boot(nova, stack)
    assert nova.get(f"/v2.1/servers/{sid}", token=ALICE).status == 404
    assert nova.get("/v2.1/servers", token=ALICE).json["servers"] == []
    r = nova.get("/v2.1/servers?all_tenants=1", token=ALICE)
    assert r.status == 403 and "forbidden" in r.json


@pytest.mark.parametrize("server,words", [
    ({"flavorRef": "nope"}, "Flavor nope could not be found"),
    ({"key_name": "mykey"}, "key_name"),
    ({"networks": [{"uuid": "0b8a9c1e-9f68-4f9c-9a53-1f0e0f0e0f0e"}]}, "networks"),
    ({"security_groups": [{"name": "web"}]}, "Security groups"),
    ({"max_count": 3}, "max_count"),
    ({"user_data": "IyEvYmluL3No"}, "Additional properties"),
    ({"name": "x y"}, "name"),
    ({"metadata": {"k": 5}}, "metadata"),
    ({"block_device_mapping_v2": [{"source_type": "volume", "uuid": "v1", "boot_index": 0,
                                   "destination_type": "volume"}]}, "Block device"),
])
def test_create_refuses_what_zund_cannot_honour_with_novas_400(nova, stack, server, words):
    """Unknown flavor, key pairs, Neutron networks, extra security groups, several
    servers, unknown properties, bad names and metadata: 400 badRequest."""
    r = nova.create(**{"name": "web1", **server})
    assert r.status == 400, r.body
    assert words in r.json["badRequest"]["message"]
    assert nova.get("/v2.1/servers").json["servers"] == []


def test_create_accepts_harmless_network_and_security_group_requests(nova, stack):
    """networks auto|none, the default security group and OSC's boot-from-image
    block device mapping are accepted."""
    boot_image = [{"uuid": SERVER_IMAGE, "boot_index": 0, "source_type": "image",
                   "destination_type": "local", "delete_on_termination": True}]
    for i, extra in enumerate([{"networks": "auto"}, {"networks": "none"},
                               {"security_groups": [{"name": "default"}]},
                               {"block_device_mapping_v2": boot_image}]):
        assert nova.create(f"ok-{i}", **extra).status == 202


def test_a_flavor_url_is_accepted_as_flavor_ref(nova, stack):
    """flavorRef may be the flavor's link (Nova accepts a URL ending in the id)."""
    sid = boot(nova, stack, flavor="http://127.0.0.1:8774/v2.1/flavors/c1.medium")
    assert server(nova, sid)["flavor"]["original_name"] == "c1.medium"


def test_a_glance_uuid_image_ref_is_400_on_a_node_without_glance(nova, stack):
    """An imageRef that is an image id needs the Glance driver."""
    r = nova.create(image="1c2b3a4d-0000-4000-8000-000000000001")
    assert r.status == 400 and "could not be found" in r.json["badRequest"]["message"]
