"""PolicyEnforcer's decision memo (issue 13 §2): answers as oslo.policy does, per
action, target and credentials, and an operator's policy file change applies once
``recheck_s`` has passed."""

import os

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from zund.api.policy import PolicyEnforcer, list_rules, make_enforcer
from zund.common.context import RequestContext

ADMIN = RequestContext.admin("p1")
MEMBER = RequestContext(user_id="u1", project_id="p1", roles=("member",))
OTHER = RequestContext(user_id="u2", project_id="p2", roles=("member",))


class Now:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_memoised_answers_are_per_credentials_and_target():
    """The same rule answers each caller and target on its own merits."""
    e = make_enforcer()
    own = {"project_id": "p1", "user_id": "u1"}
    for _ in range(2):  # the second round is served from the memo
        assert e.check(MEMBER, "container:start", own)
        assert not e.check(OTHER, "container:start", own)
        assert e.check(OTHER, "container:start", {"project_id": "p2", "user_id": "u2"})
        assert e.check(ADMIN, "container:get_one:host")
        assert not e.check(MEMBER, "container:get_one:host")


def test_policy_file_change_applies_after_recheck_interval(tmp_path):
    """A rule changed in the policy file applies once recheck_s has passed, not
    before (the memo holds the old answer that long)."""
    path = tmp_path / "policy.yaml"
    path.write_text('"container:create:privileged": "rule:context_is_admin"\n')
    conf = cfg.ConfigOpts()
    conf([], project="zund-test", default_config_files=[])
    enforcer = oslo_policy.Enforcer(conf, policy_file=str(path))
    enforcer.register_defaults(list_rules())
    now = Now()
    e = PolicyEnforcer(enforcer, recheck_s=1.0, now=now)
    assert e.check(ADMIN, "container:create:privileged")
    path.write_text('"container:create:privileged": "!"\n')
    st = os.stat(path)
    os.utime(path, (st.st_atime + 10, st.st_mtime + 10))  # a newer file for oslo.policy
    now.t = 0.5
    assert e.check(ADMIN, "container:create:privileged")  # within recheck_s: memo
    now.t = 1.0
    assert not e.check(ADMIN, "container:create:privileged")
