"""Policy: oslo.policy with Zun's rule names and defaults, in code.

With no policy file the in-code defaults apply. An operator file (yaml/json)
overrides single rules; rules it does not mention keep their defaults.
``list_rules()`` is the ``oslo.policy.policies`` entry point for
``oslopolicy-sample-generator --namespace zund``.
"""

from __future__ import annotations

import time
from typing import Callable

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from zund.common import errors
from zund.common.context import RequestContext


class _CheckOnFirstUse:
    """An ``oslo.policy.rule_checks`` plugin imported when a rule first names it."""

    def __init__(self, entry_point):
        self._entry_point = entry_point

    def __call__(self, kind: str, match: str):
        return self._entry_point.load()(kind, match)


def _defer_extension_checks() -> None:
    """oslo.policy imports every ``oslo.policy.rule_checks`` plugin when it parses
    its first rule (a ``RuleDefault`` below, at import); its own ``http``/``https``
    checks import requests and urllib3 (~1.7 MB RSS, issue 13 §5) though zund's
    rules name neither. Install the same plugins, each imported on first use (a
    policy file naming ``http:`` still works). Without oslo.policy's cache
    (``_checks.extension_checks``), nothing changes."""
    from oslo_policy import _checks

    if getattr(_checks, "extension_checks", False) is not None:
        return
    from importlib.metadata import entry_points

    _checks.extension_checks = {ep.name: _CheckOnFirstUse(ep)
                                for ep in entry_points(group="oslo.policy.rule_checks")}


_defer_extension_checks()

ADMIN = "rule:context_is_admin"
ADMIN_API = "rule:admin_api"
#: act on a project's containers: an administrator, or a member of the project
ADMIN_OR_MEMBER = "rule:admin_or_member"
#: look at a project's containers: an administrator, or a reader (or member) of it
ADMIN_OR_READER = "rule:admin_or_reader"
NOBODY = "rule:deny_everybody"

# Zun's defaults (zun/common/policies/*.py) with Keystone's default roles: Zun
# has one "admin or owner" rule; Keystone's personas split the owner into
# ``member`` (may act) and ``reader`` (may look). Neither relies on role
# implication (a token may carry ``member`` without the implied ``reader``), so
# the reader rule accepts both. ``admin_or_owner`` stays for operator files that
# name it, now meaning a member.
_BASE = [
    oslo_policy.RuleDefault("context_is_admin", "role:admin", "Who is an administrator."),
    oslo_policy.RuleDefault("project_member", "role:member and project_id:%(project_id)s",
                            "Members of the resource's project."),
    oslo_policy.RuleDefault("project_reader",
                            "(role:reader or role:member) and project_id:%(project_id)s",
                            "Readers (or members) of the resource's project."),
    oslo_policy.RuleDefault("admin_or_member", "rule:context_is_admin or rule:project_member",
                            "Administrators, or members of the resource's project."),
    oslo_policy.RuleDefault("admin_or_reader", "rule:context_is_admin or rule:project_reader",
                            "Administrators, or readers of the resource's project."),
    oslo_policy.RuleDefault("admin_or_owner", ADMIN_OR_MEMBER,
                            "Zun's name for admin_or_member (kept for policy files)."),
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
    _c("container:create", ADMIN_OR_MEMBER, "Create a container.", "POST", _C),
    _c("container:create:runtime", ADMIN_API, "Create a container with a given runtime.",
       "POST", _C),
    _c("container:create:privileged", NOBODY, "Create a privileged container.", "POST", _C),
    _c("container:create:requested_destination", ADMIN_API,
       "Create a container on a requested host.", "POST", _C),
    _c("container:create:host_mount", ADMIN_API,
       "Create a container that bind-mounts a host path.", "POST", _C),
    _c("container:create:image_pull_policy", ADMIN_API,
       "Create a container with an image pull policy.", "POST", _C),
    _c("container:delete", ADMIN_OR_MEMBER, "Delete a container.", "DELETE", _CI),
    _c("container:delete_all_projects", ADMIN_API,
       "Delete a container of any project.", "DELETE", _CI),
    _c("container:delete_force", ADMIN_API, "Forcibly delete a container.", "DELETE", _CI),
    _c("container:get_one", ADMIN_OR_READER, "Show a container.", "GET", _CI),
    _c("container:get_one_all_projects", ADMIN_API,
       "Show a container of any project.", "GET", _CI),
    _c("container:get_one:host", ADMIN_API, "See a container's host.", "GET", _CI),
    _c("container:get_one:runtime", ADMIN_API, "See a container's runtime.", "GET", _CI),
    _c("container:get_one:privileged", ADMIN_API, "See whether a container is privileged.",
       "GET", _CI),
    _c("container:get_one:image_pull_policy", ADMIN_API,
       "See a container's image pull policy.", "GET", _CI),
    _c("container:get_all", ADMIN_OR_READER, "List containers.", "GET", _C),
    _c("container:get_all_all_projects", ADMIN_API, "List containers of every project.",
       "GET", _C),
    _c("container:update", ADMIN_OR_MEMBER, "Update a container.", "PATCH", _CI),
    _c("container:rename", ADMIN_OR_MEMBER, "Rename a container (<= 1.13).", "POST",
       _CI + "/rename"),
]

# (action, method, check). Readers may look (top, stats, networks); everything
# that changes a container or reads what it holds (logs, archives, exec: they
# may carry the project's secrets, as nova keeps console output for members)
# needs a member.
_ACTIONS = [
    ("start", "POST", ADMIN_OR_MEMBER), ("stop", "POST", ADMIN_OR_MEMBER),
    ("reboot", "POST", ADMIN_OR_MEMBER), ("pause", "POST", ADMIN_OR_MEMBER),
    ("unpause", "POST", ADMIN_OR_MEMBER), ("logs", "GET", ADMIN_OR_MEMBER),
    ("execute", "POST", ADMIN_OR_MEMBER), ("execute_resize", "POST", ADMIN_OR_MEMBER),
    ("kill", "POST", ADMIN_OR_MEMBER), ("attach", "GET", ADMIN_OR_MEMBER),
    ("resize", "POST", ADMIN_OR_MEMBER), ("resize_container", "POST", ADMIN_OR_MEMBER),
    ("top", "GET", ADMIN_OR_READER), ("get_archive", "GET", ADMIN_OR_MEMBER),
    ("put_archive", "POST", ADMIN_OR_MEMBER), ("stats", "GET", ADMIN_OR_READER),
    ("commit", "POST", ADMIN_OR_MEMBER), ("rebuild", "POST", ADMIN_OR_MEMBER),
    ("network_list", "GET", ADMIN_OR_READER), ("network_attach", "POST", ADMIN_OR_MEMBER),
    ("network_detach", "POST", ADMIN_OR_MEMBER),
    ("add_security_group", "POST", ADMIN_OR_MEMBER),
    ("remove_security_group", "POST", ADMIN_OR_MEMBER),
]
for _name, _method, _check in _ACTIONS:
    _CONTAINER.append(_c(f"container:{_name}", _check,
                         f"The {_name} action on a container.", _method, f"{_CI}/{_name}"))
_CONTAINER += [
    _c("container:actions", ADMIN_OR_READER, "List or show a container's actions.", "GET",
       _CI + "/container_actions"),
    _c("container:action:events", ADMIN_API, "See action event tracebacks.", "GET",
       _CI + "/container_actions/{request_id}"),
]

_OTHER = [
    # tenant networks (issue 16): a project's members make their own; shared ones
    # need the admin role (checked by the backend)
    _c("network:create", ADMIN_OR_MEMBER, "Create a network.", "POST", "/v1/networks"),
    _c("network:delete", ADMIN_OR_MEMBER, "Delete a network.", "DELETE",
       "/v1/networks/{network_ident}"),
    _c("network:get_all", ADMIN_OR_READER, "List or show networks.", "GET", "/v1/networks"),
    _c("host:get_all", ADMIN_API, "List compute hosts.", "GET", "/v1/hosts"),
    _c("host:get", ADMIN_API, "Show a compute host.", "GET", "/v1/hosts/{host_ident}"),
    _c("zun-service:get_all", ADMIN_API, "List services.", "GET", "/v1/services"),
    _c("zun-service:delete", ADMIN_API, "Delete a service.", "DELETE", "/v1/services"),
    _c("zun-service:update", ADMIN_API, "Enable/disable/force down a service.", "PUT",
       "/v1/services/{action}"),
    _c("availability_zones:get_all", ADMIN_OR_READER, "List availability zones.", "GET",
       "/v1/availability_zones"),
    _c("image:get_all", ADMIN_API, "List images.", "GET", "/v1/images"),
    _c("image:get_one", ADMIN_API, "Show an image.", "GET", "/v1/images/{image_id}"),
    _c("image:pull", ADMIN_API, "Pull an image onto a host.", "POST", "/v1/images"),
    _c("image:delete", ADMIN_API, "Delete an image.", "DELETE", "/v1/images/{image_id}"),
    _c("image:search", ADMIN_API, "Search images.", "GET", "/v1/images/{image}/search"),
]


_Q = "/v1/quotas/{project_id}"
_QC = "/v1/quota_classes/{quota_class_name}"
#: Zun's quota rules (zun/common/policies/quota.py, quota_class.py)
_QUOTA = [
    _c("quota:update", ADMIN_API, "Update a project's quotas.", "PUT", _Q),
    _c("quota:delete", ADMIN_API, "Reset a project's quotas to the defaults.", "DELETE", _Q),
    _c("quota:get", ADMIN_OR_READER, "Show a project's quotas.", "GET", _Q),
    _c("quota:get_default", ADMIN_OR_READER, "Show the default quotas.", "GET",
       _Q + "/defaults"),
    _c("quota_class:update", ADMIN_API, "Update a quota class.", "PUT", _QC),
    _c("quota_class:get", ADMIN_API, "Show a quota class.", "GET", _QC),
]


_R = "/v1/registries"
_RI = "/v1/registries/{registry_ident}"
#: Zun's registry rules (zun/common/policies/registry.py) with Keystone's personas
_REGISTRY = [
    _c("registry:create", ADMIN_OR_MEMBER, "Create a registry.", "POST", _R),
    _c("registry:get_one", ADMIN_OR_READER, "Show a registry.", "GET", _RI),
    _c("registry:get_all", ADMIN_OR_READER, "List the project's registries.", "GET", _R),
    _c("registry:get_all_all_projects", ADMIN_API, "List every project's registries.",
       "GET", _R),
    _c("registry:update", ADMIN_OR_MEMBER, "Update a registry.", "PATCH", _RI),
    _c("registry:delete", ADMIN_OR_MEMBER, "Delete a registry.", "DELETE", _RI),
]


_F = "/v2.1/flavors"
_FI = "/v2.1/flavors/{flavor_id}"
#: Nova's flavor-manage, extra specs and flavor access rules (compute API, zund.api.nova)
_FLAVOR = [
    _c("os_compute_api:os-flavor-manage:create", ADMIN_API, "Create a flavor.", "POST", _F),
    _c("os_compute_api:os-flavor-manage:delete", ADMIN_API, "Delete a flavor.", "DELETE",
       _FI),
    _c("os_compute_api:os-flavor-extra-specs:create", ADMIN_API,
       "Create or replace a flavor's extra specs.", "POST", _FI + "/os-extra_specs"),
    _c("os_compute_api:os-flavor-extra-specs:update", ADMIN_API,
       "Update one extra spec of a flavor.", "PUT", _FI + "/os-extra_specs/{key}"),
    _c("os_compute_api:os-flavor-extra-specs:delete", ADMIN_API,
       "Delete one extra spec of a flavor.", "DELETE", _FI + "/os-extra_specs/{key}"),
    _c("os_compute_api:os-flavor-access", ADMIN_API,
       "List the projects that may use a private flavor.", "GET",
       _FI + "/os-flavor-access"),
    _c("os_compute_api:os-flavor-access:add_tenant_access", ADMIN_API,
       "Let a project use a private flavor.", "POST", _FI + "/action (addTenantAccess)"),
    _c("os_compute_api:os-flavor-access:remove_tenant_access", ADMIN_API,
       "Stop a project using a private flavor.", "POST",
       _FI + "/action (removeTenantAccess)"),
]


def list_rules():
    """Every default rule (entry point ``oslo.policy.policies``: ``zund``)."""
    return _BASE + _CONTAINER + _OTHER + _QUOTA + _REGISTRY + _FLAVOR


def _frozen(value):
    """A hashable copy of a policy target / credentials value."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(_frozen(v) for v in value)
    return value


def _target_key(target) -> object:
    """The memo's key for a target: its items as a frozenset when every value is
    hashable (the usual ``{"project_id", "user_id"}``: no sort, no recursion),
    else the recursive :func:`_frozen` copy. Equal keys mean equal dicts."""
    try:
        return frozenset(target.items())
    except TypeError:  # a list or dict value
        return _frozen(target)


def _creds_key(ctx) -> tuple:
    """The memo's key for the credentials ``ctx.to_policy_values()`` gives: the
    very fields that dict is made of, in a fixed order (without building it)."""
    if type(ctx) is RequestContext:
        return (ctx.user_id, ctx.user_domain_id, ctx.project_id, ctx.project_domain_id,
                tuple(ctx.roles), ctx.is_admin)
    return _frozen(ctx.to_policy_values())


def _fingerprint(rules) -> tuple:
    """What the installed rule set says, comparable across reloads (oslo.policy
    may update its ``Rules`` in place, so identity is not enough)."""
    return (str(getattr(rules, "default_rule", None)),
            tuple(sorted((name, str(check)) for name, check in rules.items())))


class PolicyEnforcer:
    """Answers "may ctx do action on target?" Built once by the service tree.

    oslo.policy's ``enforce`` looks for the policy file (a search of the config
    directories while none exists) and walks the rule tree, inspecting each
    check's signature, on every call: ~1 ms of reactor CPU, and one create asks
    ~5 rules and its answer 4 more (issue 13: 7.6% of a node's CPU under
    placement load). So:

    * the rule set is (re)loaded here at most once per ``recheck_s`` of ``now()``
      (oslo.policy's own reload check: file search, mtime), never inside
      ``enforce``;
    * decisions are memoised per (action, target, credentials) for as long as the
      loaded rules stay the same: the memo is forgotten when a reload changed
      them (an operator's policy file change still applies within ``recheck_s``)
      or when it is full.

    Who may call: the reactor thread (API resources, the local compute backend).
    """

    MEMO_MAX = 8192

    def __init__(self, enforcer: oslo_policy.Enforcer, recheck_s: float = 1.0,
                 now: Callable[[], float] = time.monotonic):
        self._enforcer = enforcer
        self._recheck_s = recheck_s
        self._now = now
        #: the enforcer reads the [oslo_policy] files (else its rules are installed once)
        self._from_conf = bool(enforcer.use_conf)
        self._memo: dict = {}
        self._loaded_at = float("-inf")
        self._rules_seen: tuple | None = None

    def _refresh(self) -> None:
        """Reload the rules when ``recheck_s`` has passed; forget the memo when
        they changed."""
        now = self._now()
        if now - self._loaded_at < self._recheck_s:
            return
        self._loaded_at = now
        if self._from_conf:
            # load here, then keep enforce() from searching for the file each call
            self._enforcer.use_conf = True
            try:
                self._enforcer.load_rules()
            finally:
                self._enforcer.use_conf = False
        seen = _fingerprint(self._enforcer.rules)
        if seen != self._rules_seen:
            self._memo.clear()
            self._rules_seen = seen

    def check(self, ctx: RequestContext, action: str, target: dict | None = None) -> bool:
        target = {"project_id": ctx.project_id, "user_id": ctx.user_id} if target is None \
            else target
        self._refresh()
        key = (action, _target_key(target), _creds_key(ctx))
        allowed = self._memo.get(key)
        if allowed is None:
            if len(self._memo) >= self.MEMO_MAX:
                self._memo.clear()
            allowed = self._memo[key] = bool(self._enforcer.enforce(
                action, target, ctx.to_policy_values()))
        return allowed

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
