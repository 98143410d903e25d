"""``zund dev-cluster --nodes N``: a local cluster on one machine.

Node *i* binds 127.0.0.*i* for its API (9517), peer RPC (9518) and gossip (9519),
has its own state dir and declared capacity, and joins through node 1. All nodes
share the local dockerd. Ctrl-C (or SIGTERM) stops every node it started, by PID.
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import subprocess
import sys
import time
import urllib.request


def node_config(i: int, base: str, key: str, runtimes: str, cpus: int, memory_mb: int,
                extra: dict | None = None) -> str:
    ip = f"127.0.0.{i}"
    sections = {
        "DEFAULT": {"host": f"node{i}", "state_path": os.path.join(base, f"node{i}"),
                    "enabled_runtimes": runtimes},
        "api": {"host_ip": ip, "port": "9517"},
        "peer": {"host_ip": ip, "port": "9518"},
        "gossip": {"bind_host": ip, "bind_port": "9519", "seeds": "127.0.0.1:9519",
                   "keys": key, "cluster_name": "zund-dev", "profile": "local"},
        "compute": {"total_cpus": str(cpus), "total_memory_mb": str(memory_mb),
                    "reserved_host_memory_mb": "0", "cpu_allocation_ratio": "1.0",
                    "ram_allocation_ratio": "1.0"},
        "docker": {"network_mode": "none"},
    }
    for section, values in (extra or {}).items():
        sections.setdefault(section, {}).update(values)
    return format_ini(sections)


def format_ini(sections: dict) -> str:
    """``{section: {key: value}}`` as an oslo.config file."""
    out = []
    for section, values in sections.items():
        out.append(f"[{section}]")
        out.extend(f"{k} = {v}" for k, v in values.items())
        out.append("")
    return "\n".join(out)


def write_cluster(base: str, nodes: int, runtimes: str, cpus: int, memory_mb: int) -> list[str]:
    os.makedirs(base, exist_ok=True)
    key_path = os.path.join(base, "cluster.key")
    if not os.path.exists(key_path):
        with open(key_path, "w") as f:
            f.write(base64.b64encode(os.urandom(32)).decode())
        os.chmod(key_path, 0o600)
    key = open(key_path).read().strip()
    paths = []
    for i in range(1, nodes + 1):
        path = os.path.join(base, f"node{i}.conf")
        with open(path, "w") as f:
            f.write(node_config(i, base, key, runtimes, cpus, memory_mb))
        paths.append(path)
    return paths


def _healthy(i: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.{i}:9517/healthcheck", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="zund dev-cluster", description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--base-dir", default="/var/lib/zund-dev")
    ap.add_argument("--runtimes", default="docker", help="enabled_runtimes for every node")
    ap.add_argument("--cpus", type=int, default=4, help="vCPUs each node declares")
    ap.add_argument("--memory-mb", type=int, default=4096, help="MiB each node declares")
    ap.add_argument("--write-only", action="store_true", help="write configs and exit")
    ns = ap.parse_args(argv)
    if not 1 <= ns.nodes <= 254:
        ap.error("--nodes must be 1..254")
    paths = write_cluster(ns.base_dir, ns.nodes, ns.runtimes, ns.cpus, ns.memory_mb)
    if ns.write_only:
        print("\n".join(paths))
        return 0
    procs = []
    stopping = []

    def stop(*_):
        stopping.append(True)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for i, path in enumerate(paths, start=1):
            log = open(os.path.join(ns.base_dir, f"node{i}.log"), "ab")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "zund.cmd.main", "serve", "--config-file", path],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        deadline = time.monotonic() + 60
        while not all(_healthy(i) for i in range(1, ns.nodes + 1)):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                print("dev-cluster: a node failed to start; see the logs in " + ns.base_dir,
                      file=sys.stderr)
                return 1
            time.sleep(0.2)
        for i in range(1, ns.nodes + 1):
            print(f"node{i}: http://127.0.0.{i}:9517/v1   (log {ns.base_dir}/node{i}.log)")
        print("dev-cluster: running; Ctrl-C stops every node")
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return 0 if stopping else 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
