"""Benchmark: micro-VM container create -> running through zund's libvirt runtime,
against a bare ``qemu-system-x86_64`` boot of the same kernel and initramfs (same
memory, same accelerator).

"running" is the moment the guest's init printed ``ZUND-OUTPUT-BEGIN`` on its
serial console: for the runtime, when ``start()`` returns (it waits for that
line); for the bare boot, when the line appears in the serial file (polled every
50 ms). Prints one JSON object: medians, per-run samples and
``ratio = runtime median / bare median`` (target <= 1.2).

    python -m bench.microvm [--runs 10] [--virt-type qemu] [--memory-mb 128]

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
from zund.runtimes.libvirt import LibvirtConfig, LibvirtRuntime
from zund.runtimes.microvm import domain_xml as dx
from zund.runtimes.microvm.init import BEGIN_MARKER

IMAGE = "zund-test/busybox:latest"
COMMAND = ("sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done')
NODE = "bench-microvm"


async def runtime_runs(reactor, cfg: LibvirtConfig, runs: int) -> tuple[list, str]:
    run_blocking, pool = make_run_blocking(reactor, 4)
    pool.start()
    rt = LibvirtRuntime(cfg, NODE, run_blocking, reactor)
    await rt.open()
    samples, initrd_copy = [], ""
    try:
        for i in range(runs + 1):  # run 0 warms the image cache and is not counted
            uuid = str(uuidlib.uuid4())
            t0 = time.monotonic()
            await rt.create(ContainerSpec(uuid=uuid, image=IMAGE, node=NODE,
                                          project_id="bench", command=COMMAND))
            await rt.start(uuid)
            elapsed = time.monotonic() - t0
            if i == 0:
                initrd_copy = os.path.join(os.path.dirname(cfg.images_path), "bench.initrd")
                shutil.copyfile(rt._initrd_path(uuid), initrd_copy)
                os.chmod(initrd_copy, 0o644)
            else:
                samples.append(elapsed)
            await rt.remove(uuid, True)
    finally:
        await rt.close()
        pool.stop()
    return samples, initrd_copy


def bare_run(kernel: str, initrd: str, memory_mb: int, accel: str, workdir: str,
             timeout_s: float = 120.0) -> float:
    serial = os.path.join(workdir, f"bare-{uuidlib.uuid4().hex[:8]}.log")
    argv = ["qemu-system-x86_64", "-machine", f"pc,accel={accel}", "-m", str(memory_mb),
            "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
            "-kernel", kernel, "-initrd", initrd, "-append", dx.BASE_CMDLINE,
            "-chardev", f"file,id=s0,path={serial}", "-serial", "chardev:s0",
            "-no-reboot"]
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
    ap.add_argument("--virt-type", default="qemu", choices=["qemu", "kvm"])
    ap.add_argument("--memory-mb", type=int, default=128)
    ap.add_argument("--kernel", default=os.environ.get("ZUND_MICROVM_KERNEL",
                                                       "/var/lib/zund/microvm/vmlinuz"))
    args = ap.parse_args(argv)

    state = tempfile.mkdtemp(prefix="zund-bench-microvm-", dir="/var/tmp")
    os.chmod(state, 0o755)
    cfg = LibvirtConfig(virt_type=args.virt_type, kernel_path=args.kernel,
                        default_memory_mb=args.memory_mb, min_memory_mb=64,
                        images_path=os.path.join(state, "images"),
                        console_path=os.path.join(state, "console"))
    result: dict = {}
    try:
        out: dict = {}

        async def _go(reactor):
            out["samples"], out["initrd"] = await runtime_runs(reactor, cfg, args.runs)

        from twisted.internet import reactor  # a script: the global reactor is fine here
        d = defer.ensureDeferred(_go(reactor))
        d.addBoth(lambda r: (reactor.stop(), r)[1])
        failures = []
        d.addErrback(failures.append)
        reactor.run()
        if failures:
            failures[0].raiseException()
        accel = "kvm" if args.virt_type == "kvm" else "tcg"
        bare = [bare_run(args.kernel, out["initrd"], args.memory_mb, accel, state)
                for _ in range(args.runs)]
        rt_med, bare_med = statistics.median(out["samples"]), statistics.median(bare)
        result = {
            "benchmark": "microvm_create_to_running",
            "virt_type": args.virt_type, "memory_mb": args.memory_mb, "runs": args.runs,
            "runtime_median_s": round(rt_med, 3), "bare_qemu_median_s": round(bare_med, 3),
            "ratio": round(rt_med / bare_med, 3), "target_ratio": 1.2,
            "runtime_samples_s": [round(s, 3) for s in out["samples"]],
            "bare_qemu_samples_s": [round(s, 3) for s in bare],
        }
        print(json.dumps(result))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
