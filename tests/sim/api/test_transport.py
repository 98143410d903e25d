"""Transport rules of the Zun API (zun-api.md §1-§3): versions, headers, paths, errors."""

import pytest

from zope.interface.verify import verifyObject

from zund.api.app import ApiConfig, ZunAPI
from zund.compute.interface import IContainers, Listing
from zund.compute.local import LocalContainers


def test_discovery_needs_no_token(client):
    """GET / answers the discovery document without authentication."""
    r = client.get("/", version="1.1", token=None)
    assert r.status == 200
    (ver,) = r.json["versions"]
    assert (ver["status"], ver["min_version"], ver["max_version"]) == ("CURRENT", "1.1", "1.40")
    assert ver["links"] == [{"href": "http://127.0.0.1:9517/v1/", "rel": "self"}]
    assert r.headers["x-openstack-request-id"].startswith("req-")


@pytest.mark.parametrize("path", ["/v1", "/v1/"])
def test_v1_root_lists_collections(client, path):
    r = client.get(path, token=None)
    assert r.status == 200
    assert r.json["id"] == "v1"
    assert r.json["containers"][0] == {"href": "http://127.0.0.1:9517/v1/containers/",
                                       "rel": "self"}


def test_healthcheck(client):
    r = client.get("/healthcheck", token=None, version=None)
    assert (r.status, r.body) == (200, b"OK")


def test_version_headers_on_every_v1_response(client):
    """min/max/effective version and Vary on success and on errors."""
    for r in (client.get("/v1/containers", version="1.25"),
              client.get("/v1/containers/nope", version="1.25")):
        assert r.headers["openstack-api-minimum-version"] == "container 1.1"
        assert r.headers["openstack-api-maximum-version"] == "container 1.40"
        assert r.headers["openstack-api-version"] == "container 1.25"
        assert r.headers["vary"] == "OpenStack-API-Version"


def test_absent_version_header_means_1_1(client):
    r = client.get("/v1/containers", version=None)
    assert r.headers["openstack-api-version"] == "container 1.1"


def test_latest_and_openstacksdk_service_token(client):
    assert client.get("/v1/containers", version="latest").headers[
        "openstack-api-version"] == "container 1.40"
    r = client.get("/v1/containers", version=None,
                   headers={"OpenStack-API-Version": "application-container 1.30"})
    assert r.status == 200 and r.headers["openstack-api-version"] == "container 1.30"


@pytest.mark.parametrize("header", ["container 1.41", "container 1.0", "container 2.0"])
def test_out_of_range_version_is_406_with_range(client, header):
    r = client.get("/v1/containers", version=None, headers={"OpenStack-API-Version": header})
    assert r.status == 406
    err = r.error
    assert err["code"] == "zun.microversion-unsupported"
    assert (err["min_version"], err["max_version"]) == ("1.1", "1.40")
    assert r.headers["openstack-api-maximum-version"] == "container 1.40"


@pytest.mark.parametrize("header", ["container abc", "compute 2.1", "container"])
def test_malformed_version_header_is_406(client, header):
    r = client.get("/v1/containers", version=None, headers={"OpenStack-API-Version": header})
    assert r.status == 406 and r.error["status"] == 406


def test_route_outside_its_versions_is_406(client, stack):
    """hosts need 1.4; rename is gone at 1.14; resize_container needs 1.19."""
    rec = stack.add(name="c1", status="Running")
    assert client.get("/v1/hosts", version="1.3").status == 406
    assert client.post(f"/v1/containers/{rec.uuid}/rename?name=xx", version="1.14").status == 406
    assert client.post(f"/v1/containers/{rec.uuid}/resize_container?cpu=1",
                       version="1.18").status == 406


@pytest.mark.parametrize("path", ["/v1/containers", "/v1/containers/", "/containers",
                                  "/containers/"])
def test_trailing_slash_and_unversioned_aliases(client, stack, path):
    """Collections answer with and without /v1 and a trailing slash."""
    stack.add(name="c1")
    r = client.get(path + "?all_projects=1&limit=5&sort_key=name")
    assert r.status == 200 and len(r.json["containers"]) == 1


def test_unversioned_action_path(client, stack):
    """Actions answer without /v1 and with a trailing slash."""
    rec = stack.add(name="c1", status="Stopped")
    assert client.post(f"/containers/{rec.uuid}/start/").status == 202


def test_unknown_route_is_404_in_errors_format(client):
    r = client.get("/v1/nothing/here")
    assert r.status == 404
    assert r.error["title"] == "The resource could not be found."
    assert r.error["request_id"] == r.headers["x-openstack-request-id"]


def test_wrong_method_is_405_in_errors_format(client):
    r = client.request("PUT", "/v1/containers")
    assert r.status == 405 and r.error["status"] == 405


def test_unknown_container_is_404(client):
    r = client.get("/v1/containers/8b3a1c1e-0000-4000-8000-000000000000")
    assert r.status == 404
    assert r.error["code"] == "container.container-not-found"
    assert "could not be found" in r.error["title"]


def test_create_requires_json_content_type(client):
    r = client.post("/v1/containers", data=b"image=cirros", content_type="text/plain")
    assert r.status == 415
    assert r.error["code"] == "container.unsupported-media-type"


def test_malformed_json_is_400(client):
    r = client.post("/v1/containers", data=b"{not json")
    assert r.status == 400 and "malformed JSON" in r.error["title"]


def test_oversized_body_is_413(stack):
    """A body over the limit is refused with 413 before anything is created."""
    client = stack.client(stack.api(config=ApiConfig(max_request_body_bytes=1024)))
    r = client.post("/v1/containers", json={"image": "cirros", "labels": {"x": "y" * 2000}})
    assert r.status == 413 and r.error["status"] == 413
    assert stack.run(stack.store.list_containers()) == []


def test_action_with_json_content_type_and_empty_body(client, stack):
    """The client sends actions as query params with an empty application/json body."""
    rec = stack.add(name="c1", status="Running")
    r = client.post(f"/v1/containers/{rec.uuid}/stop?timeout=10", data=b"")
    assert r.status == 202
    assert r.body == b"null" and r.headers["content-type"] == "application/json"
    stack.settle()
    assert stack.get(rec.uuid).status == "Stopped"


def test_request_id_is_new_per_request(client):
    a = client.get("/v1/containers").headers["x-openstack-request-id"]
    b = client.get("/v1/containers").headers["x-openstack-request-id"]
    assert a != b and a.startswith("req-")


class _BrokenList(LocalContainers):
    """The real node-local containers, except that listing fails unexpectedly."""

    async def list(self, ctx, all_projects=False):
        raise RuntimeError("database on fire")


class _PartialList(LocalContainers):
    """The real node-local containers, listing as a cluster with silent nodes would."""

    async def list(self, ctx, all_projects=False):
        listing = await super().list(ctx, all_projects)
        return Listing(listing.records, frozenset({"node3", "node2"}))


def test_doubles_provide_icontainers(stack):
    """The test doubles below are checked against the interface like the real ones."""
    for cls in (_BrokenList, _PartialList):
        assert verifyObject(IContainers, cls(stack.manager, stack.enforcer))


@pytest.mark.allow_logged_errors
def test_unexpected_error_is_500_with_correlation_id(stack):
    """An unexpected error is a 500 whose body names the request id, not the cause."""
    client = stack.client(stack.api(_BrokenList(stack.manager, stack.enforcer)))
    r = client.get("/v1/containers")
    assert r.status == 500
    assert r.error["title"] == "Internal Server Error"
    assert r.headers["x-openstack-request-id"] in r.error["detail"]
    assert "fire" not in r.body.decode()


def test_double_slash_is_404_not_a_redirect(client):
    r = client.get("//v1//containers")
    assert r.status == 404 and r.error["status"] == 404


def test_partial_cluster_list_names_missing_nodes(stack):
    """A listing with partial nodes yields the Zund-Partial-Nodes header."""
    stack.add(name="x")
    client = stack.client(stack.api(_PartialList(stack.manager, stack.enforcer)))
    r = client.get("/v1/containers")
    assert r.status == 200 and r.headers["zund-partial-nodes"] == "node2,node3"
    assert [c["name"] for c in r.json["containers"]] == ["x"]


def test_complete_list_has_no_partial_header(client, stack):
    """A listing every node answered has no Zund-Partial-Nodes header."""
    stack.add(name="x")
    assert "zund-partial-nodes" not in client.get("/v1/containers").headers


def test_api_refuses_what_is_not_icontainers(stack):
    """The API takes only an IContainers (no probing of what it was given)."""
    with pytest.raises(TypeError):
        ZunAPI(stack.manager, stack.config, stack.enforcer)
