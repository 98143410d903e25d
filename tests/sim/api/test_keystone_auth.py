"""auth_strategy = keystone: the real keystonemiddleware auth_token in front of the
API, over the real node-local stack (tests/sim/api/conftest.py). Token validation is
answered by keystonemiddleware's own ``AuthTokenFixture`` (no Keystone, no
sockets); tests/real/e2e/test_keystone_auth.py does the same against a real Keystone."""

from __future__ import annotations

import random

import pytest

from zund.api import auth as api_auth
from zund.api.app import ZunAPI
from tests.support.confs import conf_from_text
from zund.runtimes.executor import run_blocking_sync

pytest.importorskip("keystonemiddleware")  # the [keystone] extra; installed by [test]
from keystonemiddleware import fixture as ksm_fixture  # noqa: E402

CHALLENGE = 'Keystone uri="http://127.0.0.1:1/identity"'
FORGED_ADMIN = {"X-User-Id": "mallory", "X-Project-Id": "anyproj", "X-Roles": "admin",
                "X-Identity-Status": "Confirmed"}


def _conf(tmp_path, **authtoken):
    lines = ["[DEFAULT]", "auth_strategy = keystone", "[keystone_authtoken]",
             "www_authenticate_uri = http://127.0.0.1:1/identity"]
    lines += [f"{k} = {v}" for k, v in authtoken.items()]
    return conf_from_text(tmp_path, "\n".join(lines) + "\n")


@pytest.fixture
def tokens():
    fx = ksm_fixture.AuthTokenFixture()
    fx.setUp()
    yield fx
    fx.cleanUp()


def _client(stack, conf):
    auth = api_auth.KeystoneAuth(api_auth.keystone_auth_filter(conf), run_blocking_sync)
    api = ZunAPI(stack.containers, stack.config, stack.enforcer, clock=stack.clock,
                 rng=random.Random(7), authenticator=auth)
    return stack.client(api)


def test_no_token_with_forged_identity_headers_is_401_with_challenge(stack, tmp_path):
    """No token + forged X-User-Id/X-Project-Id/X-Roles: admin → 401 + WWW-Authenticate."""
    c = _client(stack, _conf(tmp_path))
    for path in ("/v1/hosts", "/v1/containers?all_projects=1"):
        r = c.get(path, token=None, headers=FORGED_ADMIN)
        assert r.status == 401, path
        assert r.headers["www-authenticate"] == CHALLENGE
        assert r.error["status"] == 401


def test_delayed_decision_still_refuses_without_token(stack, tmp_path):
    """delay_auth_decision = true passes the request on as Invalid: still 401."""
    c = _client(stack, _conf(tmp_path, delay_auth_decision="true"))
    r = c.get("/v1/hosts", token=None, headers=FORGED_ADMIN)
    assert r.status == 401 and r.headers["www-authenticate"] == CHALLENGE


def test_public_routes_need_no_token(stack, tmp_path):
    """/ and /v1 answer without a token under keystone too."""
    c = _client(stack, _conf(tmp_path))
    assert c.get("/", token=None).status == 200
    assert c.get("/v1", token=None).status == 200


def test_member_token_ignores_forged_admin_role(stack, tmp_path, tokens):
    """A valid member token + forged X-Roles: admin: the token's roles decide."""
    tokens.add_token_data(token_id="tok-member", user_id="u1", project_id="p1",
                          role_list=["member", "reader"])
    stack.add(name="mine", project_id="p1")
    stack.add(name="theirs", project_id="p2")
    c = _client(stack, _conf(tmp_path))
    forged = {"X-Roles": "admin", "X-Project-Id": "p2"}
    assert c.get("/v1/hosts", token="tok-member", headers=forged).status == 403
    r = c.get("/v1/containers?all_projects=True", token="tok-member", headers=forged)
    assert r.status == 403
    r = c.get("/v1/containers", token="tok-member", headers=forged)
    assert [x["name"] for x in r.json["containers"]] == ["mine"]


def test_admin_token_sees_all_projects(stack, tmp_path, tokens):
    """A token with the admin role is admin: all_projects lists every project."""
    tokens.add_token_data(token_id="tok-admin", user_id="root", project_id="p0",
                          role_list=["admin"])
    stack.add(name="mine", project_id="p1")
    stack.add(name="theirs", project_id="p2")
    c = _client(stack, _conf(tmp_path))
    r = c.get("/v1/containers?all_projects=True", token="tok-admin")
    assert sorted(x["name"] for x in r.json["containers"]) == ["mine", "theirs"]


def test_unknown_token_is_401(stack, tmp_path, tokens):
    """A token the identity service does not know → 401 with the challenge."""
    c = _client(stack, _conf(tmp_path))
    r = c.get("/v1/containers", token="not-a-token")
    assert r.status == 401 and r.headers["www-authenticate"] == CHALLENGE


def test_underscore_spelling_of_identity_headers_is_ignored(stack, tmp_path, tokens):
    """X_Roles / X_Project_Id (underscores) cannot smuggle identity past the middleware."""
    tokens.add_token_data(token_id="tok-member", user_id="u1", project_id="p1",
                          role_list=["member"])
    stack.add(name="theirs", project_id="p2")
    c = _client(stack, _conf(tmp_path))
    forged = {"X_Roles": "admin", "X_Project_Id": "p2", "X_Identity_Status": "Confirmed"}
    assert c.get("/v1/hosts", token="tok-member", headers=forged).status == 403
    assert c.get("/v1/containers", token="tok-member", headers=forged).json["containers"] == []


def test_unreachable_keystone_is_503(stack, tmp_path):
    """Keystone down (nothing listens on its loopback port): 503, not 401 or 500."""
    c = _client(stack, _conf(tmp_path, auth_type="password", auth_url="http://127.0.0.1:1/v3",
                             username="zund", password="x", project_name="service",
                             user_domain_name="Default", project_domain_name="Default",
                             http_request_max_retries="0", http_connect_timeout="2"))
    r = c.get("/v1/containers", token="some-token")
    assert r.status == 503 and r.error["status"] == 503


def test_token_without_project_scope_is_401(stack, tmp_path, tokens):
    """A valid but unscoped token names no project to act in: 401."""
    tokens.add_token_data(token_id="tok-unscoped", user_id="u1", role_list=["member"])
    c = _client(stack, _conf(tmp_path))
    assert c.get("/v1/containers", token="tok-unscoped").status == 401
