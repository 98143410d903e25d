"""Real ``zund serve`` processes in network namespaces the test creates (issue 11
item 6: partitions made with namespaces and veth pairs).

Layout (all made by :meth:`NetnsCluster.setup`, all removed by :meth:`close`)::

    <prefix>-u   the "underlay": a bridge br0 and one veth end per node (v<i>)
    <prefix>-<i> node i: eth0 (the other veth end) with <subnet>.<i>/24, and lo

Gossip and peer RPC bind the node's <subnet>.<i>; only the test assigned those
addresses and only these namespaces can reach them. Each node's API binds
127.0.0.1 *inside its own namespace* (noauth stays loopback). The test reaches it
through a **relay**: a listening socket the test opens on the host's loopback
(127.0.0.1:<free port>) is handed to a small process started inside the node's
namespace (``ip netns exec``); a socket keeps the namespace it was made in, so the
relay accepts host-loopback connections and forwards each to 127.0.0.1:<api port>
of the node's namespace. No address outside 127.0.0.0/8 and the test's own
namespaces is ever used.

A **cut** sets the underlay's veth end of the cut nodes down: their eth0
loses its carrier (its addresses stay, so the node keeps serving its API through
the relay) and no packet crosses the bridge to or from them, each is alone. A
**split** moves some nodes' veth ends to a second bridge: two sides, each whole
inside (a 2|3 partition). :meth:`heal` puts every end on the first bridge, up.

Only processes started here are signalled, by PID; namespaces are named after
the test's PID so parallel runs never share one.

Run as ``python -m tests.support.netns relay --fd N --to HOST:PORT`` (inside a
namespace) it is the relay itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time

from tests.support.nodeproc import ZundProcess, launch, log_tail, wait_healthy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API_PORT = 9517
PEER_PORT = 9518
GOSSIP_PORT = 9519


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``ip ARGS``; raises with ip's own message when it fails and ``check``."""
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p


def _sysctl_in(ns: str, key: str, value: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}"],
                   capture_output=True, timeout=30)


class NetnsNode:
    """One ``zund serve`` in namespace ``ns`` with address ``addr``; reached through
    its relay at :attr:`endpoint`. Has ``api`` / ``wait_status`` as ZundProcess."""

    def __init__(self, workdir: str, name: str, ns: str, addr: str, sections: dict):
        from zund.cmd.devcluster import format_ini

        self.name = name
        self.ns = ns
        self.addr = addr
        self.state_path = os.path.join(workdir, name, "state")
        self.conf_path = os.path.join(workdir, name, "zund.conf")
        self.log_path = os.path.join(workdir, name, "zund.log")
        os.makedirs(self.state_path, exist_ok=True)
        with open(self.conf_path, "w") as f:
            f.write(format_ini(sections))
        self.proc: subprocess.Popen | None = None
        self.relay: subprocess.Popen | None = None
        self._listener: socket.socket | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start_relay(self) -> None:
        """The host-loopback listener and its relay process in the node's namespace."""
        if self._listener is None:
            self._listener = socket.socket()
            self._listener.bind(("127.0.0.1", 0))
            self._listener.listen(128)
            self.port = self._listener.getsockname()[1]
        fd = self._listener.fileno()
        self.relay = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "tests.support.netns",
             "relay", "--fd", str(fd), "--to", f"127.0.0.1:{API_PORT}",
             "--parent", str(os.getpid())],
            pass_fds=(fd,), cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self, wait_s: float = 60.0) -> "NetnsNode":
        if self.relay is None or self.relay.poll() is not None:
            self.start_relay()
        self.proc = launch(["ip", "netns", "exec", self.ns], self.conf_path, self.log_path,
                           cwd=ROOT)
        wait_healthy(self.proc, f"http://127.0.0.1:{self.port}/healthcheck", self.log_path,
                     wait_s)
        return self

    def log_tail(self, n: int = 60) -> str:
        return log_tail(self.log_path, n)

    def terminate(self, timeout_s: float = 30.0) -> None:
        for proc in (self.proc, self.relay):
            if proc is None or proc.poll() is not None:
                continue
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    # the HTTP helpers of ZundProcess work on any object with endpoint/api/log_tail
    api = ZundProcess.api
    wait_status = ZundProcess.wait_status


class NetnsCluster:
    """``n`` nodes, each in its own namespace, on a bridge in an underlay namespace.

    ``runtimes``: the nodes' runtimes (``fake``: each process has its own engine,
    so a node's containers are its own, as on separate hosts). ``extra``: config
    sections merged into every node's. Use as a context manager or call
    :meth:`close` (a finalizer): it stops the processes and deletes the namespaces
    even after a partial setup."""

    def __init__(self, workdir: str, n: int = 3, tag: str = "np", subnet: str = "10.211.0",
                 runtimes: str = "fake", extra: dict | None = None, cpus: int = 8,
                 memory_mb: int = 4096):
        self.prefix = f"{tag}{os.getpid()}"
        self.underlay = f"{self.prefix}-u"
        self.subnet = subnet
        self.namespaces: list[str] = []
        key = base64.b64encode(os.urandom(32)).decode()
        self.nodes: list[NetnsNode] = []
        for i in range(1, n + 1):
            addr = f"{subnet}.{i}"
            name = f"{tag}{i}-{os.getpid()}"
            sections = {
                "DEFAULT": {"host": name, "state_path": os.path.join(workdir, name, "state"),
                            "enabled_runtimes": runtimes,
                            "sync_container_state_interval": "2", "shutdown_timeout": "15"},
                "api": {"host_ip": "127.0.0.1", "port": str(API_PORT)},
                "peer": {"host_ip": addr, "port": str(PEER_PORT)},
                "gossip": {"bind_host": addr, "bind_port": str(GOSSIP_PORT), "keys": key,
                           "seeds": f"{subnet}.1:{GOSSIP_PORT}",
                           "cluster_name": f"{tag}-{os.getpid()}", "profile": "local"},
                "docker": {"network_mode": "none"},
                "compute": {"total_cpus": str(cpus), "total_memory_mb": str(memory_mb),
                            "reserved_host_memory_mb": "0", "cpu_allocation_ratio": "1.0",
                            "ram_allocation_ratio": "1.0"},
            }
            for section, values in (extra or {}).items():
                sections.setdefault(section, {}).update(values)
            self.nodes.append(NetnsNode(workdir, name, f"{self.prefix}-{i}", addr, sections))

    def __enter__(self) -> "NetnsCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- namespaces ------------------------------------------------------------------

    def _add_ns(self, ns: str) -> None:
        ip("netns", "add", ns)
        self.namespaces.append(ns)
        # no IPv6 (no router/neighbour solicitations at all), loopback up
        _sysctl_in(ns, "net.ipv6.conf.all.disable_ipv6", "1")
        _sysctl_in(ns, "net.ipv6.conf.default.disable_ipv6", "1")
        ip("-n", ns, "link", "set", "lo", "up")

    def setup(self) -> "NetnsCluster":
        """Create the underlay, the bridge, one namespace and veth pair per node."""
        self._add_ns(self.underlay)
        ip("-n", self.underlay, "link", "add", "br0", "type", "bridge")
        ip("-n", self.underlay, "link", "set", "br0", "up")
        for i, node in enumerate(self.nodes, start=1):
            self._add_ns(node.ns)
            ip("-n", self.underlay, "link", "add", f"v{i}", "type", "veth",
               "peer", "name", "eth0", "netns", node.ns)
            ip("-n", self.underlay, "link", "set", f"v{i}", "master", "br0", "up")
            ip("-n", node.ns, "addr", "add", f"{node.addr}/24", "dev", "eth0")
            ip("-n", node.ns, "link", "set", "eth0", "up")
        return self

    def start(self, converge_s: float = 60.0) -> "NetnsCluster":
        """Start every node (node 1, the seed, first) and wait until each lists all."""
        for node in self.nodes:
            node.start()
        self.wait_hosts(lambda node, hosts: len(hosts) == len(self.nodes), converge_s,
                        "cluster converged")
        return self

    def wait_hosts(self, predicate, timeout_s: float, what: str, nodes=None) -> float:
        """Wait until ``predicate(node, {host: state})`` (from ``GET /services``)
        holds on every node of ``nodes`` (default all); returns the seconds waited."""
        started = time.monotonic()
        last = {}
        while True:
            ok = True
            for node in nodes or self.nodes:
                try:
                    r = node.api("GET", "/services")
                    states = {s["host"]: s["state"] for s in r.json()["services"]} \
                        if r.status_code == 200 else None
                except Exception:  # noqa: BLE001 - a node still starting
                    states = None
                last[node.name] = states
                if states is None or not predicate(node, states):
                    ok = False
            if ok:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise AssertionError(f"{what}: not within {timeout_s} s; last {last}")
            time.sleep(0.2)

    # -- partitions --------------------------------------------------------------------

    def cut(self, *indices: int) -> None:
        """Cut nodes (0-based) off the bridge: each is alone until :meth:`heal`."""
        for i in indices:
            ip("-n", self.underlay, "link", "set", f"v{i + 1}", "down")

    def split(self, *indices: int) -> None:
        """Partition: nodes (0-based) ``indices`` move to a second bridge ``br1``,
        so they still reach each other but no other node (a 2|3 partition is
        ``split(3, 4)``), until :meth:`heal`. Carriers stay up on both sides."""
        if ip("-n", self.underlay, "link", "show", "br1", check=False).returncode != 0:
            ip("-n", self.underlay, "link", "add", "br1", "type", "bridge")
            ip("-n", self.underlay, "link", "set", "br1", "up")
        for i in indices:
            ip("-n", self.underlay, "link", "set", f"v{i + 1}", "master", "br1")

    def heal(self) -> None:
        """Every node on the bridge br0 again, its veth end up."""
        for i in range(len(self.nodes)):
            ip("-n", self.underlay, "link", "set", f"v{i + 1}", "master", "br0", "up")

    # -- teardown ---------------------------------------------------------------------

    def close(self) -> None:
        for node in self.nodes:
            try:
                node.terminate()
            except Exception:  # noqa: BLE001 - keep tearing down
                pass
        for ns in reversed(self.namespaces):
            ip("netns", "del", ns, check=False)
        self.namespaces.clear()


# -- the relay (runs inside a node's namespace) ---------------------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:  # noqa: BLE001
            pass


async def _relay(fd: int, host: str, port: int, parent: int) -> None:
    listener = socket.socket(fileno=fd)

    async def serve(reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(serve, sock=listener)
    async with server:
        # the test that started us is gone (killed): so are we
        while os.getppid() == parent:
            await asyncio.sleep(1.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.netns")
    sub = parser.add_subparsers(dest="cmd", required=True)
    relay = sub.add_parser("relay", help="forward an inherited listening socket")
    relay.add_argument("--fd", type=int, required=True)
    relay.add_argument("--to", required=True, help="HOST:PORT in this namespace")
    relay.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    host, port = args.to.rsplit(":", 1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(_relay(args.fd, host, int(port), args.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
