"""Placement on 5 real ``zund serve`` processes (127.0.0.1-5, fake runtime, signed and
sealed peer RPC over loopback). Prints JSON.

- ``decision_ms``: the coordinator's own decision time (filter, bid round,
  choice) up to sending the COMMIT, as recorded in each container's
  ``compute__schedule_container`` event;
- ``api_create_ms``: POST /v1/containers round trip as a client sees it;
- ``placements_per_s``: creates accepted per second with ``--clients`` concurrent
  clients (each with one keep-alive connection per node, like any HTTP client
  library's session) spread over random entry nodes, after ``--warmup`` creates
  made the same way and not counted (``warmup_placements_per_s``: their rate).
  A node pays some costs once: its first create imports the JSON-schema
  validator, each (project, rule) pair is checked by oslo.policy once and then
  memoised, connections open. A 1,000-create run that counted them measured a
  daemon's first seconds, not its sustained rate;
- ``oversubscribed_nodes``: nodes whose allocations exceed their declared
  capacity afterwards (must be 0);
- ``rpcs_per_placement``: peer RPC requests the nodes' servers received during the
  run (``zund_peer_server_requests_total``) per create (calls a node makes to
  itself run in-process and are not RPCs).
- ``node_cpu_ms_per_placement`` / ``client_cpu_ms_per_placement``: CPU the 5
  nodes / this process's clients spent per create, and ``machine_busy``: both over
  cores x wall (near 1: the run is CPU-bound on this machine, so placements/s is
  cores / CPU per placement); ``machine_stolen``: the share of the machine's CPU
  time its hypervisor gave to other guests meanwhile (``steal`` in
  ``/proc/stat``): a run with much stolen is slower for the same code;
- ``store_commits_per_placement`` / ``store_transactions_per_placement``: SQLite
  commits (each one fsync, ``synchronous=FULL``) and the write transactions they
  carried (group commit), all nodes, per create.

With ``--profile-out FILE.prof`` every node's reactor thread runs under cProfile
during the measured creates; the files are merged into FILE.prof and the output's
``profile`` gives the own time by area and the top functions
(``bench/profile_areas.py``). The profiler slows every call: that run's rates are
not the benchmark's figures.

The floor of this machine, measured on the same processes in the same run
(``floor``): the cheapest signed and sealed peer round trip (``PING``, op 100), sent
by a peer client in this process with the cluster key, one at a time
(``rpc_ms_p50``: the cost of one RPC) and ``--clients`` at a time (``rpc_per_s``).
``placements_per_s_ceiling`` = rpc_per_s / rpcs_per_placement: what the transport
alone would allow; ``decision_over_rpc`` = decision p50 / rpc p50 (a decision is
one parallel bid round, so ~1 RPC is its floor). ``floor.api``: the cheapest API
request (GET /healthcheck) sent by the same clients the same way
(``requests_per_s``, the nodes' and the clients' CPU per request);
``placements_per_s_bound`` = 1 / (1 / api requests_per_s + rpcs_per_placement /
rpc_per_s): what this machine would allow if a create cost only its API request
and its RPCs at their cheapest, with no store, placement or lifecycle work at all.

Node capacity is scaled with ``--requests`` so the cluster ends ~78% full (the
fill at which bidders start declining), whatever the run length.

The reference for decision quality and for the pure decision path is
``bench/placement.py`` (in-memory network, omniscient placer on the same
sequence); this run shows what HTTP and process boundaries add.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import configparser
import http.client
import json
import math
import os
import pstats
import random
import re
import signal
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.profile_areas import (  # noqa: E402
    by_area, profile_started_nodes, top_functions, wait_for_files)
from bench.stats import machine_jiffies, machine_shares, pct, proc_cpu_ticks  # noqa: E402
from tests.support.nodeproc import free_port, start_cluster, stop_cluster  # noqa: E402

CPUS = (0.1, 0.25, 0.5)
MEMORY_MB = (32, 64, 128)
#: how full the cluster ends (the old fixed run: 220 creates in 5 x 16 vCPUs)
FILL = 0.78


class KeepAliveClient:
    """One client: a persistent HTTP/1.1 connection per node (reconnects on error)."""

    def __init__(self, nodes):
        self._nodes = nodes
        self._conns: dict[int, http.client.HTTPConnection] = {}

    def post(self, i: int, path: str, token: str, body: dict) -> tuple[int, dict]:
        headers = {"X-Auth-Token": token, "OpenStack-API-Version": "container 1.40",
                   "Content-Type": "application/json"}
        status, raw = self.request(i, "POST", "/v1" + path, json.dumps(body).encode(), headers)
        return status, json.loads(raw or b"{}")

    def request(self, i: int, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, bytes]:
        """``(status, body)`` of one request to node ``i`` on its kept-alive connection."""
        for attempt in (1, 2):
            conn = self._conns.get(i)
            if conn is None:
                node = self._nodes[i]
                conn = self._conns[i] = http.client.HTTPConnection(node.host_ip, node.port,
                                                                   timeout=60)
            try:
                conn.request(method, path, body=body, headers=headers or {})
                r = conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self._conns.pop(i, None)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        for c in self._conns.values():
            c.close()


def cpu_seconds(pids, main_thread: bool = False) -> float:
    """User + system CPU seconds the processes ``pids`` have used so far; with
    ``main_thread``, only their main (reactor) threads' (``/proc/<pid>/task/<pid>``:
    the rest of a node's CPU is its store thread and thread pool)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        _, user, system = proc_cpu_ticks(f"{pid}/task/{pid}" if main_thread else pid)
        total += (user + system) / tick
    return total


def measure_api_floor(nodes, calls: int, clients: int, rng: random.Random) -> dict:
    """GET /healthcheck, the cheapest request the nodes' API servers answer (public,
    no body, no auth; the same Twisted server and pipeline a create goes through),
    sent the way the creates are: ``clients`` threads of this process, each with a
    kept-alive connection per node (opened before the clock starts), to random
    nodes. Requests per second, and the nodes' and these clients' CPU per request."""
    entries = iter([rng.randrange(len(nodes)) for _ in range(calls)])
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def worker():
        c = KeepAliveClient(nodes)
        try:
            for i in range(len(nodes)):
                c.request(i, "GET", "/healthcheck")
            start.wait()
            while True:
                with lock:
                    i = next(entries, None)
                if i is None:
                    return
                status, _ = c.request(i, "GET", "/healthcheck")
                if status != 200:
                    raise RuntimeError(f"healthcheck answered {status}")
        finally:
            c.close()

    pids = [node.proc.pid for node in nodes]
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(worker) for _ in range(clients)]
        start.wait()
        cpu0, self0, t0 = cpu_seconds(pids), time.process_time(), time.perf_counter()
        for f in futures:
            f.result()
        wall = time.perf_counter() - t0
    node_cpu, client_cpu = cpu_seconds(pids) - cpu0, time.process_time() - self0
    return {"requests_per_s": round(calls / wall, 1),
            "node_cpu_ms_per_request": round(node_cpu * 1000 / calls, 3),
            "client_cpu_ms_per_request": round(client_cpu * 1000 / calls, 3),
            "in_flight": clients}


def load_spread(hosts: list) -> float | None:
    """max / mean over the nodes of (cpu used fraction + memory used fraction) / 2
    (what the spread policy balances; 1.0 is perfect)."""
    loads = [(h["cpu_used"] / h["cpus"] + h["mem_used"] / h["mem_total"]) / 2
             for h in hosts if h.get("cpus") and h.get("mem_total")]
    mean = statistics.fmean(loads) if loads else 0
    return round(max(loads) / mean, 4) if mean else None


def peer_requests(nodes, metrics_ports, by_op: dict | None = None) -> int:
    """Sum of ``zund_peer_server_requests_total`` over the nodes (and, into
    ``by_op``, of ``zund_peer_server_operations_total`` per operation, of the
    fast path's outcomes and of the store's commit counters, read from the same
    scrape)."""
    total = 0
    for node, port in zip(nodes, metrics_ports):
        conn = http.client.HTTPConnection(node.host_ip, port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        m = re.search(r"^zund_peer_server_requests_total\s+([0-9.e+]+)$", text, re.M)
        total += int(float(m.group(1))) if m else 0
        if by_op is not None:
            for op, count in re.findall(
                    r'^zund_peer_server_operations_total\{op="([A-Z_]+)"\}\s+([0-9.e+]+)$',
                    text, re.M):
                by_op[op] = by_op.get(op, 0) + int(float(count))
            for outcome, count in re.findall(
                    r'^zund_placement_fast_path(?:_total)?\{outcome="([a-z_]+)"\}\s+([0-9.e+]+)$',
                    text, re.M):
                key = f"fast_path_{outcome}"
                by_op[key] = by_op.get(key, 0) + int(float(count))
            for name, count in re.findall(
                    r'^zund_(store_commits|store_write_transactions)(?:_total)?\s+([0-9.e+]+)$',
                    text, re.M):
                by_op[name] = by_op.get(name, 0) + int(float(count))
    return total


def measure_floor(nodes, sequential: int, concurrent: int, in_flight: int) -> dict:
    """PING round trips to the nodes with the cluster key, from a peer client in a
    reactor thread of this process: one at a time, then ``in_flight`` at a time;
    over the peer channel (what the nodes use) and over HTTP per call (``http``)."""
    from twisted.internet import defer, reactor

    from zund.cluster import sealing, signing
    from zund.cluster.peer_client import PeerClient
    from zund.cluster.types import NodeView

    cp = configparser.ConfigParser(interpolation=None)
    cp.read(nodes[0].conf_path)
    ring = signing.peer_keys([cp["gossip"]["keys"]], cp["gossip"]["cluster_name"])
    views = []
    for node in nodes:
        npc = configparser.ConfigParser(interpolation=None)
        npc.read(node.conf_path)
        views.append(NodeView(node.name, "alive", f"{node.host_ip}:{node.port}",
                              f"{npc['peer']['host_ip']}:{npc['peer']['port']}", None))
    out: dict = {}
    done = threading.Event()

    async def run():
        await one(True, out)
        out["http"] = {}
        await one(False, out["http"])

    async def one(channel: bool, out: dict):
        client = PeerClient("bench-floor", signing.Signer("bench-floor", ring.keys, reactor),
                            clock=reactor, reactor=reactor, sealer=sealing.sealer_for(ring),
                            channel=channel)
        seq = []
        for i in range(sequential):
            t0 = time.perf_counter()
            await client.ping(views[i % len(views)])
            seq.append((time.perf_counter() - t0) * 1000)
        lat = []
        counter = iter(range(concurrent))

        async def worker():
            for i in counter:
                t0 = time.perf_counter()
                await client.ping(views[i % len(views)])
                lat.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await defer.gatherResults([defer.Deferred.fromCoroutine(worker())
                                   for _ in range(in_flight)])
        wall = time.perf_counter() - t0
        await client.close()
        seq = seq[len(seq) // 10:]  # the first calls open connections
        out.update(rpc_ms_p50=round(statistics.median(seq), 3),
                   rpc_ms_p99=round(pct(seq, 99), 3),
                   rpc_per_s=round(concurrent / wall, 1),
                   rpc_concurrent_ms_p50=round(statistics.median(lat), 3),
                   in_flight=in_flight)

    def start():
        d = defer.Deferred.fromCoroutine(run())
        d.addErrback(lambda f: out.update(error=f.getTraceback()))
        d.addBoth(lambda _: done.set())

    thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                              daemon=True)
    thread.start()
    reactor.callFromThread(start)
    done.wait(300)
    reactor.callFromThread(reactor.stop)
    thread.join(10)
    return out


def collect_profile(out: str, pids: list[int], timeout_s: float = 30.0) -> dict:
    """Stop the nodes' profilers (SIGUSR2: each writes ``out.<pid>``), merge their
    files into ``out`` and summarise it: reactor-thread CPU by area and the top
    functions by own time (``bench.profile_areas``)."""
    files = [f"{out}.{pid}" for pid in pids]
    for f in files:
        if os.path.exists(f):
            os.unlink(f)
    for pid in pids:
        os.kill(pid, signal.SIGUSR2)
    if not wait_for_files(files, timeout_s):
        raise RuntimeError(f"a node wrote no profile within {timeout_s} s: {files}")
    stats = pstats.Stats(*files)
    stats.dump_stats(out)
    for f in files:
        os.unlink(f)
    return {"file": os.path.abspath(out),
            "measured": "CPU time of each node's reactor thread (cProfile; the store "
                        "thread's SQLite work is not in it), measured creates only",
            "by_area": by_area(stats), "top_functions": top_functions(stats)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=None,
                    help="creates before the measured ones, not counted "
                         "(default: a tenth of --requests, at least 50)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="a zund.conf option for every node (A/B runs), e.g. "
                         "placement.fast_path_slack=0.05; repeatable")
    ap.add_argument("--floor-calls", type=int, default=2000,
                    help="PINGs in the concurrent floor run (a tenth of them sequential)")
    ap.add_argument("--profile-out", metavar="FILE.prof",
                    help="cProfile every node's reactor thread during the measured "
                         "creates, merged into FILE.prof (pstats); the output gets "
                         "'profile' (own time by area, top functions). The profiler "
                         "slows the nodes: that run's rates are not the benchmark's")
    args = ap.parse_args(argv)
    if args.profile_out:
        # one file per node PID, merged after the run
        profile_started_nodes(args.profile_out + ".%p")
    rng = random.Random(args.seed)
    warmup = max(50, args.requests // 10) if args.warmup is None else max(0, args.warmup)
    total = args.requests + warmup
    n = 5
    mean_cpu = sum(CPUS) / len(CPUS)
    mean_mem = sum(MEMORY_MB) / len(MEMORY_MB)
    cpus = max(16, math.ceil(total * mean_cpu / FILL / n))
    memory_mb = max(8192, math.ceil(total * mean_mem / FILL / n))
    metrics_ports = [free_port(f"127.0.0.{i}") for i in range(1, n + 1)]
    per_node = {i: {"metrics": {"host_ip": f"127.0.0.{i}", "port": str(metrics_ports[i - 1])}}
                for i in range(1, n + 1)}
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        for i in per_node:
            per_node[i].setdefault(section, {})[name] = value
    wd = tempfile.mkdtemp(prefix="zund-bench-placement-")
    nodes = start_cluster(wd, n, "bp", memory_mb=memory_mb, cpus=cpus, runtimes="fake",
                          per_node=per_node)
    try:
        floor = measure_floor(nodes, max(50, args.floor_calls // 10), args.floor_calls,
                              args.clients)
        floor["api"] = measure_api_floor(nodes, args.floor_calls, args.clients,
                                         random.Random(args.seed))
        plan = [(rng.randrange(n), rng.choice(CPUS), rng.choice(MEMORY_MB))
                for _ in range(total)]
        # within Zun's default quota of 40 containers per project
        projects = max(8, math.ceil(total / 20))
        lock = threading.Lock()

        def client_loop(work, results):
            c = KeepAliveClient(nodes)
            try:
                while True:
                    with lock:
                        item = next(work, None)
                    if item is None:
                        return
                    i, (entry, cpu, mem) = item
                    body = {"image": "zund-test/busybox:latest", "command": ["true"],
                            "cpu": cpu, "memory": mem}
                    t0 = time.perf_counter()
                    status, answer = c.post(entry, "/containers", f"admin:p{i % projects}",
                                            body)
                    dt = (time.perf_counter() - t0) * 1000
                    if status != 202:
                        raise RuntimeError(f"create answered {status}: {answer}")
                    results.append((dt, answer))
            finally:
                c.close()

        def run_phase(items) -> tuple[list, float]:
            work, results = iter(items), []
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                for f in [pool.submit(client_loop, work, results)
                          for _ in range(args.clients)]:
                    f.result()
            return results, time.perf_counter() - t0

        numbered = list(enumerate(plan))
        warm_results, warm_wall = run_phase(numbered[:warmup])
        ops_before: dict = {}
        rpcs_before = peer_requests(nodes, metrics_ports, ops_before)
        pids = [node.proc.pid for node in nodes]
        cpu_before = cpu_seconds(pids)
        reactor_before = cpu_seconds(pids, main_thread=True)
        self_before = time.process_time()
        jiffies = machine_jiffies()
        if args.profile_out:
            for pid in pids:
                os.kill(pid, signal.SIGUSR1)
        results, wall = run_phase(numbered[warmup:])
        machine = machine_shares(jiffies, machine_jiffies())
        node_cpu_s = cpu_seconds(pids) - cpu_before
        reactor_cpu_s = cpu_seconds(pids, main_thread=True) - reactor_before
        client_cpu_s = time.process_time() - self_before
        profile = collect_profile(args.profile_out, pids) if args.profile_out else None
        ops_after: dict = {}
        rpcs = peer_requests(nodes, metrics_ports, ops_after) - rpcs_before
        placed = [c for _, c in results if c["host"]]
        api_ms = [dt for dt, _ in results]
        decision_ms = []
        sample = random.Random(args.seed).sample(placed, min(100, len(placed)))
        for c in sample:
            node = nodes[0]
            acts = node.api("GET", f"/containers/{c['uuid']}/container_actions",
                            token=f"admin:{c['project_id']}").json()["containerActions"]
            rid = [a for a in acts if a["action"] == "create"][0]["request_id"]
            ev = node.api("GET", f"/containers/{c['uuid']}/container_actions/{rid}",
                          token=f"admin:{c['project_id']}").json()["events"]
            d = [e for e in ev if e["event"] == "compute__schedule_container"][0]["details"]
            decision_ms.append(d["elapsed_s"] * 1000)
        hosts = nodes[0].api("GET", "/hosts").json()["hosts"]
        over = [h["hostname"] for h in hosts
                if h["mem_used"] > h["mem_total"] or h["cpu_used"] > h["cpus"]]
        rate = len(results) / wall
        per_placement = rpcs / max(1, len(results))
        out = {
            "benchmark": "placement_real", "nodes": n, "requests": args.requests,
            "clients": args.clients, "placed": len(placed),
            "warmup_requests": warmup,
            "warmup_placements_per_s": round(len(warm_results) / warm_wall, 1)
            if warm_results else None,
            "node_cpus": cpus, "node_memory_mb": memory_mb,
            "placements_per_s": round(rate, 1),
            "decision_ms_p50": round(statistics.median(decision_ms), 2),
            "decision_ms_p99": round(pct(decision_ms, 99), 2),
            "api_create_ms_p50": round(statistics.median(api_ms), 2),
            "api_create_ms_p99": round(pct(api_ms, 99), 2),
            "rpcs_per_placement": round(per_placement, 2),
            "rpcs_per_placement_by_op": {
                op: round((n - ops_before.get(op, 0)) / max(1, len(results)), 2)
                for op, n in sorted(ops_after.items())
                if n > ops_before.get(op, 0) and not op.startswith(("fast_path_", "store_"))},
            # SQLite commits (each one fsync) and write transactions, all nodes, per create
            "store_commits_per_placement": round(
                (ops_after.get("store_commits", 0) - ops_before.get("store_commits", 0))
                / max(1, len(results)), 2),
            "store_transactions_per_placement": round(
                (ops_after.get("store_write_transactions", 0)
                 - ops_before.get("store_write_transactions", 0)) / max(1, len(results)), 2),
            # BID_COMMITs by outcome (accepted, declined, failed) during the run
            "fast_path": {op[len("fast_path_"):]: n - ops_before.get(op, 0)
                          for op, n in sorted(ops_after.items()) if op.startswith("fast_path_")},
            # the spread policy's balance: max / mean of (cpu + memory fraction) / 2
            "load_max_over_mean": load_spread(hosts),
            # CPU the 5 nodes spent per create (all of it: API, placement, store,
            # replicas, quota, the fake runtime's lifecycle); 2 cores / this = the
            # most this machine could place with nothing else running
            "node_cpu_ms_per_placement": round(node_cpu_s * 1000 / max(1, len(results)), 2),
            # of which the nodes' reactor threads (the rest: store threads, thread pools)
            "node_reactor_cpu_ms_per_placement": round(
                reactor_cpu_s * 1000 / max(1, len(results)), 2),
            # CPU this process's clients spent per create (same cores as the nodes)
            "client_cpu_ms_per_placement": round(client_cpu_s * 1000 / max(1, len(results)), 2),
            # share of the machine (cores x wall) the nodes and the clients used
            "machine_busy": round((node_cpu_s + client_cpu_s) / ((os.cpu_count() or 1) * wall), 3),
            "machine_cpus": os.cpu_count(),
            # share of the machine's CPU time the hypervisor gave to other guests
            "machine_stolen": machine["stolen"],
            "load_average_1m": round(os.getloadavg()[0], 2),
            "oversubscribed_nodes": over,
            "containers_per_node": {h["hostname"]: h["total_containers"] for h in hosts},
            "floor": floor,
        }
        if profile is not None:
            out["profile"] = profile
        if "rpc_per_s" in floor:
            out["placements_per_s_ceiling"] = round(floor["rpc_per_s"] / max(per_placement,
                                                                             1e-9), 1)
            out["decision_over_rpc"] = round(out["decision_ms_p50"] / floor["rpc_ms_p50"], 2)
            api_rate = floor.get("api", {}).get("requests_per_s")
            if api_rate:
                # a create is one API request and per_placement RPCs: at their
                # cheapest (and nothing else: no store, no placement, no lifecycle)
                # this machine would place at most this many a second
                out["placements_per_s_bound"] = round(
                    1 / (1 / api_rate + per_placement / floor["rpc_per_s"]), 1)
        print(json.dumps(out, indent=2))
    finally:
        stop_cluster(nodes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
