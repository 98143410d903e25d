"""Hosts, services, availability zones, images (zun-api.md §5.3, §10)."""

from tests.support.client import USER_TOKEN
from zund.api import views
from zund.compute import capacity

NODE_UUID = capacity.node_uuid("node1")


def test_host_list_is_admin_only_and_has_zun_keys(client):
    """GET /v1/hosts: this node with exactly Zun's keys; members are refused."""
    r = client.get("/v1/hosts/")
    assert r.status == 200
    (host,) = r.json["hosts"]
    assert list(host) == list(views.HOST_KEYS)
    assert host["hostname"] == "node1" and host["mem_total"] == 128446
    assert host["labels"] == {"type": "test"} and host["runtimes"] == ["runc"]
    assert r.json["next"] is None
    assert client.get("/v1/hosts", token=USER_TOKEN).status == 403


def test_host_show_by_uuid_or_hostname(client):
    """A host is found by its uuid or its name; anything else is 404."""
    assert client.get(f"/v1/hosts/{NODE_UUID}").json["hostname"] == "node1"
    assert client.get("/v1/hosts/node1").json["uuid"] == NODE_UUID
    assert client.get("/v1/hosts/other").status == 404


def test_host_list_rejects_unknown_params(client):
    """Unknown query parameters are a 400."""
    assert client.get("/v1/hosts?foo=1").status == 400


def test_services_list_this_node(client):
    """A single node lists itself as an up zun-compute service (admin only)."""
    r = client.get("/v1/services")
    (svc,) = r.json["services"]
    assert svc["host"] == "node1" and svc["binary"] == "zun-compute"
    assert svc["state"] == "up" and svc["disabled"] is False
    assert svc["availability_zone"] == "nova"
    assert client.get("/v1/services", token=USER_TOKEN).status == 403


def test_availability_zones(client):
    """The zones of the known services."""
    r = client.get("/v1/availability_zones", token=USER_TOKEN)
    assert r.json == {"availability_zones": [{"availability_zone": "nova"}], "next": None}


def test_images_list_is_empty(client):
    """zund keeps no image records."""
    assert client.get("/v1/images/").json == {"images": [], "next": None}
