"""Private registries (Zun 1.30/1.31) on one node: CRUD with the password masked,
credentials encrypted at rest, policy, validation, and ``run --registry`` pulling
with (or failing on) the stored credentials."""

from __future__ import annotations

import os
import stat

import pytest

from tests.sim.api.conftest import RUNNER
from zund.api.app import ZunAPI
from zund.cluster.registries import RegistryService
from zund.registries import NodeKey

ADMIN = "admin:demo"
MEMBER = "alice:projA"
READER = "rita:projA:reader"
OTHER = "bob:projB"
DOMAIN = "127.0.0.1:5000"
BODY = {"registry": {"name": "myreg", "domain": DOMAIN, "username": "u",
                     "password": "s3cret-pw"}}


@pytest.fixture
def registries(stack, tmp_path):
    service = RegistryService("node1", stack.clock, store=stack.store,
                              key=NodeKey(str(tmp_path / "registry.key")))
    stack.manager.lifecycle.registries = service
    return service


@pytest.fixture
def rclient(stack, registries):
    api = ZunAPI(stack.containers, stack.config, stack.enforcer, clock=stack.clock,
                 registries=registries)
    return stack.client(api)


def test_create_list_show_update_delete_with_the_password_masked(rclient):
    """The CRUD cycle answers Zun's bodies and never returns the password."""
    r = rclient.request("POST", "/v1/registries", json=BODY, token=MEMBER)
    assert r.status == 202, r.json
    reg = r.json["registry"]
    assert reg["password"] == "***" and reg["domain"] == DOMAIN and reg["name"] == "myreg"
    assert reg["project_id"] == "projA" and reg["username"] == "u"
    listed = rclient.get("/v1/registries", token=READER).json["registries"]
    assert [x["uuid"] for x in listed] == [reg["uuid"]] and listed[0]["password"] == "***"
    assert rclient.get("/v1/registries/myreg", token=MEMBER).json["registry"]["uuid"] \
        == reg["uuid"]
    r = rclient.request("PATCH", f"/v1/registries/{reg['uuid']}",
                        json={"registry": {"username": "u2", "password": "new"}},
                        token=MEMBER)
    assert r.status == 200 and r.json["registry"]["username"] == "u2"
    assert r.json["registry"]["password"] == "***"
    assert "s3cret-pw" not in r.body.decode() and "new" not in str(r.json)
    assert rclient.delete("/v1/registries/myreg", token=MEMBER).status == 204
    assert rclient.get("/v1/registries/myreg", token=MEMBER).status == 404
    assert rclient.get("/v1/registries", token=MEMBER).json["registries"] == []


def test_passwords_are_encrypted_at_rest_with_a_0600_node_key(rclient, stack, tmp_path):
    """The store holds no plaintext password; the key file is created 0600."""
    rclient.request("POST", "/v1/registries", json=BODY, token=MEMBER)
    stored = stack.run(stack.store.list_registries())
    assert len(stored) == 1 and stored[0]["password"] != "s3cret-pw"
    with open(tmp_path / "zund.sqlite", "rb") as f:
        assert b"s3cret-pw" not in f.read()
    mode = stat.S_IMODE(os.stat(tmp_path / "registry.key").st_mode)
    assert mode == 0o600


def test_a_restarted_service_reads_its_copies_back(rclient, stack, tmp_path):
    """Copies load from the store with the same key file: the password is usable."""
    uuid = rclient.request("POST", "/v1/registries", json=BODY, token=MEMBER) \
        .json["registry"]["uuid"]
    again = RegistryService("node1", stack.clock, store=stack.store,
                            key=NodeKey(str(tmp_path / "registry.key")))
    stack.run(again.startService())
    assert stack.run(again.credentials("projA", uuid)).password == "s3cret-pw"


def test_registries_are_per_project_and_admins_see_all(rclient):
    """Another project neither lists nor finds it; admins list all_projects."""
    rclient.request("POST", "/v1/registries", json=BODY, token=MEMBER)
    assert rclient.get("/v1/registries", token=OTHER).json["registries"] == []
    assert rclient.get("/v1/registries/myreg", token=OTHER).status == 404
    assert rclient.delete("/v1/registries/myreg", token=OTHER).status == 404
    assert rclient.get("/v1/registries?all_projects=1", token=OTHER).status == 403
    listed = rclient.get("/v1/registries?all_projects=1", token=ADMIN).json["registries"]
    assert [x["name"] for x in listed] == ["myreg"]


def test_readers_may_look_but_not_write(rclient):
    """registry:create/update/delete need a member; a reader gets 403."""
    r = rclient.request("POST", "/v1/registries", json=BODY, token=READER)
    assert r.status == 403 and "registry:create" in r.error["detail"]
    rclient.request("POST", "/v1/registries", json=BODY, token=MEMBER)
    assert rclient.delete("/v1/registries/myreg", token=READER).status == 403


def test_bad_bodies_are_refused_naming_the_field(rclient):
    """Missing domain, unknown keys, non-strings, a duplicate name: 4xx naming it."""
    cases = [({"registry": {"name": "x1"}}, "domain"),
             ({"registry": {"domain": DOMAIN, "colour": "red"}}, "colour"),
             ({"registry": {"domain": DOMAIN, "password": 5}}, "password"),
             ({"registry": {"domain": "has space"}}, "domain")]
    for body, field in cases:
        r = rclient.request("POST", "/v1/registries", json=body, token=MEMBER)
        assert r.status == 400 and field in r.error["detail"], (body, r.json)
    rclient.request("POST", "/v1/registries", json=BODY, token=MEMBER)
    assert rclient.request("POST", "/v1/registries", json=BODY, token=MEMBER).status == 409


def test_registries_need_microversion_1_30(rclient):
    """Before 1.30 the resource does not exist."""
    r = rclient.request("POST", "/v1/registries", json=BODY, token=MEMBER, version="1.29")
    assert r.status in (404, 406)


def _run(rclient, token=MEMBER, **fields):
    body = dict({"image": "app:1", "registry": "myreg", "command": RUNNER}, **fields)
    return rclient.request("POST", "/v1/containers?run=true", json=body, token=token)


def test_run_with_a_registry_pulls_with_its_credentials(rclient, stack):
    """``run --registry myreg app:1`` pulls 127.0.0.1:5000/app:1 with the stored login."""
    stack.runtime.add_registry_image(f"{DOMAIN}/app:1")
    stack.runtime.require_registry_login(DOMAIN, "u", "s3cret-pw")
    reg = rclient.request("POST", "/v1/registries", json=BODY, token=MEMBER).json["registry"]
    r = _run(rclient)
    assert r.status == 202, r.json
    assert r.json["registry_id"] == reg["uuid"] and r.json["image"] == f"{DOMAIN}/app:1"
    stack.settle()
    rec = stack.get(r.json["uuid"])
    assert rec.status == "Running", rec.status_reason


def test_a_wrong_password_ends_in_error_with_a_clear_reason(rclient, stack):
    """The registry refuses the login: the container is Error, the reason says why."""
    stack.runtime.add_registry_image(f"{DOMAIN}/app:1")
    stack.runtime.require_registry_login(DOMAIN, "u", "the-real-one")
    rclient.request("POST", "/v1/registries", json=BODY, token=MEMBER)
    r = _run(rclient)
    stack.settle()
    rec = stack.get(r.json["uuid"])
    assert rec.status == "Error"
    assert "unauthorized" in rec.status_reason and f"{DOMAIN}/app:1" in rec.status_reason


def test_run_with_an_unknown_or_foreign_registry_is_refused(rclient):
    """A registry name not in the caller's project: 400 naming ``registry``."""
    rclient.request("POST", "/v1/registries", json=BODY, token=MEMBER)
    r = _run(rclient, token=OTHER)
    assert r.status == 400 and "registry" in r.error["detail"]
    r = _run(rclient, registry="nope")
    assert r.status == 400 and "registry" in r.error["detail"]


def test_registry_field_needs_microversion_1_31(rclient):
    """``registry`` in a create before 1.31 is refused."""
    rclient.request("POST", "/v1/registries", json=BODY, token=MEMBER)
    r = rclient.request("POST", "/v1/containers", json={"image": "app:1",
                                                        "registry": "myreg"},
                        token=MEMBER, version="1.30")
    assert r.status == 400 and "registry" in r.error["detail"]
