"""Pure tier, issue 16: what a micro-VM is given for a tenant-network port (its
NIC in the domain XML, its address on the kernel command line) and what the node
asks of the TAP plugger after a boot."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import attrs
from twisted.internet.defer import Deferred, succeed

from zund.network.interface import Port
from zund.network.node import NodeNetworks
from zund.network.plugger import TapPlugger, guest_vif
from zund.runtimes.base import ContainerSpec
from zund.runtimes.microvm import domain_xml as dx

PORT = Port(id="6ef5de2c-4819-442f-b436-3f70a6b5df73", net_id="n1", mac="fa:16:3e:12:34:56",
            fixed_ips=({"subnet_id": "s1", "ip_address": "10.90.1.17"},), mtu=1450,
            vif_type="bridge", vif_details={"bridge_name": "zbr-7", "cidr": "10.90.1.0/24",
                                            "vni": 7},
            device_id="c-1", host="node-1")


def _spec(vifs, machine="microvm"):
    meta = dx.DomainMeta(uuid="c-1", node="node-1", project_id="p")
    return dx.DomainSpec(name="zun-c-1", meta=meta, virt_type="qemu", vcpus=1, memory_mb=128,
                         kernel="/k", initrd="/i", console_log="/l", control_socket="/s",
                         machine=machine, vifs=tuple(vifs))


def test_guest_vif_names_the_tap_like_a_veth_and_carries_the_prefix():
    """The TAP is named as a veth's host end (so exposed-port rules match it) and
    the address carries the subnet's prefix."""
    vif = guest_vif(PORT)
    assert vif == {"tap": "zv6ef5de2c481", "mac": "fa:16:3e:12:34:56", "mtu": 1450,
                   "address": "10.90.1.17/24", "gateway": ""}


def test_domain_xml_has_one_ethernet_nic_per_port_on_the_machines_bus():
    """Each vif is an <interface type='ethernet'> with the port's MAC, TAP name,
    MTU and virtio model; on microvm it sits on virtio-mmio, on pc on PCI."""
    for machine, address in (("microvm", "virtio-mmio"), ("pc", None)):
        dom = ET.fromstring(dx.domain_xml(_spec([guest_vif(PORT)], machine)))
        [nic] = dom.findall("devices/interface")
        assert nic.get("type") == "ethernet"
        assert nic.find("mac").get("address") == PORT.mac
        assert nic.find("target").get("dev") == "zv6ef5de2c481"
        assert nic.find("model").get("type") == "virtio"
        assert nic.find("mtu").get("size") == "1450"
        assert (nic.find("address").get("type") if nic.find("address") is not None
                else None) == address
    assert ET.fromstring(dx.domain_xml(_spec([]))).findall("devices/interface") == []


def test_the_command_line_carries_one_address_word_per_nic():
    """``zund.netN=MAC,ADDRESS/PREFIX,GATEWAY,MTU`` per NIC, in order (the guest's
    init parses them: tests/real/e2e/test_network_microvm.py)."""
    words = dx.net_cmdline([guest_vif(PORT), {**guest_vif(PORT), "mac": "fa:16:3e:00:00:02",
                                              "address": "10.91.0.5/16",
                                              "gateway": "10.91.0.1", "mtu": 1400}])
    assert words.split() == ["zund.net0=fa:16:3e:12:34:56,10.90.1.17/24,,1450",
                             "zund.net1=fa:16:3e:00:00:02,10.91.0.5/16,10.91.0.1,1400"]
    assert dx.net_cmdline([]) == ""


class _Backend:
    def __init__(self, ports):
        self._ports = list(ports)

    def ports_of(self, uuid):
        return [p for p in self._ports if p.device_id == uuid]


class _Dataplane:
    """The kernel as a map: TAP name -> bridge it is on."""

    def __init__(self):
        self.on_bridge = {}

    async def adopt_tap(self, port, tap, owner_pid):
        self.on_bridge[tap] = port.vif_details["bridge_name"]

    async def unplug_veth(self, port):
        self.on_bridge.pop("zv" + port.id.replace("-", "")[:11], None)


@attrs.define
class _Rec:
    uuid: str = "c-1"
    runtime: str = "microvm"
    hostname: str = ""
    project_id: str = "p"


def _run(coro):
    d = Deferred.fromCoroutine(coro)
    out = []
    d.addBoth(out.append)
    assert out, "the coroutine waited on something"
    if isinstance(out[0], BaseException) or hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def test_a_micro_vm_gets_its_nics_on_the_spec_and_its_taps_on_the_bridge_after_boot():
    """prepare puts the ports on the spec (no sandbox); started puts each TAP on
    its network's bridge."""
    dataplane = _Dataplane()
    plugger = TapPlugger(lambda fn, *a: succeed(fn(*a)), dataplane, pid_of=lambda name: 4242)
    nn = NodeNetworks("node-1", _Backend([PORT]), plugger=None, guest_plugger=plugger)
    spec = ContainerSpec(uuid="c-1", image="img", node="node-1", project_id="p")
    out = _run(nn.prepare(_Rec(), spec))
    assert out.vifs == (guest_vif(PORT),) and out.network_mode is None
    _run(nn.started(_Rec()))
    assert dataplane.on_bridge == {"zv6ef5de2c481": "zbr-7"}
    _run(nn.started(_Rec(runtime="runc")))  # a Docker container: nothing for the TAP plugger
    assert dataplane.on_bridge == {"zv6ef5de2c481": "zbr-7"}
