"""Benchmark: micro-VM container create -> running through zund's libvirt runtime,
for each QEMU machine type (``pc`` and ``microvm``), against a bare
``qemu-system-x86_64`` boot of the same guest.

The bare reference is the same machine as the one libvirt starts, minus libvirt:
same machine type (ACPI on), accelerator, memory, 1 vCPU, kernel, kernel command
line and initramfs (a copy of the runtime's own), ``-nodefaults``, the serial
console in a file (ttyS0) and the control line as a UNIX socket (ttyS1, as in
zund's domain XML). It leaves out only what libvirt itself adds around QEMU:
its launch (namespaces, cgroups, labels), ``-S`` and the ~400 QMP commands it
sends before letting the guest run (libvirt fetches every x86 CPU feature with a
``qom-get``: about 0.2 s of QEMU CPU under TCG), plus zund's own steps (image
lookup, initramfs write, define, boot wait).

"running" is the moment the guest's init printed ``ZUND-OUTPUT-BEGIN`` on its
serial console: for the runtime, when ``start()`` returns (it waits for that
line, reading the console every BOOT_POLL_S = 20 ms); for the bare boot, when
the line appears in the serial file (read every 20 ms too). Runtime and bare
boots alternate (run i of each back to back) so load drifts hit both alike.
Prints one JSON object: per machine type the medians, samples and ``ratio = runtime median / bare
median`` (target <= 1.15), the runtime's create and start medians, CPU per
boot (``cpu_ratio`` = the runtime's QEMU + libvirtd + this process's CPU up to
"running" / the bare QEMU's CPU up to the marker: TCG boots are CPU-bound, so
this figure holds on a loaded host where wall-clock medians do not), and
``microvm_speedup = pc runtime median / microvm runtime median``.

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

from twisted.internet import defer

from zund.runtimes.base import ContainerSpec
from zund.runtimes.executor import make_run_blocking
from zund.runtimes.base import runtime_object_name
from zund.runtimes.libvirt import BOOT_POLL_S, LibvirtConfig, LibvirtRuntime, _read_tsc_khz
from zund.runtimes.microvm import domain_xml as dx
from zund.runtimes.microvm.init import BEGIN_MARKER

IMAGE = "zund-test/busybox:latest"
COMMAND = ("sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done')
NODE = "bench-microvm"
TARGET_RATIO = 1.15
#: How often the bare boot's serial file is read: as often as the runtime reads it.
BARE_POLL_S = BOOT_POLL_S


async def machine_runs(reactor, cfg: LibvirtConfig, runs: int, memory_mb: int,
                       accel: str, workdir: str) -> dict:
    """``runs`` interleaved (runtime, bare) pairs on ``cfg.machine_type``."""
    run_blocking, pool = make_run_blocking(reactor, 4)
    pool.start()
    rt = LibvirtRuntime(cfg, NODE, run_blocking, reactor)
    await rt.open()
    machine = rt.machine_type
    cmdline = dx.kernel_cmdline(machine, rt.virt_type, _read_tsc_khz())
    samples, bare, initrd_copy = [], [], ""
    creates, starts, cpu, bare_cpu = [], [], [], []
    libvirtd = _libvirtd_pid()
    try:
        for i in range(runs + 1):  # run 0 warms the image cache and is not counted
            uuid = str(uuidlib.uuid4())
            own0, lvd0 = time.process_time(), proc_cpu_s(libvirtd)
            t0 = time.monotonic()
            await rt.create(ContainerSpec(uuid=uuid, image=IMAGE, node=NODE,
                                          project_id="bench", command=COMMAND))
            t1 = time.monotonic()
            await rt.start(uuid)
            elapsed = time.monotonic() - t0
            if i > 0:
                creates.append(t1 - t0)
                starts.append(elapsed - (t1 - t0))
                qemu = proc_cpu_s(_pid_from(f"/run/libvirt/qemu/{runtime_object_name(uuid)}.pid"))
                lvd1 = proc_cpu_s(libvirtd)
                cpu.append({"qemu": qemu, "zund": time.process_time() - own0,
                            "libvirtd": (lvd1 - lvd0) if None not in (lvd0, lvd1) else None})
            if i == 0:
                initrd_copy = os.path.join(workdir, f"bench-{machine}.initrd")
                shutil.copyfile(rt._initrd_path(uuid), initrd_copy)
                os.chmod(initrd_copy, 0o644)
            else:
                samples.append(elapsed)
            await rt.remove(uuid, True)
            if i > 0:  # the bare boot of the same initrd right after (blocking: fine here)
                wall, qemu_cpu = bare_run(cfg.kernel_path, initrd_copy, memory_mb, accel,
                                          machine, cmdline, workdir)
                bare.append(wall)
                bare_cpu.append(qemu_cpu)
    finally:
        await rt.close()
        pool.stop()
    rt_med, bare_med = statistics.median(samples), statistics.median(bare)
    return {"machine": machine, "cmdline": cmdline,
            "runtime_median_s": round(rt_med, 3), "bare_qemu_median_s": round(bare_med, 3),
            "ratio": round(rt_med / bare_med, 3), "target_ratio": TARGET_RATIO,
            "met": rt_med / bare_med <= TARGET_RATIO,
            "runtime_create_median_s": round(statistics.median(creates), 3),
            "runtime_start_median_s": round(statistics.median(starts), 3),
            **cpu_figures(cpu, bare_cpu),
            "runtime_samples_s": [round(x, 3) for x in samples],
            "bare_qemu_samples_s": [round(x, 3) for x in bare]}


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


def cpu_figures(runtime: list, bare_cpu: list) -> dict:
    """CPU per boot, robust to a loaded host (TCG boots are CPU-bound): the
    runtime's QEMU up to "running" (guest + libvirt's QMP set-up) + libvirtd + this
    process (zund's own steps), against the bare QEMU up to the marker."""
    def med(key):
        vals = [r[key] for r in runtime if r[key] is not None]
        return statistics.median(vals) if vals else None

    out = {f"runtime_cpu_{k}_median_s": (round(med(k), 3) if med(k) is not None else None)
           for k in ("qemu", "libvirtd", "zund")}
    bare_vals = [c for c in bare_cpu if c is not None]
    out["bare_qemu_cpu_median_s"] = round(statistics.median(bare_vals), 3) if bare_vals else None
    if None not in (med("qemu"), med("zund")) and bare_vals:
        total = med("qemu") + med("zund") + (med("libvirtd") or 0.0)
        out["cpu_ratio"] = round(total / statistics.median(bare_vals), 3)
    return out


def bare_argv(kernel: str, initrd: str, memory_mb: int, accel: str, machine: str,
              cmdline: str, serial: str, control: str) -> list:
    """What libvirt runs, minus libvirt: same machine (ACPI on), kernel, initrd,
    command line, serial console (ttyS0) and control line (ttyS1: a UNIX socket
    QEMU listens on, nobody connects)."""
    return ["qemu-system-x86_64", "-machine", f"{machine},accel={accel}", "-m", str(memory_mb),
            "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
            "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
            "-chardev", f"file,id=s0,path={serial}", "-serial", "chardev:s0",
            "-chardev", f"socket,id=s1,path={control},server=on,wait=off",
            "-serial", "chardev:s1", "-no-reboot"]


def bare_run(kernel: str, initrd: str, memory_mb: int, accel: str, machine: str,
             cmdline: str, workdir: str, timeout_s: float = 120.0) -> tuple:
    """``(seconds to the marker, QEMU CPU seconds by then)``."""
    tag = uuidlib.uuid4().hex[:8]
    serial = os.path.join(workdir, f"bare-{tag}.log")
    control = os.path.join(workdir, f"bare-{tag}.ctl")
    argv = bare_argv(kernel, initrd, memory_mb, accel, machine, cmdline, serial, control)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        while True:
            try:
                with open(serial, "rb") as f:
                    if BEGIN_MARKER.encode() in f.read():
                        return time.monotonic() - t0, proc_cpu_s(proc.pid)
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
    ap.add_argument("--kernel", default=os.environ.get("ZUND_MICROVM_KERNEL",
                                                       "/var/lib/zund/microvm/vmlinuz"))
    args = ap.parse_args(argv)

    state = tempfile.mkdtemp(prefix="zund-bench-microvm-", dir="/var/tmp")
    os.chmod(state, 0o755)
    accel = "kvm" if args.virt_type == "kvm" else "tcg"
    machines = [m.strip() for m in args.machines.split(",") if m.strip()]
    try:
        out: dict = {}

        async def _go(reactor):
            for machine in machines:
                cfg = LibvirtConfig(virt_type=args.virt_type, kernel_path=args.kernel,
                                    default_memory_mb=args.memory_mb, min_memory_mb=64,
                                    images_path=os.path.join(state, "images"),
                                    console_path=os.path.join(state, "console"),
                                    volumes_path=os.path.join(state, "volumes"),
                                    machine_type=machine)
                out[machine] = await machine_runs(reactor, cfg, args.runs, args.memory_mb,
                                                  accel, state)

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
