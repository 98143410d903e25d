#!/usr/bin/env bash
# Prepare this host for the libvirt micro-VM runtime (runtime name `microvm`), idempotently.
#
#   - apt: libvirt-daemon-system, qemu-system-x86, busybox-static, libvirt-dev (to
#     build libvirt-python for the interpreter that runs zund);
#   - pip: libvirt-python, unless `import libvirt` already works;
#   - kernel: the package that linux-image-cloud-amd64 depends on is downloaded
#     with `apt-get download`, unpacked with `dpkg -x`, and its vmlinuz copied to
#     $ZUND_MICROVM_KERNEL (default /var/lib/zund/microvm/vmlinuz), its modules tree
#     to $ZUND_MICROVM_MODULES/<release> (default /var/lib/zund/microvm/modules;
#     micro-VM volumes need virtio_blk from it);
#   - daemons: virtlogd and libvirtd are started in the background when
#     `virsh -c qemu:///system list` does not answer; their PIDs go to
#     $ZUND_CI_DIR/virtlogd.pid and $ZUND_CI_DIR/libvirtd.pid so CI stops exactly them.
#
# The guests this runtime boots have no network device; nothing here touches the
# host's network (libvirt's default network is not started).
set -euo pipefail

dir="${ZUND_CI_DIR:-/tmp}"
kernel="${ZUND_MICROVM_KERNEL:-/var/lib/zund/microvm/vmlinuz}"
wait_s="${LIBVIRTD_WAIT_S:-60}"
python="${PYTHON:-python3}"
uri="qemu:///system"
mkdir -p "$dir"

# -- packages ------------------------------------------------------------------
need_apt=()
for pkg in libvirt-daemon-system qemu-system-x86 busybox-static libvirt-dev pkg-config gcc; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "setup-libvirt: apt-get install ${need_apt[*]}"
    apt-get update -qq
    # policy-rc.d-less containers: the packages' postinst may try to start services;
    # we start the daemons ourselves below.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${need_apt[@]}" >/dev/null
fi

if ! "$python" -c "import libvirt" >/dev/null 2>&1; then
    echo "setup-libvirt: pip install libvirt-python (for $python)"
    "$python" -m pip install -q --disable-pip-version-check libvirt-python
fi
"$python" -c "import libvirt" >/dev/null

# -- kernel and its modules ---------------------------------------------------------
# The guest kernel and the modules its volumes need (virtio_blk, virtio_mmio/pci:
# modules in Debian's cloud kernel) come from the same package, so they always match.
modules="${ZUND_MICROVM_MODULES:-/var/lib/zund/microvm/modules}"
kernel_release() {  # the release string of a bzImage (boot protocol: pointer at 0x20E)
    "$python" - "$1" <<'PY'
import struct, sys
h = open(sys.argv[1], "rb").read(65536)
p = struct.unpack_from("<H", h, 0x20E)[0] + 0x200
print(h[p:h.index(b"\0", p)].decode().split(" ")[0])
PY
}
release=""
[ -s "$kernel" ] && release="$(kernel_release "$kernel")"
if [ ! -s "$kernel" ] || [ ! -d "$modules/$release/kernel" ]; then
    pkg=""
    if [ -n "$release" ] && apt-cache show "linux-image-$release" >/dev/null 2>&1; then
        pkg="linux-image-$release"
    else
        pkg="$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')"
    fi
    [ -n "$pkg" ] || { echo "setup-libvirt: cannot resolve linux-image-cloud-amd64" >&2; exit 1; }
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    echo "setup-libvirt: fetching kernel package $pkg"
    (cd "$work" && apt-get download -qq "$pkg" >/dev/null 2>&1)
    dpkg -x "$work"/"$pkg"_*.deb "$work/root"
    vmlinuz="$(ls "$work"/root/boot/vmlinuz-* | head -n 1)"
    new_release="$(basename "$vmlinuz" | sed 's/^vmlinuz-//')"
    mkdir -p "$(dirname "$kernel")" "$modules"
    if [ "$new_release" != "$release" ]; then
        install -m 0644 "$vmlinuz" "$kernel.tmp"
        mv "$kernel.tmp" "$kernel"
        echo "setup-libvirt: kernel $(basename "$vmlinuz") -> $kernel"
    fi
    rm -rf "$modules/$new_release.tmp"
    cp -a "$work/root/lib/modules/$new_release" "$modules/$new_release.tmp"
    rm -rf "$modules/$new_release"
    mv "$modules/$new_release.tmp" "$modules/$new_release"
    chmod -R a+rX "$modules"
    echo "setup-libvirt: modules of $new_release -> $modules/$new_release"
fi
# Volumes of micro-VMs are ext4 images made with mkfs.ext4.
command -v mkfs.ext4 >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq e2fsprogs >/dev/null
# qemu:///system runs QEMU as an unprivileged user; it must be able to read the
# kernel and the per-image initramfs files under the state path.
chmod 0755 "$(dirname "$kernel")"

# libvirt re-probes QEMU's capabilities (~40 s) on EVERY domain definition when
# /dev/kvm's accessibility for the qemu user disagrees with its cache. udev gives
# /dev/kvm to group kvm mode 0660 on a normal host; containers and CI VMs often
# lack that rule, so apply it here.
if [ -c /dev/kvm ] && getent group kvm >/dev/null 2>&1; then
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm || true
fi

# -- daemons ---------------------------------------------------------------------
virsh_ok() { virsh -c "$uri" list >/dev/null 2>&1; }

if virsh_ok; then
    echo "setup-libvirt: libvirtd already answers on $uri"
    exit 0
fi

start_daemon() {  # name binary
    local name="$1" bin="$2" pidfile="$dir/$1.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "setup-libvirt: $name pid $(cat "$pidfile") already running"
        return
    fi
    nohup "$bin" >"$dir/$name.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    echo "setup-libvirt: started $name pid $(cat "$pidfile"), log $dir/$name.log"
}

mkdir -p /run/libvirt
# virtlogd is needed as soon as a domain has a file-backed serial console.
if ! virsh_ok && ! pgrep -x virtlogd >/dev/null 2>&1; then
    start_daemon virtlogd /usr/sbin/virtlogd
fi
start_daemon libvirtd /usr/sbin/libvirtd

i=0
while [ "$i" -lt "$wait_s" ]; do
    if virsh_ok; then
        echo "setup-libvirt: libvirtd ready after ${i}s"
        exit 0
    fi
    if ! kill -0 "$(cat "$dir/libvirtd.pid")" 2>/dev/null; then
        echo "setup-libvirt: libvirtd exited; last log lines:" >&2
        tail -n 30 "$dir/libvirtd.log" >&2 || true
        exit 1
    fi
    sleep 1
    i=$((i + 1))
done
echo "setup-libvirt: libvirtd not ready after ${wait_s}s; last log lines:" >&2
tail -n 30 "$dir/libvirtd.log" >&2 || true
exit 1
