"""Property-based fuzz of every Zun API route through a simulated 3-node cluster:
the hostile requests of tests/support/fuzzing.py sent to any node, so what the entry
node accepts also crosses peer RPC (msgpack), the bidder and another node's store.
Never a 5xx; errors in Zun's format. Bounded, derandomized example counts."""

from __future__ import annotations

import json

import pytest
import treq
from twisted.internet import defer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.fuzzing import ROUTES, check_answer, requests_for, route_params
from tests.support.harness import SimConfig

#: routes that take a body get more examples
EXAMPLES = {"GET": 5, "DELETE": 5, "POST": 30, "PUT": 30, "PATCH": 30}


def _send(cluster, http, node: int, req):
    async def go():
        url = f"http://{cluster.node(node).api_address}{req.path}"
        resp = await http.request(req.method, url, data=req.body,
                                  headers={k: [v] for k, v in req.headers.items()})
        body = await treq.content(resp)
        return resp.code, body

    return cluster.wait(defer.Deferred.fromCoroutine(go()), timeout_s=60)


def test_no_route_answers_5xx_through_any_node_of_a_cluster(make_cluster):
    """Every route, hostile requests through a random node of 3: never a 5xx."""
    cluster = make_cluster(SimConfig(nodes=3))
    target = cluster.create(1, name="fuzz-target")
    http = cluster.peers.http_client()
    for route, method in route_params():
        @settings(max_examples=EXAMPLES.get(method, 4), deadline=None, derandomize=True,
                  database=None, suppress_health_check=list(HealthCheck))
        @given(req=requests_for(ROUTES[route], method, ("fuzz-target", target["uuid"])),
               node=st.integers(0, 2))
        def run(req, node):
            status, body = _send(cluster, http, node, req)
            check_answer(status, {}, body, req)

        run()


@pytest.mark.parametrize("body", [
    {"restart_policy": {"Name": "on-failure", "MaximumRetryCount": 2 ** 64}},
    {"hints": {"k": 2 ** 70}},
    {"healthcheck": {"cmd": "true", "interval": 2 ** 64}},
    {"labels": {"k": "\ud800"}}, {"labels": {"\ud800": "v"}},
    {"environment": {"\ud800": "v"}}, {"image": "busy\ud800box"},
    {"hints": {"\ud800": "v"}}, {"hints": {"k": "\ud800"}},
])
def test_unstorable_values_never_reach_a_peer(make_cluster, body):
    """The attack bodies of issue 10 through the cluster: 400 at the entry node, and
    no node holds a record afterwards."""
    cluster = make_cluster(SimConfig(nodes=3))
    http = cluster.peers.http_client()

    class Req:  # the shape _send needs
        method = "POST"
        path = "/v1/containers?run=true"
        headers = {"OpenStack-API-Version": "container 1.40", "X-Auth-Token": "admin:demo",
                   "Content-Type": "application/json"}
    Req.body = json.dumps(dict({"image": "zund-test/busybox:latest"}, **body)).encode("ascii")
    status, answer = _send(cluster, http, 0, Req)
    assert status == 400, answer
    assert cluster.records() == {}
