"""Resident memory of one ``zund serve``: idle, and holding N containers on the fake
runtime (created through the API); beside it, in the same run, the RSS of one Serf
agent on loopback and of the running dockerd. Prints JSON.

    python bench/memory.py [--containers 1000] [--clients 8]

RSS is ``VmRSS`` of ``/proc/<pid>/status`` (resident, shared pages included, as
``ps`` shows it). "Idle" is read after the node answered its health check and
``--settle-s`` more seconds (the gossip and sync loops have run). The loaded
figure is read after every create reached Running and ``--settle-s`` more.
dockerd's pid comes from ``$ZUND_CI_DIR/dockerd.pid`` (tools/start-dockerd.sh), else
dockerd's own ``--pidfile`` there, else the process holding the listening docker
socket (read-only, from ``/proc``); without any, or without a ``serf`` binary, that
reference is null with the reason.

``imports``: the node runs with ``PYTHONPROFILEIMPORTTIME`` (no measurable RSS
cost); its import log is replayed in a fresh interpreter set up as ``zund serve``
is (same refused optional imports), reading RSS after each module, and the RSS
is summed per top-level package (zund per subpackage): ``imports_top`` lists the
10 largest, ``imports_rss_mb`` is the replay's RSS after every import the node
made in the whole run (including those first used by the creates, e.g.
jsonschema for the create schema, ~1.8 MB: so it can exceed the idle figure),
``imports_zund_mb`` the part zund's own modules add, ``python_mb`` the bare
interpreter's. ``growth_mb_per_1000``: (loaded - idle) per 1,000 accepted creates;
``*_threads``: the node's thread count idle and loaded.

Two more idle nodes, beside it and configured alike, are references of the same
run: ``zund_idle_keyed_mb``, one with ``[gossip] keys`` (a real cluster: gossip and
peer RPC encrypted with cryptography's AES-GCM, loaded for the first key) and
``keyed_extra_mb`` what that adds; ``zund_idle_docker_mb``, one on the docker runtime
(docker-py and requests loaded; its engine need not answer) and ``docker_extra_mb``.
``--no-references`` skips them.
Targets (issue 13 §5): <= 60 MB idle, <= 80 MB with 1,000 containers.
"""

from __future__ import annotations

import argparse
import base64
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


def threads_of(pid: int) -> int:
    """How many threads ``pid`` runs (each has its own stack and may have a malloc arena)."""
    return len(os.listdir(f"/proc/{pid}/task"))


def _is_dockerd(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "dockerd"
    except OSError:
        return False


def _docker_socket_owner() -> int | None:
    """The pid of the dockerd holding the listening unix socket of ``DOCKER_HOST``
    (default /var/run/docker.sock), found read-only through /proc."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return None
    want = {os.path.realpath(host[len("unix://"):]), host[len("unix://"):]}
    inodes = set()
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                parts = line.split()
                if len(parts) >= 8 and parts[7] in want:
                    inodes.add(f"socket:[{parts[6]}]")
    except OSError:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not _is_dockerd(int(entry)):
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                    return int(entry)
        except OSError:
            continue
    return None


def dockerd_rss() -> tuple[float | None, str | None]:
    """(RSS MB, None) of the running dockerd, or (None, why): the pid from
    tools/start-dockerd.sh's file, dockerd's own pid file, or the docker socket."""
    ci_dir = os.environ.get("ZUND_CI_DIR", "/tmp/zund-dev")
    tried = []
    for name in ("dockerd.pid", "dockerd.self.pid"):
        path = os.path.join(ci_dir, name)
        try:
            with open(path) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError) as e:
            tried.append(f"{path}: {e}")
            continue
        if _is_dockerd(pid):
            return rss_mb(pid), None
        tried.append(f"pid {pid} of {path} is not dockerd")
    pid = _docker_socket_owner()
    if pid is not None:
        return rss_mb(pid), None
    return None, "no dockerd pid (" + "; ".join(tried + ["no dockerd holds the docker socket"]) + ")"


#: Replays an import log (argv[1]) as ``zund serve`` would load it; prints JSON.
_REPLAY = r"""
import importlib, json, re, sys


def rss():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024


class Refuse:  # as zund.cmd.main.RefuseImports, without importing zund first
    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition('.')[0] in sys.argv[2].split(','):
            raise ModuleNotFoundError(fullname, name=fullname)


stack, own = [], {}  # own: RSS a module's loading added, minus the modules it imported


class Measured:
    def __init__(self, inner, name):
        self._inner, self._name = inner, name

    def __getattr__(self, attr):
        return getattr(self._inner, attr)

    def create_module(self, spec):
        stack.append([rss(), 0.0])
        try:
            return self._inner.create_module(spec)
        except BaseException:
            stack.pop()
            raise

    def exec_module(self, module):
        try:
            self._inner.exec_module(module)
        finally:
            start, children = stack.pop()
            total = rss() - start
            own[self._name] = own.get(self._name, 0.0) + total - children
            if stack:
                stack[-1][1] += total


class Measure:
    def find_spec(self, fullname, path=None, target=None):
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, Refuse) or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, 'exec_module'):
                    spec.loader = Measured(spec.loader, fullname)
                return spec
        return None


start = rss()
sys.meta_path[:0] = [Refuse(), Measure()]
ms = {}
for line in open(sys.argv[1], errors='replace'):
    m = re.match(r'import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)', line)
    if m:
        ms[m.group(2)] = int(m.group(1)) / 1000
        try:
            importlib.import_module(m.group(2))
        except Exception:
            pass
per, per_ms = {}, {}
for name, mb in own.items():
    parts = name.split('.')
    key = '.'.join(parts[:2]) if parts[0] == 'zund' else parts[0].lstrip('_')
    per[key] = per.get(key, 0.0) + mb
    per_ms[key] = per_ms.get(key, 0.0) + ms.get(name, 0.0)
top = sorted(per.items(), key=lambda kv: -kv[1])[:10]
zund_mb = sum(v for k, v in per.items() if k == 'zund' or k.startswith('zund.'))
print(json.dumps({'python_mb': round(start, 1), 'imports_rss_mb': round(rss(), 1),
                  'imports_zund_mb': round(zund_mb, 1),
                  'imports_top': [{'package': k, 'rss_mb': round(v, 1),
                                   'import_ms': round(per_ms[k], 1)} for k, v in top]}))
"""


def import_breakdown(log_path: str, wd: str) -> dict:
    """RSS per top-level package of the node's imports (see the module docstring).
    Replayed twice with a bytecode cache in ``wd``, the second run counted: as an
    installed node, which has its ``.pyc`` files. (Compiling from source, e.g. under
    ``PYTHONDONTWRITEBYTECODE``, leaves up to ~2 MB per large module in the replay's
    per-module figures, but changes a whole node's RSS by < 0.5 MB.)"""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(wd, "pycache")
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    from zund.cmd.main import DAEMON_REFUSED_IMPORTS

    refused = ",".join(sorted(DAEMON_REFUSED_IMPORTS))
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", _REPLAY, log_path, refused],
                           capture_output=True, text=True, timeout=120, env=env, cwd=repo)
        if r.returncode != 0:
            return {"imports_error": r.stderr[-500:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


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


def node_extra(n: int = 1, **sections) -> dict:
    """The measured node's config sections (sized for ``n`` containers), with
    ``sections`` merged in."""
    extra = {
        "DEFAULT": {"sync_container_state_interval": "60"},
        "quota": {"enforce": "false"},
        "console": {"port": str(free_port())}, "metrics": {"port": str(free_port())},
        "nova_api": {"port": str(free_port())},
        "compute": {"total_cpus": str(max(16, n)), "total_memory_mb": str(max(8192, 32 * n)),
                    "reserved_host_memory_mb": "0", "cpu_allocation_ratio": "1.0",
                    "ram_allocation_ratio": "1.0"},
    }
    for name, values in sections.items():
        extra.setdefault(name, {}).update(values)
    return extra


def reference_nodes(wd: str, settle_s: float, idle_mb: float) -> dict:
    """Idle RSS of a keyed node and of a docker-runtime node (module docstring),
    started together, read after ``settle_s``, then stopped; a node that does not
    come up is null with the reason."""
    key = base64.b64encode(os.urandom(32)).decode()
    kinds = {"keyed": ZundProcess(wd, name=f"mem-keyed-{os.getpid()}", runtimes="fake",
                                  extra=node_extra(gossip={"keys": key})),
             "docker": ZundProcess(wd, name=f"mem-docker-{os.getpid()}", runtimes="docker",
                                   extra=node_extra())}
    out, started = {}, []
    try:
        for kind, ref in kinds.items():
            try:
                ref.start()
                started.append((kind, ref))
            except Exception as e:  # noqa: BLE001 - reported, not fatal
                out[f"zund_idle_{kind}_mb"] = None
                out[f"{kind}_error"] = str(e)[-300:]
        time.sleep(settle_s)  # measurement window, as for the main node
        for kind, ref in started:
            out[f"zund_idle_{kind}_mb"] = rss_mb(ref.proc.pid)
            out[f"{kind}_extra_mb"] = round(out[f"zund_idle_{kind}_mb"] - idle_mb, 1)
    finally:
        for _, ref in started:
            ref.terminate()
    return out


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
    ap.add_argument("--no-references", dest="references", action="store_false",
                    help="skip the keyed and docker-runtime idle nodes")
    args = ap.parse_args(argv)
    wd = tempfile.mkdtemp(prefix="zund-bench-memory-")
    out: dict = {"benchmark": "memory", "containers": args.containers,
                 "target_idle_mb": TARGET_IDLE_MB, "target_loaded_mb": TARGET_LOADED_MB}
    n = max(1, args.containers)
    node = ZundProcess(wd, name=f"mem-{os.getpid()}", runtimes="fake", extra=node_extra(n))
    os.environ["PYTHONPROFILEIMPORTTIME"] = "1"  # the node's import log, for "imports"
    try:
        node.start()
    finally:
        os.environ.pop("PYTHONPROFILEIMPORTTIME", None)
    try:
        time.sleep(args.settle_s)  # measurement window: the node's loops have run
        out["zund_idle_mb"] = rss_mb(node.proc.pid)
        out["zund_idle_threads"] = threads_of(node.proc.pid)
        deadline = time.monotonic() + args.timeout_s
        t0 = time.perf_counter()
        out["accepted"] = create_many(node, args.containers, args.clients, deadline)
        out["create_s"] = round(time.perf_counter() - t0, 1)
        out["settled"] = wait_settled(node, out["accepted"], deadline)
        time.sleep(args.settle_s)
        out["zund_loaded_mb"] = rss_mb(node.proc.pid)
        out["zund_loaded_threads"] = threads_of(node.proc.pid)
        out["growth_mb_per_1000"] = round((out["zund_loaded_mb"] - out["zund_idle_mb"])
                                          * 1000 / max(1, out["accepted"]), 1)
    finally:
        node.terminate()
    out.update(import_breakdown(node.log_path, wd))
    if args.references:
        out.update(reference_nodes(wd, args.settle_s, out["zund_idle_mb"]))
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
