"""Pure tests of the in-code policy defaults: Zun's rules with Keystone's roles."""

import pytest
from oslo_config import cfg

from zund.api.policy import list_rules, make_enforcer
from zund.common import errors
from zund.common.context import RequestContext

ADMIN = RequestContext.admin(project_id="demo")
MEMBER = RequestContext(user_id="alice", project_id="projA", roles=("member", "reader"))
MEMBER_ONLY = RequestContext(user_id="alice", project_id="projA", roles=("member",))
READER = RequestContext(user_id="rita", project_id="projA", roles=("reader",))
NO_ROLE = RequestContext(user_id="nora", project_id="projA")
OWN, OTHER = {"project_id": "projA"}, {"project_id": "projB"}

ADMIN_ONLY = [
    "container:create:runtime", "container:create:requested_destination",
    "container:create:image_pull_policy", "container:delete_force",
    "container:delete_all_projects", "container:get_all_all_projects",
    "container:get_one_all_projects", "container:get_one:host", "container:get_one:runtime",
    "container:get_one:privileged", "container:get_one:image_pull_policy",
    "container:action:events", "host:get_all", "host:get", "zun-service:get_all",
    "zun-service:delete", "zun-service:update", "image:get_all", "quota:update",
    "quota:delete", "quota_class:update", "quota_class:get",
]
READ_RULES = ["container:get_one", "container:get_all", "container:actions",
              "container:top", "container:stats", "container:network_list",
              "availability_zones:get_all", "quota:get", "quota:get_default"]
ACT_RULES = ["container:create", "container:delete", "container:update", "container:start",
             "container:stop", "container:reboot", "container:pause", "container:unpause",
             "container:kill", "container:execute", "container:logs", "container:commit",
             "container:rename", "container:get_archive", "container:put_archive",
             "container:resize_container", "container:rebuild"]


@pytest.fixture(scope="module")
def enforcer():
    return make_enforcer()


@pytest.mark.parametrize("rule", ADMIN_ONLY)
def test_admin_only_rules_refuse_members_and_readers(enforcer, rule):
    """Host pinning, all_projects, host/service listings …: admin only, as in Zun."""
    assert enforcer.check(ADMIN, rule, OWN)
    assert not enforcer.check(MEMBER, rule, OWN)
    assert not enforcer.check(READER, rule, OWN)


@pytest.mark.parametrize("rule", READ_RULES)
def test_readers_may_look_at_their_own_project(enforcer, rule):
    """reader (and member) may list/show in their project only; admin anywhere."""
    for ctx in (READER, MEMBER, MEMBER_ONLY):
        assert enforcer.check(ctx, rule, OWN), ctx.roles
        assert not enforcer.check(ctx, rule, OTHER), ctx.roles
    assert enforcer.check(ADMIN, rule, OTHER)
    assert not enforcer.check(NO_ROLE, rule, OWN)


@pytest.mark.parametrize("rule", ACT_RULES)
def test_only_members_may_act_in_their_project(enforcer, rule):
    """member acts in its own project; a reader, a role-less user or another
    project's member may not; admin may anywhere."""
    assert enforcer.check(MEMBER, rule, OWN)
    assert enforcer.check(MEMBER_ONLY, rule, OWN)
    assert not enforcer.check(MEMBER, rule, OTHER)
    assert not enforcer.check(READER, rule, OWN)
    assert not enforcer.check(NO_ROLE, rule, OWN)
    assert enforcer.check(ADMIN, rule, OTHER)


def test_refusal_names_the_rule(enforcer):
    """The 403 message says which rule refused (Zun's wording)."""
    with pytest.raises(errors.PolicyNotAuthorized) as e:
        enforcer.authorize(READER, "container:start", OWN)
    assert "container:start" in str(e.value)


def test_privileged_is_denied_to_everybody(enforcer):
    """Zun's default: nobody, admin included, creates privileged containers."""
    assert not enforcer.check(ADMIN, "container:create:privileged")
    with pytest.raises(errors.PolicyNotAuthorized):
        enforcer.authorize(MEMBER, "container:create:privileged")


def test_policy_file_overrides_single_rules(tmp_path):
    """A yaml file overrides one rule; rules it does not mention keep their defaults."""
    path = tmp_path / "policy.yaml"
    path.write_text('"container:create:privileged": "rule:context_is_admin"\n')
    e = make_enforcer(policy_file=str(path))
    assert e.check(ADMIN, "container:create:privileged")
    assert e.check(MEMBER, "container:start", OWN)  # defaults kept
    assert not e.check(READER, "container:start", OWN)


def test_oslo_policy_policy_file_option_lets_a_custom_role_list_hosts(tmp_path):
    """``[oslo_policy] policy_file`` in zund.conf is read (oslo.policy's own option)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text('"host:get_all": "rule:admin_api or role:auditor"\n')
    conf_file = tmp_path / "zund.conf"
    conf_file.write_text(f"[oslo_policy]\npolicy_file = {policy}\n")
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(conf_file)], project="zund", default_config_files=[])
    e = make_enforcer(conf)  # a parsed ConfigOpts, as build_node passes it
    auditor = RequestContext(user_id="audrey", project_id="ops", roles=("auditor",))
    assert e.check(auditor, "host:get_all")
    assert not e.check(auditor, "host:get")
    assert not e.check(MEMBER, "host:get_all")


def test_list_rules_names_are_unique():
    """No rule is declared twice."""
    names = [r.name for r in list_rules()]
    assert len(names) == len(set(names))
