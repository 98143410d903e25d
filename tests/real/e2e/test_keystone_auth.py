"""auth_strategy = keystone against a real Keystone: a real ``zund serve`` behind
keystonemiddleware's auth_token, real tokens, and the unmodified OpenStack client
with password auth finding zund through the catalog (issue 9: the forged-identity
door is closed)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import requests

from .keystone import real_keystone  # noqa: F401  (fixture)
from tests.support.nodeproc import ZundProcess, docker_objects, remove_docker_objects

FORGED_ADMIN = {"X-User-Id": "mallory", "X-Project-Id": "anyproj", "X-Roles": "admin",
                "X-Identity-Status": "Confirmed"}
VERSION = {"OpenStack-API-Version": "container 1.40"}
ADMIN_ONLY = ("/hosts", "/containers?all_projects=1")


@pytest.fixture(scope="module")
def node(tmp_path_factory, real_keystone, real_docker):  # noqa: F811
    wd = str(tmp_path_factory.mktemp("keystone"))
    n = ZundProcess(wd, name=f"ks-{os.getpid()}", extra=real_keystone.node_config()).start()
    real_keystone.point_container_endpoints_at(n.endpoint)
    yield n
    try:
        assert n.terminate() == 0, n.log_tail()
    finally:
        remove_docker_objects(n.name)


def get(node, path, headers):
    return requests.get(node.endpoint + path, headers={**VERSION, **headers}, timeout=30)


@pytest.mark.parametrize("path", ADMIN_ONLY)
def test_forged_identity_without_token_is_401(node, path):
    """No token + forged X-User-Id/X-Project-Id/X-Roles: admin → 401 + WWW-Authenticate."""
    r = get(node, path, FORGED_ADMIN)
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith('Keystone uri="http://127.0.0.1:')
    assert r.json()["errors"][0]["status"] == 401


@pytest.mark.parametrize("path", ADMIN_ONLY)
def test_bad_token_is_401(node, path):
    """A token Keystone never issued (with forged admin headers) → 401."""
    r = get(node, path, {"X-Auth-Token": "gAAAAABnot-a-real-token", **FORGED_ADMIN})
    assert r.status_code == 401, r.text
    assert "WWW-Authenticate" in r.headers


@pytest.mark.parametrize("path", ADMIN_ONLY)
def test_member_token_with_forged_admin_role_is_403(node, real_keystone, path):  # noqa: F811
    """A valid member token + forged X-Roles: admin: the forged role is ignored."""
    token = real_keystone.token("a-member", "project-a")
    r = get(node, path, {"X-Auth-Token": token, **FORGED_ADMIN})
    assert r.status_code == 403, r.text


@pytest.mark.parametrize("path", ADMIN_ONLY)
def test_admin_token_is_admin(node, real_keystone, path):  # noqa: F811
    """A token carrying the admin role may use the admin-only routes."""
    token = real_keystone.token("a-admin", "project-a")
    r = get(node, path, {"X-Auth-Token": token})
    assert r.status_code == 200, r.text


def test_member_sees_own_project_only(node, real_keystone):  # noqa: F811
    """A member's listing is scoped to the token's project, whatever X-Project-Id says."""
    token = real_keystone.token("b-member", "project-b")
    r = get(node, "/containers", {"X-Auth-Token": token, "X-Project-Id": "project-a"})
    assert r.status_code == 200 and r.json()["containers"] == []


def osc(real_keystone, node, user, project, *args, check=True):  # noqa: F811
    argv = ["openstack", "appcontainer", *args]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=180,
                       env=real_keystone.openstack_env(user, project))
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}\n"
                             f"{node.log_tail()}")
    return p


def test_openstack_client_session_with_password_auth(
        node, real_keystone, real_docker):  # noqa: F811
    """Unmodified OSC, password auth, zund found in the catalog: run --wait, list,
    show, delete; another project's member cannot see the container."""
    run = osc(real_keystone, node, "a-member", "project-a", "run", "--wait", "--name", "ksweb",
              "--cpu", "0.1", "--memory", "32", real_docker,
              "sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done')
    assert run.returncode == 0
    listed = json.loads(osc(real_keystone, node, "a-member", "project-a",
                            "list", "-f", "json").stdout)
    assert [c["name"] for c in listed] == ["ksweb"]
    assert listed[0]["status"] == "Running"
    shown = json.loads(osc(real_keystone, node, "a-member", "project-a",
                           "show", "ksweb", "-f", "json").stdout)
    project_a = real_keystone.session("a-member", "project-a").get_project_id()
    assert shown["project_id"] == project_a and shown["status"] == "Running"
    assert docker_objects(node.name)[shown["uuid"]] == "running"
    other = osc(real_keystone, node, "b-member", "project-b", "show", "ksweb", check=False)
    assert other.returncode != 0 and "(HTTP 404)" in other.stderr
    osc(real_keystone, node, "a-member", "project-a", "delete", "--stop", "--wait", "ksweb")
    gone = osc(real_keystone, node, "a-member", "project-a", "show", shown["uuid"], check=False)
    assert gone.returncode != 0 and "could not be found" in gone.stderr, gone.stdout
    assert shown["uuid"] not in docker_objects(node.name)
