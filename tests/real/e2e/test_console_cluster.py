"""Interactive exec and attach through a node that is NOT the owner, with the
unmodified OpenStack client under a real pseudo-terminal; /metrics scraped and
parsed while it happens; ``zund events --follow`` on the owner (issue 14).

A 3-node cluster of real ``zund serve`` processes on 127.0.0.1-3 and real Docker.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

import pexpect
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.nodeproc import free_port, remove_docker_objects, start_cluster, stop_cluster


def osc_env(node) -> dict:
    env = dict(os.environ, OS_AUTH_TYPE="none", OS_ENDPOINT=node.endpoint, TERM="xterm")
    for k in list(env):
        if k.startswith("OS_") and k not in ("OS_AUTH_TYPE", "OS_ENDPOINT"):
            env.pop(k)
    return env


def osc(node, *args) -> str:
    p = subprocess.run(["openstack", "appcontainer", *args], capture_output=True, text=True,
                       env=osc_env(node), timeout=120)
    assert p.returncode == 0, f"{args}: {p.stdout}\n{p.stderr}\n{node.log_tail()}"
    return p.stdout


def run_interactive(node, name: str, image: str) -> str:
    """Create and start ``sh`` with a TTY and stdin open (what `run --interactive`
    makes; the CLI would also attach at once) -> uuid."""
    r = node.api("POST", "/containers?run=true",
                 json={"name": name, "image": image, "command": ["sh"], "interactive": True,
                       "tty": True})
    assert r.status_code == 202, r.text
    return r.json()["uuid"]


def osc_events(node) -> str:
    """``zund events --json`` of ``node`` as one JSON list."""
    p = subprocess.run([sys.executable, "-m", "zund.cmd.main", "events", "--json", "--socket",
                        os.path.join(node.state_path, "control.sock")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return json.dumps([json.loads(line) for line in p.stdout.splitlines() if line.strip()])


def scrape(node) -> dict:
    body = requests.get(f"http://{node.host_ip}:{node.metrics_port}/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, real_docker):
    wd = str(tmp_path_factory.mktemp("console"))
    per_node, ports = {}, {}
    for i in (1, 2, 3):
        ip = f"127.0.0.{i}"
        ports[i] = free_port(ip)
        per_node[i] = {"console": {"port": str(free_port(ip))},
                       "metrics": {"host_ip": ip, "port": str(ports[i])},
                       "DEFAULT": {"log_format": "json"}}
    nodes = start_cluster(wd, 3, "cons", per_node=per_node)
    for i, node in enumerate(nodes, start=1):
        node.metrics_port = ports[i]
    yield nodes
    stop_cluster(nodes)
    for node in nodes:
        remove_docker_objects(node.name)


def spawn(node, *args, rows=24, cols=80) -> pexpect.spawn:
    child = pexpect.spawn("openstack", ["appcontainer", *args], env=osc_env(node),
                          dimensions=(rows, cols), timeout=60, encoding="utf-8",
                          codec_errors="replace")
    child.logfile_read = sys.stdout
    return child


def type_until(child, line: str, pattern, timeout_s: float = 30.0) -> None:
    """Type ``line`` until ``pattern`` shows: busybox's line editor asks the terminal
    for the cursor position (ESC[6n) when it draws a prompt and swallows what is
    typed while it waits for the answer, which a pexpect pty never gives."""
    deadline = time.monotonic() + timeout_s
    while True:
        child.send(line + "\r")
        if child.expect([pattern, pexpect.TIMEOUT], timeout=2) == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} never showed after typing {line!r}")


def test_exec_and_attach_through_a_non_owner_with_resize_metrics_and_events(cluster,
                                                                              real_docker):
    """Through a node that does not hold the container: exec --interactive runs a
    command, sees the resized TTY and exits; attach reaches the container's own
    shell; the entry's metrics count it; the owner's `zund events --follow`
    shows the create that came through another node."""
    entry = cluster[0]
    # follow every node's journal before the create (the owner is not known yet)
    followers = [subprocess.Popen(
        [sys.executable, "-m", "zund.cmd.main", "events", "--follow", "--json", "--socket",
         os.path.join(node.state_path, "control.sock")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0) for node in cluster]
    try:
        uuid = run_interactive(entry, "shell", real_docker)
        shown = wait_for(lambda: (lambda r: r if r["status"] == "Running" else None)(
            entry.api("GET", f"/containers/{uuid}").json()), 60, "Running")
        owner = next(n for n in cluster if n.name == shown["host"])
        via = next(n for n in cluster if n is not owner)
        assert via is not owner

        # the owner's follower printed the bid it won for a create entered elsewhere
        follower = followers[cluster.index(owner)]
        seen, buf = [], b""
        deadline = time.monotonic() + 30
        fd = follower.stdout.fileno()
        while not any(e["kind"] == "won_bid" and e["fields"].get("container") == uuid
                      for e in seen):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no won_bid event for {uuid} within 30 s: {seen}"
            chunk = os.read(fd, 65536)
            assert chunk, f"events --follow ended: {follower.stderr.read()}"
            buf += chunk
            *lines, buf = buf.split(b"\n")
            seen.extend(json.loads(line) for line in lines if line.strip())
        entered = next(e for e in json.loads(osc_events(entry)) if e["kind"] == "placed"
                       and e["fields"].get("container") == uuid)
        assert entered["fields"]["winner"] == owner.name
        before = scrape(via)

        # exec --interactive through the non-owner
        child = spawn(via, "exec", "--interactive", "shell", "sh")
        child.expect("connected to shell")
        type_until(child, "echo zund-$((6*7))", "zund-42")
        child.setwinsize(33, 111)  # SIGWINCH: the client POSTs execute_resize
        type_until(child, "stty size", "33 111")
        type_until(child, "exit", pexpect.EOF)  # the exec ends: the client quits
        child.close()

        # attach to the container's own shell through the non-owner
        child = spawn(via, "attach", "shell", rows=24, cols=80)
        child.expect("connected to shell")
        type_until(child, "echo attached-$((2+3))", "attached-5")
        child.setwinsize(30, 100)  # the client POSTs resize
        type_until(child, "stty size", "30 100")
        child.close(force=True)

        after = scrape(via)
        assert sample(after, "zund_console_sessions_total", kind="exec", outcome="closed") \
            == sample(before, "zund_console_sessions_total", kind="exec", outcome="closed") + 1
        assert sample(after, "zund_api_requests_total", route="container_execute",
                      method="POST", status="200") >= 1
        assert sample(after, "zund_api_requests_total", route="container_execute_resize",
                      method="POST", status="200") >= 1
        wait_for(lambda: sample(scrape(via), "zund_console_sessions_total", kind="attach",
                                outcome="closed") >= 1, 30, "attach session counted")
        assert sample(scrape(owner), "zund_containers", status="Running", runtime="runc") >= 1
    finally:
        for f in followers:
            f.kill()
            f.wait(10)


def test_closing_the_client_ends_the_exec_process(cluster, real_docker):
    """A client killed mid-session ends its exec on the owner (no process left)."""
    entry = cluster[1]
    uuid = run_interactive(entry, "host", real_docker)
    shown = wait_for(lambda: (lambda r: r if r["status"] == "Running" else None)(
        entry.api("GET", f"/containers/{uuid}").json()), 60, "Running")
    via = next(n for n in cluster if n.name != shown["host"])
    child = spawn(via, "exec", "--interactive", "host", "sleep", "4242")
    child.expect("connected to host")

    def sleepers():
        p = subprocess.run(["docker", "top", f"zun-{uuid}"], capture_output=True, text=True)
        return sum("sleep 4242" in line for line in p.stdout.splitlines())

    wait_for(lambda: sleepers() == 1, 30, "the exec running")
    child.close(force=True)  # the client dies
    wait_for(lambda: sleepers() == 0, 30, "the exec process ended")
