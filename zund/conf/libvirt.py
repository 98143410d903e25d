from oslo_config import cfg

from zund.conf import groups

libvirt_group = cfg.OptGroup("libvirt", title="libvirt micro-VM runtime (runtime name `microvm`)")

libvirt_opts = [
    cfg.StrOpt("uri", default="qemu:///system", help="libvirt connection URI."),
    cfg.StrOpt("virt_type", default="auto", choices=["auto", "kvm", "qemu"],
               help="Hypervisor: `kvm`, `qemu` (TCG emulation, slow but works without "
                    "/dev/kvm), or `auto` (kvm when /dev/kvm is usable, else qemu)."),
    cfg.StrOpt("kernel_path", default="/var/lib/zund/microvm/vmlinuz",
               help="Guest kernel (bzImage). It must have initramfs, gzip, the 8250 "
                    "serial console, devtmpfs and the i8042/AT keyboard built in "
                    "(Debian's cloud kernel does; tools/setup-libvirt.sh installs it)."),
    cfg.StrOpt("busybox_path", default="/bin/busybox",
               help="A statically linked busybox copied into every guest as zund's "
                    "init helper (Debian package busybox-static)."),
    cfg.IntOpt("default_vcpus", default=1, min=1, help="vCPUs of a container that asks for none."),
    cfg.IntOpt("default_memory_mb", default=256, min=64,
               help="Guest memory (MiB) of a container that asks for none."),
    cfg.IntOpt("min_memory_mb", default=96, min=32,
               help="Floor for guest memory (MiB): the kernel and the unpacked "
                    "initramfs live in guest RAM, so tiny Docker-style limits are raised."),
    cfg.FloatOpt("boot_timeout", default=120.0, min=1.0,
                 help="Seconds start() waits for the guest to begin running the "
                      "command before it destroys the guest and reports a failure."),
    cfg.FloatOpt("stop_timeout", default=10.0, min=0.0,
                 help="Default seconds a graceful stop waits before destroying the guest."),
    cfg.StrOpt("images_path", default="$state_path/microvm/images",
               help="Cache of per-image initramfs files (content addressed) and "
                    "per-container initrds."),
    cfg.StrOpt("console_path", default="$state_path/microvm/console",
               help="Serial console logs of the guests (the containers' logs)."),
    cfg.StrOpt("socket_dir", default="/run/zund/microvm",
               help="Directory of the guests' control-line UNIX sockets. Keep it short: a "
                    "socket path is limited to 107 bytes."),
    cfg.StrOpt("machine_type", default="auto", choices=["auto", "microvm", "pc"],
               help="QEMU machine type of the guests: `microvm` (virtio-mmio devices, no "
                    "PCI, boots faster), `pc`, or `auto`: microvm when a probe guest boots "
                    "with it when the runtime opens (the result is cached per QEMU binary "
                    "and kernel under images_path), else pc. Decided once per open, never "
                    "per container."),
    cfg.StrOpt("modules_path", default="/var/lib/zund/microvm/modules",
               help="Kernel modules of the guest kernel, laid out like /lib/modules "
                    "(`<release>/kernel/...`, from the same Debian package as the kernel; "
                    "tools/setup-libvirt.sh unpacks them). Guests with volumes get "
                    "virtio_blk and its dependencies from here; without them the runtime "
                    "does not offer volumes."),
    cfg.StrOpt("volumes_path", default="$state_path/microvm/volumes",
               help="Volumes of micro-VM containers: one sparse raw disk image "
                    "(ext4) per volume, with its labels beside it."),
    cfg.IntOpt("volume_default_size_gb", default=1, min=1,
               help="Size (GiB) of a micro-VM volume whose request gives none. A "
                    "micro-VM volume is a disk of exactly its size (sparse on the host)."),
    cfg.IntOpt("warm_pool_size", default=0, min=0, max=16,
               help="Guests kept booted ahead of demand, shared among the shapes "
                    "(image, vCPUs, memory) of the node's latest 8 creates that could "
                    "take one, in proportion to how often each came (with 1, the most "
                    "frequent shape; a tie keeps the guests where they are, so "
                    "alternating shapes do not thrash the pool). A create of a warm "
                    "shape without volumes, injected files or networks takes one and "
                    "starts in a fraction of a second instead of a boot. Each costs a "
                    "running QEMU (measured under TCG with a 128 MiB guest: ~210 MB "
                    "resident, guest memory plus TCG's code cache, and ~6 % of a core "
                    "while idle; KVM not measured). A warm guest holds its shape's cpu "
                    "and memory on the node like a container (shown as used, admitted "
                    "against, and booted only when the node has room for it); a booted "
                    "one gives way when a container fits on the node only without it, so "
                    "the pool never turns a container away: set aside for the bid, it "
                    "becomes that container if of its shape, is destroyed if another "
                    "shape's container is made, and goes back to the pool if none is. "
                    "A shape "
                    "whose share shrinks loses its surplus guests; a draining node "
                    "keeps none. 0: off."),
    cfg.IntOpt("max_workers", default=8, min=1,
               help="Threads for blocking libvirt and image-conversion calls."),
]


def register_opts(conf):
    groups.register_group(conf, libvirt_group)
    conf.register_opts(libvirt_opts, group=libvirt_group.name)


def list_opts():
    return [(libvirt_group.name, libvirt_opts)]
