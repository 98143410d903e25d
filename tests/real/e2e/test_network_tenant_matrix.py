"""The tenant matrix for ``/v1/networks`` (issue 16 with issue 9's rules): a 2-node
cluster of real ``zund serve`` processes (fake runtime, loopback only) with
``auth_strategy = keystone`` against the run's real Keystone and ``[network]
driver = vxlan``. The fake runtime wires nothing, so the vxlan backend here is
only its replicated network records and the API: no bridge, no VXLAN device.

Project A's private network cannot be seen, used or deleted by b-member through
ANY node, by uuid or by name, with or without forged identity headers or
``all_projects`` (404 naming the network, never 2xx, never 5xx), and is untouched
afterwards; a-reader may look but not create or delete (403 naming the rule); a
shared network is admin-only. The route list is kept in step with
tests/real/e2e/test_tenant_matrix.py's ``OTHER_ROUTES``.
"""

from __future__ import annotations

import shutil

import pytest

from tests.support.nodeproc import start_cluster

from .keystone import real_keystone  # noqa: F401  (fixture)
from .tenant_cluster import call, error_detail, issue_callers, warm_tokens

USERS = (("a-admin", "project-a"), ("a-member", "project-a"), ("a-reader", "project-a"),
         ("b-member", "project-b"))
FORGED = {"X-Project-Id": "project-a", "X-Roles": "admin", "X-User-Id": "a-admin"}


@pytest.fixture(scope="module")
def callers(real_keystone):  # noqa: F811
    return issue_callers(real_keystone, USERS)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, real_keystone, callers):  # noqa: F811
    workdir = str(tmp_path_factory.mktemp("nettm"))
    extra = {**real_keystone.node_config(), "network": {"driver": "vxlan"}}
    started = start_cluster(workdir, 2, "ntm", runtimes="fake", extra=extra,
                            token=callers["a-admin"].token)
    try:
        warm_tokens(started, callers.values())
        yield started
    finally:
        for node in started:
            try:
                node.terminate()
            except Exception:
                node.kill9()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def net_a(nodes, callers) -> dict:
    """Project A's private network, made by a-member through node 1."""
    r = call(nodes[0], callers["a-member"], "POST", "/networks",
             body={"network": {"name": "tm-net-a", "cidr": "10.96.1.0/24"}})
    assert r.status == 200, r
    return r.body["network"]


def _shown(node, caller, ident):
    return call(node, caller, "GET", f"/networks/{ident}")


def _facts(answer) -> dict:
    """A network as shown, without its links (they name the node asked)."""
    return {k: v for k, v in answer.body["network"].items() if k != "links"}


def test_another_projects_member_can_neither_see_nor_use_nor_delete_a_network(
        nodes, callers, net_a):
    """b-member, through every node, by uuid and by name, with forged headers and
    all_projects: show/delete are 404 naming the network, lists leave it out, a
    container or a port on it is 404; A's network is the same afterwards."""
    b, admin = callers["b-member"], callers["a-admin"]
    before = _facts(_shown(nodes[0], admin, net_a["uuid"]))
    for node in nodes:
        for ident in (net_a["uuid"], net_a["name"]):
            for headers in ({}, FORGED):
                for method in ("GET", "DELETE"):
                    r = call(node, b, method, f"/networks/{ident}", headers=headers,
                             query={"all_projects": "1"})
                    assert r.status == 404, (node.name, method, ident, r)
                    assert ident in error_detail(r), r
            listed = call(node, b, "GET", "/networks", headers=FORGED,
                          query={"all_projects": "1"})
            assert listed.status == 200, listed
            assert net_a["uuid"] not in {n["uuid"] for n in listed.body["networks"]}
            r = call(node, b, "POST", "/containers", body={
                "image": "zund-test/busybox:latest", "nets": [{"network": ident}]})
            assert r.status == 404, (node.name, ident, r)
    after = _shown(nodes[1], admin, net_a["uuid"])
    assert after.status == 200 and _facts(after) == before


def test_readers_look_members_make_and_only_admins_share(nodes, callers, net_a):
    """a-reader lists and shows A's network through every node but cannot create
    or delete one (403 naming the rule); a-member cannot make a shared network;
    a-member deletes its own network."""
    reader, member = callers["a-reader"], callers["a-member"]
    for node in nodes:
        assert _shown(node, reader, net_a["uuid"]).status == 200
        r = call(node, reader, "POST", "/networks", body={"network": {"name": "tm-r"}})
        assert r.status == 403 and "network:create" in error_detail(r), r
        r = call(node, reader, "DELETE", f"/networks/{net_a['uuid']}")
        assert r.status == 403 and "network:delete" in error_detail(r), r
    r = call(nodes[1], member, "POST", "/networks",
             body={"network": {"name": "tm-shared", "shared": True}})
    assert r.status == 403, r
    r = call(nodes[1], member, "POST", "/networks", body={"network": {"name": "tm-own"}})
    assert r.status == 200, r
    own = r.body["network"]["uuid"]
    assert call(nodes[0], member, "DELETE", f"/networks/{own}").status == 204
    assert _shown(nodes[1], member, own).status == 404
