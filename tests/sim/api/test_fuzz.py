"""Property-based fuzz of every Zun API route over the real node-local stack
(ZunAPI → LocalContainers → ContainerManager → SQLite → fake runtime): hostile
bodies, query strings, URL arguments and microversion headers never get a 5xx,
and every error is in Zun's ``errors`` format naming what was wrong.

The routes come from the Klein url_map (tests/support/fuzzing.py): a new route is
fuzzed automatically. Example counts are bounded and derandomized for CI."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings

from tests.support.fuzzing import ROUTES, check_answer, requests_for, route_params

EXAMPLES = {"GET": 6, "DELETE": 6, "POST": 16, "PUT": 16, "PATCH": 16}


@pytest.mark.parametrize("route,method", route_params())
def test_no_route_answers_5xx_to_hostile_requests(stack, route, method):
    """Hostile requests to this route: never a 5xx, errors always in Zun's format."""
    target = stack.add("fuzz-target")
    client = stack.client()

    @settings(max_examples=EXAMPLES.get(method, 6), deadline=None, derandomize=True,
              database=None, suppress_health_check=list(HealthCheck))
    @given(requests_for(ROUTES[route], method, (target.name, target.uuid)))
    def run(req):
        r = client.request(req.method, req.path, data=req.body, version=None, token=None,
                           content_type=None, headers=req.headers)
        check_answer(r.status, r.headers, r.body, req)

    run()


@pytest.mark.parametrize("body,field", [
    ({"restart_policy": {"Name": "on-failure", "MaximumRetryCount": 2 ** 64}},
     "restart_policy.MaximumRetryCount"),
    ({"restart_policy": {"Name": "on-failure", "MaximumRetryCount": -(2 ** 63) - 1}},
     "restart_policy.MaximumRetryCount"),
    ({"hints": {"k": 2 ** 70}}, "hints.k"),
    ({"hints": {"k": [1, {"deep": 2 ** 64}]}}, "hints.k[1].deep"),
    ({"healthcheck": {"cmd": "true", "interval": 2 ** 64}}, "healthcheck.interval"),
    ({"labels": {"k": "\ud800"}}, "labels.k"),
    ({"labels": {"\ud800": "v"}}, "labels"),
    ({"environment": {"\udfff": "v"}}, "environment"),
    ({"environment": {"K": "v\ud800"}}, "environment.K"),
    ({"image": "busy\ud800box"}, "image"),
    ({"hints": {"\ud800": "v"}}, "hints"),
    ({"hints": {"k": "\ud800"}}, "hints.k"),
    ({"name": "web\ud800"}, "name"),
    ({"labels": {"k": "a\x00b"}}, "labels.k"),
])
def test_unstorable_create_values_are_a_400_naming_the_field(client, stack, body, field):
    """Integers past 64 bits and lone surrogates anywhere in a create body: 400
    naming the field, and nothing is stored."""
    body = dict({"image": "zund-test/busybox:latest"}, **body)
    raw = json.dumps(body).encode("ascii")  # "\ud800" travels as an escape
    r = client.post("/v1/containers?run=true", data=raw)
    assert r.status == 400, r.body
    assert f"'{field}'" in r.error["detail"], r.error
    assert client.get("/v1/containers").json["containers"] == []


@pytest.mark.parametrize("raw", [
    b"[" * 100_000, b'{"cpu": NaN}', b'{"hints": {"k": Infinity}}', b'{"hints": {"k": 1e999}}',
    b'{"memory": ' + b"9" * 5000 + b"}",
])
def test_malformed_json_is_a_400(client, raw):
    """JSON Python accepts but no store can hold (NaN, Infinity, 5000-digit integers,
    100k-deep nesting): 400, never a 5xx."""
    r = client.post("/v1/containers", data=raw)
    assert r.status == 400, r.body


def test_an_oversized_body_is_a_413_in_zuns_format_on_every_transport(client):
    """Past max_request_body_bytes (here without the listener's early refusal): 413."""
    r = client.post("/v1/containers", data=b'{"image": "' + b"a" * 200_000 + b'"}')
    assert r.status == 413
    assert r.error["code"] == "container.request-entity-too-large"
