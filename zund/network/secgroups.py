"""Security groups of the vxlan backend (pure): who may open connections to a port.

Zun's semantics: a group is a name, accepted on first use, scoped to the project
(``web`` of project a is not ``web`` of project b); a port named in no group is
in ``default``, except one with exposed ports (Zun gives such a container a group
of its own that admits just those ports: it is in no shared group). Ingress to a port is allowed for replies (conntrack
ESTABLISHED/RELATED), for its exposed ports (from anyone on its network) and from
ports of the same network that share one of its groups (same project); all else
is dropped. Egress is not filtered.

Membership spreads with the network's other replicated values: each port is a
``member:<net_id>:<port_id>`` item (``records.member_key``) holding
:func:`member_data`; every node computes its own ports' :class:`PortRules` from
the members it reads and changes the kernel only when they differ from what it
applied last.
"""

from __future__ import annotations

import attrs

DEFAULT_GROUP = "default"


def effective_groups(groups, exposed_ports=None) -> tuple:
    """The groups a port is in: the ones named (sorted, unique), else ``default``
    unless it has exposed ports, else none."""
    named = sorted({str(g) for g in (groups or ()) if g})
    if named or exposed_ports:
        return tuple(named)
    return (DEFAULT_GROUP,)


def member_data(port, project: str, node: str, exposed_ports=None) -> dict:
    """What a node publishes about one of its ports (its groups as in effect)."""
    return {"port": port.id, "ip": port.ip_address, "project": project or "",
            "groups": list(effective_groups(port.security_groups, exposed_ports)),
            "node": node}


def exposed_pairs(exposed_ports) -> tuple:
    """Zun's ``{"80/tcp": {}}`` (or ``"80"``) -> sorted ((80, "tcp"), ...)."""
    out = set()
    for key in exposed_ports or {}:
        num, _, proto = str(key).partition("/")
        out.add((int(num), (proto or "tcp").lower()))
    return tuple(sorted(out))


@attrs.frozen
class PortRules:
    """The ingress policy of one port: what the kernel is made to match."""

    ip: str
    exposed: tuple = ()   # ((port, proto), ...)
    sources: tuple = ()   # addresses allowed in on any port, sorted


def port_rules(me: dict, exposed_ports, members) -> PortRules:
    """``me``: this port's :func:`member_data`; ``members``: every member of the
    network (this node's and the others', ``me`` may be among them)."""
    mine = {(me["project"], g) for g in me["groups"]}
    sources = set()
    for m in members:
        ip = m.get("ip")
        if not isinstance(ip, str) or ip == me["ip"] or m.get("port") == me["port"]:
            continue
        groups = m.get("groups")
        if not isinstance(groups, (list, tuple)):
            continue  # a malformed copy admits nobody
        theirs = {(m.get("project") or "", str(g)) for g in groups}
        if mine & theirs:
            sources.add(ip)
    return PortRules(ip=me["ip"], exposed=exposed_pairs(exposed_ports),
                     sources=tuple(sorted(sources, key=_ip_order)))


def _ip_order(ip: str):
    try:
        return tuple(int(x) for x in ip.split("."))
    except ValueError:
        return (1 << 10, ip)
