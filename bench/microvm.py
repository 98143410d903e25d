"""Benchmark: micro-VM container create -> running through zund's libvirt runtime,
for each QEMU machine type (``pc`` and ``microvm``), against a bare
``qemu-system-x86_64`` boot of the same guest.

The bare reference is libvirt's own QEMU, minus libvirt. During the warm-up
round the bench reads the command line of the QEMU libvirt started
(``/proc/<pid>/cmdline``) and runs exactly that (:func:`bare_argv_from_runtime`):
same machine (ACPI on), ``-accel``, ``-cpu``, memory backend, ``-overcommit``,
``-smp``, ``-rtc``, ``-nodefaults``, kernel, kernel command line, initramfs (a copy
of the runtime's own), serial console in a file (ttyS0), control line as a UNIX
socket (ttyS1) and libvirt's ``-sandbox`` (QEMU's seccomp filter: on a kernel
whose ``spec_store_bypass_disable`` mode is ``seccomp``, e.g. before Linux 5.16,
a seccomp'd process runs with Speculative Store Bypass Disable, which costs TCG
~30 % CPU here (measured with the same prctl on the bare QEMU) — a reference
without the sandbox would not pay it; on this host's ``prctl`` mode neither side
does). It drops only what belongs to libvirt's handshake: ``-S``, the QMP monitor,
the master-key secret and the inherited file descriptors (replaced by paths).
It runs in a session of its own, so (with ``sched_autogroup``) it is its own
scheduling group, as libvirt's QEMU is in its machine cgroup, instead of sharing
CPU weight with this process; and, on a cgroup v1 host, in the cgroup shape
libvirt gives its QEMU (:class:`BareCgroups`: a sibling of the domain's cgroup,
main thread in ``emulator``, vCPU thread in ``vcpu0``, same ``cpu.shares``). So
the reference is made equal to the runtime, never the runtime slowed down to
the reference. Left out are libvirt's launch (namespaces, labels), the ~400 QMP
commands it sends before ``cont`` (libvirt fetches every x86 CPU feature with a
``qom-get``: about 0.2 s of QEMU CPU under TCG), and zund's own steps (image
lookup, initramfs write, define, boot wait).

"running" is the moment the guest's init printed ``ZUND-OUTPUT-BEGIN`` on its
serial console: for the runtime, when ``start()`` returns (it waits for that
line, reading the console every BOOT_POLL_S = 20 ms); for the bare boot, when
the line appears in the serial file (read every 20 ms too). Each round boots one
runtime guest and one bare guest back to back, alternating which goes first
(ABAB..., BABA...), so a load drift hits both sides alike.

Prints one JSON object; per machine type:

- ``runtime_s`` / ``bare_qemu_s``: min / median / max of the wall-clock samples
  (and the samples themselves), ``runtime_median_s``, ``bare_qemu_median_s``;
- ``ratio`` = runtime median / bare median (target <= 1.15), ``ratio_ci95``: its
  95 % bootstrap interval (``bench.stats.ratio_ci``);
  ``paired_ratio_median`` = median over rounds of runtime_i / bare_i (the two
  boots of one round ran back to back, under the same load), ``paired_ratios``,
  and ``min_ratio`` = fastest runtime / fastest bare boot (the least loaded pair);
- CPU per boot: ``cpu_ratio`` = the runtime's QEMU + libvirtd + this process's
  CPU up to "running" / the bare QEMU's CPU up to the marker (TCG boots are
  CPU-bound, so this holds better on a loaded host than wall-clock medians do;
  not fully: a TCG guest that is preempted more also spends more CPU, its clock
  running on, and caches go cold), with ``paired_cpu_ratio_median``;
  ``runtime_cpu_vcpu_median_s`` / ``bare_qemu_cpu_vcpu_median_s``: the vCPU
  thread's CPU alone (the guest's execution: equal on both sides when the two
  QEMUs run alike, the rest of the runtime's CPU being libvirt's QMP set-up and
  zund), ``runtime_launch_median_s``: create() call to libvirt's QEMU exec;
- ``qemu``: for each side, what a boot's speed depends on besides the command
  line: seccomp mode, Speculative Store Bypass / indirect-branch status,
  autogroup, cgroup of the main and the vCPU thread (v1 ``cpu`` path,
  ``cpu.shares``, quota; v2 path, ``cpu.weight``, ``cpu.max``), CPU affinity, and
  ``cgroup_mirror_error`` if the bare one could not be given libvirt's shape; the host's
  ``spec_store_bypass`` mitigation, CPU model and load average;
- libvirt's start apart from the guest's boot (:func:`time_start_handshake`
  times ``virDomain.create``, which returns after libvirt's QMP set-up and
  ``cont``): ``runtime_handshake_median_s`` (and its samples),
  ``runtime_cpu_qemu_at_cont_median_s``, ``runtime_guest_median_s`` (cont to
  "running"), ``runtime_cpu_vcpu_guest_median_s``, ``guest_ratio`` = guest
  part / whole bare boot (``paired_guest_ratio_median``): a missed target then
  says whether the guest ran slower under the runtime or the fixed start cost
  did it; per-round vCPU samples of both sides (``*_vcpu_samples_s``);
- the warm pool (``[libvirt] warm_pool_size = 1`` on a second runtime, same
  config otherwise): after the round's two boots, one create -> running served
  by a warm guest (booted ahead, waiting for its config), timed the same way;
  the pool's refill runs between rounds and is finished before a round starts
  (not timed): ``warm_median_s``, ``warm_ratio`` (to the bare median, same
  target), ``warm_create_median_s`` / ``warm_start_median_s``, ``warm_samples_s``;
- ``bare_argv``: the reference command line; ``microvm_speedup = pc runtime
  median / microvm runtime median``.

    python -m bench.microvm [--runs 10] [--machines pc,microvm] [--virt-type qemu]

Needs what tests/real/runtime/test_libvirt_contract.py needs (tools/setup-libvirt.sh,
tools/start-dockerd.sh, tools/build-test-image.sh). Guests have no network.
Only the QEMU processes this script starts are killed, by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib

import attrs
import libvirt
from twisted.internet import defer

from bench.stats import ratio_ci
from tests.support.libvirt_guests import wait_warm
from zund.runtimes.base import ContainerSpec, runtime_object_name
from zund.runtimes.executor import make_run_blocking
from zund.runtimes.libvirt import BOOT_POLL_S, LibvirtConfig, LibvirtRuntime
from zund.runtimes.microvm.init import BEGIN_MARKER

IMAGE = "zund-test/busybox:latest"
COMMAND = ("sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done')
NODE = "bench-microvm"
TARGET_RATIO = 1.15
#: How often the bare boot's serial file is read: as often as the runtime reads it.
BARE_POLL_S = BOOT_POLL_S


#: the fewest counted rounds a time budget may cut a machine's series to
MIN_RUNS = 3


async def machine_runs(reactor, cfg: LibvirtConfig, runs: int, workdir: str,
                       deadline: float | None = None) -> dict:
    """Round 0 (warm-up, not counted) boots a runtime guest, copies its initrd
    and reads its QEMU command line; then ``runs`` rounds of one runtime and one
    bare boot, alternating which goes first. With a ``deadline`` (monotonic), no
    round starts that the slowest round so far says would end after it, once
    MIN_RUNS rounds are in: the series is shorter, never lost."""
    run_blocking, pool = make_run_blocking(reactor, 4)
    pool.start()
    rt = LibvirtRuntime(cfg, NODE, run_blocking, reactor)
    await rt.open()
    machine = rt.machine_type
    # the same runtime with a warm pool of one (its own node name, same files)
    warm_rt = LibvirtRuntime(attrs.evolve(cfg, warm_pool_size=1), NODE + "-warm",
                             run_blocking, reactor)
    await warm_rt.open()
    rounds: list = []
    diag: dict = {}
    libvirtd = _libvirtd_pid()
    initrd_copy = os.path.join(workdir, f"bench-{machine}.initrd")
    runtime_argv: list = []
    layout: dict = {}

    async def runtime_boot(warm_up: bool) -> dict:
        uuid = str(uuidlib.uuid4())
        handshakes.pop(runtime_object_name(uuid), None)
        own0, lvd0 = time.process_time(), proc_cpu_s(libvirtd)
        t0, boot0 = time.monotonic(), time.clock_gettime(time.CLOCK_BOOTTIME)
        await rt.create(ContainerSpec(uuid=uuid, image=IMAGE, node=NODE,
                                      project_id="bench", command=COMMAND))
        t1 = time.monotonic()
        await rt.start(uuid)
        elapsed = time.monotonic() - t0
        pid = _pid_from(f"/run/libvirt/qemu/{runtime_object_name(uuid)}.pid")
        qemu, lvd1 = proc_cpu_s(pid), proc_cpu_s(libvirtd)
        exec_at = proc_start_boottime(pid)
        vcpu = vcpu_cpu_s(pid)
        cont = handshakes.get(runtime_object_name(uuid))
        sample = {"wall": elapsed, "create": t1 - t0, "start": elapsed - (t1 - t0),
                  "handshake": cont["returned"] - cont["called"] if cont else None,
                  "guest": t0 + elapsed - cont["returned"] if cont else None,
                  "qemu_at_cont": cont["qemu"] if cont else None,
                  "vcpu_guest": (vcpu - cont["vcpu"]) if cont and None not in (
                      vcpu, cont["vcpu"]) else None,
                  "launch": (exec_at - boot0) if exec_at is not None else None,
                  "qemu": qemu, "vcpu": vcpu, "zund": time.process_time() - own0,
                  "libvirtd": (lvd1 - lvd0) if None not in (lvd0, lvd1) else None}
        if warm_up:
            shutil.copyfile(rt._initrd_path(uuid), initrd_copy)
            os.chmod(initrd_copy, 0o644)
            runtime_argv.extend(proc_argv(pid))
            layout.update(cgroup_layout(pid))
        if "runtime" not in diag and pid is not None:
            diag["runtime"] = proc_diagnostics(pid)
        await rt.remove(uuid, True)
        return sample

    async def warm_boot() -> dict:
        uuid = str(uuidlib.uuid4())
        t0 = time.monotonic()
        await warm_rt.create(ContainerSpec(uuid=uuid, image=IMAGE, node=NODE + "-warm",
                                           project_id="bench", command=COMMAND))
        t1 = time.monotonic()
        await warm_rt.start(uuid)
        elapsed = time.monotonic() - t0
        await warm_rt.remove(uuid, True)
        return {"wall": elapsed, "create": t1 - t0, "start": elapsed - (t1 - t0)}

    def bare_boot() -> dict:  # blocking: fine in a benchmark
        wall, cpu, vcpu, info = bare_run(runtime_argv, initrd_copy, workdir, layout)
        diag.setdefault("bare", info)
        return {"wall": wall, "cpu": cpu, "vcpu": vcpu}

    handshakes: dict = {}
    restore = time_start_handshake(handshakes)
    try:
        await runtime_boot(warm_up=True)
        if not runtime_argv:
            raise RuntimeError("could not read the runtime's QEMU command line")
        await warm_boot()  # cold (empty pool): names the shape the pool warms
        slowest = 0.0
        for i in range(runs):
            if (deadline is not None and i >= MIN_RUNS
                    and time.monotonic() + slowest > deadline):
                break
            t_round = time.monotonic()
            # not timed: the pool refills between creates; a round's boots never
            # share the CPU with the refill
            await wait_warm(warm_rt, timeout_s=cfg.boot_timeout_s)
            if i % 2 == 0:
                r = await runtime_boot(False)
                b = bare_boot()
            else:
                b = bare_boot()
                r = await runtime_boot(False)
            w = await warm_boot()
            rounds.append({"runtime": r, "bare": b, "warm": w})
            slowest = max(slowest, time.monotonic() - t_round)
    finally:
        restore()
        await warm_rt.close()
        await rt.close()
        pool.stop()
    out = {"machine": machine, "rounds": len(rounds),
           "cmdline": _arg_after(runtime_argv, "-append"),
           **summarize(rounds),
           "qemu": diag,
           "bare_argv": bare_argv_from_runtime(runtime_argv, initrd_copy, "<serial>",
                                               "<control>")}
    return out


def time_start_handshake(into: dict):
    """Record, per domain name, when libvirt's ``virDomain.create`` was called
    and returned (libvirt returns after its QMP set-up and ``cont``: the guest
    runs from then) and the QEMU's CPU (all threads, and the vCPU thread's) at
    that moment. A bench-only wrapper around the libvirt binding the runtime
    calls (the runtime is unchanged); returns the function that removes it."""
    original = libvirt.virDomain.create

    def create(dom):
        called = time.monotonic()
        result = original(dom)
        returned = time.monotonic()
        pid = _pid_from(f"/run/libvirt/qemu/{dom.name()}.pid")
        into[dom.name()] = {"called": called, "returned": returned,
                            "qemu": proc_cpu_s(pid), "vcpu": vcpu_cpu_s(pid)}
        return result

    libvirt.virDomain.create = create
    return lambda: setattr(libvirt.virDomain, "create", original)


def spread(values: list) -> dict:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3)}


def summarize(rounds: list) -> dict:
    """Medians, spreads, and ratios (of medians, paired per round, of minima) of
    ``[{"runtime": {...}, "bare": {...}}, ...]``."""
    rt = [r["runtime"]["wall"] for r in rounds]
    bare = [r["bare"]["wall"] for r in rounds]
    paired = [a / b for a, b in zip(rt, bare)]
    rt_med, bare_med = statistics.median(rt), statistics.median(bare)
    out = {"runtime_median_s": round(rt_med, 3), "bare_qemu_median_s": round(bare_med, 3),
           "ratio": round(rt_med / bare_med, 3),
           "ratio_ci95": list(ratio_ci(rt, bare)),
           "paired_ratio_median": round(statistics.median(paired), 3),
           "min_ratio": round(min(rt) / min(bare), 3),
           "target_ratio": TARGET_RATIO, "met": rt_med / bare_med <= TARGET_RATIO,
           "runtime_s": spread(rt), "bare_qemu_s": spread(bare),
           **warm_figures(rounds, bare_med),
           "runtime_create_median_s": round(statistics.median(
               r["runtime"]["create"] for r in rounds), 3),
           "runtime_start_median_s": round(statistics.median(
               r["runtime"]["start"] for r in rounds), 3),
           "paired_ratios": [round(x, 3) for x in paired],
           **_median_of(rounds, "runtime", "launch", "runtime_launch_median_s"),
           **_median_of(rounds, "runtime", "handshake", "runtime_handshake_median_s"),
           **_median_of(rounds, "runtime", "qemu_at_cont", "runtime_cpu_qemu_at_cont_median_s"),
           **_median_of(rounds, "runtime", "guest", "runtime_guest_median_s"),
           **_median_of(rounds, "runtime", "vcpu_guest", "runtime_cpu_vcpu_guest_median_s"),
           **guest_figures(rounds),
           **_median_of(rounds, "runtime", "vcpu", "runtime_cpu_vcpu_median_s"),
           **_median_of(rounds, "bare", "vcpu", "bare_qemu_cpu_vcpu_median_s"),
           **cpu_figures([r["runtime"] for r in rounds], [r["bare"]["cpu"] for r in rounds]),
           "runtime_samples_s": [round(x, 3) for x in rt],
           "bare_qemu_samples_s": [round(x, 3) for x in bare],
           "runtime_vcpu_samples_s": [_round(r["runtime"].get("vcpu")) for r in rounds],
           "bare_vcpu_samples_s": [_round(r["bare"].get("vcpu")) for r in rounds]}
    return out


def warm_figures(rounds: list, bare_median: float) -> dict:
    """create -> running when a warm-pool guest serves the create (booted ahead,
    it waits for its config): median, ratio to the bare boot's median (the same
    target), and the create / start split."""
    warm = [r["warm"] for r in rounds if r.get("warm")]
    if not warm:
        return {}
    med = statistics.median(w["wall"] for w in warm)
    return {"warm_median_s": round(med, 3), "warm_ratio": round(med / bare_median, 3),
            "warm_met": med / bare_median <= TARGET_RATIO,
            "warm_create_median_s": round(statistics.median(w["create"] for w in warm), 3),
            "warm_start_median_s": round(statistics.median(w["start"] for w in warm), 3),
            "warm_samples_s": [round(w["wall"], 3) for w in warm]}


def guest_figures(rounds: list) -> dict:
    """The runtime's boot without libvirt's start handshake (from ``cont`` to
    "running") against the whole bare boot (QEMU exec to the marker: it also
    holds QEMU's own start-up, ~0.05 s, so this favours neither side unduly):
    whether the guest itself runs slower under the runtime, apart from the
    fixed cost of starting a domain through libvirt."""
    pairs = [(r["runtime"]["guest"], r["bare"]["wall"]) for r in rounds
             if r["runtime"].get("guest") is not None]
    if not pairs:
        return {}
    return {"guest_ratio": round(statistics.median(g for g, _ in pairs)
                                 / statistics.median(b for _, b in pairs), 3),
            "paired_guest_ratio_median": round(statistics.median(g / b for g, b in pairs), 3),
            "runtime_handshake_samples_s": [round(r["runtime"]["handshake"], 3)
                                            for r in rounds
                                            if r["runtime"].get("handshake") is not None]}


def _round(value):
    return None if value is None else round(value, 3)


def _median_of(rounds: list, side: str, key: str, name: str) -> dict:
    vals = [r[side][key] for r in rounds if r[side].get(key) is not None]
    return {name: round(statistics.median(vals), 3) if vals else None}


def cpu_figures(runtime: list, bare_cpu: list) -> dict:
    """CPU per boot: the runtime's QEMU up to "running" (guest + libvirt's QMP
    set-up) + libvirtd + this process (zund's own steps), against the bare QEMU
    up to the marker; medians, the bare side's spread and the paired ratio."""
    def med(key):
        vals = [r[key] for r in runtime if r[key] is not None]
        return statistics.median(vals) if vals else None

    out = {f"runtime_cpu_{k}_median_s": (round(med(k), 3) if med(k) is not None else None)
           for k in ("qemu", "libvirtd", "zund")}
    bare_vals = [c for c in bare_cpu if c is not None]
    out["bare_qemu_cpu_median_s"] = round(statistics.median(bare_vals), 3) if bare_vals else None
    totals = [r["qemu"] + r["zund"] + (r["libvirtd"] or 0.0) if r["qemu"] is not None else None
              for r in runtime]
    pairs = [(t, b) for t, b in zip(totals, bare_cpu) if None not in (t, b)]
    if pairs:
        out["runtime_cpu_total_s"] = spread([t for t, _ in pairs])
        out["bare_qemu_cpu_s"] = spread([b for _, b in pairs])
        out["cpu_ratio"] = round(statistics.median(t for t, _ in pairs)
                                 / statistics.median(b for _, b in pairs), 3)
        out["paired_cpu_ratio_median"] = round(statistics.median(t / b for t, b in pairs), 3)
    return out


def proc_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (all threads) a process has used, or None if unreadable."""
    if pid is None:
        return None
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        return None


def vcpu_cpu_s(pid: int | None) -> float | None:
    """CPU seconds of a QEMU's vCPU thread (named "CPU 0/TCG" with
    ``debug-threads=on``): the guest's own execution, without the main loop's
    I/O and libvirt's QMP set-up."""
    for tid in _listdir(f"/proc/{pid}/task"):
        if (_read(f"/proc/{pid}/task/{tid}/comm") or "").startswith("CPU 0"):
            try:
                return int(_read(f"/proc/{pid}/task/{tid}/schedstat").split()[0]) / 1e9
            except (AttributeError, ValueError, IndexError):
                return None
    return None


def proc_start_boottime(pid: int | None) -> float | None:
    """When a process was started, in CLOCK_BOOTTIME seconds (1/CLK_TCK resolution)."""
    try:
        fields = _read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, IndexError):
        return None


def proc_argv(pid: int | None) -> list:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode() for a in f.read().split(b"\0") if a]
    except (OSError, TypeError):
        return []


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def proc_diagnostics(pid: int) -> dict:
    """What a TCG boot's speed depends on besides the command line."""
    out: dict = {}
    status = _read(f"/proc/{pid}/status") or ""
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("Seccomp", "Speculation_Store_Bypass", "SpeculationIndirectBranch",
                   "Cpus_allowed_list", "NoNewPrivs"):
            out[key] = value.strip()
    out["autogroup"] = _read(f"/proc/{pid}/autogroup")
    out["main_thread"] = _cgroup_cpu(f"/proc/{pid}/cgroup")
    for tid in _listdir(f"/proc/{pid}/task"):  # the vCPU thread (named with debug-threads)
        if (_read(f"/proc/{pid}/task/{tid}/comm") or "").startswith("CPU 0"):
            out["vcpu_thread"] = _cgroup_cpu(f"/proc/{pid}/task/{tid}/cgroup")
    return out


def _listdir(path: str) -> list:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _cgroup_cpu(path: str) -> dict:
    """The CPU cgroup a task is in, and its weight / quota (v1 or v2)."""
    out: dict = {}
    for line in (_read(path) or "").splitlines():
        _, controllers, cg = line.split(":", 2)
        if "cpu" in controllers.split(","):
            base = "/sys/fs/cgroup/" + controllers
            out.update(cgroup_v1_cpu=cg, cpu_shares=_read(f"{base}{cg}/cpu.shares"),
                       cfs_quota_us=_read(f"{base}{cg}/cpu.cfs_quota_us"))
        elif controllers == "" and os.path.exists(f"/sys/fs/cgroup{cg}/cpu.weight"):
            out.update(cgroup_v2=cg, cpu_weight=_read(f"/sys/fs/cgroup{cg}/cpu.weight"),
                       cpu_max=_read(f"/sys/fs/cgroup{cg}/cpu.max"))
    return out


def host_diagnostics() -> dict:
    model = ""
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"cpu_model": model, "cpus": os.cpu_count(),
            "spec_store_bypass": _read(
                "/sys/devices/system/cpu/vulnerabilities/spec_store_bypass"),
            "loadavg": _read("/proc/loadavg")}


def _pid_from(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _libvirtd_pid() -> int | None:
    for path in ("/run/libvirtd.pid", "/run/libvirt/virtqemud.pid"):
        pid = _pid_from(path)
        if pid is not None:
            return pid
    return None


def _arg_after(argv: list, flag: str) -> str:
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else ""


def _opts(value: str) -> list:
    return value.split(",")


def bare_argv_from_runtime(argv: list, initrd: str, serial: str, control: str) -> list:
    """libvirt's QEMU command line ``argv`` minus libvirt's handshake: no ``-S``,
    no QMP monitor (``-chardev ...id=charmonitor`` and ``-mon``), no master-key
    secret, the ``-initrd`` a copy, and the inherited file descriptors replaced
    by paths: the console file chardev (``-add-fd`` + ``path=/dev/fdset/N``)
    writes ``serial``, the control socket (``fd=N``) listens on ``control``.
    Everything else (machine, accel, cpu, memory, sandbox...) is kept as is; an
    option passing a descriptor this function does not know raises ValueError
    rather than give a reference that differs from the runtime."""
    out = [argv[0] if argv else "qemu-system-x86_64"]
    monitors = set()
    i = 1
    while i < len(argv):
        flag = argv[i]
        # QEMU options without a value (-S, -nodefaults, -no-shutdown...) are
        # followed by the next option; no value libvirt writes starts with "-".
        value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else None
        if flag == "-S":
            i += 1
            continue
        if value is None:
            out.append(flag)
            i += 1
            continue
        if flag in ("-add-fd",) or (flag == "-object" and '"secret"' in value):
            i += 2
            continue
        if flag == "-chardev":
            opts = _opts(value)
            cid = next((o[3:] for o in opts if o.startswith("id=")), "")
            if cid == "charmonitor":
                monitors.add(cid)
                i += 2
                continue
            if opts[0] == "file" and any(o.startswith("path=/dev/fdset/") for o in opts):
                value = ",".join(f"path={serial}" if o.startswith("path=") else o
                                 for o in opts)
            elif opts[0] == "socket" and any(o.startswith("fd=") for o in opts):
                value = ",".join(f"path={control}" if o.startswith("fd=") else o
                                 for o in opts)
        elif flag == "-mon" and any(o == f"chardev={m}" for o in _opts(value)
                                    for m in monitors | {"charmonitor"}):
            i += 2
            continue
        elif flag == "-initrd":
            value = initrd
        if value.startswith("fd=") or ",fd=" in value or "/dev/fdset/" in value:
            raise ValueError(f"unknown descriptor in {flag} {value}")
        out += [flag, value]
        i += 2
    return out


def cgroup_layout(pid: int) -> dict:
    """The cgroup v1 CPU hierarchies (``cpu``, ``cpuacct``) libvirt put a domain's
    QEMU in: ``{controllers: {"main": path, "vcpu": path, "shares": {path: n}}}``
    for the main thread (libvirt's ``.../emulator``) and the vCPU thread
    (``.../vcpu0``). Empty on a cgroup v2 host (reported, not mirrored)."""
    tids = {"main": str(pid)}
    for tid in _listdir(f"/proc/{pid}/task"):
        if (_read(f"/proc/{pid}/task/{tid}/comm") or "").startswith("CPU 0"):
            tids["vcpu"] = tid
    out: dict = {}
    for role, tid in tids.items():
        for line in (_read(f"/proc/{pid}/task/{tid}/cgroup") or "").splitlines():
            _, controllers, path = line.split(":", 2)
            if {"cpu", "cpuacct"} & set(controllers.split(",")) and path != "/":
                out.setdefault(controllers, {})[role] = path
    for controllers, paths in list(out.items()):
        if set(paths) != {"main", "vcpu"}:
            del out[controllers]
            continue
        domain = os.path.commonpath([paths["main"], paths["vcpu"]])
        paths["shares"] = {p: _read(f"/sys/fs/cgroup/{controllers}{p}/cpu.shares")
                           for p in (domain, paths["main"], paths["vcpu"])}
    return out


class BareCgroups:
    """The same cgroup shape for the bare QEMU as libvirt gives its QEMU: a
    sibling of the domain's cgroup (``machine/zund-bench-bare-<tag>``) with the
    main thread in ``emulator`` and the vCPU thread in ``vcpu0``, same
    ``cpu.shares``; removed afterwards. On 2 busy cores the group a vCPU thread
    is scheduled in changes how often it is preempted, and a preempted TCG guest
    also spends more CPU (its clock runs on: more timer work per boot)."""

    def __init__(self, layout: dict, tag: str):
        self.dirs: list = []  # (base, new path of main, new path of vcpu)
        self.layout, self.tag, self.error = layout, tag, None

    def attach(self, pid: int, deadline_s: float = 2.0) -> None:
        if not self.layout:
            return
        try:
            vcpu_tid = None
            end = time.monotonic() + deadline_s
            while vcpu_tid is None and time.monotonic() < end:
                for tid in _listdir(f"/proc/{pid}/task"):
                    if (_read(f"/proc/{pid}/task/{tid}/comm") or "").startswith("CPU 0"):
                        vcpu_tid = tid
                if vcpu_tid is None:
                    time.sleep(0.002)
            if vcpu_tid is None:
                raise OSError("no vCPU thread")
            for controllers, paths in self.layout.items():
                base = f"/sys/fs/cgroup/{controllers}"
                domain = os.path.commonpath([paths["main"], paths["vcpu"]])
                mine = os.path.join(os.path.dirname(domain), f"zund-bench-bare-{self.tag}")
                made = []
                for src, dst in ((domain, mine),
                                 (paths["main"], mine + paths["main"][len(domain):]),
                                 (paths["vcpu"], mine + paths["vcpu"][len(domain):])):
                    os.makedirs(base + dst, exist_ok=True)
                    made.append(dst)
                    shares = paths["shares"].get(src)
                    if shares:
                        with open(f"{base}{dst}/cpu.shares", "w") as f:
                            f.write(shares)
                self.dirs.append((base, made))
                with open(f"{base}{made[1]}/cgroup.procs", "w") as f:
                    f.write(str(pid))
                with open(f"{base}{made[2]}/tasks", "w") as f:
                    f.write(vcpu_tid)
        except OSError as e:
            self.error = str(e)

    def remove(self) -> None:
        for base, made in self.dirs:
            for path in reversed(made):
                end = time.monotonic() + 1.0
                while True:  # a reaped task may take a moment to leave its cgroup
                    try:
                        os.rmdir(base + path)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        if time.monotonic() > end:
                            break
                        time.sleep(0.01)


def bare_run(runtime_argv: list, initrd: str, workdir: str, layout: dict | None = None,
             timeout_s: float = 120.0) -> tuple:
    """``(seconds to the marker, QEMU CPU seconds by then, of which its vCPU
    thread's, its diagnostics)``; in the runtime's cgroup shape if ``layout``."""
    tag = uuidlib.uuid4().hex[:8]
    serial = os.path.join(workdir, f"bare-{tag}.log")
    control = os.path.join(workdir, f"bare-{tag}.ctl")
    argv = bare_argv_from_runtime(runtime_argv, initrd, serial, control)
    t0 = time.monotonic()
    # Its own session, so its own scheduling group (autogroup) like libvirt's QEMU
    # (in its machine cgroup): it does not share CPU weight with this process.
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    cgroups = BareCgroups(layout or {}, tag)
    try:
        cgroups.attach(proc.pid)
        while True:
            try:
                with open(serial, "rb") as f:
                    if BEGIN_MARKER.encode() in f.read():
                        wall = time.monotonic() - t0
                        info = proc_diagnostics(proc.pid)
                        if cgroups.error:
                            info["cgroup_mirror_error"] = cgroups.error
                        return wall, proc_cpu_s(proc.pid), vcpu_cpu_s(proc.pid), info
            except FileNotFoundError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"bare qemu exited early: {proc.stderr.read().decode()[-500:]}")
            if time.monotonic() - t0 > timeout_s:
                raise RuntimeError("bare qemu did not reach the marker")
            time.sleep(BARE_POLL_S)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        cgroups.remove()
        for path in (serial, control):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--machines", default="pc,microvm")
    ap.add_argument("--virt-type", default="qemu", choices=["qemu", "kvm"])
    ap.add_argument("--memory-mb", type=int, default=128)
    ap.add_argument("--time-budget-s", type=float, default=None,
                    help="stop starting rounds (never below %d per machine) when the "
                         "slowest round so far would end after this; machines share it "
                         "equally" % MIN_RUNS)
    ap.add_argument("--kernel", default=os.environ.get("ZUND_MICROVM_KERNEL",
                                                       "/var/lib/zund/microvm/vmlinuz"))
    args = ap.parse_args(argv)

    state = tempfile.mkdtemp(prefix="zund-bench-microvm-", dir="/var/tmp")
    os.chmod(state, 0o755)
    machines = [m.strip() for m in args.machines.split(",") if m.strip()]
    host_before = host_diagnostics()
    try:
        out: dict = {}

        end = (time.monotonic() + args.time_budget_s) if args.time_budget_s else None

        async def _go(reactor):
            for k, machine in enumerate(machines):
                deadline = None
                if end is not None:  # an equal share of what is left
                    now = time.monotonic()
                    deadline = now + (end - now) / (len(machines) - k)
                cfg = LibvirtConfig(virt_type=args.virt_type, kernel_path=args.kernel,
                                    default_memory_mb=args.memory_mb, min_memory_mb=64,
                                    images_path=os.path.join(state, "images"),
                                    console_path=os.path.join(state, "console"),
                                    volumes_path=os.path.join(state, "volumes"),
                                    machine_type=machine)
                out[machine] = await machine_runs(reactor, cfg, args.runs, state, deadline)

        from twisted.internet import reactor  # a script: the global reactor is fine here
        d = defer.ensureDeferred(_go(reactor))
        d.addBoth(lambda r: (reactor.stop(), r)[1])
        failures = []
        d.addErrback(failures.append)
        reactor.run()
        if failures:
            failures[0].raiseException()
        result = {"benchmark": "microvm_create_to_running", "virt_type": args.virt_type,
                  "memory_mb": args.memory_mb, "runs": args.runs, "target_ratio": TARGET_RATIO,
                  "host": {**host_before, "loadavg_after": _read("/proc/loadavg")},
                  "machines": out}
        if "pc" in out and "microvm" in out:
            result["microvm_speedup"] = round(
                out["pc"]["runtime_median_s"] / out["microvm"]["runtime_median_s"], 3)
        print(json.dumps(result))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
