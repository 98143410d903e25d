"""The replicated values of the vxlan backend, and its address arithmetic (pure).

Two kinds of :class:`NetItem` live in the replicated store (``zund.cluster.kvstore``,
space ``networks``):

- ``net:<id>`` in group ``defs``: one network's definition (a ``Network`` as dict);
- ``block:<net_id>:<n>`` in group ``<net_id>``: node ``data["node"]`` (tunnel
  address ``data["vtep"]``) claims block ``n`` of the network's subnet;
- ``member:<net_id>:<port_id>`` in group ``<net_id>``: a port's address, project
  and security groups (``zund.network.secgroups.member_data``), what every node
  builds its ports' ingress rules from.

A node hands out addresses only from blocks it claimed, so two nodes never give
out the same address and no allocation takes a cross-node lock; a node releases a
block (a tombstone) when its last port in it is gone. The blocks of a network are
also who takes part in it: the VTEPs a node floods to (the l2population idea:
forwarding entries come from what the cluster knows, never from learning).
"""

from __future__ import annotations

import hashlib
import ipaddress

import attrs

DEFS = "defs"
#: VNIs are 24 bits; 0 and 2^24-1 are avoided
VNI_MAX = (1 << 24) - 2


@attrs.frozen
class NetItem:
    key: str
    group: str
    data: dict = attrs.field(hash=False)
    version: tuple
    deleted: bool = False

    def to_wire(self) -> dict:
        return {"key": self.key, "group": self.group, "data": dict(self.data),
                "version": [float(self.version[0]), str(self.version[1])],
                "deleted": self.deleted}

    @classmethod
    def from_wire(cls, d) -> "NetItem":
        """Refuses anything malformed with ValueError (a peer's bad copy)."""
        if not isinstance(d, dict):
            raise ValueError("network item: expected a map")
        for name in ("key", "group"):
            if not isinstance(d.get(name), str):
                raise ValueError(f"network item.{name}: expected a string")
        if not isinstance(d.get("data"), dict):
            raise ValueError("network item.data: expected a map")
        version = d.get("version")
        if (not isinstance(version, (list, tuple)) or len(version) != 2
                or not isinstance(version[0], (int, float)) or isinstance(version[0], bool)
                or not isinstance(version[1], str)):
            raise ValueError("network item.version: expected [seconds, node]")
        if not isinstance(d.get("deleted", False), bool):
            raise ValueError("network item.deleted: expected a bool")
        return cls(d["key"], d["group"], dict(d["data"]), (float(version[0]), version[1]),
                   d.get("deleted", False))


def net_key(net_id: str) -> str:
    return f"net:{net_id}"


def block_key(net_id: str, index: int) -> str:
    return f"block:{net_id}:{index}"


def member_key(net_id: str, port_id: str) -> str:
    return f"member:{net_id}:{port_id}"


def parse_cidr(cidr: str) -> ipaddress.IPv4Network:
    """ValueError unless an IPv4 subnet of /8 to /29 (host bits must be zero)."""
    net = ipaddress.ip_network(cidr, strict=True)
    if not isinstance(net, ipaddress.IPv4Network):
        raise ValueError("only IPv4 subnets are supported")
    if not 8 <= net.prefixlen <= 29:
        raise ValueError("the prefix length must be between 8 and 29")
    return net


def block_count(cidr: str, block_size: int) -> int:
    return max(1, parse_cidr(cidr).num_addresses // block_size)


def block_of(cidr: str, block_size: int, address: str) -> int:
    net = parse_cidr(cidr)
    return (int(ipaddress.ip_address(address)) - int(net.network_address)) // block_size


def block_addresses(cidr: str, block_size: int, index: int, gateway: str | None = None):
    """The usable addresses of block ``index``: without the subnet's network and
    broadcast addresses and the gateway."""
    net = parse_cidr(cidr)
    start = int(net.network_address) + index * block_size
    end = min(start + block_size, int(net.broadcast_address) + 1)
    skip = {int(net.network_address), int(net.broadcast_address)}
    if gateway:
        skip.add(int(ipaddress.ip_address(gateway)))
    return [str(ipaddress.ip_address(a)) for a in range(start, end) if a not in skip]


def in_subnet(cidr: str, address: str) -> bool:
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return False
    net = parse_cidr(cidr)
    return addr in net and addr not in (net.network_address, net.broadcast_address)


def mac_for(address: str) -> str:
    """A locally administered MAC derived from the IPv4 address (02:5a:a.b.c.d):
    unique within a network, and the same after any restart."""
    return "02:5a:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(address).packed)


def vni_for(net_id: str, taken: set) -> int:
    """A VNI derived from the network id, moved past ones already ``taken``."""
    vni = int(hashlib.sha256(net_id.encode()).hexdigest()[:8], 16) % VNI_MAX + 1
    while vni in taken:
        vni = vni % VNI_MAX + 1
    return vni


def free_subnet(pool: str, used: list, prefixlen: int = 24) -> str | None:
    """The first /``prefixlen`` of ``pool`` overlapping none of ``used``."""
    taken = [ipaddress.ip_network(c) for c in used]
    for sub in ipaddress.ip_network(pool).subnets(new_prefix=prefixlen):
        if not any(sub.overlaps(t) for t in taken):
            return str(sub)
    return None
