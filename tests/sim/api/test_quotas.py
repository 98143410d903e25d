"""The quota API (Zun 1.26) on one node: bodies, defaults, -1, policy, 403 on excess."""

from __future__ import annotations

import pytest

from zund.api.app import ZunAPI
from zund.cluster.quota import QuotaConfig, QuotaService

ADMIN = "admin:demo"
MEMBER = "alice:projA"
READER = "rita:projA:reader"
OTHER = "bob:projB"
ZUN_DEFAULTS = {"containers": 40, "cpu": 20, "memory": 51200, "disk": 100}


@pytest.fixture
def quotas(stack):
    return QuotaService("node1", QuotaConfig(), stack.clock,
                        local_records=stack.store.list_containers)


@pytest.fixture
def qclient(stack, quotas):
    api = ZunAPI(stack.containers, stack.config, stack.enforcer, clock=stack.clock,
                 quotas=quotas)
    return stack.client(api)


def test_a_project_without_quotas_shows_zuns_defaults(qclient):
    """GET /v1/quotas/{project} answers Zun's default limits."""
    r = qclient.get("/v1/quotas/projA", token=MEMBER)
    assert r.status == 200 and r.json == ZUN_DEFAULTS


def test_admin_update_then_show_with_usages(qclient):
    """PUT changes only the given limits; usages=true adds in_use per resource."""
    r = qclient.request("PUT", "/v1/quotas/projA", json={"containers": "5", "cpu": -1},
                        token=ADMIN)
    assert r.status == 200 and r.json == dict(ZUN_DEFAULTS, containers=5, cpu=-1)
    r = qclient.get("/v1/quotas/projA?usages=True", token=MEMBER)
    assert r.json["containers"] == {"limit": 5, "in_use": 0}
    assert r.json["cpu"] == {"limit": -1, "in_use": 0}


def test_delete_returns_the_project_to_the_defaults(qclient):
    """DELETE by an admin: the project's own values are gone."""
    qclient.request("PUT", "/v1/quotas/projA", json={"containers": 5}, token=ADMIN)
    assert qclient.delete("/v1/quotas/projA", token=ADMIN).status == 204
    assert qclient.get("/v1/quotas/projA", token=ADMIN).json == ZUN_DEFAULTS


def test_members_may_show_their_own_quota_but_not_change_it(qclient):
    """A member (and a reader) sees its project's quota; update/delete are admin
    only; another project's quota is refused."""
    assert qclient.get("/v1/quotas/projA", token=READER).status == 200
    r = qclient.request("PUT", "/v1/quotas/projA", json={"containers": 99}, token=MEMBER)
    assert r.status == 403 and "quota:update" in r.error["detail"]
    assert qclient.delete("/v1/quotas/projA", token=MEMBER).status == 403
    assert qclient.get("/v1/quotas/projA", token=OTHER).status == 403


def test_bad_values_are_refused_naming_the_field(qclient):
    """Below -1, not an integer, or an unknown resource: 400."""
    for body in ({"containers": -2}, {"cpu": "lots"}, {"gpus": 1}):
        r = qclient.request("PUT", "/v1/quotas/projA", json=body, token=ADMIN)
        assert r.status == 400, body


def test_quota_classes_and_the_default_class(qclient):
    """quota_classes/default changes what /defaults and projects without values show;
    showing or updating a class is admin only."""
    r = qclient.request("PUT", "/v1/quota_classes/default", json={"containers": 7},
                        token=ADMIN)
    assert r.status == 200 and r.json == dict(ZUN_DEFAULTS, containers=7)
    assert qclient.get("/v1/quota_classes/default", token=ADMIN).json["containers"] == 7
    assert qclient.get("/v1/quotas/projA/defaults", token=MEMBER).json["containers"] == 7
    assert qclient.get("/v1/quotas/projA", token=MEMBER).json["containers"] == 7
    assert qclient.get("/v1/quota_classes/default", token=MEMBER).status == 403


def test_quotas_need_microversion_1_26(qclient):
    """Older microversions do not have the quota API."""
    assert qclient.get("/v1/quotas/projA", token=MEMBER, version="1.25").status == 406
