"""PolicyEnforcer's rule reloads (issue 13 §1): oslo.policy's file check runs at most
once per ``recheck_s``, decisions outlive the check while the rules are unchanged,
and a policy file that appears or changes applies within ``recheck_s``."""

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from zund.api.policy import PolicyEnforcer, list_rules
from zund.common.context import RequestContext

ADMIN = RequestContext.admin("p1")
MEMBER = RequestContext(user_id="u1", project_id="p1", roles=("member",))


class Now:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class CountingEnforcer(oslo_policy.Enforcer):
    """The real oslo.policy enforcer, counting the decisions it evaluated."""

    evaluated = 0

    def enforce(self, *args, **kwargs):
        self.evaluated += 1
        return super().enforce(*args, **kwargs)


def conf_enforcer(tmp_path, cls=oslo_policy.Enforcer, policy_file="policy.yaml"):
    conf = cfg.ConfigOpts()
    conf([], project="zund-test", default_config_files=[])
    enforcer = cls(conf, policy_file=str(tmp_path / policy_file))
    enforcer.register_defaults(list_rules())
    return enforcer


def test_decisions_outlive_the_recheck_while_the_rules_are_unchanged(tmp_path):
    """After a reload that changed nothing, a decision already made is not
    evaluated again, and still answers the same."""
    (tmp_path / "policy.yaml").write_text('"container:create": "rule:admin_or_member"\n')
    enforcer = conf_enforcer(tmp_path, CountingEnforcer)
    now = Now()
    e = PolicyEnforcer(enforcer, recheck_s=1.0, now=now)
    assert e.check(MEMBER, "container:create")
    assert not e.check(MEMBER, "container:get_one:host")
    evaluated = enforcer.evaluated
    for t in (1.0, 2.5, 10.0):
        now.t = t
        assert e.check(MEMBER, "container:create")
        assert not e.check(MEMBER, "container:get_one:host")
    assert enforcer.evaluated == evaluated


def test_policy_file_created_later_applies_within_recheck(tmp_path):
    """With no policy file the defaults apply; a file written later is found on
    the next check after ``recheck_s`` and its rules apply."""
    enforcer = conf_enforcer(tmp_path)
    now = Now()
    e = PolicyEnforcer(enforcer, recheck_s=1.0, now=now)
    assert not e.check(ADMIN, "container:create:privileged")  # default: nobody
    (tmp_path / "policy.yaml").write_text(
        '"container:create:privileged": "rule:context_is_admin"\n')
    now.t = 0.5
    assert not e.check(ADMIN, "container:create:privileged")  # within recheck_s
    now.t = 1.0
    assert e.check(ADMIN, "container:create:privileged")
    assert not e.check(MEMBER, "container:create:privileged")
