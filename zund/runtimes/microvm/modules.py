"""Kernel modules a guest needs for its volumes, taken from the guest kernel's own
package, and the initramfs layer that carries them.

Debian's cloud kernel builds virtio, virtio_ring, virtio_pci, virtio_mmio and
virtio_blk as modules (ext4 and jbd2 are built in). A guest with volumes gets a
layer ``/.zund/modules/NN-<name>.ko`` in load order; the init ``insmod``s them
before it mounts the disks. Guests without volumes do not get the layer (every
byte of initramfs is unpacked on the boot path).

Dependencies come from ``modules.dep`` when ``depmod`` made one, else from each
module's own ``.modinfo`` ``depends=`` list (what depmod itself records; Debian's
package ships no modules.dep, its postinst makes it). The modules tree is
``<modules_path>/<release>/`` with ``<release>`` read from the bzImage header, so a
kernel upgrade without its modules is noticed instead of loading foreign modules.

Pure helpers parse bytes; the functions that read files are blocking (callers run
them through ``run_blocking``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import struct

from zund.runtimes.microvm.cpio import CpioWriter

#: What a disk needs, per machine type: the virtio transport of that machine and
#: the block driver. ``ext4`` is resolved too, in case a kernel builds it as a module.
ROOT_MODULES = {
    "pc": ("virtio_pci", "virtio_blk", "ext4"),
    "microvm": ("virtio_mmio", "virtio_blk", "ext4"),
}
#: What a tenant-network NIC needs (any machine type): the virtio network driver.
NET_MODULES = ("virtio_net",)
MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz")


class ModulesUnavailable(Exception):
    """The guest kernel's modules are missing or incomplete (reason in the message)."""


def module_name(filename: str) -> str:
    """``virtio-blk.ko.xz`` -> ``virtio_blk`` (the kernel treats - and _ alike)."""
    base = os.path.basename(filename)
    for suffix in MODULE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def bzimage_release(header: bytes) -> str:
    """The kernel release (``6.1.0-57-cloud-amd64``) from a bzImage's first 64 KiB:
    boot protocol >= 2.00 keeps a pointer to the version string at 0x20E."""
    if len(header) < 0x210 or header[0x202:0x206] != b"HdrS":
        raise ModulesUnavailable("the guest kernel is not a bzImage (no HdrS header)")
    (ptr,) = struct.unpack_from("<H", header, 0x20E)
    start = ptr + 0x200
    end = header.find(b"\0", start)
    if not ptr or end < 0:
        raise ModulesUnavailable("the guest kernel's header has no version string")
    return header[start:end].decode("ascii", "replace").split(" ", 1)[0]


def modinfo_depends(ko: bytes) -> list:
    """The ``depends=`` list of an ELF64 kernel module's ``.modinfo`` section."""
    if ko[:4] != b"\x7fELF" or ko[4] != 2:
        raise ModulesUnavailable("not an ELF64 kernel module")
    endian = "<" if ko[5] == 1 else ">"
    shoff, = struct.unpack_from(endian + "Q", ko, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(endian + "HHH", ko, 0x3A)

    def section(i):
        base = shoff + i * shentsize
        name, = struct.unpack_from(endian + "I", ko, base)
        offset, size = struct.unpack_from(endian + "QQ", ko, base + 0x18)
        return name, offset, size

    _, str_off, _ = section(shstrndx)
    for i in range(shnum):
        name_off, offset, size = section(i)
        end = ko.find(b"\0", str_off + name_off)
        if ko[str_off + name_off:end] == b".modinfo":
            for entry in ko[offset:offset + size].split(b"\0"):
                if entry.startswith(b"depends="):
                    return [d.replace("-", "_") for d in entry[8:].decode().split(",") if d]
            return []
    return []


def parse_modules_dep(text: str) -> dict:
    """``modules.dep`` -> ``{name: [direct and indirect deps, as listed]}``."""
    out = {}
    for line in text.splitlines():
        path, sep, deps = line.partition(":")
        if sep:
            out[module_name(path)] = [module_name(d) for d in deps.split()]
    return out


def load_order(roots, depends_of, builtin: set, available: set) -> list:
    """Every module ``roots`` need, dependencies first, each once. Built-in modules
    are skipped; a needed module that is neither built in nor available raises."""
    order: list = []
    seen: set = set()

    def visit(name: str, chain: tuple) -> None:
        if name in seen or name in builtin:
            return
        if name in chain:
            raise ModulesUnavailable(f"module dependency cycle: {' -> '.join(chain + (name,))}")
        if name not in available:
            raise ModulesUnavailable(f"module {name} is neither built in nor present")
        for dep in depends_of(name):
            visit(dep, chain + (name,))
        seen.add(name)
        order.append(name)

    for root in roots:
        visit(root, ())
    return order


# -- blocking ------------------------------------------------------------------------

def _read_module(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    return data


def resolve(kernel_path: str, modules_path: str, machine_type: str) -> list:
    """``[(name, module bytes), ...]`` in load order for disks and NICs on ``machine_type``."""
    with open(kernel_path, "rb") as f:
        release = bzimage_release(f.read(65536))
    tree = os.path.join(modules_path, release)
    if not os.path.isdir(tree):
        raise ModulesUnavailable(f"no modules for kernel {release} under {modules_path} "
                                 "(run tools/setup-libvirt.sh)")
    files = {}
    for d, _dirs, names in os.walk(tree):
        for n in names:
            if n.endswith(MODULE_SUFFIXES):
                files.setdefault(module_name(n), os.path.join(d, n))
    builtin = set()
    try:
        with open(os.path.join(tree, "modules.builtin")) as f:
            builtin = {module_name(line.strip()) for line in f if line.strip()}
    except FileNotFoundError:
        pass
    dep_table = None
    try:
        with open(os.path.join(tree, "modules.dep")) as f:
            dep_table = parse_modules_dep(f.read())
    except FileNotFoundError:
        pass
    cache: dict = {}

    def data(name):
        if name not in cache:
            cache[name] = _read_module(files[name])
        return cache[name]

    def depends_of(name):
        if dep_table is not None and name in dep_table:
            return dep_table[name]
        return modinfo_depends(data(name))

    order = load_order(ROOT_MODULES[machine_type] + NET_MODULES, depends_of, builtin,
                       set(files))
    return [(name, data(name)) for name in order]


def modules_layer(modules: list) -> bytes:
    """The gzip'd cpio holding ``/.zund/modules/NN-<name>.ko`` in load order."""
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.add_dir(".zund", 0o755)
    w.add_dir(".zund/modules", 0o755)
    for i, (name, data) in enumerate(modules):
        w.add_file(f".zund/modules/{i:02d}-{name}.ko", data, 0o644)
    w.close()
    return gzip.compress(buf.getvalue(), compresslevel=6, mtime=0)


def write_modules_layer(kernel_path: str, modules_path: str, machine_type: str,
                        cache_dir: str) -> str:
    """The cached modules layer for this kernel and machine (built once)."""
    modules = resolve(kernel_path, modules_path, machine_type)
    h = hashlib.sha256(machine_type.encode())
    for name, data in modules:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    out = os.path.join(cache_dir, f"modules-{h.hexdigest()[:32]}.cpio.gz")
    if not os.path.exists(out):
        layer = modules_layer(modules)
        tmp = out + f".tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(layer)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    return out
