"""The one declaration of what the API may ask of "the containers".

``IContainers`` is the seam between ``zund/api/`` and whatever holds the containers:
``zund.compute.local.LocalContainers`` (this node's manager) or
``zund.cluster.facade.ClusterContainers`` (the whole cloud, from any node). The API
calls nothing else; both implementations write every method out.

Each method that acts on one container is marked with :func:`owner_call`: it takes
``(ctx, ref, ...)`` and runs on the node that holds the record (lookup scoped by
``ctx`` → ``ref.rule`` checked against the real record → the action). Everything
that must agree on these operations is derived from the marks, never kept by hand:

- the cluster routes exactly the marked methods to the owner;
- the peer server accepts exactly the marked operations, with exactly the
  arguments declared here (:func:`operation_arguments`);
- the peer client gives the ``slow`` ones its long timeout.
"""

from __future__ import annotations

import datetime

import attrs
from zope.interface import Interface

#: tagged values set by :func:`owner_call` (zope copies function attributes)
ROUTED = "zund_routed"
SLOW = "zund_slow"

#: the leading arguments of every owner call (not sent as operation arguments)
_OWNER_CALL_PREFIX = ("ctx", "ref")


def owner_call(slow: bool = False):
    """Mark an ``IContainers`` method as one that runs on the container's owner.

    ``slow``: it runs synchronously on the owner for a long time (exec, archives,
    logs...), so a forwarded call gets the peer client's slow timeout."""

    def mark(fn):
        setattr(fn, ROUTED, True)
        setattr(fn, SLOW, bool(slow))
        return fn

    return mark


@attrs.frozen
class ContainerRef:
    """Names one container for an owner call, with the policy the owner enforces.

    ``ident``: uuid or name, scoped by the caller's context; ``all_projects``: the
    caller asked across projects (already authorized by the API); ``rule``: the
    policy rule the owner checks against the record's project; ``extra_rules``:
    further rules checked the same way (e.g. ``container:delete_force``)."""

    ident: str = attrs.field(validator=attrs.validators.instance_of(str))
    rule: str = attrs.field(validator=attrs.validators.instance_of(str))
    all_projects: bool = attrs.field(default=False,
                                     validator=attrs.validators.instance_of(bool))
    extra_rules: tuple = attrs.field(default=(), converter=tuple)

    def rules(self) -> tuple[str, ...]:
        return (self.rule,) + tuple(self.extra_rules)

    def to_wire(self) -> dict:
        return {"ident": self.ident, "rule": self.rule, "all_projects": self.all_projects,
                "extra_rules": list(self.extra_rules)}

    @classmethod
    def from_wire(cls, d) -> "ContainerRef":
        """Raises TypeError/ValueError on anything malformed."""
        if not isinstance(d, dict):
            raise TypeError("ref: expected a map")
        extra = d.get("extra_rules") or []
        if not isinstance(extra, list) or not all(isinstance(r, str) for r in extra):
            raise TypeError("ref.extra_rules: expected a list of strings")
        return cls(ident=d.get("ident"), rule=d.get("rule"),
                   all_projects=d.get("all_projects", False), extra_rules=extra)


@attrs.frozen
class Listing:
    """The containers a list returns, and the nodes that did not answer in time
    (shown to clients in ``Zund-Partial-Nodes``, never dropped silently)."""

    records: tuple = attrs.field(converter=tuple)
    partial_nodes: frozenset = attrs.field(default=frozenset(), converter=frozenset)


@attrs.frozen
class ServiceState:
    """One zun-compute service (a node): ``state`` up|down and when it last changed
    (None when unknown, e.g. a single node that never changed)."""

    host: str
    state: str
    availability_zone: str
    changed_at: datetime.datetime | None = None


class IContainers(Interface):
    """What the Zun API may ask of the containers. Errors are zund errors
    (``ContainerNotFound``, ``PolicyNotAuthorized``, ``InvalidStateException``...)."""

    async def create(ctx, request):
        """Create from a ``zund.records.CreateRequest`` (validated, defaults applied,
        name chosen); -> ContainerRecord. A request nobody can host ends as an Error
        record kept by this node."""

    async def list(ctx, all_projects=False):
        """-> Listing of the records visible to ``ctx``."""

    def runtime_names():
        """-> list[str]: runtimes this node serves."""

    async def host_info():
        """-> dict: this node as a Zun host."""

    async def hosts():
        """-> list[dict]: every known node as a Zun host."""

    async def services():
        """-> list[ServiceState]: every known node's compute service."""

    @owner_call()
    async def show(ctx, ref):
        """-> ContainerRecord, refreshed from its runtime by its owner."""

    @owner_call()
    async def find(ctx, ref):
        """-> ContainerRecord as stored (no runtime round trip): for routes that
        only need the record to exist and be allowed."""

    @owner_call()
    async def delete(ctx, ref, force=False, stop=False):
        """Delete (stopping first when ``stop``)."""

    @owner_call()
    async def start(ctx, ref):
        """Start in the background."""

    @owner_call()
    async def stop(ctx, ref, timeout_s=None):
        """Stop in the background."""

    @owner_call()
    async def reboot(ctx, ref, timeout_s=None):
        """Restart in the background."""

    @owner_call()
    async def pause(ctx, ref):
        """Pause in the background."""

    @owner_call()
    async def unpause(ctx, ref):
        """Unpause in the background."""

    @owner_call()
    async def kill(ctx, ref, signal=None):
        """Send ``signal`` (None: the runtime's default)."""

    @owner_call()
    async def rebuild(ctx, ref, image=None, image_driver=None):
        """Not provided by zund: NotImplementedYet once the container is found."""

    @owner_call(slow=True)
    async def logs(ctx, ref, stdout=True, stderr=True, timestamps=False, tail=None,
                   since=None):
        """-> str."""

    @owner_call(slow=True)
    async def execute(ctx, ref, argv):
        """-> ExecResult."""

    @owner_call(slow=True)
    async def top(ctx, ref, ps_args=None):
        """-> dict (Titles, Processes)."""

    @owner_call(slow=True)
    async def stats(ctx, ref):
        """-> dict."""

    @owner_call()
    async def update(ctx, ref, patch):
        """-> the updated ContainerRecord."""

    @owner_call()
    async def resize_container(ctx, ref, cpu=None, memory=None):
        """-> the updated ContainerRecord."""

    @owner_call(slow=True)
    async def get_archive(ctx, ref, path):
        """-> (bytes, stat dict)."""

    @owner_call(slow=True)
    async def put_archive(ctx, ref, path, data):
        """Unpack the tar ``data`` at ``path``."""

    @owner_call(slow=True)
    async def commit(ctx, ref, repository, tag=None):
        """-> the new image id."""

    @owner_call()
    async def console_open(ctx, ref, kind, argv=None):
        """Prepare an interactive console on the owner (``kind`` "exec": a new TTY
        exec of ``argv``; "attach": the container's own console) and issue the
        owner's one-time websocket token for the caller -> dict(node, container,
        kind, exec_id, url). Added by issue 14 (``zund.console``)."""

    @owner_call()
    async def console_resize(ctx, ref, width, height, exec_id=None):
        """Resize the TTY of a console exec (``exec_id``) or of the container."""

    @owner_call(slow=True)
    async def network_action(ctx, ref, action, args):
        """Change the container's networks on its owner (issue 16,
        ``zund.network.node``): ``action`` "attach" (args: network id, v4-fixed-ip,
        port), "detach" (network or port), "security_groups" (add / remove names)
        -> the updated ContainerRecord. Slow: an attach may wait for a Neutron port
        to become ACTIVE."""

    @owner_call()
    async def list_actions(ctx, ref):
        """-> list[ActionRecord]."""

    @owner_call()
    async def get_action(ctx, ref, request_id):
        """-> ActionRecord with events; tracebacks only when the caller may see
        them (``container:action:events`` on the record)."""


def owner_operations() -> frozenset[str]:
    """Names of the methods marked :func:`owner_call` (the peer allowlist)."""
    return frozenset(name for name in IContainers.names()
                     if IContainers[name].queryTaggedValue(ROUTED, False))


def is_slow(operation: str) -> bool:
    return bool(operation in owner_operations()
                and IContainers[operation].queryTaggedValue(SLOW, False))


def operation_arguments(operation: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(all argument names, required argument names) of an owner call, after
    ``ctx, ref``. KeyError for anything that is not an owner call."""
    if operation not in owner_operations():
        raise KeyError(operation)
    method = IContainers[operation]
    info = method.getSignatureInfo()
    names = tuple(n for n in info["positional"] if n not in _OWNER_CALL_PREFIX)
    required = tuple(n for n in info["required"] if n not in _OWNER_CALL_PREFIX)
    return names, required
