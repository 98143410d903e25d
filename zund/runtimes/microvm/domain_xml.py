"""libvirt domain XML for one micro-VM container, and zund's metadata inside it.

Pure: builds and parses strings. The guest has no network device (no
``<interface>``), no disk, no graphics: kernel + initrd + one serial port whose
output goes to a file (the container's log, kept after the guest stops).
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


ET.register_namespace(METADATA_PREFIX, METADATA_NS)


def _sub(parent, tag, text=None, **attrib):
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrib.items()})
    if text is not None:
        el.text = str(text)
    return el


def metadata_xml(meta: DomainMeta) -> str:
    """The element given to ``virDomainSetMetadata`` / embedded in ``<metadata>``."""
    root = ET.Element(f"{METADATA_PREFIX}:{METADATA_ROOT}",
                      {f"xmlns:{METADATA_PREFIX}": METADATA_NS})
    for tag, value in (("uuid", meta.uuid), ("node", meta.node), ("project", meta.project_id),
                       ("hostname", meta.hostname), ("image", meta.image),
                       ("ports", ",".join(str(p) for p in meta.ports)),
                       ("auto-remove", "1" if meta.auto_remove else "0")):
        _sub(root, f"{METADATA_PREFIX}:{tag}", value)
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
                      auto_remove=get("auto-remove") == "1")


def _is_uuid(value: str) -> bool:
    try:
        return str(uuidlib.UUID(value)) == value.lower()
    except ValueError:
        return False


def domain_xml(spec: DomainSpec) -> str:
    dom = ET.Element("domain", {"type": spec.virt_type})
    _sub(dom, "name", spec.name)
    if _is_uuid(spec.meta.uuid):
        # Same id in libvirt as in zund: `virsh dominfo <uuid>` just works.
        _sub(dom, "uuid", spec.meta.uuid)
    md = _sub(dom, "metadata")
    md.append(ET.fromstring(metadata_xml(spec.meta)))
    _sub(dom, "memory", spec.memory_mb, unit="MiB")
    _sub(dom, "vcpu", spec.vcpus)
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    _sub(os_el, "kernel", spec.kernel)
    _sub(os_el, "initrd", spec.initrd)
    _sub(os_el, "cmdline", spec.cmdline)
    feats = _sub(dom, "features")
    _sub(feats, "acpi")
    if spec.virt_type == "kvm":
        _sub(dom, "cpu", mode="host-passthrough")
    _sub(dom, "clock", offset="utc")
    # The init powers off when the command ends; a reboot or crash ends the domain too
    # (restart is zund's decision, not the guest's).
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "destroy")
    _sub(dom, "on_crash", "destroy")
    dev = _sub(dom, "devices")
    serial = _sub(dev, "serial", type="file")
    _sub(serial, "source", path=spec.console_log, append="on")
    _sub(serial, "target", port=0)
    # Control line (guest /dev/ttyS1): a unix socket QEMU listens on; the host
    # writes one signal name per line to it.
    control = _sub(dev, "serial", type="unix")
    _sub(control, "source", mode="bind", path=spec.control_socket)
    _sub(control, "target", port=1)
    # Nothing the guest does not use: each device costs boot time.
    _sub(dev, "controller", type="usb", model="none")
    _sub(dev, "memballoon", model="none")
    # No <interface>: micro-VM containers have no network (yet).
    ET.indent(dom)
    # ElementTree names the namespace prefix itself when serialising a parsed
    # element; keep ours stable for humans reading `virsh dumpxml`.
    return ET.tostring(dom, encoding="unicode")
