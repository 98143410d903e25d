"""An agentless ML2 mechanism driver for the test neutron-server (tools/neutron.sh).

It is installed INTO neutron's own virtualenv (entry point ``zund_test`` in
``neutron.ml2.mechanism_drivers``) and never imported by zund or its tests.

Neutron binds a port when ``binding:host_id`` is set; a real driver would wait for
its agent on that host to wire the port and report it up. There is no data plane
here (issue 16: no Open vSwitch datapath, linuxbridge is gone from Neutron 29), so
this driver binds every port at once, on the first segment offered, and says the
port is ACTIVE — what a working agent would make of it:

- host ``*-ovs*``: vif_type ``ovs`` (``vif_details``: ``bridge_name`` br-int), as
  the openvswitch driver binds;
- any other host: vif_type ``bridge`` (``vif_details``: ``bridge_name`` ``brq`` +
  the first 11 characters of the network id, as the removed linuxbridge driver
  bound), i.e. a device on a per-network Linux bridge, which zund's plugger wires;
- host ``*-stuck*``: bound, but the status is left DOWN, as when an agent never
  reports: the client's wait for ACTIVE must time out with a clear error.
"""

from __future__ import annotations

from neutron_lib import constants
from neutron_lib.plugins.ml2 import api

VIF_BRIDGE = "bridge"
VIF_OVS = "ovs"


class ZundTestMechanismDriver(api.MechanismDriver):
    """Binds every port without an agent (see the module docstring)."""

    def initialize(self):
        pass

    def bind_port(self, context):
        host = context.host or ""
        for segment in context.segments_to_bind:
            if "-ovs" in host:
                vif_type, details = VIF_OVS, {"bridge_name": "br-int", "port_filter": True}
            else:
                net_id = context.network.current["id"]
                vif_type, details = VIF_BRIDGE, {"bridge_name": "brq" + net_id[:11],
                                              "port_filter": True}
            status = None if "-stuck" in host else constants.PORT_STATUS_ACTIVE
            context.set_binding(segment[api.ID], vif_type, details, status=status)
            return
