"""Zun's default policy with Keystone's roles, through the API of one node:
admin, member and reader of a project; 403s name the rule; a policy file named by
``[oslo_policy] policy_file`` overrides single rules."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from zund.api.app import ZunAPI
from zund.api.policy import make_enforcer

MEMBER = "alice:projA"            # noauth: member (and reader) of projA
READER = "rita:projA:reader"
ADMIN = "admin:demo"
AUDITOR = "audrey:projA:auditor"  # a role only the policy file below knows


@pytest.fixture
def web(stack):
    return stack.add("web", project_id="projA", user_id="alice")


def _rule_in(r, rule: str) -> bool:
    return r.status == 403 and rule in r.error["detail"]


def test_reader_lists_and_shows_its_project(client, web):
    """A reader sees its project's containers, their actions, top and stats."""
    assert client.get(f"/v1/containers/{web.uuid}", token=READER).json["uuid"] == web.uuid
    listed = client.get("/v1/containers", token=READER).json["containers"]
    assert [c["uuid"] for c in listed] == [web.uuid]
    assert client.get(f"/v1/containers/{web.uuid}/container_actions",
                      token=READER).status == 200
    assert client.get(f"/v1/containers/{web.uuid}/stats", token=READER).status == 200


@pytest.mark.parametrize("method,suffix,rule", [
    ("POST", "/stop", "container:stop"),
    ("POST", "/start", "container:start"),
    ("POST", "/pause", "container:pause"),
    ("POST", "/kill", "container:kill"),
    ("GET", "/logs", "container:logs"),
    ("POST", "/execute?command=%22true%22", "container:execute"),
    ("PATCH", "", "container:update"),
    ("DELETE", "", "container:delete"),
])
def test_reader_may_not_act(stack, client, web, method, suffix, rule):
    """Every action is 403 for a reader, naming the rule; the container is untouched."""
    kw = {"json": {"name": "web-x"}} if method == "PATCH" else {}
    r = client.request(method, f"/v1/containers/{web.uuid}{suffix}", token=READER,
                       **({"content_type": "application/octet-stream"}
                          if method == "DELETE" else {}), **kw)
    assert _rule_in(r, rule), (r.status, r.body)
    after = stack.get(web.uuid)
    assert after.status == "Running" and after.name == "web"


def test_reader_may_not_create(client):
    """Creating is acting: 403 naming container:create."""
    r = client.post("/v1/containers", token=READER, json={"image": "busybox"})
    assert _rule_in(r, "container:create")


def test_member_acts_in_its_project(stack, client, web):
    """A member stops, renames and deletes its project's container."""
    assert client.post(f"/v1/containers/{web.uuid}/stop", token=MEMBER).status == 202
    stack.settle()
    assert stack.get(web.uuid).status == "Stopped"
    assert client.patch(f"/v1/containers/{web.uuid}", token=MEMBER,
                        json={"name": "web2"}).json["name"] == "web2"
    assert client.delete(f"/v1/containers/{web.uuid}", token=MEMBER).status == 204


@pytest.mark.parametrize("method,path,rule", [
    ("GET", "/v1/hosts", "host:get_all"),
    ("GET", "/v1/services", "zun-service:get_all"),
    ("GET", "/v1/containers?all_projects=1", "container:get_all_all_projects"),
])
@pytest.mark.parametrize("token", [MEMBER, READER])
def test_admin_only_listings(client, method, path, rule, token):
    """Hosts, services and all_projects are admin-only as in Zun."""
    assert _rule_in(client.request(method, path, token=token), rule)
    assert client.request(method, path, token=ADMIN).status == 200


@pytest.mark.parametrize("extra,rule", [
    ({"host": "node-1"}, "container:create:requested_destination"),
    ({"privileged": True}, "container:create:privileged"),
    ({"runtime": "runc"}, "container:create:runtime"),
])
def test_admin_only_create_options(client, extra, rule):
    """Host pinning, a runtime and privileged are refused to members, naming the
    rule (privileged to everybody, by Zun's default)."""
    r = client.post("/v1/containers", token=MEMBER, json={"image": "busybox", **extra})
    assert _rule_in(r, rule), (r.status, r.body)


def test_member_does_not_see_admin_fields(client, web):
    """host and runtime are shown to admins only (container:get_one:host …)."""
    shown = client.get(f"/v1/containers/{web.uuid}", token=MEMBER).json
    assert shown.get("host") is None
    assert client.get(f"/v1/containers/{web.uuid}", token=ADMIN).json["host"]


def test_policy_file_from_config_lets_a_custom_role_list_hosts(stack, tmp_path):
    """``[oslo_policy] policy_file`` in zund.conf grants ``auditor`` the host list;
    other rules keep their defaults."""
    policy = tmp_path / "policy.yaml"
    policy.write_text('"host:get_all": "rule:admin_api or role:auditor"\n')
    conf_file = tmp_path / "zund.conf"
    conf_file.write_text(f"[oslo_policy]\npolicy_file = {policy}\n")
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(conf_file)], project="zund", default_config_files=[])
    client = stack.client(ZunAPI(stack.containers, stack.config, make_enforcer(conf),
                                 clock=stack.clock))
    assert client.get("/v1/hosts", token=AUDITOR).status == 200
    assert _rule_in(client.get("/v1/services", token=AUDITOR), "zun-service:get_all")
    assert _rule_in(stack.client().get("/v1/hosts", token=AUDITOR), "host:get_all")
