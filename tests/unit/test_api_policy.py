"""Pure tests of the in-code policy defaults (zun-api.md §9)."""

import pytest

from zund.api.policy import list_rules, make_enforcer
from zund.common import errors
from zund.common.context import RequestContext

ADMIN = RequestContext.admin(project_id="demo")
ALICE = RequestContext(user_id="alice", project_id="projA")


@pytest.fixture(scope="module")
def enforcer():
    return make_enforcer()


@pytest.mark.parametrize("rule", [
    "container:create:runtime", "container:create:requested_destination",
    "container:create:image_pull_policy", "container:delete_force",
    "container:get_all_all_projects", "container:get_one_all_projects",
    "container:get_one:host", "container:get_one:runtime", "container:get_one:privileged",
    "container:get_one:image_pull_policy", "host:get_all", "host:get", "zun-service:get_all",
])
def test_admin_only_rules(enforcer, rule):
    assert enforcer.check(ADMIN, rule) and not enforcer.check(ALICE, rule)


def test_owner_rules_follow_the_target_project(enforcer):
    own, other = {"project_id": "projA"}, {"project_id": "projB"}
    for rule in ("container:start", "container:get_one", "container:delete",
                 "container:execute", "container:logs"):
        assert enforcer.check(ALICE, rule, own)
        assert not enforcer.check(ALICE, rule, other)
        assert enforcer.check(ADMIN, rule, other)


def test_privileged_is_denied_to_everybody(enforcer):
    assert not enforcer.check(ADMIN, "container:create:privileged")
    with pytest.raises(errors.PolicyNotAuthorized):
        enforcer.authorize(ALICE, "container:create:privileged")


def test_policy_file_overrides_single_rules(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text('"container:create:privileged": "rule:context_is_admin"\n')
    e = make_enforcer(policy_file=str(path))
    assert e.check(ADMIN, "container:create:privileged")
    assert e.check(ALICE, "container:start", {"project_id": "projA"})  # defaults kept


def test_list_rules_names_are_unique():
    names = [r.name for r in list_rules()]
    assert len(names) == len(set(names))
