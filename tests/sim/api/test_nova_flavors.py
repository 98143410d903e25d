"""Flavor CRUD of the compute API on one node (administrators): create, show,
list, extra specs, private flavors and their access list, delete; configured
flavors stay read-only defaults; members may read but not write."""

from __future__ import annotations

import pytest

from tests.support.nova_support import NovaClient

ADMIN = "admin:demo"
MEMBER = "alice:demo"
OTHER = "bob:elsewhere"


@pytest.fixture
def nova(stack):
    return NovaClient(stack)


def _create(nova, token=ADMIN, **flavor):
    body = {"name": "f1.custom", "ram": 256, "vcpus": 1, "disk": 2, **flavor}
    return nova.post("/v2.1/flavors", json={"flavor": body}, token=token)


def test_admin_creates_shows_lists_and_deletes_a_flavor(nova):
    """POST /flavors (id "auto" is a uuid) → show, list detail, DELETE → 404."""
    made = _create(nova, id="auto")
    assert made.status == 200, made.json
    f = made.json["flavor"]
    assert (f["name"], f["vcpus"], f["ram"], f["disk"]) == ("f1.custom", 1, 256, 2)
    assert len(f["id"]) == 36 and f["os-flavor-access:is_public"] is True
    shown = nova.get(f"/v2.1/flavors/{f['id']}", token=MEMBER)
    assert shown.status == 200 and shown.json["flavor"]["name"] == "f1.custom"
    names = [x["name"] for x in nova.get("/v2.1/flavors/detail", token=MEMBER)
             .json["flavors"]]
    assert "f1.custom" in names and "c1.small" in names
    assert nova.delete(f"/v2.1/flavors/{f['id']}", token=ADMIN).status == 202
    gone = nova.get(f"/v2.1/flavors/{f['id']}", token=ADMIN)
    assert gone.status == 404 and "could not be found" in gone.json["itemNotFound"]["message"]


def test_extra_specs_are_set_updated_and_unset_and_select_the_runtime(nova):
    """os-extra_specs POST/PUT/DELETE; a server booted with the flavor gets its
    size and the runtime its zund:runtime spec names."""
    assert _create(nova, id="f-spec").status == 200
    r = nova.post("/v2.1/flavors/f-spec/os-extra_specs", token=ADMIN,
                  json={"extra_specs": {"zund:runtime": "runc", "hw:x": 1}})
    assert r.status == 200 and r.json == {"extra_specs": {"zund:runtime": "runc", "hw:x": "1"}}
    r = nova.put("/v2.1/flavors/f-spec/os-extra_specs/hw:x", json={"hw:x": "2"}, token=ADMIN)
    assert r.status == 200 and r.json == {"hw:x": "2"}
    assert nova.delete("/v2.1/flavors/f-spec/os-extra_specs/hw:x", token=ADMIN).status == 200
    specs = nova.get("/v2.1/flavors/f-spec/os-extra_specs", token=MEMBER).json
    assert specs == {"extra_specs": {"zund:runtime": "runc"}}
    made = nova.create(name="spec1", flavor="f-spec")
    assert made.status == 202, made.json
    sid = made.json["server"]["id"]
    nova.stack.settle()
    rec = nova.stack.get(sid)
    assert (rec.cpu, rec.memory, rec.disk, rec.runtime) == (1.0, 256, 2, "runc")
    shown = nova.get(f"/v2.1/servers/{sid}").json["server"]
    assert shown["flavor"]["original_name"] == "f1.custom"


def test_names_and_ids_are_unique_and_configured_flavors_are_read_only(nova):
    """A taken name or id (configured ones too) is 409; deleting or changing a
    configured flavor is 409 naming the configuration."""
    assert _create(nova, id="f-one").status == 200
    assert _create(nova, id="f-two").status == 409
    assert _create(nova, name="other", id="f-one").status == 409
    assert _create(nova, name="c1.small", id="f-three").status == 409
    r = nova.delete("/v2.1/flavors/c1.small", token=ADMIN)
    assert r.status == 409 and "configuration" in r.json["conflictingRequest"]["message"]
    r = nova.post("/v2.1/flavors/c1.small/os-extra_specs", token=ADMIN,
                  json={"extra_specs": {"a": "b"}})
    assert r.status == 409
    assert nova.delete("/v2.1/flavors/nope", token=ADMIN).status == 404


@pytest.mark.parametrize("method,path,body,rule", [
    ("POST", "/v2.1/flavors", {"flavor": {"name": "m", "ram": 1, "vcpus": 1}},
     "os-flavor-manage:create"),
    ("DELETE", "/v2.1/flavors/f-x", None, "os-flavor-manage:delete"),
    ("POST", "/v2.1/flavors/f-x/os-extra_specs", {"extra_specs": {"a": "b"}},
     "os-flavor-extra-specs:create"),
    ("PUT", "/v2.1/flavors/f-x/os-extra_specs/a", {"a": "c"}, "os-flavor-extra-specs:update"),
    ("DELETE", "/v2.1/flavors/f-x/os-extra_specs/a", None, "os-flavor-extra-specs:delete"),
    ("GET", "/v2.1/flavors/f-x/os-flavor-access", None, "os-flavor-access"),
    ("POST", "/v2.1/flavors/f-x/action", {"addTenantAccess": {"tenant": "demo"}},
     "os-flavor-access:add_tenant_access"),
])
def test_members_may_not_write_flavors(nova, method, path, body, rule):
    """Every flavor write is 403 for a member, naming Nova's rule; nothing changes."""
    assert _create(nova, id="f-x", **{"os-flavor-access:is_public": False}).status == 200
    r = nova.request(method, path, json=body, token=MEMBER,
                     **({"content_type": None} if body is None else {}))
    assert r.status == 403 and rule in r.json["forbidden"]["message"], r.json
    f = nova.get("/v2.1/flavors/f-x", token=ADMIN).json["flavor"]
    assert f["extra_specs"] == {} and f["os-flavor-access:is_public"] is False


def test_a_private_flavor_is_seen_and_used_only_by_projects_given_access(nova):
    """A private flavor is hidden (404 / not listed / not bootable) for other
    projects until addTenantAccess; removeTenantAccess hides it again."""
    assert _create(nova, id="f-priv", name="priv",
                   **{"os-flavor-access:is_public": False}).status == 200
    assert nova.get("/v2.1/flavors/f-priv", token=MEMBER).status == 404
    assert "priv" not in [f["name"] for f in nova.get("/v2.1/flavors", token=MEMBER)
                          .json["flavors"]]
    refused = nova.post("/v2.1/servers", token=MEMBER, json={"server": {
        "name": "p1", "flavorRef": "f-priv", "imageRef": "zund-test/server:latest"}})
    assert refused.status == 400 and "f-priv" in refused.json["badRequest"]["message"]
    r = nova.post("/v2.1/flavors/f-priv/action", token=ADMIN,
                  json={"addTenantAccess": {"tenant": "demo"}})
    assert r.status == 200 and r.json == {"flavor_access": [
        {"flavor_id": "f-priv", "tenant_id": "demo"}]}
    assert nova.get("/v2.1/flavors/f-priv", token=MEMBER).status == 200
    assert nova.get("/v2.1/flavors/f-priv", token=OTHER).status == 404
    assert nova.get("/v2.1/flavors/f-priv/os-flavor-access", token=ADMIN).json[
        "flavor_access"] == [{"flavor_id": "f-priv", "tenant_id": "demo"}]
    assert nova.post("/v2.1/flavors/f-priv/action", token=ADMIN, json={
        "removeTenantAccess": {"tenant": "demo"}}).json == {"flavor_access": []}
    assert nova.get("/v2.1/flavors/f-priv", token=MEMBER).status == 404
    listed = nova.get("/v2.1/flavors?is_public=false", token=ADMIN)
    assert [f["id"] for f in listed.json["flavors"]] == ["f-priv"]


@pytest.mark.parametrize("flavor,field", [
    ({"name": "bad name", "ram": 1, "vcpus": 1}, "name"),
    ({"name": "z", "ram": 0, "vcpus": 1}, "ram"),
    ({"name": "z", "ram": 1, "vcpus": True}, "vcpus"),
    ({"name": "z", "ram": 1, "vcpus": 1, "swap": 512}, "swap"),
    ({"name": "z", "ram": 1, "vcpus": 1, "rxtx_factor": 2}, "rxtx_factor"),
    ({"name": "z", "ram": 1, "vcpus": 1, "os-flavor-access:is_public": "yes"},
     "is_public"),
    ({"name": "z", "ram": 1, "vcpus": 1, "colour": "red"}, "colour"),
])
def test_a_malformed_flavor_is_400_naming_the_field(nova, flavor, field):
    """Bad values are Nova's badRequest naming the field."""
    r = nova.post("/v2.1/flavors", json={"flavor": flavor}, token=ADMIN)
    assert r.status == 400 and field in r.json["badRequest"]["message"], r.json
