"""The network seam: what zund asks of a tenant-network backend and of a plugger.

Two backends implement :class:`INetworkBackend`: ``zund.network.vxlan`` (kernel
bridges + VXLAN, nothing else needed) and ``zund.network.neutron`` (a real cloud).
:class:`IPlugger` wires a :class:`Port` into a runtime object on this node (Docker:
a sandbox container owning the namespace; libvirt: a TAP on the bridge).

All backend methods are ``async``; ``ctx`` is :class:`zund.common.context.RequestContext`.
Errors are those of :mod:`zund.network.errors` (plus ``PolicyNotAuthorized``).

Ports are allocated by the owner node after placement (the node that won the bid:
``host``) and released when the container is deleted; attach/detach are owner calls.
The container record keeps them in Zun's shape::

    addresses = {net_id: [{"addr", "version": 4, "port": port_id,
                           "preserve_on_delete": bool, "subnet_id"}]}
"""

from __future__ import annotations

import attrs
from zope.interface import Attribute, Interface

#: values of ``Network.backend``
BACKENDS = ("vxlan", "neutron")
#: values of ``Port.vif_type``
VIF_TYPES = ("bridge", "tap", "ovs")


@attrs.frozen
class Network:
    """A tenant network as users see it (Zun/Neutron-like view)."""

    id: str                      # uuid
    name: str
    project_id: str
    shared: bool
    cidr: str                    # one IPv4 subnet per network, e.g. "10.90.1.0/24"
    gateway: str | None
    mtu: int
    backend: str                 # "vxlan" | "neutron"
    segmentation_id: int | None  # the VNI for vxlan
    created_at: str              # ISO 8601, UTC

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Network":
        """Raises TypeError/KeyError on anything malformed."""
        return cls(**{f.name: d[f.name] for f in attrs.fields(cls)})


@attrs.frozen
class Port:
    """One container's attachment to one network."""

    id: str
    net_id: str
    mac: str
    fixed_ips: tuple = attrs.field(converter=tuple)  # ({"subnet_id", "ip_address"},)
    mtu: int
    vif_type: str                                    # "bridge" | "tap" | "ovs"
    vif_details: dict = attrs.field(factory=dict, hash=False)  # {"bridge_name": "zbr-<vni>"}
    security_groups: tuple = attrs.field(default=(), converter=tuple)
    device_id: str = ""                              # container uuid
    host: str = ""                                   # node name

    @property
    def ip_address(self) -> str | None:
        return self.fixed_ips[0]["ip_address"] if self.fixed_ips else None

    def to_dict(self) -> dict:
        d = attrs.asdict(self)
        d["fixed_ips"] = [dict(ip) for ip in self.fixed_ips]
        d["security_groups"] = list(self.security_groups)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Port":
        """Raises TypeError/KeyError on anything malformed."""
        return cls(**{f.name: d[f.name] for f in attrs.fields(cls)})


class INetworkBackend(Interface):
    """Tenant networks and the ports of containers on them."""

    name = Attribute('the backend\'s name: "vxlan" | "neutron"')

    async def list_networks(ctx):
        """-> list[Network]: the caller's project's networks plus shared ones
        (an admin asking with all projects is the API's business, not ours)."""

    async def get_network(ctx, name_or_id):
        """-> Network. NetworkNotFound for missing ones and other projects'
        private networks."""

    async def create_network(ctx, name, cidr=None, shared=False):
        """-> Network. ``shared`` only for admins (PolicyNotAuthorized);
        ``cidr`` None: the backend picks a free subnet."""

    async def delete_network(ctx, name_or_id):
        """Delete; NetworkInUse while ports exist on it."""

    async def default_network(ctx):
        """-> Network | None. Zun's rule: the project's oldest network, else the
        oldest shared one, else None (the API answers 409)."""

    async def allocate(ctx, container_uuid, host, requests):
        """-> list[Port], one per request, allocated for ``container_uuid`` on node
        ``host``. ``requests``: Zun ``nets`` entries ``{"network": name_or_id,
        "v4-fixed-ip": ip, "port": port_id}`` (any key may be absent). All or
        nothing: on error the ports made so far are released."""

    async def release(ctx, container_uuid, ports):
        """Give back ``ports`` (idempotent: already-released ports are ignored)."""

    async def update_security(ctx, port, security_groups, exposed_ports):
        """-> Port with ``security_groups`` applied; ``exposed_ports`` is Zun's
        ``{"80/tcp": {}}`` map (ingress allowed to those ports only)."""


class IPlugger(Interface):
    """Wires a Port into a runtime object on this node. Idempotent both ways."""

    async def plug(container_uuid, port):
        """Make ``port`` appear inside the container (interface, MAC, address, MTU,
        default route via the network's gateway when it has one)."""

    async def unplug(container_uuid, port):
        """Remove ``port`` from the container; a missing device is not an error."""
