"""The images API across a simulated cluster: a pull goes to the named host, the
list gathers every node's records (naming nodes that did not answer), show and
delete work through any node."""

from __future__ import annotations

from zope.interface.verify import verifyObject

from tests.support.harness import SimConfig
from zund.images.cluster import ClusterImages
from zund.images.interface import IImages

IMAGE = "zund-test/busybox:latest"


def test_cluster_and_local_images_provide_iimages(make_cluster):
    """Both implementations of every node provide the one interface."""
    c = make_cluster(SimConfig(nodes=2))
    local = c.node(0).parts.peer_api.handlers.images
    assert verifyObject(IImages, local)
    assert verifyObject(IImages, ClusterImages("node-0", local, None, lambda: []))


def test_pull_through_one_node_lands_on_the_named_host_and_is_seen_everywhere(make_cluster):
    """POST /images through node 0 with host node-2: the record lives on node-2,
    becomes Ready there, and node 1 lists, shows and deletes it."""
    c = make_cluster(SimConfig(nodes=3))
    for n in c.nodes:
        n.runtime.add_registry_image("library/nginx:1.25")
    r = c.api(0, "POST", "/images", json={"repo": "library/nginx:1.25", "host": "node-2"})
    assert r.status == 202, r.body
    made = r.json
    assert made["host"] == "node-2" and made["status"] == "Pulling"

    def ready():
        got = c.api(1, "GET", f"/images/{made['uuid']}")
        return got.status == 200 and got.json["status"] == "Ready"

    c.run_until(ready)
    assert "library/nginx:1.25" in c.node(2).runtime.images
    assert "library/nginx:1.25" not in c.node(0).runtime.images
    listed = c.api(1, "GET", "/images").json["images"]
    assert [(i["uuid"], i["host"]) for i in listed] == [(made["uuid"], "node-2")]
    assert c.api(1, "DELETE", f"/images/{made['uuid']}").status == 204
    assert c.api(0, "GET", f"/images/{made['uuid']}").status == 404
    assert "library/nginx:1.25" not in c.node(2).runtime.images


def test_pull_onto_an_unknown_host_is_404(make_cluster):
    """A host no node knows is named in a 404."""
    c = make_cluster(SimConfig(nodes=2))
    r = c.api(0, "POST", "/images", json={"repo": IMAGE, "host": "node-9"})
    assert r.status == 404 and "node-9" in r.body.decode()


def test_list_names_a_node_that_does_not_answer(make_cluster):
    """With node 2 cut off from node 0's peer RPC, node 0 lists what it can and
    names node-2 in Zund-Partial-Nodes."""
    c = make_cluster(SimConfig(nodes=3))
    for n in c.nodes:
        n.runtime.add_registry_image(IMAGE)
    for host in ("node-1", "node-2"):
        assert c.api(0, "POST", "/images", json={"repo": IMAGE, "host": host}).status == 202
    c.partition([0, 1], [2], gossip=False)
    r = c.api(0, "GET", "/images")
    assert r.status == 200
    assert [i["host"] for i in r.json["images"]] == ["node-1"]
    assert r.headers.get("zund-partial-nodes") == "node-2"
