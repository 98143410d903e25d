"""Policy: oslo.policy with Zun's rule names and defaults, in code.

With no policy file the in-code defaults apply. An operator file (yaml/json)
overrides single rules; rules it does not mention keep their defaults.
``list_rules()`` is the ``oslo.policy.policies`` entry point for
``oslopolicy-sample-generator --namespace zund``.
"""

from __future__ import annotations

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from zund.common import errors
from zund.common.context import RequestContext

ADMIN = "rule:context_is_admin"
ADMIN_OR_OWNER = "rule:admin_or_owner"
ADMIN_API = "rule:admin_api"
NOBODY = "rule:deny_everybody"

_BASE = [
    oslo_policy.RuleDefault("context_is_admin", "role:admin", "Who is an administrator."),
    oslo_policy.RuleDefault("admin_or_owner", "is_admin:True or project_id:%(project_id)s",
                            "Administrators, or members of the resource's project."),
    oslo_policy.RuleDefault("admin_api", "rule:context_is_admin", "Administrator APIs."),
    oslo_policy.RuleDefault("deny_everybody", "!", "Nobody."),
]


def _c(name: str, check: str, description: str, method: str, path: str):
    return oslo_policy.DocumentedRuleDefault(
        name=name, check_str=check, description=description,
        operations=[{"method": method, "path": path}])


_C = "/v1/containers"
_CI = "/v1/containers/{container_ident}"

_CONTAINER = [
    _c("container:create", ADMIN_OR_OWNER, "Create a container.", "POST", _C),
    _c("container:create:runtime", ADMIN, "Create a container with a given runtime.", "POST", _C),
    _c("container:create:privileged", NOBODY, "Create a privileged container.", "POST", _C),
    _c("container:create:requested_destination", ADMIN,
       "Create a container on a requested host.", "POST", _C),
    _c("container:create:image_pull_policy", ADMIN,
       "Create a container with an image pull policy.", "POST", _C),
    _c("container:delete", ADMIN_OR_OWNER, "Delete a container.", "DELETE", _CI),
    _c("container:delete_all_projects", ADMIN,
       "Delete a container of any project.", "DELETE", _CI),
    _c("container:delete_force", ADMIN, "Forcibly delete a container.", "DELETE", _CI),
    _c("container:get_one", ADMIN_OR_OWNER, "Show a container.", "GET", _CI),
    _c("container:get_one_all_projects", ADMIN,
       "Show a container of any project.", "GET", _CI),
    _c("container:get_one:host", ADMIN, "See a container's host.", "GET", _CI),
    _c("container:get_one:runtime", ADMIN, "See a container's runtime.", "GET", _CI),
    _c("container:get_one:privileged", ADMIN, "See whether a container is privileged.",
       "GET", _CI),
    _c("container:get_one:image_pull_policy", ADMIN,
       "See a container's image pull policy.", "GET", _CI),
    _c("container:get_all", ADMIN_OR_OWNER, "List containers.", "GET", _C),
    _c("container:get_all_all_projects", ADMIN, "List containers of every project.",
       "GET", _C),
    _c("container:update", ADMIN_OR_OWNER, "Update a container.", "PATCH", _CI),
    _c("container:rename", ADMIN_OR_OWNER, "Rename a container (<= 1.13).", "POST",
       _CI + "/rename"),
]

_ACTIONS = [
    ("start", "POST"), ("stop", "POST"), ("reboot", "POST"), ("pause", "POST"),
    ("unpause", "POST"), ("logs", "GET"), ("execute", "POST"), ("execute_resize", "POST"),
    ("kill", "POST"), ("attach", "GET"), ("resize", "POST"), ("resize_container", "POST"),
    ("top", "GET"), ("get_archive", "GET"), ("put_archive", "POST"), ("stats", "GET"),
    ("commit", "POST"), ("rebuild", "POST"), ("network_list", "GET"),
    ("network_attach", "POST"), ("network_detach", "POST"),
    ("add_security_group", "POST"), ("remove_security_group", "POST"),
]
for _name, _method in _ACTIONS:
    _CONTAINER.append(_c(f"container:{_name}", ADMIN_OR_OWNER,
                         f"The {_name} action on a container.", _method, f"{_CI}/{_name}"))
_CONTAINER += [
    _c("container:actions", ADMIN_OR_OWNER, "List or show a container's actions.", "GET",
       _CI + "/container_actions"),
    _c("container:action:events", ADMIN, "See action event tracebacks.", "GET",
       _CI + "/container_actions/{request_id}"),
]

_OTHER = [
    _c("host:get_all", ADMIN_API, "List compute hosts.", "GET", "/v1/hosts"),
    _c("host:get", ADMIN_API, "Show a compute host.", "GET", "/v1/hosts/{host_ident}"),
    _c("zun-service:get_all", ADMIN_API, "List services.", "GET", "/v1/services"),
    _c("zun-service:delete", ADMIN_API, "Delete a service.", "DELETE", "/v1/services"),
    _c("zun-service:update", ADMIN_API, "Enable/disable/force down a service.", "PUT",
       "/v1/services/{action}"),
    _c("availability_zones:get_all", ADMIN_OR_OWNER, "List availability zones.", "GET",
       "/v1/availability_zones"),
    _c("image:get_all", ADMIN_API, "List images.", "GET", "/v1/images"),
    _c("image:get_one", ADMIN_API, "Show an image.", "GET", "/v1/images/{image_id}"),
]


def list_rules():
    """Every default rule (entry point ``oslo.policy.policies``: ``zund``)."""
    return _BASE + _CONTAINER + _OTHER


class PolicyEnforcer:
    """Answers "may ctx do action on target?" Built once by the service tree."""

    def __init__(self, enforcer: oslo_policy.Enforcer):
        self._enforcer = enforcer

    def check(self, ctx: RequestContext, action: str, target: dict | None = None) -> bool:
        target = {"project_id": ctx.project_id, "user_id": ctx.user_id} if target is None \
            else target
        return bool(self._enforcer.enforce(action, target, ctx.to_policy_values()))

    def authorize(self, ctx: RequestContext, action: str, target: dict | None = None) -> None:
        """Raises PolicyNotAuthorized unless allowed."""
        if not self.check(ctx, action, target):
            raise errors.PolicyNotAuthorized(action=action)


def make_enforcer(conf: cfg.ConfigOpts | None = None,
                  policy_file: str | None = None) -> PolicyEnforcer:
    """Build the enforcer.

    * no arguments: in-code defaults only (tests, and the usual deployment);
    * ``policy_file``: a yaml/json file overriding single rules;
    * ``conf``: a parsed ConfigOpts; its ``[oslo_policy]`` options (registered here)
      decide the file, as in any OpenStack service. A missing file is not an error.
    """
    if conf is not None and policy_file is None:
        enforcer = oslo_policy.Enforcer(conf)
        try:
            enforcer.register_defaults(list_rules())
            enforcer.load_rules()
        except cfg.NotInitializedError:
            # an unparsed ConfigOpts cannot search for files: defaults only
            enforcer = oslo_policy.Enforcer(conf, use_conf=False)
            _load_without_conf(enforcer, None)
        return PolicyEnforcer(enforcer)
    enforcer = oslo_policy.Enforcer(conf if conf is not None else cfg.ConfigOpts(),
                                    use_conf=False)
    _load_without_conf(enforcer, policy_file)
    return PolicyEnforcer(enforcer)


def _load_without_conf(enforcer: oslo_policy.Enforcer, policy_file: str | None) -> None:
    """Defaults, then the file's rules on top. With ``use_conf=False`` oslo.policy
    loads nothing by itself, so the rule set is installed here once."""
    enforcer.register_defaults(list_rules())
    rules = {r.name: r.check for r in list_rules()}
    if policy_file is not None:
        with open(policy_file) as f:
            rules.update(oslo_policy.Rules.load(f.read(), default_rule=None))
    enforcer.set_rules(oslo_policy.Rules(rules, default_rule=None), use_conf=False)
