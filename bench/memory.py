"""Resident memory of one ``zund serve``: idle, and holding N containers on the fake
runtime (created through the API); beside it, in the same run, the RSS of one Serf
agent on loopback and of the running dockerd. Prints JSON.

    python bench/memory.py [--containers 1000] [--clients 8]

RSS is ``VmRSS`` of ``/proc/<pid>/status`` (resident, shared pages included, as
``ps`` shows it). "Idle" is read after the node answered its health check and
``--settle-s`` more seconds (the gossip and sync loops have run). The loaded
figure is read after every create reached Running and ``--settle-s`` more.
dockerd's pid comes from ``$ZUND_CI_DIR/dockerd.pid`` (tools/start-dockerd.sh);
without it, or without a ``serf`` binary, that reference is null with the reason.
Targets (issue 13 §5): <= 60 MB idle, <= 80 MB with 1,000 containers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.support.nodeproc import ZundProcess, free_port  # noqa: E402

IMAGE = "zund-test/busybox:latest"
TARGET_IDLE_MB = 60.0
TARGET_LOADED_MB = 80.0


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MB (1 MB = 1024 kB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for pid {pid}")


def dockerd_rss() -> tuple[float | None, str | None]:
    """(RSS MB, None) of the dockerd tools/start-dockerd.sh started, or (None, why)."""
    ci_dir = os.environ.get("ZUND_CI_DIR", "/tmp/zund-dev")
    path = os.path.join(ci_dir, "dockerd.pid")
    try:
        with open(path) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() != "dockerd":
                return None, f"pid {pid} of {path} is not dockerd"
        return rss_mb(pid), None
    except (OSError, ValueError) as e:
        return None, f"no dockerd pid: {e}"


def serf_rss(settle_s: float, wd: str) -> tuple[float | None, str | None]:
    """RSS of one Serf agent on loopback, started and stopped (by its pid) here."""
    serf = shutil.which("serf") or ("/usr/bin/serf" if os.path.exists("/usr/bin/serf") else None)
    if serf is None:
        return None, "serf binary not found"
    bind, rpc = free_port(), free_port()
    log = open(os.path.join(wd, "serf.log"), "ab")
    proc = subprocess.Popen([serf, "agent", "-node=memory-bench", f"-bind=127.0.0.1:{bind}",
                             f"-rpc-addr=127.0.0.1:{rpc}"], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        time.sleep(settle_s)  # a measurement window, not synchronisation
        if proc.poll() is not None:
            return None, f"serf exited with {proc.returncode}"
        return rss_mb(proc.pid), None
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


def create_many(node: ZundProcess, count: int, clients: int, deadline: float) -> int:
    """POST ``count`` containers (run) from ``clients`` threads; returns how many
    were accepted. Each thread keeps one HTTP connection."""
    nxt = iter(range(count))
    lock = threading.Lock()
    accepted = [0]
    errors: list[str] = []

    def loop():
        s = requests.Session()
        headers = {"X-Auth-Token": "admin:demo", "OpenStack-API-Version": "container 1.40"}
        while time.monotonic() < deadline:
            with lock:
                i = next(nxt, None)
            if i is None:
                return
            r = s.post(node.endpoint + "/containers?run=true", headers=headers, timeout=60,
                       json={"name": f"mem-{i}", "image": IMAGE, "command": ["true"],
                             "cpu": 0.1, "memory": 16})
            with lock:
                if r.status_code == 202:
                    accepted[0] += 1
                elif len(errors) < 3:
                    errors.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print(f"memory: some creates refused: {errors}", file=sys.stderr)
    return accepted[0]


def wait_settled(node: ZundProcess, count: int, deadline: float) -> int:
    """Wait (polling the list) until ``count`` containers exist and none is still
    Creating; returns how many have settled (their command ``true`` ran: Stopped)."""
    settled = 0
    while time.monotonic() < deadline:
        r = node.api("GET", "/containers")
        items = r.json().get("containers", []) if r.status_code == 200 else []
        settled = sum(1 for c in items if c.get("status") not in ("Creating", None))
        if len(items) >= count and settled == len(items):
            return settled
        time.sleep(0.5)
    return settled


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--settle-s", type=float, default=3.0)
    ap.add_argument("--timeout-s", type=float, default=240.0,
                    help="bound on creating and settling the containers")
    args = ap.parse_args(argv)
    wd = tempfile.mkdtemp(prefix="zund-bench-memory-")
    out: dict = {"benchmark": "memory", "containers": args.containers,
                 "target_idle_mb": TARGET_IDLE_MB, "target_loaded_mb": TARGET_LOADED_MB}
    n = max(1, args.containers)
    node = ZundProcess(wd, name=f"mem-{os.getpid()}", runtimes="fake", extra={
        "DEFAULT": {"sync_container_state_interval": "60"},
        "quota": {"enforce": "false"},
        "console": {"port": str(free_port())}, "metrics": {"port": str(free_port())},
        "nova_api": {"port": str(free_port())},
        "compute": {"total_cpus": str(max(16, n)), "total_memory_mb": str(max(8192, 32 * n)),
                    "reserved_host_memory_mb": "0", "cpu_allocation_ratio": "1.0",
                    "ram_allocation_ratio": "1.0"},
    })
    node.start()
    try:
        time.sleep(args.settle_s)  # measurement window: the node's loops have run
        out["zund_idle_mb"] = rss_mb(node.proc.pid)
        deadline = time.monotonic() + args.timeout_s
        t0 = time.perf_counter()
        out["accepted"] = create_many(node, args.containers, args.clients, deadline)
        out["create_s"] = round(time.perf_counter() - t0, 1)
        out["settled"] = wait_settled(node, out["accepted"], deadline)
        time.sleep(args.settle_s)
        out["zund_loaded_mb"] = rss_mb(node.proc.pid)
    finally:
        node.terminate()
    out["serf_mb"], why = serf_rss(args.settle_s, wd)
    if why:
        out["serf_error"] = why
    out["dockerd_mb"], why = dockerd_rss()
    if why:
        out["dockerd_error"] = why
    out["idle_met"] = out["zund_idle_mb"] <= TARGET_IDLE_MB
    out["loaded_met"] = out.get("zund_loaded_mb", float("inf")) <= TARGET_LOADED_MB
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
