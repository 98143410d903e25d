"""zund's guest init and the console protocol it speaks.

The guest kernel runs ``/init`` from the initramfs as PID 1: a POSIX shell script
run by a static busybox copied to ``/.zund/busybox`` (so it neither depends on nor
clobbers what the image ships in /bin). It

1. mounts proc, sys, devtmpfs (+ devpts, shm) and silences the kernel console
   (``dmesg -n 1``);
2. sources ``/.zund/config.sh`` (written per container by
   :func:`zund.runtimes.microvm.initramfs.container_config`; a warm-pool guest's
   says only ``ZUND_POOLED=1``: it prints ``ZUND-CONFIG-READY`` and reads the
   real one from the control line, :func:`config_message`): hostname, workdir,
   PATH, the program name and ``set -- argv`` (through ``busybox env -i K=V…``);
   then mounts the container's volumes (``ZUND_DISKS``: ``insmod`` the modules
   layer, find each virtio disk by its serial in ``/sys/block/vd*/serial``, mount
   it ext4 at its destination) and copies its injected files
   (``/.zund/files/<i>`` to ``ZUND_FILE_<i>_DEST``); a volume that cannot be found
   or mounted is a ``ZUND-START-ERROR``;
   then configures the NICs of tenant networks (``zund.netN=`` words on the
   kernel command line: ``insmod`` the modules layer for virtio_net, find each
   NIC by its MAC, set MTU, address and default route); a NIC that does not
   appear is a ``ZUND-START-ERROR``;
3. refuses early with ``ZUND-START-ERROR: …`` when the program does not exist
   (docker's "executable file not found" is a failed *start*, not an exit);
4. prints ``ZUND-OUTPUT-BEGIN`` and runs the command as PID 1 of a fresh PID
   namespace (``unshare -p -f``), like a docker container: a signal without a
   handler is ignored, so ``sleep`` only dies of a stop's final kill. stdout and
   stderr go through two FIFOs to ``awk`` readers that write each line to the
   serial console as ``O <epoch-seconds> <text>`` / ``E <epoch-seconds> <text>``:
   that keeps the streams apart, timestamps them and makes every line of process
   output distinguishable from kernel noise (which has no tag);
5. prints ``ZUND-EXIT-CODE: N``, unmounts the volumes and powers off (``-f``: nothing else runs; the
   domain's ``on_poweroff`` is ``destroy``).

Signals reach the command over a control line, the second serial port
(``/dev/ttyS1``, a pty on the host written through a libvirt console stream):
the host writes a signal name per line and the init forwards it to the
namespace's PID 1. Ctrl-Alt-Del (libvirt ``sendKey``) is the fallback for stop:
the kernel turns it into SIGINT for PID 1, which the init forwards as SIGTERM.
ACPI power-button events need a userspace daemon and Debian's cloud kernel
builds the button driver as a module, so they are not relied on.
"""

from __future__ import annotations

import base64
import re

import attrs

#: Bumped whenever INIT_SCRIPT or the guest layout changes: part of the image cache key.
INIT_VERSION = "9"

BEGIN_MARKER = "ZUND-OUTPUT-BEGIN"
#: A warm-pool guest printed it: it waits for its configuration on the control line.
CONFIG_READY_MARKER = "ZUND-CONFIG-READY"
CONFIG_BEGIN = "ZUND-CONFIG-BEGIN"
CONFIG_END = "ZUND-CONFIG-END"
EXIT_MARKER = "ZUND-EXIT-CODE:"
START_ERROR_MARKER = "ZUND-START-ERROR:"

INIT_SCRIPT = r"""#!/.zund/busybox sh
# zund micro-VM init (PID 1). See zund/runtimes/microvm/init.py.
B=/.zund/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
$B mkdir -p /proc /sys /dev /tmp /run
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev 2>/dev/null || $B mount -t tmpfs -o mode=0755 tmpfs /dev
$B mkdir -p /dev/pts /dev/shm
$B mount -t devpts devpts /dev/pts 2>/dev/null
$B mount -t tmpfs tmpfs /dev/shm 2>/dev/null
$B dmesg -n 1 2>/dev/null
$B chmod 1777 /tmp 2>/dev/null
ZUND_HOSTNAME=localhost
ZUND_WORKDIR=/
ZUND_PATH=$PATH
ZUND_PROG=
ZUND_INTERACTIVE=0
ZUND_DISKS=0
ZUND_FILES=0
ZUND_POOLED=0
zund_fail() {
    echo "ZUND-START-ERROR: $*"
    $B sync
    $B poweroff -f
}
. /.zund/config.sh
if [ "$ZUND_POOLED" = 1 ]; then
    # A warm-pool guest: booted before its container existed, it asks for its
    # configuration and reads it from the control line (base64 lines between
    # BEGIN and END; a new BEGIN starts over).
    exec 4</dev/ttyS1
    $B stty -echo 0<&4 2>/dev/null
    echo "ZUND-CONFIG-READY"
    : >/.zund/config.b64
    while IFS= read -r l <&4; do
        case "$l" in
            ZUND-CONFIG-BEGIN) : >/.zund/config.b64 ;;
            ZUND-CONFIG-END) break ;;
            *) echo "$l" >>/.zund/config.b64 ;;
        esac
    done
    exec 4<&-
    $B base64 -d </.zund/config.b64 >/.zund/config.sh || zund_fail "unreadable configuration"
    . /.zund/config.sh
fi
if [ "$ZUND_DISKS" -gt 0 ]; then
    for m in /.zund/modules/*.ko; do
        [ -f "$m" ] && $B insmod "$m" 2>/dev/null
    done
    i=0
    while [ "$i" -lt "$ZUND_DISKS" ]; do
        eval "serial=\$ZUND_DISK_${i}_SERIAL dest=\$ZUND_DISK_${i}_DEST ro=\$ZUND_DISK_${i}_RO"
        dev=
        n=0
        while :; do
            for b in /sys/block/vd*; do
                [ "$($B cat "$b/serial" 2>/dev/null)" = "$serial" ] && dev=/dev/${b##*/}
            done
            [ -n "$dev" ] && break
            [ "$n" -ge 100 ] && zund_fail "volume for $dest: no disk with serial $serial"
            $B usleep 50000
            n=$((n + 1))
        done
        opts=noinit_itable
        [ "$ro" = 1 ] && opts=ro,$opts
        $B mkdir -p "$dest"
        $B mount -t ext4 -o "$opts" "$dev" "$dest" || zund_fail "cannot mount the volume at $dest"
        i=$((i + 1))
    done
fi
i=0
while [ "$i" -lt "$ZUND_FILES" ]; do
    eval "dest=\$ZUND_FILE_${i}_DEST"
    $B mkdir -p "$($B dirname "$dest")"
    $B cp "/.zund/files/$i" "$dest" || zund_fail "cannot write the injected file $dest"
    i=$((i + 1))
done
# tenant networks: one zund.netN=MAC,ADDRESS/PREFIX,GATEWAY,MTU per NIC on the
# kernel command line (zund.runtimes.microvm.domain_xml.net_cmdline)
ZUND_NETS=
for w in $($B cat /proc/cmdline); do
    case "$w" in zund.net[0-9]*=*) ZUND_NETS="$ZUND_NETS ${w#*=}" ;; esac
done
if [ -n "$ZUND_NETS" ]; then
    for m in /.zund/modules/*.ko; do
        [ -f "$m" ] && $B insmod "$m" 2>/dev/null
    done
    $B ip link set lo up
    for n in $ZUND_NETS; do
        mac=${n%%,*}; r=${n#*,}; addr=${r%%,*}; r=${r#*,}; gw=${r%%,*}; mtu=${r#*,}
        dev=
        k=0
        while :; do
            for d in /sys/class/net/*; do
                [ "$($B cat "$d/address" 2>/dev/null)" = "$mac" ] && dev=${d##*/}
            done
            [ -n "$dev" ] && break
            [ "$k" -ge 100 ] && zund_fail "network: no NIC with MAC $mac"
            $B usleep 50000
            k=$((k + 1))
        done
        $B ip link set dev "$dev" mtu "$mtu" up || zund_fail "network: cannot bring $dev up"
        $B ip addr add "$addr" dev "$dev" || zund_fail "network: cannot set $addr on $dev"
        [ -n "$gw" ] && $B ip route add default via "$gw" dev "$dev"
    done
fi
$B hostname "$ZUND_HOSTNAME"
cd "$ZUND_WORKDIR" 2>/dev/null || cd /
PATH=$ZUND_PATH
found=0
case "$ZUND_PROG" in
    "") ;;
    */*) [ -f "$ZUND_PROG" ] && [ -x "$ZUND_PROG" ] && found=1 ;;
    *) for d in $($B echo "$PATH" | $B tr ':' ' '); do
           if [ -f "$d/$ZUND_PROG" ] && [ -x "$d/$ZUND_PROG" ]; then found=1; break; fi
       done ;;
esac
if [ "$found" != 1 ]; then
    echo "ZUND-START-ERROR: exec: \"$ZUND_PROG\": executable file not found in \$PATH"
    $B sync
    $B poweroff -f
fi
$B mkfifo /run/zund-out /run/zund-err
if [ "$ZUND_INTERACTIVE" = 1 ]; then
    $B mkfifo /run/zund-in
    exec 3<>/run/zund-in
else
    exec 3</dev/null
fi
# The command's namespace PID 1 is the child of `unshare -f`; signals go there.
# (Debian's static busybox has no pgrep: scan /proc/*/stat for the parent pid.)
target() {
    c=$($B cat /run/zund-child 2>/dev/null)
    [ -n "$c" ] || return 0
    for p in /proc/[0-9]*; do
        read -r _pid _comm _state ppid _rest <"$p/stat" 2>/dev/null || continue
        if [ "$ppid" = "$c" ]; then echo "${p#/proc/}"; return 0; fi
    done
}
forward() {
    # Right after the start the command may not exist yet: give it 5 s.
    n=0
    t=$(target)
    while [ -z "$t" ] && [ "$n" -lt 50 ]; do
        $B usleep 100000
        n=$((n + 1))
        t=$(target)
    done
    echo "zund-init: signal $1 -> ${t:-nobody}"
    [ -n "$t" ] && $B kill -"$1" "$t"
}
trap 'forward TERM' INT TERM
# The control line must be listening before the host learns the command runs:
# bytes reaching a serial port nobody has open are dropped.
if [ -c /dev/ttyS1 ]; then
    exec 4</dev/ttyS1
    $B stty -echo 0<&4 2>/dev/null
    (
        while IFS= read -r sig <&4; do
            case "$sig" in
                *[!A-Z0-9]*|"") continue ;;
            esac
            forward "$sig"
        done
    ) &
    exec 4<&-
fi
# Opening the FIFOs blocks the command until the readers below exist, so none of
# its output can precede the BEGIN marker.
$B unshare -p -f -m --mount-proc "$@" <&3 >/run/zund-out 2>/run/zund-err &
child=$!
echo "$child" >/run/zund-child
echo "ZUND-OUTPUT-BEGIN"
$B awk '{ print "O", systime(), $0; fflush() }' </run/zund-out &
reader_out=$!
$B awk '{ print "E", systime(), $0; fflush() }' </run/zund-err &
reader_err=$!
while :; do
    wait "$child"
    code=$?
    $B kill -0 "$child" 2>/dev/null || break
done
wait "$reader_out" "$reader_err" 2>/dev/null
echo "ZUND-EXIT-CODE: $code"
$B sync
i=$ZUND_DISKS
while [ "$i" -gt 0 ]; do
    i=$((i - 1))
    eval "dest=\$ZUND_DISK_${i}_DEST"
    $B umount "$dest" 2>/dev/null
done
$B poweroff -f
"""

def config_message(config_sh: str) -> bytes:
    """What the host writes to a warm-pool guest's control line: its
    ``config.sh`` in base64 lines between CONFIG_BEGIN and CONFIG_END (the
    line discipline sees only short lines of safe characters)."""
    body = base64.encodebytes(config_sh.encode()).decode()
    return f"{CONFIG_BEGIN}\n{body}{CONFIG_END}\n".encode()


_EXIT_RE = re.compile(r"^ZUND-EXIT-CODE: (\d+)\s*$")
_START_ERROR_RE = re.compile(r"ZUND-START-ERROR: (.*)$")
_LINE_RE = re.compile(r"^([OE]) (\d+) (.*)$", re.S)


@attrs.frozen
class LogLine:
    stream: str  # "stdout" | "stderr"
    time_s: int  # guest clock, whole seconds since the epoch
    text: str  # with its trailing newline


@attrs.frozen
class ConsoleRun:
    """One boot of the guest as seen on its serial console."""

    lines: tuple  # LogLine
    exit_code: int | None  # None: still running, or the guest was destroyed
    start_error: str | None = None
    began: bool = True  # False: the init refused to start (start_error) or never booted


def parse_console(text: str) -> list:
    """Split a serial console log into runs (one per boot), keeping only the tagged
    process output between ``ZUND-OUTPUT-BEGIN`` and ``ZUND-EXIT-CODE: N``.

    Firmware and kernel messages carry no ``O``/``E`` tag and are dropped, as is
    anything outside the markers. Carriage returns added by the serial line
    discipline are removed. A boot that ended in ``ZUND-START-ERROR`` is a run
    with ``began=False``.
    """
    runs: list = []
    lines: list | None = None
    code: int | None = None
    for raw in text.replace("\r\n", "\n").splitlines(keepends=True):
        bare = raw.rstrip("\r\n")
        if bare.endswith(BEGIN_MARKER):
            if lines is not None:
                runs.append(ConsoleRun(tuple(lines), code))
            lines, code = [], None
            continue
        err = _START_ERROR_RE.search(bare)
        if err:
            if lines is not None:
                runs.append(ConsoleRun(tuple(lines), code))
                lines, code = None, None
            runs.append(ConsoleRun((), 127, start_error=err.group(1).strip(), began=False))
            continue
        if lines is None or code is not None:
            continue
        m = _EXIT_RE.match(bare)
        if m:
            code = int(m.group(1))
            continue
        t = _LINE_RE.match(raw.replace("\r", ""))
        if t:
            body = t.group(3)
            if not body.endswith("\n"):
                body += "\n"
            lines.append(LogLine("stdout" if t.group(1) == "O" else "stderr",
                                 int(t.group(2)), body))
    if lines is not None:
        runs.append(ConsoleRun(tuple(lines), code))
    return runs
