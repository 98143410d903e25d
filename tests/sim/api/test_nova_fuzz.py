"""Property-based fuzz of every compute API route over the real node-local stack
(NovaAPI → LocalContainers → ContainerManager → SQLite → fake runtime): hostile
bodies, query strings, URL arguments and microversion headers never get a 5xx,
and every error is one Nova fault ``{name: {"code": status, "message": str}}``.

Routes come from the compute app's url_map, so a route added later is fuzzed
without touching this file; requests reuse tests/support/fuzzing.py's strategies."""

from __future__ import annotations

import collections
import json

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import fuzzing
from tests.support.nova_support import NovaClient
from zund.api.nova.app import NovaAPI  # noqa: F401  (registers every route)
from zund.api.nova.pipeline import NOVA_APP

EXAMPLES = {"GET": 8, "DELETE": 8, "POST": 24, "PUT": 16}


def nova_routes() -> dict[str, fuzzing.Route]:
    rules: dict[str, list] = collections.OrderedDict()
    methods: dict[str, set] = collections.defaultdict(set)
    for rule in NOVA_APP.url_map.iter_rules():
        name = rule.endpoint.rsplit("_", 1)[0]
        rules.setdefault(name, []).append(rule.rule)
        methods[name] |= set(rule.methods or ()) - {"HEAD", "OPTIONS"}
    return {name: fuzzing.Route(name, tuple(dict.fromkeys(r)), tuple(sorted(methods[name])))
            for name, r in rules.items()}


ROUTES = nova_routes()
ROUTE_PARAMS = [(r.name, m) for r in ROUTES.values() for m in r.methods]

VERSIONS = fuzzing.mostly(
    st.integers(1, 100).map(lambda n: f"compute 2.{n}"),
    st.none() | st.sampled_from([
        "compute latest", "compute 2.999", "compute 3.0", "compute", "container 1.40",
        "compute 2.\ud800", "compute 02.01", "compute -2.5", "garbage",
        "compute 2." + "9" * 5000]))

SERVER_KEYS = ["name", "imageRef", "flavorRef", "metadata", "key_name", "security_groups",
               "networks", "availability_zone", "min_count", "max_count",
               "OS-DCF:diskConfig", "description", "hostname", "config_drive",
               "return_reservation_id", "user_data", "block_device_mapping_v2"]
ACTIONS = ["os-stop", "os-start", "reboot", "pause", "unpause", "os-getConsoleOutput",
           "shelve", "resize"]
server_like = st.dictionaries(st.sampled_from(SERVER_KEYS), fuzzing.json_values,
                              max_size=6).map(lambda d: {"name": "fz", "flavorRef": "c1.tiny",
                                                         "imageRef": "zund-test/busybox", **d})
FLAVOR_KEYS = ["name", "ram", "vcpus", "disk", "id", "OS-FLV-EXT-DATA:ephemeral", "swap",
               "rxtx_factor", "os-flavor-access:is_public", "description", "extra"]
flavor_like = st.dictionaries(st.sampled_from(FLAVOR_KEYS), fuzzing.json_values,
                              max_size=5).map(lambda d: {"name": "fz", "ram": 64, "vcpus": 1,
                                                         **d})
nova_bodies = st.one_of(
    server_like.map(lambda s: {"server": s}),
    flavor_like.map(lambda f: {"flavor": f}),
    st.dictionaries(st.text(max_size=8), fuzzing.json_values, max_size=3).map(
        lambda d: {"extra_specs": d}),
    st.tuples(st.sampled_from(["addTenantAccess", "removeTenantAccess"]),
              fuzzing.json_values).map(lambda kv: {kv[0]: kv[1]}),
    st.sampled_from([{"extra_specs": {"zund:runtime": "microvm"}}, {"c1.small": "x"},
                     {"addTenantAccess": {"tenant": "p"}},
                     {"flavor": {"name": "fz2", "ram": "64", "vcpus": "1", "id": "auto"}}]),
    st.tuples(st.sampled_from(ACTIONS), fuzzing.json_values).map(lambda kv: {kv[0]: kv[1]}),
    st.sampled_from([{"reboot": {"type": "HARD"}}, {"os-getConsoleOutput": {"length": 2 ** 70}},
                     {"os-getConsoleOutput": {"length": "-1"}}, {"server": {"name": "ok-2"}},
                     {"server": None}, {"server": {"name": "\ud800x"}},
                     {"server": {"metadata": {"\ud800": "v"}}}]),
).map(lambda v: json.dumps(v).encode("ascii")) | fuzzing.bodies()

NOVA_PARAMS = st.sampled_from(["all_tenants", "name", "status", "limit", "marker", "sort_key",
                               "sort_dir", "minRam", "minDisk", "is_public", "tenant_id",
                               "project_id"])
nova_queries = st.lists(st.tuples(NOVA_PARAMS, fuzzing.query_values), max_size=3).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))


def with_query(req: fuzzing.FuzzRequest, extra: str) -> fuzzing.FuzzRequest:
    if not extra:
        return req
    sep = "&" if "?" in req.path else "?"
    return attrs.evolve(req, path=req.path + sep + extra)


def check_nova_answer(status: int, body: bytes, req: fuzzing.FuzzRequest) -> None:
    """No 5xx but 501 (a declared 'not implemented'); errors are one Nova fault."""
    assert status < 500 or status == 501, f"{status} for {req}: {body[:500]!r}"
    if status >= 400:
        fault = json.loads(body)
        assert len(fault) == 1, body
        (inner,) = fault.values()
        assert inner["code"] == status and isinstance(inner["message"], str), body


@pytest.mark.parametrize("route,method", ROUTE_PARAMS)
def test_no_compute_route_answers_5xx_to_hostile_requests(stack, route, method):
    """Hostile requests to this compute route: never a 5xx, errors as Nova faults."""
    target = stack.add("fuzz-target")
    nova = NovaClient(stack)

    @settings(max_examples=EXAMPLES.get(method, 8), deadline=None, derandomize=True,
              database=None, suppress_health_check=list(HealthCheck))
    @given(st.tuples(fuzzing.requests_for(ROUTES[route], method, (target.uuid, "c1.small"),
                                          versions=VERSIONS, body_strategy=nova_bodies),
                     nova_queries))
    def run(drawn):
        req = with_query(*drawn)
        r = nova.http.request(req.method, req.path, data=req.body, version=None, token=None,
                              content_type=None, headers=req.headers)
        check_nova_answer(r.status, r.body, req)

    run()


def test_every_compute_route_is_fuzzed():
    """The route table is not empty and includes servers, actions and flavors."""
    assert {"nova_server_create", "nova_server_action", "nova_flavor_show",
            "nova_flavor_create", "nova_flavor_delete", "nova_flavor_extra_specs_create",
            "nova_flavor_extra_spec_update", "nova_flavor_extra_spec_delete",
            "nova_flavor_access_list", "nova_flavor_action",
            "nova_limits", "nova_versions"} <= set(ROUTES)
