"""/v1/images over one node's real stack (store, manager, fake runtime and its
engine): pull, list with pagination and sorting, show, delete, search."""

from __future__ import annotations

import pytest
from zope.interface.verify import verifyObject

from tests.support.client import USER_TOKEN
from zund.api.app import ZunAPI
from zund.images.engine import FakeImageEngine, IImageEngine
from zund.images.interface import IImages
from zund.images.local import LocalImages
from zund.runtimes.fake import TEST_IMAGE


@pytest.fixture
def images(stack):
    return LocalImages("node1", stack.store, FakeImageEngine(stack.runtime),
                       stack.manager.tasks, stack.clock)


@pytest.fixture
def client(stack, images):
    api = ZunAPI(stack.containers, stack.config, stack.enforcer, clock=stack.clock,
                 images=images)
    return stack.client(api)


def pull(client, stack, repo, **body):
    r = client.post("/v1/images", json=dict(body, repo=repo))
    assert r.status == 202, r.body
    stack.settle()
    return r.json


def test_local_images_and_engine_provide_their_interfaces(stack, images):
    """LocalImages provides IImages; the fake engine provides IImageEngine."""
    assert verifyObject(IImages, images)
    assert verifyObject(IImageEngine, FakeImageEngine(stack.runtime))


def test_pull_answers_202_then_the_record_shows_the_pulled_image(client, stack):
    """A pull is accepted as Pulling; once done, show has the engine's id, the size,
    this node as host, and Ready."""
    stack.runtime.add_registry_image("library/nginx:1.25")
    r = client.post("/v1/images", json={"repo": "library/nginx:1.25", "host": "node1"})
    assert r.status == 202
    assert r.json["status"] == "Pulling" and r.json["image_id"] is None
    assert (r.json["repo"], r.json["tag"], r.json["host"]) == ("library/nginx", "1.25", "node1")
    stack.settle()
    got = client.get(f"/v1/images/{r.json['uuid']}").json
    assert got["status"] == "Ready"
    assert got["image_id"].startswith("sha256:") and got["size"] > 0
    assert got["image_driver"] == "docker"


def test_a_pull_that_fails_leaves_an_error_record_with_the_reason(client, stack):
    """An image no registry has: the record is Error and says why."""
    made = pull(client, stack, "nosuch/thing")
    got = client.get(f"/v1/images/{made['uuid']}").json
    assert got["status"] == "Error" and "nosuch/thing" in got["status_reason"]
    assert got["image_id"] is None


def test_pull_onto_an_unknown_host_is_404(client):
    """Only this node (single node) can be named."""
    r = client.post("/v1/images", json={"repo": "a/b", "host": "elsewhere"})
    assert r.status == 404


def test_pull_body_is_validated_naming_the_field(client):
    """A missing repo or an unknown key is a 400."""
    assert "repo" in client.post("/v1/images", json={"host": "node1"}).error["detail"]
    assert client.post("/v1/images", json={"repo": "a/b", "colour": 1}).status == 400


def test_list_is_paginated_and_sorted(client, stack):
    """limit gives a next link; sort_key/sort_dir order the records."""
    for name in ("r/a", "r/c", "r/b"):
        stack.runtime.add_registry_image(name)
        pull(client, stack, name)
    every = client.get("/v1/images?sort_key=repo&sort_dir=desc").json["images"]
    assert [i["repo"] for i in every] == ["r/c", "r/b", "r/a"]
    page = client.get("/v1/images?sort_key=repo&limit=2").json
    assert [i["repo"] for i in page["images"]] == ["r/a", "r/b"]
    assert "marker=" in page["next"]
    rest = client.get(f"/v1/images?sort_key=repo&limit=2&marker={page['images'][1]['uuid']}")
    assert [i["repo"] for i in rest.json["images"]] == ["r/c"]
    assert client.get("/v1/images?sort_key=colour").status == 400


def test_delete_is_refused_while_a_container_uses_the_image(client, stack):
    """409 while a container of this node runs from it; once the container is gone
    the image goes too (404 after)."""
    stack.runtime.add_registry_image(TEST_IMAGE)
    made = pull(client, stack, TEST_IMAGE)
    assert client.get(f"/v1/images/{made['uuid']}").json["status"] == "Ready"
    rec = stack.add("user-of-image")
    r = client.delete(f"/v1/images/{made['uuid']}")
    assert r.status == 409 and rec.uuid in r.error["detail"]
    assert client.delete(f"/v1/containers/{rec.uuid}?force=true").status == 204
    stack.settle()
    assert client.delete(f"/v1/images/{made['uuid']}").status == 204
    assert client.get(f"/v1/images/{made['uuid']}").status == 404
    assert TEST_IMAGE not in stack.runtime.images


def test_search_finds_local_images_by_name(client, stack):
    """Search (docker driver) looks in this node's engine; exact_match needs the repo."""
    found = client.get("/v1/images/busybox/search").json
    assert [i["name"] for i in found] == [TEST_IMAGE]
    assert client.get("/v1/images/busybox/search?exact_match=true").json == []
    # python-zunclient puts the name in the path unquoted: a slash stays a slash
    exact = client.get("/v1/images/zund-test/busybox/search?exact_match=True")
    assert exact.status == 200, exact.body
    assert [i["name"] for i in exact.json] == [TEST_IMAGE]


def test_search_with_glance_on_a_node_without_glance_is_400(client):
    """The glance driver needs a configured Glance."""
    r = client.get("/v1/images/busybox/search?image_driver=glance")
    assert r.status == 400 and "image_driver" in r.error["detail"]


def test_every_image_route_is_admin_only(client, stack):
    """A member gets 403 on list, show, pull, delete and search."""
    made = pull(client, stack, TEST_IMAGE)
    assert client.get("/v1/images", token=USER_TOKEN).status == 403
    assert client.get(f"/v1/images/{made['uuid']}", token=USER_TOKEN).status == 403
    assert client.post("/v1/images", json={"repo": "a/b"}, token=USER_TOKEN).status == 403
    assert client.delete(f"/v1/images/{made['uuid']}", token=USER_TOKEN).status == 403
    assert client.get("/v1/images/busybox/search", token=USER_TOKEN).status == 403


def test_a_create_without_image_driver_takes_the_nodes_default(stack):
    """[glance] default_image_driver applies to creates that name no driver; one
    that names docker keeps it."""
    import attrs

    api = ZunAPI(stack.containers, attrs.evolve(stack.config, default_image_driver="glance"),
                 stack.enforcer, clock=stack.clock)
    client = stack.client(api)
    made = client.post("/v1/containers", json={"image": "from-glance", "name": "gg"})
    assert made.status == 202 and made.json["image_driver"] == "glance"
    stack.settle()
    got = client.get("/v1/containers/gg").json
    # this stack has no Glance: the owner says so
    assert got["status"] == "Error" and "no Glance configured" in got["status_reason"]
    kept = client.post("/v1/containers", json={"image": TEST_IMAGE, "name": "dd",
                                               "image_driver": "docker"})
    assert kept.json["image_driver"] == "docker"
