"""Simulated tier: Keystone roles across the cluster. Every call is sent through a
node that does NOT hold the container, so the owner decides with the caller's
context as it crossed the peer link: roles, project, admin flag and request id."""

from __future__ import annotations

import pytest

from tests.support.harness import SimConfig

ADMIN = "admin:demo"
MEMBER = "alice:projA"             # noauth: member (and reader) of projA
OTHER_MEMBER = "bob:projB"
READER = "rita:projA:reader"
OPERATOR = "oscar:projA:operator"  # a custom role only a policy file knows


def _placed_elsewhere(c, entry: int = 0) -> tuple[dict, int]:
    """A projA container and the index of a node that does not hold it."""
    made = c.create(entry, token=MEMBER, name="web")  # a member does not see the host
    owner = c.node(c.records()[made["uuid"]][0]).index
    c.wait_status(owner, made["uuid"], "Running", token=MEMBER)
    away = next(i for i in range(len(c.nodes)) if i != owner)
    return made, away


def test_reader_may_look_but_not_act_through_any_node(make_cluster):
    """A reader of the project shows, lists and reads actions through a non-owner
    node; stop, logs, exec and delete are 403 naming the rule; nothing changes."""
    c = make_cluster(SimConfig(nodes=3))
    made, away = _placed_elsewhere(c)
    uuid = made["uuid"]
    assert c.api(away, "GET", f"/containers/{uuid}", token=READER).json["uuid"] == uuid
    listed = c.api(away, "GET", "/containers", token=READER).json["containers"]
    assert [x["uuid"] for x in listed] == [uuid]
    assert c.api(away, "GET", f"/containers/{uuid}/container_actions",
                 token=READER).status == 200
    for method, path, rule in [
            ("POST", f"/containers/{uuid}/stop", "container:stop"),
            ("GET", f"/containers/{uuid}/logs", "container:logs"),
            ("POST", f"/containers/{uuid}/execute?command=%22true%22", "container:execute"),
            ("DELETE", f"/containers/{uuid}", "container:delete"),
            ("POST", "/containers", "container:create")]:
        r = c.api(away, method, path, token=READER,
                  json={"image": "zund-test/busybox:latest"} if method == "POST" and
                  path == "/containers" else None)
        assert r.status == 403, (path, r.status, r.body)
        assert rule in r.body.decode()
    assert c.api(away, "GET", f"/containers/{uuid}", token=MEMBER).json["status"] == "Running"


def test_member_acts_through_a_non_owner_node_and_the_owner_records_its_request_id(
        make_cluster):
    """A member's stop through a node that does not hold the container is decided by
    the owner with the member's roles (a role-less context would be refused there),
    and the owner's action carries the entry node's request id."""
    c = make_cluster(SimConfig(nodes=3))
    made, away = _placed_elsewhere(c)
    r = c.api(away, "POST", f"/containers/{made['uuid']}/stop", token=MEMBER)
    assert r.status == 202
    c.wait_status(away, made["uuid"], "Stopped", token=MEMBER)
    acts = c.api(away, "GET", f"/containers/{made['uuid']}/container_actions",
                 token=MEMBER).json["containerActions"]
    stop = [a for a in acts if a["action"] == "stop"]
    assert [a["request_id"] for a in stop] == [r.headers["x-openstack-request-id"]]


def test_another_projects_member_cannot_see_or_touch_it_through_any_node(make_cluster):
    """projB's member gets 404 on show and stop through every node; it keeps running."""
    c = make_cluster(SimConfig(nodes=3))
    made, _ = _placed_elsewhere(c)
    for i in range(3):
        assert c.api(i, "GET", f"/containers/{made['uuid']}", token=OTHER_MEMBER).status == 404
        assert c.api(i, "POST", f"/containers/{made['uuid']}/stop",
                     token=OTHER_MEMBER).status == 404
        assert c.api(i, "GET", "/containers", token=OTHER_MEMBER).json["containers"] == []
    assert c.api(0, "GET", f"/containers/{made['uuid']}", token=MEMBER).json["status"] \
        == "Running"


@pytest.mark.parametrize("method,path,rule", [
    ("GET", "/containers?all_projects=1", "container:get_all_all_projects"),
    ("GET", "/hosts", "host:get_all"),
    ("GET", "/services", "zun-service:get_all"),
])
def test_admin_only_listings_are_403_for_members_and_work_for_admin(make_cluster, method,
                                                                     path, rule):
    """all_projects, hosts and services are admin-only (Zun): a member gets 403
    naming the rule, the admin gets the whole cloud."""
    c = make_cluster(SimConfig(nodes=2))
    r = c.api(1, method, path, token=MEMBER)
    assert r.status == 403 and rule in r.body.decode()
    assert c.api(1, method, path, token=ADMIN).status == 200


def test_host_pinning_is_admin_only(make_cluster):
    """A member may not choose the host (container:create:requested_destination)."""
    c = make_cluster(SimConfig(nodes=2))
    r = c.api(0, "POST", "/containers", token=MEMBER,
              json={"image": "zund-test/busybox:latest", "host": "node-1"})
    assert r.status == 403 and "container:create:requested_destination" in r.body.decode()
    assert c.create(0, token=ADMIN, host="node-1")["host"] == "node-1"


def test_policy_file_role_is_honoured_by_the_owner_node(seed, tmp_path):
    """An operator's policy file grants a custom role the stop action; a caller with
    only that role stops a container held by another node (its role crossed)."""
    from tests.support.harness import SimCluster
    from zund.api.policy import make_enforcer

    policy = tmp_path / "policy.yaml"
    policy.write_text('"container:stop": "rule:admin_or_member or '
                      '(role:operator and project_id:%(project_id)s)"\n'
                      '"container:get_one": "rule:admin_or_reader or '
                      '(role:operator and project_id:%(project_id)s)"\n')
    c = SimCluster(seed, SimConfig(nodes=3), enforcer=make_enforcer(policy_file=str(policy)))
    c.start()
    try:
        made, away = _placed_elsewhere(c)
        r = c.api(away, "POST", f"/containers/{made['uuid']}/stop", token=OPERATOR)
        assert r.status == 202, r.body
        c.wait_status(away, made["uuid"], "Stopped", token=OPERATOR)
        assert c.api(away, "POST", f"/containers/{made['uuid']}/start",
                     token=OPERATOR).status == 403
    finally:
        c.stop()


def test_the_global_request_id_reaches_the_owner(make_cluster):
    """A calling service's ``X-OpenStack-Request-ID`` (req-<uuid>) is the global request
    id of the context the owner receives, beside the entry node's own request id; a
    malformed one is ignored."""
    from twisted.logger import globalLogPublisher

    c = make_cluster(SimConfig(nodes=3))
    made, away = _placed_elsewhere(c)
    seen: list[dict] = []

    def observe(event):
        if event.get("log_namespace") == "zund.cluster.peer_server" and \
                str(event.get("log_format", "")).startswith("peer.call") and \
                event.get("op") == "OWNER_CALL":
            seen.append(event)

    global_id = "req-0b5a8d3e-6c1f-4e2a-9f7b-1c2d3e4f5a6b"
    globalLogPublisher.addObserver(observe)
    try:
        good = c.api(away, "GET", f"/containers/{made['uuid']}", token=MEMBER,
                     headers={"X-OpenStack-Request-ID": global_id})
        bad = c.api(away, "GET", f"/containers/{made['uuid']}", token=MEMBER,
                    headers={"X-OpenStack-Request-ID": "req-forged\nline"})
    finally:
        globalLogPublisher.removeObserver(observe)
    assert good.status == 200 and bad.status == 200
    by_request = {e["request_id"]: e["global_request_id"] for e in seen}
    assert by_request[good.headers["x-openstack-request-id"]] == global_id
    assert by_request[bad.headers["x-openstack-request-id"]] is None
    assert good.headers["x-openstack-request-id"] != global_id  # our own id stays ours
