"""libvirt domain XML for one micro-VM container, and zund's metadata inside it.

Pure: builds and parses strings. The guest has a network device only for each
tenant-network port (``vifs``: ``<interface type='ethernet'>``), no graphics:
kernel + initrd + one serial port whose output goes to a file (the container's
log, kept after the guest stops), a control serial line, and one virtio disk per
volume (with a stable serial the init finds it by).

Machine types (``DomainSpec.machine``):

- ``pc``: virtio devices on PCI, ACPI on;
- ``microvm``: QEMU's minimal machine: no PCI, so every virtio device needs an
  explicit ``<address type='virtio-mmio'/>`` (libvirt otherwise answers "No PCI
  buses available"). ACPI stays ON: Debian's cloud kernel is built without
  ``CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES``, so the ``virtio_mmio.device=`` entries
  QEMU adds to the command line without ACPI are ignored and the guest finds its
  disks only through the DSDT; and without ACPI ``poweroff`` cannot end the
  guest. Under TCG the microvm guest has no PIT/HPET to calibrate its TSC against
  and hangs; ``tsc_early_khz`` (the host's TSC rate, which TCG's rdtsc returns)
  is added to the command line then (see :func:`kernel_cmdline`).

Each part of the XML is built by its own function (``_os``, ``_features``,
``_disks``, ``_serials``), so a later device kind (e.g. a network interface)
is one more function that uses :func:`device_address` for the machine type.
"""

from __future__ import annotations

import uuid as uuidlib
import xml.etree.ElementTree as ET

import attrs

#: XML namespace of zund's ``<metadata>`` element (an identifier, never fetched).
METADATA_NS = "http://zund.openstack.org/xmlns/microvm/1"
METADATA_PREFIX = "zund"
METADATA_ROOT = "container"

#: Kernel command line. ``console=ttyS0``: the serial log; ``quiet loglevel=1``:
#: keep kernel chatter out of it; ``panic=-1`` with ``on_reboot=destroy``: a panic
#: (e.g. a broken initramfs) ends the domain at once instead of hanging.
BASE_CMDLINE = ("console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init "
                "i8042.noaux i8042.nopnp tsc=reliable no_timer_check")


@attrs.frozen
class DomainMeta:
    uuid: str
    node: str
    project_id: str
    hostname: str = ""
    image: str = ""
    ports: tuple = ()
    auto_remove: bool = False
    #: a warm-pool guest nobody has claimed yet (zund.runtimes.libvirt, "Warm pool");
    #: ``uuid`` is then the guest's own id, not a container's
    pool: bool = False


MACHINE_TYPES = ("pc", "microvm")


@attrs.frozen
class DiskSpec:
    """One volume disk: a raw image, seen by the guest as ``/dev/<target>`` with
    ``serial`` in ``/sys/block/<target>/serial``."""

    path: str
    serial: str  # <= 20 characters (virtio-blk)
    target: str  # vda, vdb, ...
    read_only: bool = False


def disk_target(index: int) -> str:
    return "vd" + "abcdefghijklmnopqrstuvwxyz"[index]


def disk_serial(index: int) -> str:
    return f"zund-vol-{index}"


def kernel_cmdline(machine: str, virt_type: str, tsc_khz: int | None) -> str:
    """BASE_CMDLINE plus what the machine needs (see the module docstring)."""
    if machine == "microvm" and virt_type != "kvm" and tsc_khz:
        return f"{BASE_CMDLINE} tsc_early_khz={int(tsc_khz)}"
    return BASE_CMDLINE


@attrs.frozen
class DomainSpec:
    name: str
    meta: DomainMeta
    virt_type: str  # "kvm" | "qemu"
    vcpus: int
    memory_mb: int
    kernel: str
    initrd: str
    console_log: str
    control_socket: str
    cmdline: str = BASE_CMDLINE
    machine: str = "pc"  # MACHINE_TYPES
    disks: tuple = ()  # DiskSpec
    vifs: tuple = ()  # NICs: zund.network.plugger.guest_vif dicts
    #: libvirt's id of the domain when it is not ``meta.uuid``: a warm-pool guest
    #: keeps its own id when a container claims it
    domain_uuid: str = ""
    #: libvirt's ``<title>`` (``virsh list --title``): a claimed warm guest's says
    #: ``zun-<container uuid>``, the name it could not take
    title: str = ""


ET.register_namespace(METADATA_PREFIX, METADATA_NS)


def _sub(parent, tag, text=None, **attrib):
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrib.items()})
    if text is not None:
        el.text = str(text)
    return el


def metadata_xml(meta: DomainMeta, namespaced: bool = True) -> str:
    """The element embedded in ``<metadata>``; ``namespaced=False``: the same
    without its namespace, as ``virDomainSetMetadata`` takes it (it adds the
    namespace itself, and refuses an element that declares one)."""
    prefix = f"{METADATA_PREFIX}:" if namespaced else ""
    root = ET.Element(f"{prefix}{METADATA_ROOT}",
                      {f"xmlns:{METADATA_PREFIX}": METADATA_NS} if namespaced else {})
    for tag, value in (("uuid", meta.uuid), ("node", meta.node), ("project", meta.project_id),
                       ("hostname", meta.hostname), ("image", meta.image),
                       ("ports", ",".join(str(p) for p in meta.ports)),
                       ("auto-remove", "1" if meta.auto_remove else "0")):
        _sub(root, f"{prefix}{tag}", value)
    if meta.pool:
        _sub(root, f"{prefix}pool", "1")
    return ET.tostring(root, encoding="unicode")


def parse_metadata(xml_text: str) -> DomainMeta | None:
    """Parse zund's metadata element (as libvirt returns it); None if it is not ours."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return None
    # libvirt hands the element back without its namespace prefix; accept both.
    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    if local(root.tag) != METADATA_ROOT or (root.tag.startswith("{")
                                           and root.tag != f"{{{METADATA_NS}}}{METADATA_ROOT}"):
        return None
    values = {local(child.tag): (child.text or "") for child in root}

    def get(tag):
        return values.get(tag, "")

    if not get("uuid"):
        return None
    ports = tuple(int(p) for p in get("ports").split(",") if p.strip().isdigit())
    return DomainMeta(uuid=get("uuid"), node=get("node"), project_id=get("project"),
                      hostname=get("hostname"), image=get("image"), ports=ports,
                      auto_remove=get("auto-remove") == "1", pool=get("pool") == "1")


def _is_uuid(value: str) -> bool:
    try:
        return str(uuidlib.UUID(value)) == value.lower()
    except ValueError:
        return False


def device_address(device, machine: str) -> None:
    """Give a virtio ``device`` element the address its machine type needs: on
    ``microvm`` there is no PCI bus, only virtio-mmio slots."""
    if machine == "microvm":
        _sub(device, "address", type="virtio-mmio")


def _os(dom, spec: DomainSpec) -> None:
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine=spec.machine)
    _sub(os_el, "kernel", spec.kernel)
    _sub(os_el, "initrd", spec.initrd)
    _sub(os_el, "cmdline", spec.cmdline)


def _features(dom, spec: DomainSpec) -> None:
    feats = _sub(dom, "features")
    # ACPI on both machines: poweroff and (on microvm) virtio-mmio discovery need it.
    _sub(feats, "acpi")
    if spec.virt_type == "kvm":
        _sub(dom, "cpu", mode="host-passthrough")


def _serials(dev, spec: DomainSpec) -> None:
    serial = _sub(dev, "serial", type="file")
    _sub(serial, "source", path=spec.console_log, append="on")
    _sub(serial, "target", port=0)
    # Control line (guest /dev/ttyS1): a unix socket QEMU listens on; the host
    # writes one signal name per line to it.
    control = _sub(dev, "serial", type="unix")
    _sub(control, "source", mode="bind", path=spec.control_socket)
    _sub(control, "target", port=1)


def _disks(dev, spec: DomainSpec) -> None:
    for disk in spec.disks:
        el = _sub(dev, "disk", type="file", device="disk")
        # cache=none is not used: the images are sparse files on any host filesystem
        # (tmpfs refuses O_DIRECT); the guest's flushes still reach the file.
        _sub(el, "driver", name="qemu", type="raw", discard="unmap")
        _sub(el, "source", file=disk.path)
        _sub(el, "target", dev=disk.target, bus="virtio")
        _sub(el, "serial", disk.serial)
        if disk.read_only:
            _sub(el, "readonly")
        device_address(el, spec.machine)


def net_cmdline(vifs) -> str:
    """The guests' addresses on the kernel command line, one ``zund.netN=
    MAC,ADDRESS/PREFIX,GATEWAY,MTU`` word per NIC (read by the init from
    /proc/cmdline; a dotted name is never handed to init nor taken by the kernel's
    own ``ip=`` autoconfiguration, which would wait for a NIC whose driver is
    still a module)."""
    return " ".join(f"zund.net{i}={v['mac']},{v['address']},{v.get('gateway') or ''},"
                    f"{int(v['mtu'])}" for i, v in enumerate(vifs))


def _interfaces(dev, spec: DomainSpec) -> None:
    # type='ethernet': libvirt makes the TAP (named for the port) and leaves it
    # unattached; zund puts it on the tenant network's bridge after the boot
    # (zund.network.plugger.TapPlugger): that works when libvirtd and the node run
    # in different network namespaces, where type='bridge' cannot see the bridge.
    for vif in spec.vifs:
        el = _sub(dev, "interface", type="ethernet")
        _sub(el, "mac", address=vif["mac"])
        _sub(el, "target", dev=vif["tap"])
        _sub(el, "model", type="virtio")
        _sub(el, "mtu", size=int(vif["mtu"]))
        device_address(el, spec.machine)


def domain_xml(spec: DomainSpec) -> str:
    if spec.machine not in MACHINE_TYPES:
        raise ValueError(f"unknown machine type {spec.machine!r}")
    dom = ET.Element("domain", {"type": spec.virt_type})
    _sub(dom, "name", spec.name)
    if spec.title:
        _sub(dom, "title", spec.title)
    if spec.domain_uuid:
        _sub(dom, "uuid", spec.domain_uuid)
    elif _is_uuid(spec.meta.uuid):
        # Same id in libvirt as in zund: `virsh dominfo <uuid>` just works.
        _sub(dom, "uuid", spec.meta.uuid)
    md = _sub(dom, "metadata")
    md.append(ET.fromstring(metadata_xml(spec.meta)))
    _sub(dom, "memory", spec.memory_mb, unit="MiB")
    _sub(dom, "vcpu", spec.vcpus)
    _os(dom, spec)
    _features(dom, spec)
    _sub(dom, "clock", offset="utc")
    # The init powers off when the command ends; a reboot or crash ends the domain too
    # (restart is zund's decision, not the guest's).
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "destroy")
    _sub(dom, "on_crash", "destroy")
    dev = _sub(dom, "devices")
    _disks(dev, spec)
    _interfaces(dev, spec)
    _serials(dev, spec)
    # Nothing the guest does not use: each device costs boot time.
    # (explicitly none: libvirt's default USB controller sits on PCI, which microvm lacks)
    _sub(dev, "controller", type="usb", model="none")
    _sub(dev, "memballoon", model="none")
    # <interface>s only for tenant-network ports (``vifs``): no NIC otherwise.
    ET.indent(dom)
    # ElementTree names the namespace prefix itself when serialising a parsed
    # element; keep ours stable for humans reading `virsh dumpxml`.
    return ET.tostring(dom, encoding="unicode")
