"""The compute API's discovery, microversions, faults, flavors, availability
zones and limits, over the real node-local stack."""

from __future__ import annotations

import pytest

from tests.support.nova_support import NovaClient, nova_api
from zund.api.nova import flavors as flavor_config

ALICE = "alice:projA"


@pytest.fixture
def nova(stack):
    return NovaClient(stack)


def test_version_discovery_needs_no_token_and_declares_2_1_to_2_100(nova):
    """GET / and GET /v2.1 list v2.1 CURRENT with min 2.1 and max 2.100."""
    root = nova.get("/", token=None, mv=None)
    assert root.status == 200
    (v21,) = root.json["versions"]
    assert (v21["id"], v21["status"], v21["min_version"], v21["version"]) == (
        "v2.1", "CURRENT", "2.1", "2.100")
    assert v21["links"][0]["href"] == "http://127.0.0.1:9517/v2.1/"
    one = nova.get("/v2.1", token=None, mv=None)
    assert one.status == 200 and one.json["version"]["version"] == "2.100"


@pytest.mark.parametrize("headers,expected", [
    ({}, "2.1"),
    ({"OpenStack-API-Version": "compute 2.47"}, "2.47"),
    ({"OpenStack-API-Version": "compute latest"}, "2.100"),
    ({"X-OpenStack-Nova-API-Version": "2.60"}, "2.60"),
    ({"OpenStack-API-Version": "container 1.40"}, "2.1"),
])
def test_the_compute_microversion_comes_from_either_header(nova, headers, expected):
    """The modern or the legacy header sets the version; answers echo it in both."""
    r = nova.get("/v2.1/flavors", mv=None, headers=headers)
    assert r.status == 200
    assert r.headers["openstack-api-version"] == f"compute {expected}"
    assert r.headers["x-openstack-nova-api-version"] == expected
    assert "OpenStack-API-Version" in r.headers["vary"]


@pytest.mark.parametrize("mv", ["2.101", "3.0", "2.0"])
def test_an_unsupported_microversion_is_a_406(nova, mv):
    """Outside [2.1, 2.100]: 406 with a message naming the range."""
    r = nova.get("/v2.1/flavors", mv=mv)
    assert r.status == 406
    (fault,) = r.json.values()
    assert "Minimum is 2.1 and maximum is 2.100" in fault["message"]


def test_the_server_flavor_is_a_link_before_2_47_and_embedded_after(nova, stack):
    """2.46 shows {id, links}; 2.47 the flavor's sizes with original_name."""
    r = nova.create("web1")
    stack.settle()
    sid = r.json["server"]["id"]
    old = nova.get(f"/v2.1/servers/{sid}", mv="2.46").json["server"]["flavor"]
    new = nova.get(f"/v2.1/servers/{sid}", mv="2.47").json["server"]["flavor"]
    assert old["id"] == "c1.small" and old["links"][0]["href"].endswith("/flavors/c1.small")
    assert new["original_name"] == "c1.small" and "id" not in new


def test_the_legacy_project_id_url_works_for_the_callers_project_only(nova, stack):
    """/v2.1/{project_id}/servers: the caller's project answers, another is 400."""
    assert nova.get("/v2.1/demo/servers").status == 200
    r = nova.get("/v2.1/other/servers")
    assert r.status == 400 and "doesn't match" in r.json["badRequest"]["message"]


def test_unknown_routes_and_methods_answer_nova_faults(nova):
    """404 itemNotFound and 405 badMethod with Allow, both with a request id."""
    r = nova.get("/v2.1/os-hypervisors-nope")
    assert r.status == 404 and r.json["itemNotFound"]["code"] == 404
    assert r.headers["x-compute-request-id"].startswith("req-")
    r = nova.request("PATCH", "/v2.1/flavors")
    assert r.status == 405 and r.json["badMethod"]["code"] == 405 and "GET" in r.headers["allow"]


def test_malformed_json_is_a_400_bad_request(nova):
    """A body that is not JSON: 400 in Nova's format."""
    r = nova.request("POST", "/v2.1/servers", data=b"{")
    assert r.status == 400 and "badRequest" in r.json


def test_an_unauthenticated_request_is_a_401_when_keystone_refuses(stack):
    """The authenticator is the Zun API's: a refusal is Nova's 401 unauthorized."""
    from zund.common import errors

    class Refusing:
        async def authenticate(self, request, request_id):
            raise errors.NotAuthenticated()

    client = NovaClient(stack, api=nova_api(stack, authenticator=Refusing()))
    r = client.get("/v2.1/servers")
    assert r.status == 401 and r.json["unauthorized"]["code"] == 401
    assert client.get("/", token=None).status == 200


def test_flavors_list_detail_show_and_extra_specs_come_from_configuration(nova):
    """Configured flavors: brief list, detail with sizes and extra specs, show."""
    brief = nova.get("/v2.1/flavors").json["flavors"]
    assert sorted(f["name"] for f in brief) == ["c1.medium", "c1.small", "c1.tiny", "m1.vm"]
    detail = {f["id"]: f for f in nova.get("/v2.1/flavors/detail").json["flavors"]}
    assert (detail["c1.medium"]["vcpus"], detail["c1.medium"]["ram"],
            detail["c1.medium"]["disk"]) == (2, 2048, 5)
    assert detail["m1.vm"]["extra_specs"] == {"zund:runtime": "microvm"}
    shown = nova.get("/v2.1/flavors/m1.vm").json["flavor"]
    assert shown["name"] == "m1.vm" and shown["os-flavor-access:is_public"] is True
    specs = nova.get("/v2.1/flavors/m1.vm/os-extra_specs").json
    assert specs == {"extra_specs": {"zund:runtime": "microvm"}}
    missing = nova.get("/v2.1/flavors/nope")
    assert missing.status == 404 and "Flavor nope" in missing.json["itemNotFound"]["message"]


def test_flavor_list_filters_and_pages(nova):
    """minRam, limit with flavors_links, marker."""
    big = nova.get("/v2.1/flavors?minRam=1024").json["flavors"]
    assert [f["id"] for f in big] == ["c1.medium"]
    page = nova.get("/v2.1/flavors?limit=2").json
    assert len(page["flavors"]) == 2 and "marker=" in page["flavors_links"][0]["href"]
    rest = nova.get("/v2.1/flavors?marker=" + page["flavors"][-1]["id"]).json["flavors"]
    assert len(rest) == 2


def test_a_flavor_with_the_runtime_extra_spec_asks_for_that_runtime(nova, stack):
    """m1.vm (zund:runtime=microvm) asks for the micro-VM runtime: a node with only
    runc refuses it with a 400 naming the runtime, and creates nothing."""
    r = nova.create("vm1", flavor="m1.vm")
    assert r.status == 400 and "runtime microvm" in r.json["badRequest"]["message"]
    assert nova.get("/v2.1/servers").json["servers"] == []


def test_availability_zones_list_the_nodes_zone_and_detail_is_for_admins(nova):
    """os-availability-zone names the zone; detail lists hosts, admin only."""
    zones = nova.get("/v2.1/os-availability-zone").json["availabilityZoneInfo"]
    assert zones == [{"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]
    detail = nova.get("/v2.1/os-availability-zone/detail").json["availabilityZoneInfo"]
    assert list(detail[0]["hosts"]) == ["node1"]
    assert nova.get("/v2.1/os-availability-zone/detail", token=ALICE).status == 403


def test_limits_count_the_callers_servers_and_cores(nova, stack):
    """Absolute limits: unlimited without quotas, usage from the project's servers."""
    for name in ("a1", "a2"):
        assert nova.create(name, flavor="c1.medium").status == 202
    stack.settle()
    absolute = nova.get("/v2.1/limits").json["limits"]["absolute"]
    assert (absolute["totalInstancesUsed"], absolute["totalCoresUsed"],
            absolute["totalRAMUsed"], absolute["maxTotalInstances"]) == (2, 4, 4096, -1)
    other = nova.get("/v2.1/limits", token=ALICE).json["limits"]["absolute"]
    assert other["totalInstancesUsed"] == 0


@pytest.mark.parametrize("entry,expected", [
    ("c1.small:1:512:1", ("c1.small", 1, 512, 1, {})),
    ("vm:2:1024:0:zund:runtime=microvm;hw:x=1", ("vm", 2, 1024, 0,
                                                  {"zund:runtime": "microvm", "hw:x": "1"})),
])
def test_flavor_entries_parse_name_sizes_and_extra_specs(entry, expected):
    """NAME:VCPUS:RAM:DISK[:KEY=VALUE;...] with ':' allowed inside spec keys."""
    f = flavor_config.parse_flavor(entry)
    assert (f.name, f.vcpus, f.ram, f.disk, f.extra_specs) == expected


@pytest.mark.parametrize("entry", ["x:1:512", "x:0:512:1", "x:a:512:1", "x:1:512:1:novalue",
                                   " :1:512:1"])
def test_malformed_flavor_entries_are_refused(entry):
    """A malformed flavor stops the node from starting (FlavorConfigError)."""
    with pytest.raises(flavor_config.FlavorConfigError):
        flavor_config.load_flavors([entry])


def test_a_flavors_file_adds_and_replaces_flavors():
    """The JSON file's entries replace same-named list entries; ids must be unique."""
    out = flavor_config.load_flavors(
        ["c1.small:1:512:1"],
        '[{"name": "c1.small", "vcpus": 2, "ram": 1024, "disk": 2},'
        ' {"name": "big", "id": "42", "vcpus": 8, "ram": 8192, "disk": 0,'
        '  "extra_specs": {"zund:runtime": "microvm"}}]')
    assert [(f.id, f.vcpus, f.runtime) for f in out] == [("c1.small", 2, None),
                                                         ("42", 8, "microvm")]
    with pytest.raises(flavor_config.FlavorConfigError):
        flavor_config.load_flavors(["a:1:1:1"], '[{"name": "b", "id": "a", "vcpus": 1, '
                                                '"ram": 1}]')
