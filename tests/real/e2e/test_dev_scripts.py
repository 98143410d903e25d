"""The quickstart's dockerd and `zund dev-cluster` behave (issue 10):

* tools/start-dockerd.sh starts dockerd in its own session (Ctrl-C on the quickstart
  cannot reach it) and tools/stop-dockerd.sh stops exactly that process;
* dev-cluster only counts a node as up when its address answers with the node's own
  name, and says which node failed and why (address in use, a node that died later,
  dockerd not running), exiting 1.

The dockerd here is a stub script named `dockerd` (the real one is shared by every
test and is never started or stopped by tests); the nodes run the fake runtime on
random loopback ports.
"""

from __future__ import annotations

import http.server
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie waiting for its reaper counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _wait(cond, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def stub_dockerd(tmp_path):
    """PATH with a `docker` that answers once the stub `dockerd` has started."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    ready = tmp_path / "dockerd.ready"
    (bindir / "docker").write_text(f'#!/bin/sh\n[ -f "{ready}" ]\n')
    (bindir / "dockerd").write_text(
        f'#!/bin/sh\ntrap \'rm -f "{ready}"; exit 0\' TERM\ntouch "{ready}"\n'
        "while :; do sleep 0.2; done\n")
    for f in bindir.iterdir():
        f.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", ZUND_CI_DIR=str(tmp_path),
               DOCKERD_WAIT_S="20")
    started = []
    yield env, tmp_path, started
    for pid in started:  # only if the test failed before stopping it
        if not _pid_gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_started_dockerd_has_its_own_session_and_stops_only_by_command(stub_dockerd):
    """start-dockerd.sh's dockerd leads its own session and process group; Ctrl-C of the
    caller's group leaves it running; stop-dockerd.sh stops it and forgets its PID."""
    env, ci_dir, started = stub_dockerd
    # the caller: a shell in its own process group that starts dockerd, then waits
    # in the foreground like the quickstart's `zund serve`
    caller = subprocess.Popen(
        ["sh", "-c", f'sh "{REPO}/tools/start-dockerd.sh" && echo started && exec sleep 60'],
        env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        lines = []
        for line in caller.stdout:
            lines.append(line)
            if line.strip() == "started":
                break
        pid = int((ci_dir / "dockerd.pid").read_text())
        started.append(pid)
        assert any("stop-dockerd.sh" in line for line in lines), lines
        assert os.getsid(pid) == pid and os.getpgid(pid) == pid
        os.killpg(caller.pid, signal.SIGINT)  # Ctrl-C in the caller's terminal
        caller.wait(30)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait(30)
    assert not _pid_gone(pid), "Ctrl-C of the caller stopped dockerd"

    stop = subprocess.run(["bash", os.path.join(REPO, "tools/stop-dockerd.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    _wait(lambda: _pid_gone(pid), 10, "dockerd stub to exit")
    assert not (ci_dir / "dockerd.pid").exists()


def test_stop_dockerd_refuses_a_pid_that_is_not_dockerd(tmp_path):
    """A recorded PID that is now another program is not signalled."""
    (tmp_path / "dockerd.pid").write_text(str(os.getpid()))
    out = subprocess.run(["bash", os.path.join(REPO, "tools/stop-dockerd.sh")],
                         env=dict(os.environ, ZUND_CI_DIR=str(tmp_path)),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "not dockerd" in out.stderr


# -- dev-cluster --------------------------------------------------------------------

def _free_base_port(nodes: int) -> int:
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000)
        try:
            socks = []
            for i in range(1, nodes + 1):
                for port in (base, base + 1, base + 2):
                    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                        s = socket.socket(socket.AF_INET, kind)
                        socks.append(s)
                        s.bind((f"127.0.0.{i}", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free port range")


def _dev_cluster(tmp_path, base: int, nodes: int, *extra: str, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "zund.cmd.main", "dev-cluster", "--nodes", str(nodes),
         "--runtimes", "fake", "--base-port", str(base), "--base-dir", str(tmp_path / "dev"),
         "--cpus", "2", "--memory-mb", "1024", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True)


def _finish(proc: subprocess.Popen, timeout_s: float = 90) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        raise AssertionError(f"dev-cluster did not exit:\n{out}\n{err}")
    return proc.returncode, out, err


class _Impostor(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Zund-Node", "quickstart")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_dev_cluster_names_the_node_whose_address_another_server_answers(tmp_path):
    """A node whose API address is taken by another server (answering /healthcheck as
    another node) is reported by name with "already in use"; exit 1, not "running"."""
    base = _free_base_port(2)
    impostor = http.server.HTTPServer(("127.0.0.1", base), _Impostor)
    thread = threading.Thread(target=impostor.serve_forever, daemon=True)
    thread.start()
    try:
        code, out, err = _finish(_dev_cluster(tmp_path, base, 2))
    finally:
        impostor.shutdown()
        impostor.server_close()
    assert code == 1
    assert "running" not in out
    assert "node1" in err and "already in use" in err and "'quickstart'" in err


def test_dev_cluster_reports_a_node_that_dies_later_and_stops_the_rest(tmp_path):
    """After "running", a node that exits makes dev-cluster say which (pid, code) and
    exit 1, stopping the other nodes."""
    base = _free_base_port(2)
    proc = _dev_cluster(tmp_path, base, 2)
    pids = {}
    try:
        for line in proc.stdout:
            m = re.match(r"(node\d): .* pid (\d+)", line)
            if m:
                pids[m.group(1)] = int(m.group(2))
            if line.startswith("dev-cluster: running"):
                break
        assert set(pids) == {"node1", "node2"}, proc.stderr.read() if proc.poll() else pids
        os.kill(pids["node2"], signal.SIGKILL)
        code, _, err = _finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
    assert code == 1
    assert f"node2 (pid {pids['node2']}) exited with code -9" in err
    _wait(lambda: _pid_gone(pids["node1"]), 30, "node1 to be stopped")


def test_dev_cluster_without_dockerd_says_how_to_start_it(tmp_path):
    """--runtimes docker with no reachable dockerd: exit 1 naming tools/start-dockerd.sh,
    before any node starts."""
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "zund.cmd.main", "dev-cluster", "--nodes", "1",
         "--runtimes", "docker", "--base-port", str(_free_base_port(1)),
         "--base-dir", str(tmp_path / "dev")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    code, out, err = _finish(proc, 60)
    assert code == 1
    assert "dockerd is not running" in err and "bash tools/start-dockerd.sh" in err
    assert not (tmp_path / "dev" / "node1.log").exists()
