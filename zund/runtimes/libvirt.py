"""The libvirt micro-VM runtime (API name ``microvm``): IRuntime over libvirt-python.

Each container is a libvirt domain ``zun-<uuid>`` that boots the configured
kernel with an initramfs made from the image (see ``zund/runtimes/microvm/``).
The guest has no network device; its first serial port writes to a file under
``console_path`` (the container's log, which survives the guest), its second is
a unix socket used as a control line for signals. Each volume is a virtio disk
(a sparse raw ext4 image under ``volumes_path``, :mod:`zund.runtimes.microvm.disks`)
that the guest's init mounts at its destination; injected files travel in the
container's initramfs layer.

Machine type (``[libvirt] machine_type``): ``microvm`` or ``pc``; ``auto`` boots
a probe guest on ``microvm`` once when the runtime opens (cached per QEMU,
libvirt and kernel in ``images_path/machine-probe.json``) and falls back to
``pc`` when it does not come up; the choice is logged and applies to every
container of this runtime.

Warm pool (``[libvirt] warm_pool_size``, off by default): the runtime keeps
that many guests booted ahead of demand, shared among the shapes (image, vCPUs,
memory) of its latest creates in proportion to how often each came
(``plan_pool``; with one guest, the most frequent shape). A warm guest
(domain ``zunpool-<id>``, transient, metadata ``pool``) boots the image's
initramfs with a config that says only ``ZUND_POOLED=1``: its init prints
``ZUND-CONFIG-READY`` and waits on the control line. A create of that shape
without volumes, injected files or networks claims one instead of defining
``zun-<uuid>``: it writes the
container's ``config.sh`` (``zun-<uuid>.config``) and an alias
(``zun-<uuid>.domain``, the guest's name, which every lookup reads first),
moves the guest's log, initrd and control socket to the container's names, and
commits by defining the domain persistently with the container's metadata
(then setting it on the live domain too). Until start() it is ``created``;
start() writes the config to the control line (again at every later boot: the
initrd stays the pooled one) and returns when the command began, without
libvirt's start handshake or the kernel's boot on the path. A crash before the
commit leaves an unclaimed guest, which open() destroys; close() destroys the
pool. A shape whose share of the plan shrinks loses its surplus guests; the
refill starts after each create, one guest at a time. Warm guests hold capacity
like containers of their shape (``held_capacity``: the node admits and
advertises less by it), and the refill boots one only when the node has room for
it (``warm_guest_room``, the bidder's check under its lock), so a warm pool never
overcommits the node. A draining node retires its pool (``retire_pool``).

A container that fits only without some waiting guests (``yield_capacity``) has
them set aside under its reservation (a pledge), a guest of its own shape first:
not claimable, not counted as held (the reservation counts instead), not yet
destroyed. When the reservation becomes a record (``keep_pledge``) the guest of
the container's shape is kept for its create, which claims it like any warm
guest, and the others are destroyed; when it is released, expires or the
coordinator chose another node (``return_pledge``), they go back to the pool as
far as the node still has room for them.

Domain state → RuntimeStatus: running/blocked/shutdown → running; paused /
pmsuspended → paused; shut off → ``created`` if the container was never started
(no start record), else ``exited`` with the code the guest's init printed (137
when the guest was destroyed before it could print one); crashed → dead.

Capabilities: ``pause``, and ``volumes`` when the guest kernel's modules are
found (``[libvirt] modules_path``). exec, archive, commit, top, stats, update and
logs_since need an in-guest agent zund does not have yet; those calls raise
``NotSupportedByRuntime`` (the manager answers 409).

Images come from the local Docker engine through the same image source as the
Docker runtime (:class:`zund.runtimes.images.DockerImageSource`: pull with
policy, inspect, export of the root filesystem), which translates the engine's
errors; this module only owns the engine connection it hands that source.

Blocking work (libvirt calls, image reads, building an initramfs, reading
console files) goes through the injected ``run_blocking``. libvirt errors are
translated by error code (``VIR_ERR_NO_DOMAIN`` → ``RuntimeObjectNotFound``),
never by message text.
"""

from __future__ import annotations

import collections
import datetime
import fcntl
import fractions
import functools
import gzip
import hashlib
import json
import math
import os
import signal as signal_module
import stat
import socket
import time
import uuid as uuidlib
from typing import Any, Callable

import attrs
import libvirt
from twisted.internet import defer, task
from twisted.python import failure
from twisted.logger import Logger
from zope.interface import implementer

from zund.common import errors
from zund.compute import capacity
from zund.runtimes.executor import TrackedCalls
from zund.runtimes.base import (
    ContainerSpec,
    IRuntime,
    VolumeInfo,
    RuntimeState,
    RuntimeStatus,
    exposed_port_numbers,
    parse_signal,
    runtime_object_name,
)
from zund.runtimes.images import DockerImageSource, connect_api
from zund.runtimes.microvm import disks
from zund.runtimes.microvm import domain_xml as dx
from zund.runtimes.microvm import initramfs
from zund.runtimes.microvm import modules as kmodules
from zund.runtimes.microvm.init import (
    CONFIG_READY_MARKER, INIT_VERSION, ConsoleRun, config_message, parse_console)

log = Logger()

RUNTIME_NAME = "microvm"
CAPABILITIES = frozenset({"pause"})
KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12
#: Linux input keycodes for Ctrl-Alt-Del (the kernel sends SIGINT to PID 1).
CTRL_ALT_DEL = (29, 56, 111)
POLL_S = 0.1
#: The boot wait reads the console file this often: it is on the create -> running
#: path (adds half of it on average). Each read is a local read of a few bytes, no
#: RPC, but still a thread-pool round trip (~0.25 ms CPU): 10 ms cost 4x the CPU
#: of 50 ms polling on a loaded host, 20 ms about the same as before.
BOOT_POLL_S = 0.02
#: ... and asks libvirt whether the guest still runs (an RPC) at most this often.
BOOT_LIVENESS_S = 0.25
#: Name prefix of warm-pool guests (see the module docstring).
POOL_PREFIX = "zunpool-"
#: A warm guest's own config.sh: it asks for the real one on the control line.
POOLED_CONFIG = "# a warm-pool guest: the container's config arrives on the control line\nZUND_POOLED=1\n"
#: The largest config.sh sent over the control line (the guest's tty buffers 64 KiB);
#: a container with a larger one (a huge environment) boots cold.
MAX_POOLED_CONFIG_BYTES = 32 * 1024
#: The warm pool shares its guests among the shapes of this many latest creates it
#: could have served (``plan_pool``).
SHAPE_HISTORY = 8
#: A warm guest kept for the container it was set aside for (``keep_pledge``) is
#: destroyed when no create of that container claims it within this many seconds
#: (the create failed early, or the container was deleted before it was made).
KEPT_GUEST_TTL_S = 120.0
#: Orphaned files (guest gone, e.g. auto_remove) older than this are swept by list().
ORPHAN_AGE_S = 300.0
#: The machine-type probe guest must print its marker within this many seconds.
PROBE_TIMEOUT_S = 90.0
#: ``images_path/machine-probe-<key>.json``: one probe result per QEMU, libvirt and kernel
PROBE_FILE = "machine-probe-{key}.json"


@attrs.frozen
class LibvirtConfig:
    """Plain config for :class:`LibvirtRuntime`, built from ``[libvirt]`` options."""

    uri: str = "qemu:///system"
    virt_type: str = "auto"
    kernel_path: str = "/var/lib/zund/microvm/vmlinuz"
    busybox_path: str = "/bin/busybox"
    default_vcpus: int = 1
    default_memory_mb: int = 256
    min_memory_mb: int = 96
    boot_timeout_s: float = 120.0
    stop_timeout_s: float = 10.0
    images_path: str = "/var/lib/zund/microvm/images"
    console_path: str = "/var/lib/zund/microvm/console"
    #: guest control-line sockets; kept short: a UNIX socket path has a 108-byte limit
    socket_dir: str = "/run/zund/microvm"
    docker_url: str = "unix:///var/run/docker.sock"
    docker_timeout_s: float = 120.0
    machine_type: str = "auto"  # auto | microvm | pc
    modules_path: str = "/var/lib/zund/microvm/modules"
    volumes_path: str = "/var/lib/zund/microvm/volumes"
    volume_default_size_gb: int = 1
    warm_pool_size: int = 0

    @classmethod
    def from_conf(cls, conf) -> "LibvirtConfig":
        lv = conf.libvirt
        return cls(uri=lv.uri, virt_type=lv.virt_type, kernel_path=lv.kernel_path,
                   busybox_path=lv.busybox_path, default_vcpus=lv.default_vcpus,
                   default_memory_mb=lv.default_memory_mb, min_memory_mb=lv.min_memory_mb,
                   boot_timeout_s=float(lv.boot_timeout), stop_timeout_s=float(lv.stop_timeout),
                   images_path=lv.images_path, console_path=lv.console_path,
                   socket_dir=lv.socket_dir, docker_url=conf.docker.api_url,
                   docker_timeout_s=float(conf.docker.default_timeout),
                   machine_type=lv.machine_type, modules_path=lv.modules_path,
                   volumes_path=lv.volumes_path,
                   volume_default_size_gb=lv.volume_default_size_gb,
                   warm_pool_size=lv.warm_pool_size)


# -- pure helpers ----------------------------------------------------------------

def kvm_usable(path: str = "/dev/kvm") -> bool:
    """True when ``path`` opens read-write and answers KVM_GET_API_VERSION == 12."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION
    except OSError:
        return False
    finally:
        os.close(fd)


def host_tsc_khz(cpuinfo: str) -> int | None:
    """The host's TSC rate in kHz from /proc/cpuinfo's first ``cpu MHz`` (what
    TCG's rdtsc counts at), or None when it is not there."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "cpu MHz":
            try:
                return int(float(value) * 1000) or None
            except ValueError:
                return None
    return None


def probe_key(qemu_version: int, libvirt_version: int, kernel_stat: tuple,
              virt_type: str) -> str:
    """Cache key of a machine-type probe: what decides whether microvm boots."""
    h = hashlib.sha256()
    for part in (qemu_version, libvirt_version, *kernel_stat, virt_type, INIT_VERSION):
        h.update(str(part).encode() + b"\0")
    return h.hexdigest()


def volume_disks(mounts, volumes_path: str) -> list:
    """``[(DiskSpec, destination)]`` of the ``volume`` mounts, in request order (pure)."""
    out = []
    for m in mounts:
        if m.kind != "volume":
            continue
        i = len(out)
        if i >= 26:
            raise errors.InvalidInput(field="mounts", reason="a micro-VM takes at most 26 volumes")
        try:
            path = disks.image_path(volumes_path, m.source or "")
        except disks.DiskError as e:
            raise errors.InvalidInput(field="mounts", reason=str(e)) from e
        out.append((dx.DiskSpec(path=path,
                                serial=dx.disk_serial(i), target=dx.disk_target(i),
                                read_only=bool(m.read_only)), m.destination))
    return out


def plan_pool(recent, size: int, current: dict) -> dict:
    """How many warm guests of each shape the pool keeps: ``size`` guests shared
    among the shapes in ``recent`` (the latest creates it could have served, oldest
    first) in proportion to how often each came. Each guest in turn goes to the
    shape with the most creates per guest it would then have (D'Hondt); a tie goes
    to a shape that already has that guest in ``current``, else to the latest one.
    So one odd create, or shapes alternating, change nothing; a shape that comes
    more often gains guests; with one guest it is the most frequent shape. No
    history: ``current``."""
    if size <= 0:
        return {}
    if not recent:
        return dict(current)
    counts = collections.Counter(recent)
    latest = {key: i for i, key in enumerate(recent)}
    plan: dict = {}
    for _ in range(size):
        def rank(key):
            n = plan.get(key, 0)
            return fractions.Fraction(counts[key], n + 1), current.get(key, 0) > n, latest[key]
        best = max(counts, key=rank)
        plan[best] = plan.get(best, 0) + 1
    return plan


def guest_vcpus(cpu: float | None, default: int) -> int:
    return max(1, int(math.ceil(cpu))) if cpu else max(1, default)


def guest_memory_mb(memory_mb: int | None, default: int, floor: int) -> int:
    return max(int(memory_mb) if memory_mb else int(default), int(floor))


def _utc_naive(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).replace(tzinfo=None)


def _rfc3339(ts: int) -> str:
    return _utc_naive(ts).strftime("%Y-%m-%dT%H:%M:%S") + ".000000000Z"


def render_logs(runs: list, stdout: bool, stderr: bool, timestamps: bool,
                tail: int | None) -> str:
    """The process output of every run, in order, as docker would show it."""
    wanted = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}
    lines = [ln for run in runs for ln in run.lines if ln.stream in wanted]
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    if timestamps:
        return "".join(f"{_rfc3339(ln.time_s)} {ln.text}" for ln in lines)
    return "".join(ln.text for ln in lines)


# -- the runtime ---------------------------------------------------------------------

@attrs.frozen
class Pledge:
    """Warm guests set aside for one reservation (see the module docstring).
    ``uuid``: the container it is for; ``own``: its shape, or None when the pool
    does not know it; ``guests``: ``(shape, guest name)`` each."""

    uuid: str
    own: tuple | None
    guests: tuple


@implementer(IRuntime)
class LibvirtRuntime:
    """IRuntime over libvirt: one micro-VM per container.

    ``run_blocking(fn, *args) -> Deferred`` runs ``fn`` on a bounded thread pool;
    ``clock`` (IReactorTime) paces the polls of start/stop. Construction does no
    I/O; call :meth:`open` before use and :meth:`close` at shutdown.
    """

    name = RUNTIME_NAME
    #: ``pause``; ``volumes`` is added by :meth:`open` when the guest kernel's modules are there
    capabilities = CAPABILITIES
    #: ``zund.console``: "console_log" = a read-only attach to the guest's serial console
    console_capabilities = frozenset({"console_log"})

    def __init__(self, config: LibvirtConfig, node_name: str,
                 run_blocking: Callable[..., defer.Deferred], clock):
        self.config = config
        self.node_name = node_name
        self._clock = clock
        self._conn: libvirt.virConnect | None = None
        self._docker_api = None  # docker.APIClient once open
        self._virt_type = config.virt_type
        self._machine = config.machine_type
        self._tsc_khz: int | None = None
        self._modules_layer: str | None = None
        self._image_locks: dict[str, defer.DeferredLock] = {}
        self._busybox_key: tuple | None = None  # (inode, size, mtime) of busybox_path
        self._busybox_sha = ""
        self._volume_locks: dict[str, defer.DeferredLock] = {}
        # warm pool: guests wanted per shape, unclaimed guests per shape (oldest
        # first), the refill
        self._plan: dict[tuple, int] = {}
        self._pool: dict[tuple, list[str]] = {}
        self._pool_fill: defer.Deferred | None = None
        #: what one warm guest of a shape holds: the (cpu, memory_mb) a container of
        #: the shape holds
        self._pool_alloc: dict[tuple, tuple] = {}
        #: (shape, (cpu, memory_mb) its container held) of the latest creates the
        #: pool could have served, oldest first (``plan_pool``)
        self._recent: collections.deque = collections.deque(maxlen=SHAPE_HISTORY)
        #: warm guests being booted, per shape (they hold capacity already)
        self._booting: collections.Counter = collections.Counter()
        #: the image of the latest create of each shape: a placement request names
        #: its image, cpu and memory, and finds the waiting guests of its shape by them
        self._shape_image: dict[tuple, str] = {}
        #: guests set aside for a reservation (``yield_capacity`` with ``token``):
        #: token -> ``Pledge``; out of the pool and of ``held_capacity()``
        self._pledges: dict[str, Pledge] = {}
        #: container uuid -> (shape, guest name, expiry timer): a pledged guest of
        #: its shape, kept for its create (``keep_pledge``)
        self._kept: dict[str, tuple] = {}
        #: ``async (cpu, memory_mb, hold) -> bool``: the node calls ``hold()`` and
        #: answers True when it has room for one more warm guest (the service sets
        #: ``Bidder.hold_if_room``); None: no check
        self.warm_guest_room: Callable | None = None
        #: ``() -> None`` callables told when ``held_capacity()`` changed
        self.held_listeners: list[Callable[[], None]] = []
        #: creates by path (``create_warm``, ``create_cold``), warm-guest boots by
        #: outcome (``warm_booted``, ``warm_failed``, ``warm_no_room``) and guests
        #: given up for containers (``warm_yielded``: destroyed; ``warm_kept``:
        #: kept for the container they were set aside for, ``warm_returned``: back
        #: to the pool): the metrics ``zund_microvm_creates``,
        #: ``zund_microvm_warm_boots``, ``zund_microvm_warm_yielded`` and
        #: ``zund_microvm_warm_pledges``
        self.pool_stats: collections.Counter = collections.Counter()
        self._closing = False
        self._blocking = TrackedCalls(run_blocking, self.name)
        self._images = DockerImageSource(self._image_api, self._blocking, self.name)

    @property
    def virt_type(self) -> str:
        """``kvm`` or ``qemu`` once open (``auto`` resolved)."""
        return self._virt_type

    @property
    def machine_type(self) -> str:
        """``microvm`` or ``pc`` once open (``auto`` resolved by the probe)."""
        return self._machine

    # -- plumbing ------------------------------------------------------------------

    def _translate(self, e: BaseException, uuid: str | None = None) -> errors.ZundError:
        if isinstance(e, libvirt.libvirtError):
            code = e.get_error_code()
            if code == libvirt.VIR_ERR_NO_DOMAIN and uuid is not None:
                return errors.RuntimeObjectNotFound(name=runtime_object_name(uuid))
            if code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN):
                return errors.RuntimeUnavailable(runtime=self.name,
                                                 reason=e.get_error_message() or str(e))
            return errors.RuntimeFailure(reason=e.get_error_message() or str(e))
        return errors.RuntimeFailure(reason=f"{type(e).__name__}: {e}")

    async def _call(self, fn: Callable[[], Any], uuid: str | None = None) -> Any:
        try:
            return await self._blocking(fn)
        except errors.ZundError:
            raise
        except Exception as e:
            raise self._translate(e, uuid=uuid) from e

    def _image_api(self):
        """The engine client the image source uses (RuntimeUnavailable until open)."""
        if self._docker_api is None:
            raise errors.RuntimeUnavailable(runtime=self.name, reason="runtime is not open")
        return self._docker_api

    @property
    def _c(self) -> libvirt.virConnect:
        if self._conn is None:
            raise errors.RuntimeUnavailable(runtime=self.name, reason="runtime is not open")
        return self._conn

    def _require(self, capability: str, action: str) -> None:
        if capability not in self.capabilities:
            raise errors.NotSupportedByRuntime(action=action, runtime=self.name)

    async def _sleep(self, seconds: float) -> None:
        await task.deferLater(self._clock, seconds, lambda: None)

    def console_log_path(self, uuid: str) -> str:
        """The file the guest's serial console writes to (console capability "console_log":
        ``zund.console`` tails it for a read-only attach; the guest has no stdin)."""
        return self._log_path(uuid)

    # file layout of one container
    def _log_path(self, uuid: str) -> str:
        return os.path.join(self.config.console_path, runtime_object_name(uuid) + ".log")

    def _record_path(self, uuid: str) -> str:
        return os.path.join(self.config.console_path, runtime_object_name(uuid) + ".json")

    def _initrd_path(self, uuid: str) -> str:
        return os.path.join(self.config.images_path, "containers",
                            runtime_object_name(uuid) + ".initrd")

    def _control_path(self, uuid: str) -> str:
        return self._socket_path(runtime_object_name(uuid))

    def _alias_path(self, uuid: str) -> str:
        """Holds the name of the warm-pool guest the container claimed."""
        return os.path.join(self.config.console_path, runtime_object_name(uuid) + ".domain")

    def _config_path(self, uuid: str) -> str:
        """A claimed guest's config.sh, sent on its control line at every boot."""
        return os.path.join(self.config.console_path, runtime_object_name(uuid) + ".config")

    def _guest_files(self, name: str) -> tuple:
        """(log, initrd, control socket) of the warm-pool guest ``name``."""
        cfg = self.config
        return (os.path.join(cfg.console_path, name + ".log"),
                os.path.join(cfg.images_path, "containers", name + ".initrd"),
                self._socket_path(name))

    def _socket_path(self, name: str) -> str:
        path = os.path.join(self.config.socket_dir, name + ".ctl")
        if len(path.encode()) > 107:
            raise errors.RuntimeFailure(
                reason=f"[libvirt] socket_dir {self.config.socket_dir!r} is too long for a "
                       f"UNIX socket path (limit 107 bytes)")
        return path

    def _files(self, uuid: str) -> tuple:
        return (self._log_path(uuid), self._record_path(uuid), self._initrd_path(uuid),
                self._control_path(uuid))

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        cfg = self.config

        def _connect():
            virt_type = cfg.virt_type
            if virt_type == "auto":
                virt_type = "kvm" if kvm_usable() else "qemu"
            for d in (cfg.images_path, os.path.join(cfg.images_path, "containers"),
                      cfg.console_path, cfg.socket_dir, cfg.volumes_path):
                os.makedirs(d, exist_ok=True)
                # QEMU runs as an unprivileged user under qemu:///system.
                os.chmod(d, 0o755)
                blocked = untraversable_parent(d)
                if blocked is not None:
                    raise OSError(f"{blocked} is not searchable by others (mode "
                                  f"{stat.S_IMODE(os.stat(blocked).st_mode):o}), so QEMU "
                                  f"cannot read the guests' files under {d}")
            conn = libvirt.open(cfg.uri)
            try:
                api = connect_api(cfg.docker_url, "auto", cfg.docker_timeout_s)
            except BaseException:
                conn.close()
                raise
            return conn, api, virt_type

        # libvirt-python prints every error to stderr by default; ours are
        # translated into domain errors instead.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        self._blocking.closing = False
        self._closing = False
        try:
            conn, api, virt_type = await self._blocking(_connect)
        except Exception as e:
            reason = e.get_error_message() if isinstance(e, libvirt.libvirtError) else str(e)
            raise errors.RuntimeUnavailable(runtime=self.name, reason=reason) from e
        self._conn, self._docker_api, self._virt_type = conn, api, virt_type
        self._tsc_khz = await self._blocking(_read_tsc_khz)
        try:
            self._machine = await self._choose_machine()
        except errors.ZundError:
            await self.close()
            raise
        try:
            self._modules_layer = await self._blocking(
                lambda: kmodules.write_modules_layer(cfg.kernel_path, cfg.modules_path,
                                                     self._machine, cfg.images_path))
            self.capabilities = CAPABILITIES | {"volumes"}
        except (OSError, kmodules.ModulesUnavailable) as e:
            self._modules_layer = None
            self.capabilities = CAPABILITIES
            log.warn("runtime.microvm.volumes_unavailable reason={reason}", reason=str(e))
        # warm guests a previous process of this node left (it crashed before close)
        swept = await self._call(self._sweep_pool)
        if swept:
            log.info("runtime.microvm.warm_pool_swept guests={n}", n=swept)
        log.info("runtime.microvm.open uri={uri} virt_type={vt} machine={machine} "
                 "kernel={kernel} volumes={volumes}", uri=cfg.uri, vt=virt_type,
                 machine=self._machine, kernel=cfg.kernel_path,
                 volumes="volumes" in self.capabilities)

    async def _choose_machine(self) -> str:
        """``machine_type`` unless ``auto``; then the cached probe result for this
        QEMU, libvirt and kernel, else a probe boot on ``microvm`` (falls back to
        ``pc`` when the probe guest does not come up). Decided once per open."""
        cfg = self.config
        if cfg.machine_type != "auto":
            return cfg.machine_type
        conn = self._c

        def _key():
            try:
                st = os.stat(cfg.kernel_path)
            except FileNotFoundError:
                return None, None, None
            key = probe_key(conn.getVersion(), conn.getLibVersion(),
                            (cfg.kernel_path, st.st_size, st.st_mtime_ns), self._virt_type)
            cache = os.path.join(cfg.images_path, PROBE_FILE.format(key=key[:24]))
            return key, cache, _read_record(cache)
        key, cache, cached = await self._call(_key)
        if key is None:
            # create() names the missing kernel; nothing to probe with until it exists
            log.warn("runtime.microvm.machine_type chosen=pc source=default "
                     "reason=kernel {kernel} missing", kernel=cfg.kernel_path)
            return "pc"
        if cached and cached.get("key") == key and cached.get("machine") in dx.MACHINE_TYPES:
            log.info("runtime.microvm.machine_type chosen={machine} source=cache reason={reason}",
                     machine=cached["machine"], reason=cached.get("reason", ""))
            return cached["machine"]
        ok, reason = await self._probe("microvm")
        machine = "microvm" if ok else "pc"
        await self._call(lambda: _write_record(cache, {"key": key, "machine": machine,
                                                       "reason": reason}))
        log.info("runtime.microvm.machine_type chosen={machine} source=probe reason={reason}",
                 machine=machine, reason=reason)
        return machine

    async def _probe(self, machine: str) -> tuple:
        """Boot a throw-away guest (zund's init with no command: it prints a start
        error and powers off) on ``machine``; ``(booted, reason)``."""
        cfg = self.config
        conn = self._c
        tag = f"zund-probe-{os.getpid()}-{machine}"
        console = os.path.join(cfg.console_path, tag + ".log")
        initrd = os.path.join(cfg.images_path, tag + ".initrd")
        control = os.path.join(cfg.socket_dir, tag + ".ctl")

        def _boot():
            with open(cfg.busybox_path, "rb") as f:
                layer = gzip.compress(initramfs.zund_layer(f.read()), compresslevel=1)
            # no command: the init prints a start error (our "booted" marker), powers off
            layer += initramfs.container_layer(initramfs.container_config([], [], "/", "probe"))
            with open(initrd, "wb") as f:
                f.write(layer)
            os.chmod(initrd, 0o644)
            _unlink(console)
            xml = dx.domain_xml(dx.DomainSpec(
                name=tag, meta=dx.DomainMeta(uuid=tag, node="", project_id=""),
                virt_type=self._virt_type, vcpus=1, memory_mb=max(cfg.min_memory_mb, 96),
                kernel=cfg.kernel_path, initrd=initrd, console_log=console,
                control_socket=control, machine=machine,
                cmdline=dx.kernel_cmdline(machine, self._virt_type, self._tsc_khz)))
            return conn.createXML(xml, 0)

        def _done(dom):
            text = _read_from(console, 0)
            if any(r.start_error for r in parse_console(text)):
                return True, None
            try:
                active = bool(dom.isActive())
            except libvirt.libvirtError:
                active = False
            return False, (None if active else text)

        def _cleanup(dom):
            try:
                if dom is not None and dom.isActive():
                    dom.destroy()
            except libvirt.libvirtError:
                pass
            for path in (console, initrd, control):
                _unlink(path)

        dom = None
        started = time.monotonic()
        try:
            try:
                dom = await self._blocking(_boot)
            except Exception as e:
                reason = e.get_error_message() if isinstance(e, libvirt.libvirtError) else str(e)
                return False, f"{machine} refused: {reason}"
            while True:
                ok, ended = await self._blocking(lambda: _done(dom))
                elapsed = time.monotonic() - started
                if ok:
                    return True, f"{machine} probe guest booted in {elapsed:.1f}s"
                if ended is not None:
                    tail = " | ".join(ln.strip() for ln in ended.strip().splitlines()[-3:])
                    return False, f"{machine} probe guest stopped early: {tail or 'no output'}"
                if elapsed > PROBE_TIMEOUT_S:
                    return False, f"{machine} probe guest did not boot in {PROBE_TIMEOUT_S:g}s"
                await self._sleep(POLL_S)
        finally:
            await self._blocking(lambda: _cleanup(dom))

    async def close(self) -> None:
        self._closing = True
        if self._pool_fill is not None:
            await self._pool_fill  # ends after the guest it is booting (then discarded)
        stale = [name for guests in self._pool.values() for name in guests]
        stale += [name for pledge in self._pledges.values() for _, name in pledge.guests]
        for _, name, timer in self._kept.values():
            if timer.active():
                timer.cancel()
            stale.append(name)
        self._pool, self._plan, self._pledges, self._kept = {}, {}, {}, {}
        self._held_changed()
        if self._conn is not None:
            for name in stale:
                try:
                    await self._call(lambda n=name: self._discard_guest(n))
                except errors.ZundError as e:
                    log.warn("runtime.microvm.warm_guest_not_discarded name={name} "
                             "reason={reason}", name=name, reason=str(e))
        await self._blocking.drain()
        conn, api = self._conn, self._docker_api
        self._conn = self._docker_api = None
        for closer in ((conn.close if conn else None), (api.close if api else None)):
            if closer is not None:
                try:
                    closer()
                except Exception:  # closing connections; nothing useful to report
                    pass

    # -- images ----------------------------------------------------------------------

    async def ensure_image(self, image: str, pull_policy: str, auth=None) -> None:
        """Images come from the local Docker store (pulled there when needed)."""
        await self._images.ensure(image, pull_policy, auth)

    def _busybox_digest(self) -> str:
        """Blocking: sha256 of busybox, kept while the file's (inode, size, mtime)
        stay the same (a create must not read and hash 2 MB each time)."""
        st = os.stat(self.config.busybox_path)
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._busybox_key != key:
            digest = hashlib.sha256(_read_bytes(self.config.busybox_path)).hexdigest()
            self._busybox_key, self._busybox_sha = key, digest
        return self._busybox_sha

    async def _image_initramfs(self, image: str) -> tuple:
        """``(cached image initramfs path, image config)``; the initramfs is built
        once per (image id, init version, busybox) and reused by every guest."""
        cfg = self.config
        lock = self._image_locks.setdefault(image, defer.DeferredLock())
        await lock.acquire()
        try:
            info = await self._images.inspect(image)

            def _cached():
                digest = self._busybox_digest()
                out = initramfs.image_initramfs_path_digest(cfg.images_path, info.id, digest)
                return out, os.path.exists(out)

            out, cached = await self._call(_cached)
            if not cached:
                busybox = await self._call(lambda: _read_bytes(cfg.busybox_path))
                tar_path = await self._call(lambda: initramfs.new_export_path(cfg.images_path))
                try:
                    await self._images.export_rootfs(image, tar_path)
                    await self._call(
                        lambda: initramfs.build_image_initramfs(tar_path, busybox, out))
                finally:
                    await self._call(lambda: _unlink(tar_path))
            return out, info.config
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._image_locks.pop(image, None)

    # -- containers ------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> RuntimeState:
        cfg = self.config
        conn = self._c
        name = runtime_object_name(spec.uuid)
        if spec.vifs and self._modules_layer is None:
            # virtio_net is a module in Debian's cloud kernel: no layer, no NIC
            raise errors.NotSupportedByRuntime(action="networks (no guest kernel modules)",
                                               runtime=self.name)
        if spec.mounts:
            self._require("volumes", "mounts")
            if any(m.kind == "bind" for m in spec.mounts):
                # A host directory would need virtiofs and a host daemon per guest.
                raise errors.NotSupportedByRuntime(action="bind mounts of host paths",
                                                   runtime=self.name)
        vol_disks = volume_disks(spec.mounts, cfg.volumes_path)
        files = [m for m in spec.mounts if m.kind == "file"]
        # Fail fast and clearly: libvirt would only notice at boot.
        for what, path in (("kernel", cfg.kernel_path), ("busybox", cfg.busybox_path)):
            if not os.path.isfile(path):
                raise errors.RuntimeFailure(
                    reason=f"micro-VM {what} not found at {path} ([libvirt] {what}_path; "
                           "see tools/setup-libvirt.sh)")

        def _exists():
            try:
                self._lookup(spec.uuid)  # zun-<uuid>, or the warm guest it claimed
                return True
            except libvirt.libvirtError as e:
                if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return False
                raise
        if await self._call(_exists):
            raise errors.RuntimeFailure(reason=f"a domain named {name} already exists")

        base, image_config = await self._image_initramfs(spec.image)
        hostname = initramfs.guest_hostname(spec.uuid, spec.hostname)
        argv = initramfs.resolve_argv(spec.entrypoint, spec.command, image_config)
        env = initramfs.resolve_env(image_config, spec.environment, hostname)
        workdir = spec.workdir or image_config.get("WorkingDir") or "/"
        config_sh = initramfs.container_config(
            argv, env, workdir, hostname, interactive=bool(spec.interactive),
            disks=[(d.serial, dest, d.read_only) for d, dest in vol_disks],
            files=[m.destination for m in files])
        exposed = dict(image_config.get("ExposedPorts") or {})
        exposed.update(spec.exposed_ports or {})
        meta = dx.DomainMeta(uuid=spec.uuid, node=spec.node, project_id=spec.project_id,
                             hostname=hostname, image=spec.image,
                             ports=exposed_port_numbers(exposed),
                             auto_remove=bool(spec.auto_remove))
        vcpus = guest_vcpus(spec.cpu, cfg.default_vcpus)
        memory_mb = guest_memory_mb(spec.memory_mb, cfg.default_memory_mb, cfg.min_memory_mb)
        log_path, record_path, initrd_path, control_path = self._files(spec.uuid)
        if (cfg.warm_pool_size > 0 and not vol_disks and not files and not spec.vifs
                and len(config_sh.encode()) <= MAX_POOLED_CONFIG_BYTES):
            key = (base, vcpus, memory_mb)
            claimed = await self._claim(key, spec.uuid, meta, config_sh)
            self._recent.append((key, (float(spec.cpu or 0), memory_mb)))
            self._shape_image[key] = spec.image
            self._want_pool(plan_pool([k for k, _ in self._recent], cfg.warm_pool_size,
                                      self._plan))
            if claimed:
                self.pool_stats["create_warm"] += 1
                log.info("runtime.microvm.created uuid={uuid} image={image} warm_guest={name}",
                         uuid=spec.uuid, image=spec.image, name=claimed)
                return await self.inspect(spec.uuid)
        else:
            self._take_kept(spec.uuid, None)  # a guest set aside for it is of no use
        xml = self._domain_xml(name, meta, vcpus, memory_mb, initrd_path, log_path,
                               control_path, disks=tuple(d for d, _ in vol_disks),
                               vifs=tuple(spec.vifs))
        # the modules layer carries virtio_blk for disks and virtio_net for NICs
        modules_layer = self._modules_layer if vol_disks or spec.vifs else None

        def _define():
            for disk, dest in vol_disks:
                if not os.path.exists(disk.path):
                    raise errors.RuntimeFailure(
                        reason=f"the volume mounted at {dest} does not exist on this node")
            for stale in (log_path, record_path):
                _unlink(stale)
            initramfs.write_container_initrd(base, config_sh, initrd_path,
                                             modules_layer=modules_layer,
                                             files=[m.content or b"" for m in files])
            try:
                conn.defineXML(xml)
            except BaseException:
                _unlink(initrd_path)
                raise
        await self._call(_define, uuid=spec.uuid)
        self.pool_stats["create_cold"] += 1
        log.info("runtime.microvm.created uuid={uuid} image={image}", uuid=spec.uuid,
                 image=spec.image)
        return await self.inspect(spec.uuid)

    def _domain_xml(self, name: str, meta: dx.DomainMeta, vcpus: int, memory_mb: int,
                    initrd: str, log_path: str, control: str, disks: tuple = (),
                    vifs: tuple = (), domain_uuid: str = "", title: str = "") -> str:
        return dx.domain_xml(dx.DomainSpec(
            name=name, meta=meta, virt_type=self._virt_type, vcpus=vcpus,
            memory_mb=memory_mb, kernel=self.config.kernel_path, initrd=initrd,
            console_log=log_path, control_socket=control, machine=self._machine,
            disks=disks, vifs=vifs, domain_uuid=domain_uuid, title=title,
            cmdline=" ".join(filter(None, (
                dx.kernel_cmdline(self._machine, self._virt_type, self._tsc_khz),
                dx.net_cmdline(vifs))))))

    # -- warm pool (see the module docstring) ---------------------------------------------

    def held_capacity(self) -> capacity.Held:
        """The capacity the warm guests (booted or booting) hold: each what a
        container of its shape holds, its ``cpu`` and the guest's memory."""
        return self._held_by({key: len(self._pool.get(key, ())) + self._booting[key]
                              for key in set(self._pool) | set(self._booting)})

    def yieldable_capacity(self) -> capacity.Held:
        """The part of ``held_capacity()`` the node may take back for a container:
        the booted guests waiting in the pool (a guest still booting is not)."""
        return self._held_by({key: len(guests) for key, guests in self._pool.items()})

    def _held_by(self, counts: dict) -> capacity.Held:
        """What ``counts`` (shape -> guests) hold, each guest its shape's allocation."""
        held = capacity.Held()
        for key, n in counts.items():
            if n:
                cpu, memory_mb = self._pool_alloc[key]
                held += capacity.Held(cpus=cpu * n, mem_mb=memory_mb * n, count=n)
        return held

    def yield_capacity(self, cpu: float, memory_mb: int, dry_run: bool = False,
                       request=None, token: str | None = None) -> capacity.Held:
        """Give up booted warm guests until what they held covers ``cpu`` and
        ``memory_mb`` (the bidder admits a container that fits only without them):
        a guest of the container's own shape first (``request``: its placement
        request, ``uuid``, ``runtime``, ``image``, ``cpu`` and ``memory_mb``),
        then each from the shape with the most waiting guests, the newest first.
        They are set aside under ``token`` (the reservation's id; required
        unless ``dry_run``) until ``keep_pledge`` or ``return_pledge`` ends it.
        What was given up (less than asked when the waiting guests
        hold less); with ``dry_run``, what would be, and none is. The plan stays:
        the next refill boots them again once the node has room
        (``warm_guest_room``)."""
        if token is None and not dry_run:
            raise ValueError("guests given up are set aside under a reservation's token")
        own = self._own_shape(request)
        waiting = {key: len(guests) for key, guests in self._pool.items()}
        released = capacity.Held()
        picked = []
        while (released.cpus < cpu - 1e-9 or released.mem_mb < memory_mb) and any(
                waiting.values()):
            key = own if waiting.get(own) else max(waiting, key=waiting.__getitem__)
            waiting[key] -= 1
            picked.append(key)
            g_cpu, g_mem = self._pool_alloc[key]
            released += capacity.Held(cpus=g_cpu, mem_mb=g_mem, count=1)
        if picked and not dry_run:
            guests = tuple((key, self._pool[key].pop()) for key in picked)
            log.info("runtime.microvm.warm_guests_yielded guests={n} cpu={cpu} "
                     "memory_mb={mem} pledge={token}", n=len(guests), cpu=released.cpus,
                     mem=released.mem_mb, token=token)
            uuid = getattr(request, "uuid", None) or ""
            self._pledges[token] = Pledge(uuid, own, guests)
            self._held_changed()
        return released

    def _own_shape(self, request) -> tuple | None:
        """The pool's shape of the container ``request`` asks to place (one with
        guests waiting or set aside), or None: another runtime's request, or an
        image, vCPUs or memory no recent create of this node had."""
        if request is None or getattr(request, "runtime", self.name) != self.name:
            return None
        vcpus = guest_vcpus(request.cpu, self.config.default_vcpus)
        memory_mb = guest_memory_mb(request.memory_mb, self.config.default_memory_mb,
                                    self.config.min_memory_mb)
        image = getattr(request, "image", None)
        for key, key_image in self._shape_image.items():
            if key_image == image and key[1:] == (vcpus, memory_mb):
                return key
        return None

    def keep_pledge(self, token: str) -> None:
        """The reservation ``token`` became a container: the guest of its shape set
        aside for it waits for its create (which claims it; destroyed after
        ``KEPT_GUEST_TTL_S`` if none does), the others are destroyed."""
        pledge = self._pledges.pop(token, None)
        if pledge is None:
            return
        stale = [name for _, name in pledge.guests]
        kept = next(((key, name) for key, name in pledge.guests if key == pledge.own), None)
        if kept is not None and pledge.uuid:
            stale.remove(kept[1])
            self._forget_kept(pledge.uuid)
            timer = self._clock.callLater(KEPT_GUEST_TTL_S, self._forget_kept, pledge.uuid)
            self._kept[pledge.uuid] = (*kept, timer)
            self.pool_stats["warm_kept"] += 1
        self.pool_stats["warm_yielded"] += len(stale)
        self._discard_later(stale)

    def return_pledge(self, token: str, room: capacity.Held) -> capacity.Held:
        """The reservation ``token`` ended without a container: its guests go back
        to the pool while ``room`` (what the node has free now) holds them and the
        plan still wants them, the rest are destroyed. What went back."""
        pledge = self._pledges.pop(token, None)
        back = capacity.Held()
        if pledge is None:
            return back
        stale = []
        for key, name in pledge.guests:
            alloc = self._pool_alloc.get(key)
            if (self._closing or alloc is None
                    or len(self._pool.get(key, ())) + self._booting[key] >= self._plan.get(key, 0)
                    or alloc[0] > room.cpus - back.cpus + 1e-9
                    or alloc[1] > room.mem_mb - back.mem_mb):
                stale.append(name)
                continue
            back += capacity.Held(cpus=alloc[0], mem_mb=alloc[1], count=1)
            self._pool.setdefault(key, []).append(name)
        self.pool_stats["warm_returned"] += back.count
        self.pool_stats["warm_yielded"] += len(stale)
        if back.count:
            self._held_changed()
        self._discard_later(stale)
        return back

    def _pop_kept(self, uuid: str) -> tuple | None:
        """``(shape, guest name)`` kept for ``uuid``, no longer kept (its expiry
        cancelled), or None."""
        kept = self._kept.pop(uuid, None)
        if kept is None:
            return None
        shape, name, timer = kept
        if timer.active():
            timer.cancel()
        return shape, name

    def _forget_kept(self, uuid: str) -> None:
        """Destroy the guest kept for ``uuid``, if its create has not claimed it."""
        kept = self._pop_kept(uuid)
        if kept is not None:
            self._discard_later([kept[1]])

    def _take_kept(self, uuid: str, key: tuple | None) -> str | None:
        """The create of ``uuid`` (of shape ``key``; None: it cannot use a warm
        guest) takes the guest kept for it, if of its shape; any other guest set
        aside for it is destroyed. A pledge for ``uuid`` still open is kept first:
        its create runs, so its record is written."""
        for token, pledge in list(self._pledges.items()):
            if pledge.uuid == uuid:
                self.keep_pledge(token)
        kept = self._pop_kept(uuid)
        if kept is None:
            return None
        if kept[0] != key:
            self._discard_later([kept[1]])
            return None
        return kept[1]

    def _held_changed(self) -> None:
        for listener in list(self.held_listeners):
            try:
                listener()
            except Exception:
                log.failure("runtime.microvm.held_listener_failed")

    def _want_pool(self, plan: dict) -> None:
        """Keep ``plan`` (shape -> guests) from now on: retire the guests beyond it,
        and refill."""
        if self.config.warm_pool_size <= 0 or self._closing:
            return
        changed = False
        for key in plan:  # what the latest container of each shape held
            alloc = next((a for k, a in reversed(self._recent) if k == key),
                         self._pool_alloc.get(key))
            if alloc != self._pool_alloc.get(key):
                self._pool_alloc[key] = alloc
                changed = True
        if changed:
            self._held_changed()
        self._retire(plan)
        if self._pool_fill is None:
            self._pool_fill = defer.ensureDeferred(self._fill_pool())

            def _ended(result):
                self._pool_fill = None
                if isinstance(result, failure.Failure):
                    log.failure("runtime.microvm.warm_pool_refill_crashed", result)
            self._pool_fill.addBoth(_ended)

    def retire_pool(self) -> None:
        """Destroy the warm guests and warm nothing until the next create (the
        node drains: ``[service] disable`` or ``zund drain``)."""
        if self._plan or self._pool:
            log.info("runtime.microvm.warm_pool_retired guests={n}",
                     n=sum(map(len, self._pool.values())))
        self._retire({})

    def _retire(self, plan: dict) -> None:
        """The pool keeps ``plan`` from now on: each shape's guests beyond its share
        go (the newest first, in the background; a boot in progress that is no longer
        wanted is discarded when it ends)."""
        self._plan = dict(plan)
        stale = []
        for key in list(self._pool):
            guests = self._pool[key]
            keep = self._plan.get(key, 0)
            stale += guests[keep:]
            del guests[keep:]
            if not guests and key not in self._plan:
                del self._pool[key]
        for key in list(self._pool_alloc):
            if key not in self._plan and key not in self._pool and not self._booting[key]:
                del self._pool_alloc[key]
                self._shape_image.pop(key, None)
        if stale:
            self._held_changed()
        self._discard_later(stale)

    def _discard_later(self, names: list[str]) -> None:
        """Destroy the warm guests ``names`` (no longer in the pool) in the background."""
        for name in names:
            d = defer.ensureDeferred(self._call(lambda n=name: self._discard_guest(n)))
            d.addErrback(lambda f: log.warn("runtime.microvm.warm_guest_not_discarded "
                                            "reason={reason}", reason=str(f.value)))

    def _begin_boot(self, key: tuple) -> None:
        self._booting[key] += 1
        self._held_changed()

    def _end_boot(self, key: tuple) -> None:
        self._booting[key] -= 1
        if self._booting[key] <= 0:
            del self._booting[key]

    def _next_to_warm(self, skip=()) -> tuple | None:
        """The shape of the plan furthest below its share (ready + booting), or
        None; shapes in ``skip`` are not considered."""
        best, short = None, 0
        for key, want in self._plan.items():
            if key in skip:
                continue
            missing = want - len(self._pool.get(key, ())) - self._booting[key]
            if missing > short:
                best, short = key, missing
        return best

    async def _fill_pool(self) -> None:
        """Boot warm guests one at a time, each once the node has room for it, until
        every shape has its share; a shape without room is passed over for the
        rest of this refill (a smaller one may still fit), a failure ends it (the
        next create tries again), never retried in a loop."""
        no_room: set = set()
        while not self._closing:
            key = self._next_to_warm(skip=no_room)
            if key is None:
                return
            cpu, memory_mb = self._pool_alloc[key]
            if self.warm_guest_room is None:
                self._begin_boot(key)
            elif not await self.warm_guest_room(cpu, memory_mb,
                                                functools.partial(self._begin_boot, key)):
                self.pool_stats["warm_no_room"] += 1
                log.info("runtime.microvm.warm_pool_no_room cpu={cpu} memory_mb={mem}",
                         cpu=cpu, mem=memory_mb)
                no_room.add(key)
                continue
            try:
                name = await self._call(lambda: self._boot_warm_guest(key))
            except BaseException as e:
                self._end_boot(key)
                self._held_changed()
                self.pool_stats["warm_failed"] += 1
                if not isinstance(e, errors.ZundError):
                    raise
                log.warn("runtime.microvm.warm_pool_failed reason={reason}", reason=str(e))
                return
            self._end_boot(key)  # booted: it holds the same, as a pool member
            self.pool_stats["warm_booted"] += 1
            if self._closing or len(self._pool.get(key, ())) >= self._plan.get(key, 0):
                self._retire(self._plan)  # drops the shape's allocation if now unused
                self._held_changed()
                await self._call(lambda: self._discard_guest(name))
                continue
            self._pool.setdefault(key, []).append(name)
            self._held_changed()  # the same held, now one the node may give up

    def _boot_warm_guest(self, key: tuple) -> str:
        """Blocking: start one transient warm guest of ``key``; its name."""
        base, vcpus, memory_mb = key
        guest = str(uuidlib.uuid4())
        name = POOL_PREFIX + guest
        log_path, initrd, control = self._guest_files(name)
        initramfs.write_container_initrd(base, POOLED_CONFIG, initrd)
        meta = dx.DomainMeta(uuid=guest, node=self.node_name, project_id="", pool=True)
        try:
            self._c.createXML(self._domain_xml(name, meta, vcpus, memory_mb, initrd,
                                               log_path, control), 0)
        except BaseException:
            for path in (log_path, initrd, control):
                _unlink(path)
            raise
        return name

    def _discard_guest(self, name: str) -> None:
        """Blocking: destroy the warm guest ``name`` and delete its files, unless a
        container has claimed it meanwhile (then it is that container's)."""
        if self._end_domain(name, unclaimed_only=True):
            for path in self._guest_files(name):
                _unlink(path)

    def _end_domain(self, name: str, unclaimed_only: bool = False) -> bool:
        """Blocking: destroy and undefine the domain ``name`` (gone already is fine);
        False, touching nothing, when ``unclaimed_only`` and a container claimed it."""
        try:
            dom = self._c.lookupByName(name)
            if unclaimed_only:
                meta = _meta(dom)
                if meta is not None and not meta.pool:
                    return False
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                dom.undefine()
        except libvirt.libvirtError as e:
            if e.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN,
                                          libvirt.VIR_ERR_OPERATION_INVALID):
                raise
        return True

    def _sweep_pool(self) -> int:
        """Blocking: discard this node's unclaimed warm guests; how many."""
        found = []
        for dom in self._c.listAllDomains(0):
            if not dom.name().startswith(POOL_PREFIX):
                continue
            try:
                meta = _meta(dom)
            except libvirt.libvirtError:
                continue  # vanished while we looked
            if meta is not None and meta.pool and meta.node == self.node_name:
                found.append(dom.name())
        for name in found:
            self._discard_guest(name)
        return len(found)

    async def _claim(self, key: tuple, uuid: str, meta: dx.DomainMeta,
                     config_sh: str) -> str | None:
        """Make a warm guest of ``key`` the container ``uuid``; its name, or None
        (no warm guest, or it could not be claimed: the caller boots cold)."""
        name = self._take_kept(uuid, key)
        if name is None:
            guests = self._pool.get(key)
            if not guests:
                return None
            name = guests.pop(0)
            self._held_changed()
        _, vcpus, memory_mb = key
        log_path, record_path, initrd_path, control = self._files(uuid)
        title = runtime_object_name(uuid)
        xml = self._domain_xml(name, meta, vcpus, memory_mb, initrd_path, log_path, control,
                               domain_uuid=name[len(POOL_PREFIX):], title=title)
        conn = self._c

        def _commit():
            try:
                dom = conn.lookupByName(name)
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
                dom = None
            if dom is None or not dom.isActive():
                self._discard_guest(name)  # died while warm: not a container's problem
                return False
            _write_text(self._config_path(uuid), config_sh)
            _write_text(self._alias_path(uuid), name)
            _unlink(record_path)
            for src, dst in zip(self._guest_files(name), (log_path, initrd_path, control)):
                os.replace(src, dst)
            conn.defineXML(xml)  # the commit: from here on it is the container
            live = libvirt.VIR_DOMAIN_AFFECT_LIVE
            dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                            dx.metadata_xml(meta, namespaced=False),
                            dx.METADATA_PREFIX, dx.METADATA_NS, live)
            dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_TITLE, title, None, None, live)
            return True

        try:
            if await self._call(_commit, uuid=uuid):
                return name
        except errors.ZundError as e:
            log.warn("runtime.microvm.warm_guest_claim_failed name={name} reason={reason}",
                     name=name, reason=str(e))
            await self._call(lambda: self._unclaim(uuid, name))
        return None

    def _unclaim(self, uuid: str, name: str) -> None:
        """Blocking: undo a claim that failed before its end: the guest goes, with
        every file either name gave it."""
        self._end_domain(name)
        for path in self._files(uuid) + self._guest_files(name) + (
                self._alias_path(uuid), self._config_path(uuid)):
            _unlink(path)

    def warm_guests(self) -> int:
        """Blocking: how many warm guests wait for a container (printed their
        ready marker). For benchmarks and tests."""
        text = [_read_from(self._guest_files(n)[0], 0)
                for guests in list(self._pool.values()) for n in list(guests)]
        return sum(_asks_config(t) for t in text)

    def _send_config(self, uuid: str) -> socket.socket:
        """Blocking: a claimed guest asked for its config.sh: send it; the open
        connection, for the caller to close once the guest read it (QEMU drops
        what the guest has not read yet when the peer hangs up)."""
        config_sh = _read_text(self._config_path(uuid))
        if config_sh is None:
            raise errors.RuntimeFailure(
                reason=f"the micro-VM asks for its configuration, which is missing "
                       f"({self._config_path(uuid)})")
        try:
            return self._control_send(uuid, config_message(config_sh))
        except OSError as e:
            raise errors.RuntimeFailure(
                reason=f"the guest's control line is unavailable: {e}") from e

    def _domain_name(self, uuid: str) -> str:
        """Blocking: ``zun-<uuid>``, or the warm guest the container claimed."""
        return _read_text(self._alias_path(uuid)) or runtime_object_name(uuid)

    def _lookup(self, uuid: str) -> libvirt.virDomain:
        """Blocking: the domain, or libvirtError(VIR_ERR_NO_DOMAIN)."""
        return self._c.lookupByName(self._domain_name(uuid))

    def _unstarted_claim(self, dom, uuid: str) -> bool:
        """Blocking: a warm guest its container claimed and never started (created)."""
        return (dom.name().startswith(POOL_PREFIX)
                and _read_record(self._record_path(uuid)) is None)

    async def start(self, uuid: str) -> None:
        cfg = self.config
        log_path, record_path, _, _ = self._files(uuid)

        def _boot():
            dom = self._lookup(uuid)
            state, _ = dom.state()
            if state == libvirt.VIR_DOMAIN_PAUSED:
                raise errors.RuntimeFailure(
                    reason=f"container {uuid} is paused; unpause it instead")
            meta = _meta(dom)
            if dom.isActive():
                if not self._unstarted_claim(dom, uuid):
                    return None  # already running: starting again changes nothing
                # a claimed warm guest: booted, it waits for its config (whole log:
                # its ready marker came before this start)
                offset = 0
            else:
                offset = _size(log_path)
                dom.create()
            _write_record(record_path, {"started_at": time.time(), "log_offset": offset})
            if meta is not None and meta.auto_remove and dom.isPersistent():
                # A running domain without persistent config vanishes when it stops.
                dom.undefine()
            return offset

        offset = await self._call(_boot, uuid=uuid)
        if offset is None:
            return
        await self._wait_for_begin(uuid, offset, cfg.boot_timeout_s)
        log.info("runtime.microvm.started uuid={uuid}", uuid=uuid)

    async def _wait_for_begin(self, uuid: str, offset: int, timeout_s: float) -> None:
        """Until the init printed ZUND-OUTPUT-BEGIN; a refused start, a guest that
        stops first, or the boot timeout are RuntimeFailures (never a hang). A guest
        booted from the warm pool's initrd prints its ready marker first: it is sent
        its config.sh on the control line then.

        The console file is read every BOOT_POLL_S (cheap, local); libvirt is asked
        whether the guest still runs only every BOOT_LIVENESS_S, and always before
        the file is read, so output written before the guest ended is never missed."""
        log_path = self._log_path(uuid)
        deadline = time.monotonic() + timeout_s

        def _alive() -> bool:
            try:
                return bool(self._lookup(uuid).isActive())
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
                return False  # auto_remove: the guest already finished

        def _poll(check_alive: bool):
            active = _alive() if check_alive else True
            text = _read_from(log_path, offset)
            return parse_console(text), active, text

        next_check = self._clock.seconds()
        control = None  # the connection a config went out on: open until the command began
        try:
            while True:
                now = self._clock.seconds()
                check_alive = now >= next_check
                if check_alive:
                    next_check = now + BOOT_LIVENESS_S
                runs, active, text = await self._call(lambda: _poll(check_alive), uuid=uuid)
                if control is None and active and _asks_config(text):
                    try:
                        control = await self._call(lambda: self._send_config(uuid), uuid=uuid)
                    except errors.ZundError:
                        await self._destroy_quietly(uuid)  # it would wait forever
                        raise
                    continue
                if runs and runs[0].start_error:
                    await self._destroy_quietly(uuid)
                    raise errors.RuntimeFailure(reason=runs[0].start_error)
                if runs and runs[0].began:
                    return
                if not active:
                    tail = " | ".join(line.strip() for line in text.strip().splitlines()[-5:])
                    raise errors.RuntimeFailure(
                        reason=f"micro-VM stopped before the command started: "
                               f"{tail or 'no console output'}")
                if time.monotonic() > deadline:
                    await self._destroy_quietly(uuid)
                    raise errors.RuntimeFailure(
                        reason=f"micro-VM did not boot within {timeout_s:g}s "
                               f"(virt_type={self._virt_type})")
                await self._sleep(BOOT_POLL_S)
        finally:
            if control is not None:
                control.close()

    async def _destroy_quietly(self, uuid: str) -> None:
        def _destroy():
            try:
                dom = self._lookup(uuid)
                if dom.isActive():
                    dom.destroy()
            except libvirt.libvirtError:
                pass
        await self._call(_destroy, uuid=uuid)

    def _control_send(self, uuid: str, data: bytes) -> socket.socket:
        """Blocking: write ``data`` to the guest's control line (a unix socket QEMU
        listens on, the guest's /dev/ttyS1); the open connection (OSError if not)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(5.0)
            s.connect(self._control_path(uuid))
            s.sendall(data)
        except BaseException:
            s.close()
            raise
        return s

    def _signal_blocking(self, uuid: str, sig: str) -> bool:
        """Write one signal name to the guest's control line; False if it could not."""
        try:
            self._control_send(uuid, (sig + "\n").encode()).close()
            return True
        except OSError as e:
            log.warn("runtime.microvm.control_line_failed uuid={uuid} error={error}",
                     uuid=uuid, error=str(e))
            return False

    async def stop(self, uuid: str, timeout_s: float) -> None:
        """SIGTERM to the command over the control line (Ctrl-Alt-Del as fallback);
        destroy the guest after ``timeout_s``. Stopping a stopped guest is a no-op."""
        timeout_s = self.config.stop_timeout_s if timeout_s is None else float(timeout_s)

        def _ask():
            dom = self._lookup(uuid)
            if not dom.isActive():
                return False
            if self._unstarted_claim(dom, uuid):
                dom.destroy()  # its command never ran; it stays created
                return False
            state, _ = dom.state()
            if state == libvirt.VIR_DOMAIN_PAUSED:
                dom.resume()  # a frozen guest cannot see the signal
            if not self._signal_blocking(uuid, "TERM"):
                dom.sendKey(libvirt.VIR_KEYCODE_SET_LINUX, 0, list(CTRL_ALT_DEL),
                            len(CTRL_ALT_DEL), 0)
            return True

        if not await self._call(_ask, uuid=uuid):
            return
        if not await self._wait_inactive(uuid, timeout_s):
            await self._destroy_quietly(uuid)
            await self._wait_inactive(uuid, 10.0)
        log.info("runtime.microvm.stopped uuid={uuid}", uuid=uuid)

    async def _wait_inactive(self, uuid: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s

        def _active():
            try:
                return bool(self._lookup(uuid).isActive())
            except libvirt.libvirtError as e:
                if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return False
                raise
        while await self._call(_active, uuid=uuid):
            if time.monotonic() >= deadline:
                return False
            await self._sleep(POLL_S)
        return True

    async def restart(self, uuid: str, timeout_s: float) -> None:
        await self.stop(uuid, timeout_s)
        await self.start(uuid)

    async def kill(self, uuid: str, signal: str | None) -> None:
        """KILL destroys the guest (exit 137); other signals go to the command."""
        sig = parse_signal(signal)

        def _kill():
            dom = self._lookup(uuid)
            if not dom.isActive() or self._unstarted_claim(dom, uuid):
                raise errors.RuntimeFailure(reason=f"container {uuid} is not running")
            if sig == signal_module.SIGKILL:
                dom.destroy()
                return
            state, _ = dom.state()
            if state == libvirt.VIR_DOMAIN_PAUSED:
                raise errors.RuntimeFailure(reason=f"container {uuid} is paused")
            # The guest's control line takes a bare name (``TERM``), for busybox kill.
            if not self._signal_blocking(uuid, sig.name.removeprefix("SIG")):
                raise errors.RuntimeFailure(reason="the guest's control line is unavailable")
        await self._call(_kill, uuid=uuid)

    async def pause(self, uuid: str) -> None:
        def _pause():
            dom = self._lookup(uuid)
            state, _ = dom.state()
            if state != libvirt.VIR_DOMAIN_RUNNING or self._unstarted_claim(dom, uuid):
                raise errors.RuntimeFailure(reason=f"container {uuid} is not running")
            dom.suspend()
        await self._call(_pause, uuid=uuid)

    async def unpause(self, uuid: str) -> None:
        def _unpause():
            dom = self._lookup(uuid)
            state, _ = dom.state()
            if state != libvirt.VIR_DOMAIN_PAUSED:
                raise errors.RuntimeFailure(reason=f"container {uuid} is not paused")
            dom.resume()
        await self._call(_unpause, uuid=uuid)

    async def remove(self, uuid: str, force: bool) -> None:
        files = self._files(uuid)

        def _remove():
            try:
                dom = self._lookup(uuid)
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
                dom = None
            if dom is not None:
                if dom.isActive():
                    if not force:
                        raise errors.RuntimeFailure(
                            reason=f"cannot remove running container {uuid}; stop it first "
                                   "or force the removal")
                    try:
                        dom.destroy()
                    except libvirt.libvirtError as e:
                        if e.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                            raise
                try:
                    if dom.isPersistent():
                        dom.undefine()
                except libvirt.libvirtError as e:
                    if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
            for path in files + (self._alias_path(uuid), self._config_path(uuid)):
                _unlink(path)
        await self._call(_remove, uuid=uuid)

    async def inspect(self, uuid: str) -> RuntimeState:
        log_path, record_path, _, _ = self._files(uuid)

        def _inspect():
            dom = self._lookup(uuid)
            return _state_of(dom, log_path, record_path, uuid)
        return await self._call(_inspect, uuid=uuid)

    async def list(self, node: str) -> list:
        conn = self._c
        cfg = self.config

        def _list():
            out, seen = [], set()
            for dom in conn.listAllDomains(0):
                name = dom.name()
                if not name.startswith(("zun-", POOL_PREFIX)):
                    continue
                try:
                    meta = _meta(dom)
                    if meta is None:
                        continue
                    seen.add(name)
                    if meta.pool:
                        continue  # a warm guest, no container yet
                    seen.add(runtime_object_name(meta.uuid))  # a claimed guest's files
                    if meta.node != node:
                        continue
                    uuid = meta.uuid
                    out.append(_state_of(dom, self._log_path(uuid), self._record_path(uuid),
                                         uuid, meta))
                except libvirt.libvirtError as e:
                    if e.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise  # vanished while we looked: not ours to report
            _sweep_orphans(cfg, seen)
            return out
        return await self._call(_list)

    async def logs(self, uuid: str, stdout: bool = True, stderr: bool = True,
                   timestamps: bool = False, tail: int | None = None,
                   since: float | None = None) -> str:
        if since is not None:
            self._require("logs_since", "logs since")
        log_path = self._log_path(uuid)

        def _logs():
            self._lookup(uuid)  # RuntimeObjectNotFound for an unknown container
            return _read_from(log_path, 0)
        text = await self._call(_logs, uuid=uuid)
        return render_logs(parse_console(text), bool(stdout), bool(stderr), bool(timestamps),
                           None if tail is None else max(0, int(tail)))

    # -- not supported without an in-guest agent ----------------------------------------

    async def execute(self, uuid: str, argv: list):
        self._require("exec", "execute")

    async def top(self, uuid: str, ps_args: str | None = None) -> dict:
        self._require("top", "top")

    async def stats(self, uuid: str) -> dict:
        self._require("stats", "stats")

    async def update(self, uuid: str, cpu: float | None, memory_mb: int | None) -> None:
        self._require("update", "update")

    async def get_archive(self, uuid: str, path: str) -> tuple:
        self._require("archive", "get_archive")

    async def put_archive(self, uuid: str, path: str, data: bytes) -> None:
        self._require("archive", "put_archive")

    async def commit(self, uuid: str, repository: str, tag: str | None = None) -> str:
        self._require("commit", "commit")

    # -- volumes: one ext4 disk image each (zund/runtimes/microvm/disks.py) ----------------

    async def _volume_call(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the pool under the volume's lock (create/remove of one name
        never interleave); disk errors become RuntimeFailure."""
        lock = self._volume_locks.setdefault(name, defer.DeferredLock())
        await lock.acquire()
        try:
            try:
                return await self._blocking(fn)
            except disks.DiskError as e:
                raise errors.RuntimeFailure(reason=str(e)) from e
            except errors.ZundError:
                raise
            except Exception as e:
                raise self._translate(e) from e
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._volume_locks.pop(name, None)

    async def create_volume(self, name: str, labels: dict) -> VolumeInfo:
        self._require("volumes", "create_volume")
        cfg = self.config
        found = await self._volume_call(name, lambda: disks.create(
            cfg.volumes_path, name, dict(labels or {}), cfg.volume_default_size_gb))
        return VolumeInfo(name, found)

    async def inspect_volume(self, name: str) -> VolumeInfo:
        self._require("volumes", "inspect_volume")
        cfg = self.config
        found = await self._volume_call(name, lambda: disks.read_labels(cfg.volumes_path, name))
        if found is None:
            raise errors.RuntimeObjectNotFound(name=name)
        return VolumeInfo(name, found)

    async def remove_volume(self, name: str) -> None:
        self._require("volumes", "remove_volume")
        cfg = self.config
        await self._volume_call(name, lambda: disks.remove(cfg.volumes_path, name))


# -- blocking helpers (run on the pool) --------------------------------------------------

def _read_tsc_khz() -> int | None:
    try:
        with open("/proc/cpuinfo") as f:
            return host_tsc_khz(f.read())
    except OSError:
        return None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _read_from(path: str, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _asks_config(console: str) -> bool:
    """The init of a warm-pool guest printed its ready marker (a line of its own)."""
    return any(line.rstrip("\r") == CONFIG_READY_MARKER for line in console.splitlines())


def _write_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write_record(path: str, record: dict) -> None:
    _write_text(path, json.dumps(record))


def _read_record(path: str) -> dict | None:
    text = _read_text(path)
    try:
        return None if text is None else json.loads(text)
    except ValueError:
        return None


def _meta(dom) -> dx.DomainMeta | None:
    try:
        text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, dx.METADATA_NS, 0)
    except libvirt.libvirtError as e:
        if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            return None
        raise
    return dx.parse_metadata(text)


def _state_of(dom, log_path: str, record_path: str, uuid: str,
              meta: dx.DomainMeta | None = None) -> RuntimeState:
    meta = meta or _meta(dom)
    state, reason = dom.state()
    record = _read_record(record_path)
    started_at = _utc_naive(record["started_at"]) if record else None
    exit_code = finished_at = error = None
    if state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED,
                 libvirt.VIR_DOMAIN_SHUTDOWN, libvirt.VIR_DOMAIN_NOSTATE):
        # a claimed warm guest runs before its container starts
        status = (RuntimeStatus.CREATED if record is None and dom.name().startswith(POOL_PREFIX)
                  else RuntimeStatus.RUNNING)
    elif state in (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PMSUSPENDED):
        status = RuntimeStatus.PAUSED
    elif state == libvirt.VIR_DOMAIN_SHUTOFF and record is None:
        status = RuntimeStatus.CREATED
    elif state == libvirt.VIR_DOMAIN_SHUTOFF:
        status = RuntimeStatus.EXITED
        runs = parse_console(_read_from(log_path, int(record.get("log_offset", 0))))
        last: ConsoleRun | None = runs[-1] if runs else None
        if last is not None and last.start_error:
            exit_code, error = 127, last.start_error
        elif last is not None and last.exit_code is not None:
            exit_code = last.exit_code
        elif reason == libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED or (last is not None and last.began):
            exit_code = 137  # destroyed (kill, or a stop that timed out)
        else:
            exit_code, error = 255, "micro-VM stopped without running the command"
        try:
            finished_at = _utc_naive(os.path.getmtime(log_path))
        except FileNotFoundError:
            finished_at = started_at
        if started_at is not None and finished_at is not None and finished_at < started_at:
            finished_at = started_at
    else:  # crashed
        status = RuntimeStatus.DEAD
        error = "micro-VM crashed"
    return RuntimeState(
        uuid=(meta.uuid if meta else uuid), runtime_id=dom.UUIDString(), status=status,
        exit_code=exit_code, started_at=started_at, finished_at=finished_at,
        hostname=(meta.hostname or None) if meta else None,
        ports=tuple(meta.ports) if meta else (), error=error,
        node=meta.node if meta else None, project_id=meta.project_id if meta else None)


def untraversable_parent(path: str) -> str | None:
    """The first directory on ``path``'s way up that others cannot enter, if any."""
    path = os.path.abspath(path)
    while True:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def _sweep_orphans(cfg: LibvirtConfig, live_names: set) -> None:
    """Delete console logs / records / initrds whose domain is gone (auto_remove
    guests vanish on their own) once they are older than ORPHAN_AGE_S."""
    now = time.time()
    for directory in (cfg.console_path, os.path.join(cfg.images_path, "containers"),
                      cfg.socket_dir):
        try:
            entries = os.listdir(directory)
        except FileNotFoundError:
            continue
        for entry in entries:
            if not entry.startswith(("zun-", POOL_PREFIX)):
                continue
            name = entry.split(".", 1)[0]
            if name in live_names:
                continue
            path = os.path.join(directory, entry)
            try:
                if now - os.path.getmtime(path) > ORPHAN_AGE_S:
                    os.unlink(path)
            except FileNotFoundError:
                pass
