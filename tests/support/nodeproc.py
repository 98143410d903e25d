"""Run real ``zund serve`` processes for the e2e tiers.

Each node gets its own state dir and config file and binds a 127.0.0.x address.
Only processes started here are ever signalled, by PID.
"""

from __future__ import annotations

import configparser
import json
import os
import signal
import socket
import subprocess
import sys
import time

import requests

from zund.cmd.devcluster import format_ini


def _port_window() -> range:
    """Ports the kernel never hands out by itself: below its ephemeral range
    (``ip_local_port_range``), or above it when there is no room below."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    if low - 1024 >= 4000:
        return range(max(1024, low - 12000), low)
    return range(high + 1, 65536)


_WINDOW = _port_window()


def _port_after(port: int) -> int:
    """The window's next port after ``port`` (its first after its last)."""
    return _WINDOW.start + (port + 1 - _WINDOW.start) % len(_WINDOW)


_next_port = [_port_after(_WINDOW.start + os.getpid() * 7919)]


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` for both TCP and UDP, for a process started later.

    Not the kernel's ``bind(0)``: that port is in the ephemeral range, so between
    this check and the node's own bind any outgoing connection may be given it as
    its source port ("Address already in use" at start, seen in CI). Ports come
    from a window outside that range, one after another (wrapping), so two calls
    never hand out the same port until the window is used up."""
    for _ in range(len(_WINDOW)):
        port = _next_port[0]
        _next_port[0] = _port_after(port)
        try:
            with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                tcp.bind((host, port))
                udp.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port on {host} in {_WINDOW.start}-{_WINDOW.stop - 1}")


def log_tail(path: str, n: int = 60) -> str:
    """The last ``n`` lines of the log at ``path`` ("" when there is none yet)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def launch(prefix: list, conf_path: str, log_path: str,
           cwd: str | None = None) -> subprocess.Popen:
    """Start ``zund serve --config-file conf_path`` after ``prefix`` (e.g. ``ip netns
    exec NS``, which execs it: the PID is zund's own), logging to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [*prefix, sys.executable, "-m", "zund.cmd.main", "serve", "--config-file", conf_path],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd)


def wait_healthy(proc: subprocess.Popen, health_url: str, log_path: str,
                 wait_s: float) -> None:
    """Wait until ``health_url`` answers 200; RuntimeError with the log's tail if
    ``proc`` exits or does not come up within ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"zund exited with {proc.returncode}:\n{log_tail(log_path)}")
        try:
            if requests.get(health_url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"zund did not come up:\n{log_tail(log_path)}")


class ZundProcess:
    def __init__(self, workdir: str, name: str = "node1", host_ip: str = "127.0.0.1",
                 port: int | None = None, runtimes: str = "docker",
                 extra: dict | None = None):
        self.workdir = workdir
        self.name = name
        self.host_ip = host_ip
        self.port = port or free_port(host_ip)
        self.state_path = os.path.join(workdir, name, "state")
        self.conf_path = os.path.join(workdir, name, "zund.conf")
        self.log_path = os.path.join(workdir, name, "zund.log")
        self.proc: subprocess.Popen | None = None
        os.makedirs(self.state_path, exist_ok=True)
        sections = {
            "DEFAULT": {"host": name, "state_path": self.state_path,
                        "enabled_runtimes": runtimes, "sync_container_state_interval": "2",
                        "shutdown_timeout": "15"},
            "api": {"host_ip": host_ip, "port": str(self.port)},
            "docker": {"network_mode": "none"},
            # gossip on this node's own loopback address and a free port, so test
            # nodes never collide with each other or with a dev node on 9519
            "gossip": {"bind_host": host_ip, "bind_port": str(free_port(host_ip))},
            "peer": {"host_ip": host_ip, "port": str(free_port(host_ip))},
        }
        for section, values in (extra or {}).items():
            sections.setdefault(section, {}).update(values)
        with open(self.conf_path, "w") as f:
            f.write(format_ini(sections))

    @property
    def endpoint(self) -> str:
        return f"http://{self.host_ip}:{self.port}/v1"

    def start(self, wait_s: float = 60.0) -> "ZundProcess":
        self.proc = launch([], self.conf_path, self.log_path)
        wait_healthy(self.proc, f"http://{self.host_ip}:{self.port}/healthcheck",
                     self.log_path, wait_s)
        return self

    def log_tail(self, n: int = 60) -> str:
        return log_tail(self.log_path, n)

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout_s: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                raise
        return self.proc.returncode

    # -- HTTP helpers ----------------------------------------------------------

    def api(self, method: str, path: str, token: str = "admin:demo", **kw) -> requests.Response:
        headers = {"X-Auth-Token": token, "OpenStack-API-Version": "container 1.40",
                   "Content-Type": "application/json"}
        headers.update(kw.pop("headers", {}))
        return requests.request(method, self.endpoint + path, headers=headers, timeout=30, **kw)

    def wait_status(self, uuid: str, statuses, timeout_s: float = 60.0, token="admin:demo") -> dict:
        statuses = {statuses} if isinstance(statuses, str) else set(statuses)
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            r = self.api("GET", f"/containers/{uuid}", token=token)
            if r.status_code == 200:
                last = r.json()
                if last["status"] in statuses and last["task_state"] is None:
                    return last
            time.sleep(0.2)
        raise AssertionError(f"{uuid} never reached {statuses}; last: {last}\n{self.log_tail()}")


def peers(node) -> list[dict]:
    """``zund peers --json`` of ``node``: its gossip view of every member."""
    p = subprocess.run([sys.executable, "-m", "zund.cmd.main", "peers", "--json",
                        "--config-file", node.conf_path], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def docker_objects(node: str) -> dict:
    """{uuid: state} of docker containers labelled zund.node == node."""
    import docker

    client = docker.from_env()
    try:
        out = {}
        for c in client.containers.list(all=True, filters={"label": f"zund.node={node}"}):
            out[c.labels["zund.uuid"]] = c.status
        return out
    finally:
        client.close()


def remove_docker_objects(node: str) -> None:
    import docker

    client = docker.from_env()
    try:
        for c in client.containers.list(all=True, filters={"label": f"zund.node={node}"}):
            c.remove(force=True)
    finally:
        client.close()


def start_cluster(workdir: str, n: int, tag: str, memory_mb=None, cpus: int = 4,
                  extra: dict | None = None, runtimes: str = "docker",
                  per_node: dict | None = None,
                  token: str = "admin:demo") -> list["ZundProcess"]:
    """n nodes on 127.0.0.1..n, one shared gossip port, node 1 as seed, a fresh
    cluster key, declared capacities (``memory_mb`` may be a list per node);
    ``token`` (an admin's) is what the convergence check sends."""
    import base64

    gport = free_port("127.0.0.1")
    key = base64.b64encode(os.urandom(32)).decode()
    nodes = []
    for i in range(1, n + 1):
        ip = f"127.0.0.{i}"
        mem = memory_mb[i - 1] if isinstance(memory_mb, (list, tuple)) else (memory_mb or 2048)
        sections = {
            "gossip": {"bind_host": ip, "bind_port": str(gport), "keys": key,
                       "seeds": f"127.0.0.1:{gport}", "cluster_name": f"{tag}-{os.getpid()}",
                       "profile": "local"},
            "compute": {"total_cpus": str(cpus), "total_memory_mb": str(mem),
                        "reserved_host_memory_mb": "0", "cpu_allocation_ratio": "1.0",
                        "ram_allocation_ratio": "1.0"},
        }
        for section, values in (extra or {}).items():
            sections.setdefault(section, {}).update(values)
        for section, values in ((per_node or {}).get(i) or {}).items():
            sections.setdefault(section, {}).update(values)
        nodes.append(ZundProcess(workdir, name=f"{tag}{i}-{os.getpid()}", host_ip=ip,
                                 runtimes=runtimes, extra=sections))
    try:
        for node in nodes:
            node.start()
        deadline = time.monotonic() + 30
        while True:
            views = [node.api("GET", "/hosts", token=token).json().get("hosts", [])
                     for node in nodes]
            if all(len(v) == n for v in views):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster did not converge: {[len(v) for v in views]}")
            time.sleep(0.2)
    except BaseException:
        stop_cluster(nodes)
        raise
    return nodes


def stop_cluster(nodes) -> None:
    """Stop every node first, then remove their Docker objects and the micro-VM
    domains of the nodes that run libvirt (a delete still in the background when
    a node stops leaves its container; a restarted node of the same name would
    sweep it, a test's next cluster has other names): an engine that cannot be
    reached (a fake-runtime cluster on a host without dockerd) must not leave the
    remaining nodes running."""
    for node in nodes:
        try:
            node.terminate()
        except Exception:
            node.kill9()
    for node in nodes:
        remove_docker_objects(node.name)
        if _runs_libvirt(node):
            from tests.support.libvirt_guests import sweep
            sweep(node.name, exact=True)


def _runs_libvirt(node) -> bool:
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(node.conf_path)
    return "libvirt" in cp.get("DEFAULT", "enabled_runtimes", fallback="")


class RemoteNode:
    """A node of an existing cluster (e.g. the Vagrantfile's VMs), addressed by its
    API endpoint; has the HTTP helpers of ZundProcess but no process control."""

    def __init__(self, endpoint: str, token: str = "admin:demo"):
        self._endpoint = endpoint.rstrip("/")
        self.name = None
        self.proc = None

    @property
    def endpoint(self) -> str:
        return self._endpoint

    api = ZundProcess.api
    wait_status = ZundProcess.wait_status

    def log_tail(self, n: int = 60) -> str:
        return "(remote node: see its journal)"


def remote_cluster() -> list | None:
    """Nodes named by ZUND_TEST_CLUSTER (comma-separated API endpoints), or None."""
    value = os.environ.get("ZUND_TEST_CLUSTER", "").strip()
    if not value:
        return None
    nodes = [RemoteNode(e.strip()) for e in value.split(",") if e.strip()]
    for node in nodes:
        node.name = node.api("GET", "/containers").headers["Zund-Node"]
    names = sorted(h["hostname"] for h in nodes[0].api("GET", "/hosts").json()["hosts"])
    if sorted(n.name for n in nodes) != names:
        raise RuntimeError(f"ZUND_TEST_CLUSTER nodes {[n.name for n in nodes]} != cluster {names}")
    return nodes
