"""The compute API on a simulated 3-node cluster (real build_node, fake runtime,
in-memory peer RPC on one clock): a server made through one node is shown,
stopped and deleted through another, and both APIs see one set of containers."""

from __future__ import annotations

import json as _json

import treq
from twisted.internet import defer

from tests.support.nova_support import SERVER_IMAGE, add_server_image
from tests.support.harness import SimConfig

NOVA_PORT = 8774


class NovaSim:
    """The compute API of every node of ``cluster``, served on <host>:8774."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.http = cluster.peers.http_client()
        for node in cluster.nodes:
            cluster.peers.serve(f"{node.host}:{NOVA_PORT}", node.name,
                                node.parts.nova_api.resource())
            add_server_image(node.runtime)

    def request(self, which, method: str, path: str, json=None, token="admin:demo"):
        node = self.cluster.node(which)
        headers = {"OpenStack-API-Version": ["compute 2.100"], "X-Auth-Token": [token],
                   "Content-Type": ["application/json"]}
        data = _json.dumps(json).encode() if json is not None else None

        async def go():
            resp = await self.http.request(method, f"http://{node.host}:{NOVA_PORT}/v2.1{path}",
                                           headers=headers, data=data)
            body = await treq.content(resp)
            return resp.code, (_json.loads(body) if body else None)

        return self.cluster.wait(defer.Deferred.fromCoroutine(go()))

    def status(self, which, sid: str) -> str | int:
        code, body = self.request(which, "GET", f"/servers/{sid}")
        return body["server"]["status"] if code == 200 else code

    def wait_status(self, which, sid: str, wanted) -> None:
        self.cluster.run_until(lambda: self.status(which, sid) == wanted, 60, step_s=0.1)


def test_a_server_made_through_node_1_is_shown_stopped_and_deleted_through_node_3(
        make_cluster):
    """Entry node and owner differ: show, os-stop and delete reach the owner."""
    c = make_cluster(SimConfig(nodes=3))
    nova = NovaSim(c)
    code, body = nova.request(0, "POST", "/servers", json={"server": {
        "name": "web1", "flavorRef": "c1.small", "imageRef": SERVER_IMAGE}})
    assert code == 202, body
    sid = body["server"]["id"]
    nova.wait_status(2, sid, "ACTIVE")
    code, _ = nova.request(2, "POST", f"/servers/{sid}/action", json={"os-stop": None})
    assert code == 202
    nova.wait_status(2, sid, "SHUTOFF")
    assert nova.status(1, sid) == "SHUTOFF"
    code, _ = nova.request(2, "DELETE", f"/servers/{sid}")
    assert code == 204
    nova.wait_status(0, sid, 404)
    assert sid not in c.records()


def test_both_apis_list_the_same_containers_from_any_node(make_cluster):
    """A Zun container is a server and a server a Zun container, on every node."""
    c = make_cluster(SimConfig(nodes=3))
    nova = NovaSim(c)
    zun = c.create(0, name="zun-made")
    code, body = nova.request(1, "POST", "/servers", json={"server": {
        "name": "nova-made", "flavorRef": "c1.tiny", "imageRef": SERVER_IMAGE}})
    assert code == 202
    nova.wait_status(2, body["server"]["id"], "ACTIVE")
    code, listed = nova.request(2, "GET", "/servers")
    assert sorted(s["name"] for s in listed["servers"]) == ["nova-made", "zun-made"]
    assert zun["uuid"] in {s["id"] for s in listed["servers"]}
    names = sorted(x["name"] for x in c.api(0, "GET", "/containers").json["containers"])
    assert names == ["nova-made", "zun-made"]
