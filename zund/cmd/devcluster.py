"""``zund dev-cluster --nodes N``: a local cluster on one machine.

Node *i* binds 127.0.0.*i* for its API (9517), peer RPC (9518) and gossip (9519)
(``--base-port`` moves all three), has its own state dir and declared capacity, and
joins through node 1. All nodes share the local dockerd, which must be running
(``bash tools/start-dockerd.sh``). A node counts as started only when its address
answers with its own name (the ``Zund-Node`` header); if a node fails to start or
dies later, dev-cluster says which and why, stops the others and exits 1. Ctrl-C
(or SIGTERM) stops every node it started, by PID.
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
                extra: dict | None = None, base_port: int = 9517) -> str:
    ip = f"127.0.0.{i}"
    sections = {
        "DEFAULT": {"host": f"node{i}", "state_path": os.path.join(base, f"node{i}"),
                    "enabled_runtimes": runtimes},
        "api": {"host_ip": ip, "port": str(base_port)},
        "peer": {"host_ip": ip, "port": str(base_port + 1)},
        "gossip": {"bind_host": ip, "bind_port": str(base_port + 2),
                   "seeds": f"127.0.0.1:{base_port + 2}",
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


def write_cluster(base: str, nodes: int, runtimes: str, cpus: int, memory_mb: int,
                  base_port: int = 9517) -> list[str]:
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
            f.write(node_config(i, base, key, runtimes, cpus, memory_mb, base_port=base_port))
        paths.append(path)
    return paths


def probe(i: int, port: int, timeout_s: float = 1.0) -> str | None:
    """The ``Zund-Node`` header of 127.0.0.i:port/healthcheck when it answers 200,
    else None. A node that answers with another name is some other process."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.{i}:{port}/healthcheck",
                                    timeout=timeout_s) as r:
            return (r.headers.get("Zund-Node") or "") if r.status == 200 else None
    except OSError:
        return None


def docker_problem() -> str | None:
    """Why the local dockerd cannot be used (with the command that starts it), or None."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
        return None
    except Exception as e:  # noqa: BLE001 - any failure means "not usable"; shown to the user
        return (f"dockerd is not running or not reachable ({type(e).__name__}: {e}); start it "
                "with `bash tools/start-dockerd.sh` (stop it later with "
                "`bash tools/stop-dockerd.sh`), or use --runtimes fake")


def failure_reason(log_text: str, i: int, base_port: int) -> str:
    """One line saying why node i stopped, read from its log."""
    if "Address already in use" in log_text or "CannotListenError" in log_text:
        return (f"an address of node{i} is already in use (127.0.0.{i} ports "
                f"{base_port}-{base_port + 2}): another zund (the quickstart node, another "
                "dev-cluster) or another program listens there; stop it or pick --base-port")
    for line in reversed(log_text.splitlines()):
        if "refusing to start" in line or "node.start_failed" in line:
            return line.strip()
    if "Runtime docker is not available" in log_text or "runtime=docker" in log_text:
        return ("its docker runtime is unavailable: start dockerd with "
                "`bash tools/start-dockerd.sh`")
    tail = [ln for ln in log_text.splitlines() if ln.strip()][-3:]
    return "last log lines: " + " | ".join(tail) if tail else "its log is empty"


def _wait_exit(proc: subprocess.Popen, timeout_s: float) -> None:
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        pass


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-65536:]
    except OSError:
        return ""


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="zund dev-cluster", description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--base-dir", default="/var/lib/zund-dev")
    ap.add_argument("--runtimes", default="docker", help="enabled_runtimes for every node")
    ap.add_argument("--cpus", type=int, default=4, help="vCPUs each node declares")
    ap.add_argument("--memory-mb", type=int, default=4096, help="MiB each node declares")
    ap.add_argument("--base-port", type=int, default=9517,
                    help="API port of every node; peer RPC is +1, gossip +2")
    ap.add_argument("--start-timeout", type=float, default=60.0,
                    help="seconds every node has to answer as itself")
    ap.add_argument("--write-only", action="store_true", help="write configs and exit")
    ns = ap.parse_args(argv)
    if not 1 <= ns.nodes <= 254:
        ap.error("--nodes must be 1..254")
    if not 1 <= ns.base_port <= 65533:
        ap.error("--base-port must be 1..65533")
    paths = write_cluster(ns.base_dir, ns.nodes, ns.runtimes, ns.cpus, ns.memory_mb,
                          base_port=ns.base_port)
    if ns.write_only:
        print("\n".join(paths))
        return 0
    if "docker" in [r.strip() for r in ns.runtimes.split(",")]:
        problem = docker_problem()
        if problem:
            print(f"dev-cluster: cannot start: {problem}", file=sys.stderr)
            return 1
    procs: list[subprocess.Popen] = []
    logs = [os.path.join(ns.base_dir, f"node{i}.log") for i in range(1, ns.nodes + 1)]
    stopping = []

    def stop(*_):
        stopping.append(True)

    def fail(i: int, what: str) -> int:
        reason = failure_reason(_read(logs[i - 1]), i, ns.base_port)
        print(f"dev-cluster: node{i} {what}: {reason} (log {logs[i - 1]}); stopping every node",
              file=sys.stderr)
        return 1

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for i, path in enumerate(paths, start=1):
            with open(logs[i - 1], "ab") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "zund.cmd.main", "serve", "--config-file", path],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        deadline = time.monotonic() + ns.start_timeout
        pending = set(range(1, ns.nodes + 1))
        while pending and not stopping:
            for i in sorted(pending):
                code = procs[i - 1].poll()
                if code is not None:
                    return fail(i, f"(pid {procs[i - 1].pid}) exited with code {code} at start")
                answer = probe(i, ns.base_port)
                if answer == f"node{i}":
                    pending.discard(i)
                elif answer is not None:
                    # our node is most likely dying of "address in use": let it, so
                    # its log holds the reason
                    _wait_exit(procs[i - 1], 10.0)
                    return fail(i, f"did not get its address: 127.0.0.{i}:{ns.base_port} is "
                                   f"answered by node {answer!r}, not by node{i}")
            if pending and time.monotonic() > deadline:
                i = min(pending)
                return fail(i, f"did not answer as node{i} within {ns.start_timeout:g} s")
            time.sleep(0.2)
        if stopping:
            return 0
        for i in range(1, ns.nodes + 1):
            print(f"node{i}: http://127.0.0.{i}:{ns.base_port}/v1   pid {procs[i - 1].pid}   "
                  f"(log {logs[i - 1]})")
        print("dev-cluster: running; Ctrl-C stops every node", flush=True)
        while not stopping:
            for i, p in enumerate(procs, start=1):
                code = p.poll()
                if code is not None:
                    return fail(i, f"(pid {p.pid}) exited with code {code}")
            time.sleep(0.5)
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
