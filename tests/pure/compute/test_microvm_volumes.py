"""Pure parts of micro-VM volumes and machine types: module dependency order, the
kernel release in a bzImage header, disk sizes, the domain XML per machine type,
the guest config for disks and injected files. No libvirt, no VM."""

from __future__ import annotations

import gzip
import struct
import subprocess
import xml.etree.ElementTree as ET

import pytest

from zund.common import errors
from zund.runtimes.base import Mount
from zund.runtimes.libvirt import host_tsc_khz, probe_key, volume_disks
from zund.runtimes.microvm import disks
from zund.runtimes.microvm import domain_xml as dx
from zund.runtimes.microvm import initramfs
from zund.runtimes.microvm import modules as km
from zund.runtimes.microvm.cpio import read_entries
from zund.runtimes.microvm.init import INIT_SCRIPT


def _bzimage(version: bytes) -> bytes:
    head = bytearray(0x1000)
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x20E, 0x600)
    head[0x800:0x800 + len(version) + 1] = version + b"\0"
    return bytes(head)


def test_bzimage_release_is_read_from_the_header():
    """The release is the first word of the version string the header points to."""
    assert km.bzimage_release(_bzimage(b"6.1.0-57-cloud-amd64 (debian@x) #1 SMP")) == \
        "6.1.0-57-cloud-amd64"
    with pytest.raises(km.ModulesUnavailable):
        km.bzimage_release(b"\0" * 0x1000)


def test_load_order_puts_dependencies_first_once_and_skips_builtins():
    """virtio_blk after virtio and virtio_ring; built-in ext4 is not loaded."""
    deps = {"virtio_mmio": ["virtio", "virtio_ring"], "virtio_blk": ["virtio", "virtio_ring"],
            "virtio": ["virtio_ring"], "virtio_ring": []}
    order = km.load_order(km.ROOT_MODULES["microvm"], deps.__getitem__, {"ext4"}, set(deps))
    assert order == ["virtio_ring", "virtio", "virtio_mmio", "virtio_blk"]


def test_load_order_names_a_missing_module():
    """A needed module that is neither built in nor present is refused by name."""
    with pytest.raises(km.ModulesUnavailable, match="virtio_blk"):
        km.load_order(["virtio_blk"], lambda n: [], set(), set())


def test_modules_dep_and_file_names_normalise_dashes():
    """modules.dep paths become module names; - and _ are the same to the kernel."""
    table = km.parse_modules_dep("kernel/drivers/block/virtio_blk.ko: "
                                 "kernel/drivers/virtio/virtio.ko kernel/x/virtio-ring.ko.xz\n")
    assert table == {"virtio_blk": ["virtio", "virtio_ring"]}


def test_modules_layer_holds_modules_in_load_order():
    """The layer's files are numbered so the init's glob loads them in order."""
    layer = km.modules_layer([("virtio_ring", b"r"), ("virtio", b"v")])
    names = [e[0] for e in read_entries(gzip.decompress(layer))]
    assert names[-2:] == [".zund/modules/00-virtio_ring.ko", ".zund/modules/01-virtio.ko"]


@pytest.mark.parametrize("label,expected", [
    (None, 1 << 30), ("2", 2 << 30), ("0.03125", 32 << 20), ("0.0001", disks.MIN_SIZE_BYTES)])
def test_volume_size_comes_from_its_label_in_whole_mib(label, expected):
    """Size label in GiB (default 1), rounded up to MiB, at least 16 MiB."""
    labels = {} if label is None else {disks.SIZE_LABEL: label}
    assert disks.size_bytes(labels, 1) == expected


@pytest.mark.parametrize("label", ["-1", "nan", "big"])
def test_bad_volume_size_is_refused(label):
    """Non-positive or non-numeric sizes are a DiskError naming the value."""
    with pytest.raises(disks.DiskError, match="volume size"):
        disks.size_bytes({disks.SIZE_LABEL: label}, 1)


def test_volume_names_cannot_leave_the_volumes_directory():
    """A name with a slash or dot-dot is refused before any path is built."""
    for bad in ("../etc", "a/b", ""):
        with pytest.raises(disks.DiskError):
            disks.image_path("/v", bad)


def test_volume_disks_follow_the_request_order_with_stable_serials():
    """Volume mounts become vda, vdb with serials zund-vol-0/1; files are not disks."""
    mounts = (Mount("volume", "/data", "zund-p-a"), Mount("file", "/etc/x", content=b"x"),
              Mount("volume", "/logs", "zund-p-b", read_only=True))
    got = volume_disks(mounts, "/v")
    assert [(d.target, d.serial, d.path, d.read_only, dest) for d, dest in got] == [
        ("vda", "zund-vol-0", "/v/zund-p-a.img", False, "/data"),
        ("vdb", "zund-vol-1", "/v/zund-p-b.img", True, "/logs")]
    with pytest.raises(errors.InvalidInput):
        volume_disks(tuple(Mount("volume", f"/d{i}", f"v{i}") for i in range(27)), "/v")


def _spec(machine: str, disks_=()) -> dx.DomainSpec:
    return dx.DomainSpec(name="zun-x", meta=dx.DomainMeta(uuid="x", node="n", project_id="p"),
                         virt_type="qemu", vcpus=1, memory_mb=128, kernel="/k", initrd="/i",
                         console_log="/c", control_socket="/s", machine=machine,
                         disks=tuple(disks_))


def test_microvm_domain_puts_disks_on_virtio_mmio_and_keeps_acpi():
    """microvm: machine microvm, ACPI on, each disk with a virtio-mmio address and its serial."""
    disk = dx.DiskSpec(path="/v/a.img", serial="zund-vol-0", target="vda")
    root = ET.fromstring(dx.domain_xml(_spec("microvm", [disk])))
    assert root.find("os/type").get("machine") == "microvm"
    assert root.find("features/acpi") is not None
    el = root.find("devices/disk")
    assert el.find("address").get("type") == "virtio-mmio"
    assert el.find("serial").text == "zund-vol-0" and el.find("source").get("file") == "/v/a.img"
    assert root.find("devices/controller").get("model") == "none"


def test_pc_domain_disks_have_no_explicit_address():
    """pc: libvirt places virtio disks on PCI itself."""
    disk = dx.DiskSpec(path="/v/a.img", serial="zund-vol-0", target="vda", read_only=True)
    root = ET.fromstring(dx.domain_xml(_spec("pc", [disk])))
    assert root.find("os/type").get("machine") == "pc"
    el = root.find("devices/disk")
    assert el.find("address") is None and el.find("readonly") is not None


def test_kernel_cmdline_gives_microvm_under_tcg_the_tsc_rate():
    """Only microvm without KVM needs tsc_early_khz (no PIT/HPET to calibrate against)."""
    assert dx.kernel_cmdline("microvm", "qemu", 2100000).endswith(" tsc_early_khz=2100000")
    assert dx.kernel_cmdline("microvm", "kvm", 2100000) == dx.BASE_CMDLINE
    assert dx.kernel_cmdline("pc", "qemu", 2100000) == dx.BASE_CMDLINE


def test_host_tsc_khz_reads_cpu_mhz():
    """The first `cpu MHz` line, in kHz; None without one."""
    assert host_tsc_khz("processor: 0\ncpu MHz\t\t: 2100.000\n") == 2100000
    assert host_tsc_khz("processor: 0\n") is None


def test_probe_key_changes_with_what_decides_the_machine():
    """A new QEMU, libvirt, kernel or accelerator means probing again."""
    base = probe_key(7002022, 9000000, ("/k", 10, 1), "qemu")
    assert base == probe_key(7002022, 9000000, ("/k", 10, 1), "qemu")
    assert len({base, probe_key(8000000, 9000000, ("/k", 10, 1), "qemu"),
                probe_key(7002022, 9000000, ("/k", 11, 1), "qemu"),
                probe_key(7002022, 9000000, ("/k", 10, 1), "kvm")}) == 4


def test_container_layer_carries_disks_and_injected_files():
    """config.sh names each disk's serial and destination and each file's destination;
    the files' contents ride in /.zund/files/<i>."""
    cfg = initramfs.container_config(["true"], [], "/", "h",
                                     disks=[("zund-vol-0", "/my data", True)],
                                     files=["/etc/app.conf"])
    assert "ZUND_DISKS=1\n" in cfg and "ZUND_DISK_0_DEST='/my data'\n" in cfg
    assert "ZUND_DISK_0_SERIAL=zund-vol-0\n" in cfg and "ZUND_DISK_0_RO=1\n" in cfg
    assert "ZUND_FILES=1\n" in cfg and "ZUND_FILE_0_DEST=/etc/app.conf\n" in cfg
    entries = {e[0]: e[4] for e in read_entries(gzip.decompress(
        initramfs.container_layer(cfg, [b"answer=42\n"])))}
    assert entries[".zund/files/0"] == b"answer=42\n"


def test_init_script_is_valid_posix_shell():
    """The guest init parses with `sh -n` (dash: no bashisms)."""
    subprocess.run(["sh", "-n"], input=INIT_SCRIPT.encode(), check=True)
