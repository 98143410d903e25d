"""CPU per API request on one real ``zund serve`` process (fake runtime). Prints JSON.

    python bench/api_cost.py [--requests 400] [--profile-out FILE[.prof]]

One node, one keep-alive HTTP/1.1 client, requests one at a time; the node's own
CPU (user + system, from /proc) is read before and after each phase:

- ``healthcheck``: GET /healthcheck, the cheapest request the same Twisted server
  and pipeline answer (public, no body, no auth): the reference;
- ``create``: POST /v1/containers (auth, policy, schema, quota claim, placement
  on the one node, the durable record) plus everything the create sets off in the
  background (the fake runtime's create and start, the Running commit), measured
  until the node's CPU stops moving;
- ``get``: GET /v1/containers/<uuid> of the containers just created (auth, policy,
  point read, view).

``*_cpu_us`` is the node's CPU per request in µs; ``*_over_healthcheck`` divides
by the reference of the same run, which shared load distorts far less than the
absolute figures; ``*_user_us``/``*_system_us`` split it. ``--profile-out FILE``
also profiles the node during one phase (``--profile-phase``): ``FILE.prof`` with
cProfile on the reactor thread's CPU time (pstats; ``bench/cprofile_site``), any
other name with py-spy (collapsed stacks of every thread, ``--profile-rate``
samples/s). Not for CI: a profiler slows the node, and that phase's figures with
it (cProfile about 2x, and more for code made of many small calls).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.placement_real import cpu_seconds  # noqa: E402
from bench.profile_areas import profile_started_nodes, wait_for_files  # noqa: E402
from bench.stats import proc_cpu_ticks  # noqa: E402
from tests.support.nodeproc import start_cluster, stop_cluster  # noqa: E402

HEADERS = {"OpenStack-API-Version": "container 1.40", "Content-Type": "application/json"}


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far."""
    tick = os.sysconf("SC_CLK_TCK")
    _, user, system = proc_cpu_ticks(pid)
    return user / tick, system / tick


def settle(pid: int, quiet_s: float = 0.3, timeout_s: float = 30.0) -> None:
    """Wait until the process's CPU has not moved for ``quiet_s`` (its background
    work after the last request is done); at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last = cpu_seconds([pid])
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = cpu_seconds([pid])
        if now - last < 0.011:  # at most one clock tick: idle timers only
            return
        last = now


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--profile-out", default=None,
                    help="profile of the node during --profile-phase: FILE.prof is "
                         "cProfile (reactor thread, pstats format), any other name "
                         "py-spy raw (collapsed stacks, every thread)")
    ap.add_argument("--profile-rate", type=int, default=200, help="py-spy samples/s")
    ap.add_argument("--profile-phase", default="create",
                    choices=("healthcheck", "create", "get"))
    args = ap.parse_args(argv)
    n = args.requests
    wd = tempfile.mkdtemp(prefix="zund-bench-api-cost-")
    # no periodic reconcile inside the phases: its sweep over every record is the
    # node's background work, not the requests' (the default interval is 60 s)
    if args.profile_out and args.profile_out.endswith(".prof"):
        # cProfile inside the node (bench/cprofile_site/sitecustomize.py)
        if os.path.exists(args.profile_out):
            os.unlink(args.profile_out)
        profile_started_nodes(args.profile_out)
    nodes = start_cluster(wd, 1, "ac", memory_mb=1 << 20, cpus=4096, runtimes="fake",
                          extra={"DEFAULT": {"sync_container_state_interval": "600"}})
    node = nodes[0]
    pid = node.proc.pid
    conn = http.client.HTTPConnection(node.host_ip, node.port, timeout=60)

    def call(method: str, path: str, token: str | None = None, body=None) -> tuple[int, dict]:
        headers = dict(HEADERS)
        if token:
            headers["X-Auth-Token"] = token
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        raw = r.read()
        is_json = (r.getheader("Content-Type") or "").startswith("application/json")
        return r.status, (json.loads(raw) if raw and is_json else {})

    spy = None
    try:
        for _ in range(20):  # warm the connection and the code paths
            call("GET", "/healthcheck")
        settle(pid)
        out: dict = {"benchmark": "api_cost", "requests": n}

        def phase(name: str, fn) -> None:
            nonlocal spy
            settle(pid)
            if args.profile_out and args.profile_out.endswith(".prof"):
                if name == args.profile_phase:
                    os.kill(pid, signal.SIGUSR1)
            elif args.profile_out and name == args.profile_phase:
                spy = subprocess.Popen(["py-spy", "record", "-r", str(args.profile_rate),
                                        "-p", str(pid), "-f", "raw", "-o", args.profile_out,
                                        "--nonblocking"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            u0, s0 = cpu_split(pid)
            c0, t0 = cpu_seconds([pid]), time.perf_counter()
            for i in range(n):
                fn(i)
            wall = time.perf_counter() - t0
            if name == "create":
                settle(pid)
            cpu = cpu_seconds([pid]) - c0
            if spy is not None:
                spy.send_signal(2)
                spy.wait(30)
                spy = None
            if (args.profile_out and args.profile_out.endswith(".prof")
                    and name == args.profile_phase):
                os.kill(pid, signal.SIGUSR2)
                wait_for_files([args.profile_out])
            u1, s1 = cpu_split(pid)
            out[f"{name}_cpu_us"] = round(cpu * 1e6 / n, 1)
            out[f"{name}_user_us"] = round((u1 - u0) * 1e6 / n, 1)
            out[f"{name}_system_us"] = round((s1 - s0) * 1e6 / n, 1)
            out[f"{name}_wall_ms"] = round(wall * 1000 / n, 3)

        phase("healthcheck", lambda i: call("GET", "/healthcheck"))
        uuids: list = []

        def create(i: int) -> None:
            status, body = call("POST", "/v1/containers", f"admin:p{i // 20}",
                                {"image": "zund-test/busybox:latest", "command": ["true"],
                                 "cpu": 0.1, "memory": 32})
            if status != 202:
                raise RuntimeError(f"create answered {status}: {body}")
            uuids.append((body["uuid"], body["project_id"]))

        def get(i: int) -> None:
            uuid, project = uuids[i]
            status, body = call("GET", f"/v1/containers/{uuid}", f"admin:{project}")
            if status != 200:
                raise RuntimeError(f"get answered {status}: {body}")

        phase("create", create)
        phase("get", get)
        ref = out["healthcheck_cpu_us"] or 1.0
        out["create_over_healthcheck"] = round(out["create_cpu_us"] / ref, 2)
        out["get_over_healthcheck"] = round(out["get_cpu_us"] / ref, 2)
        out["load_average_1m"] = round(os.getloadavg()[0], 2)
        out["machine_cpus"] = os.cpu_count()
        print(json.dumps(out, indent=2))
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        conn.close()
        stop_cluster(nodes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
