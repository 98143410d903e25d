"""Benchmark: micro-VM container create -> running through zund's libvirt runtime,
for each QEMU machine type (``pc`` and ``microvm``), against a bare
``qemu-system-x86_64`` boot of the same kernel and initramfs on the same machine
type (same memory, same accelerator, same kernel command line).

"running" is the moment the guest's init printed ``ZUND-OUTPUT-BEGIN`` on its
serial console: for the runtime, when ``start()`` returns (it waits for that
line); for the bare boot, when the line appears in the serial file (polled every
50 ms). Runtime and bare boots alternate (run i of each back to back) so load
drifts hit both alike. Prints one JSON object: per machine type the medians,
samples and ``ratio = runtime median / bare median`` (target <= 1.15), and
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
from zund.runtimes.libvirt import LibvirtConfig, LibvirtRuntime, _read_tsc_khz
from zund.runtimes.microvm import domain_xml as dx
from zund.runtimes.microvm.init import BEGIN_MARKER

IMAGE = "zund-test/busybox:latest"
COMMAND = ("sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done')
NODE = "bench-microvm"
TARGET_RATIO = 1.15


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
    try:
        for i in range(runs + 1):  # run 0 warms the image cache and is not counted
            uuid = str(uuidlib.uuid4())
            t0 = time.monotonic()
            await rt.create(ContainerSpec(uuid=uuid, image=IMAGE, node=NODE,
                                          project_id="bench", command=COMMAND))
            await rt.start(uuid)
            elapsed = time.monotonic() - t0
            if i == 0:
                initrd_copy = os.path.join(workdir, f"bench-{machine}.initrd")
                shutil.copyfile(rt._initrd_path(uuid), initrd_copy)
                os.chmod(initrd_copy, 0o644)
            else:
                samples.append(elapsed)
            await rt.remove(uuid, True)
            if i > 0:  # the bare boot of the same initrd right after (blocking: fine here)
                bare.append(bare_run(cfg.kernel_path, initrd_copy, memory_mb, accel, machine,
                                     cmdline, workdir))
    finally:
        await rt.close()
        pool.stop()
    rt_med, bare_med = statistics.median(samples), statistics.median(bare)
    return {"machine": machine, "cmdline": cmdline,
            "runtime_median_s": round(rt_med, 3), "bare_qemu_median_s": round(bare_med, 3),
            "ratio": round(rt_med / bare_med, 3), "target_ratio": TARGET_RATIO,
            "met": rt_med / bare_med <= TARGET_RATIO,
            "runtime_samples_s": [round(x, 3) for x in samples],
            "bare_qemu_samples_s": [round(x, 3) for x in bare]}


def bare_argv(kernel: str, initrd: str, memory_mb: int, accel: str, machine: str,
              cmdline: str, serial: str) -> list:
    """What libvirt runs, minus libvirt: same machine (ACPI on), kernel, initrd,
    command line and serial console."""
    return ["qemu-system-x86_64", "-machine", f"{machine},accel={accel}", "-m", str(memory_mb),
            "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
            "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
            "-chardev", f"file,id=s0,path={serial}", "-serial", "chardev:s0",
            "-no-reboot"]


def bare_run(kernel: str, initrd: str, memory_mb: int, accel: str, machine: str,
             cmdline: str, workdir: str, timeout_s: float = 120.0) -> float:
    serial = os.path.join(workdir, f"bare-{uuidlib.uuid4().hex[:8]}.log")
    argv = bare_argv(kernel, initrd, memory_mb, accel, machine, cmdline, serial)
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        while True:
            try:
                with open(serial, "rb") as f:
                    if BEGIN_MARKER.encode() in f.read():
                        return time.monotonic() - t0
            except FileNotFoundError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"bare qemu exited early: {proc.stderr.read().decode()[-500:]}")
            if time.monotonic() - t0 > timeout_s:
                raise RuntimeError("bare qemu did not reach the marker")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        try:
            os.unlink(serial)
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
