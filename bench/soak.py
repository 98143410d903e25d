"""Soak: concurrent clients × minutes of mixed operations on 3 real nodes (issue 11
item 6): prints JSON.

A 3-node cluster of real ``zund serve`` processes on 127.0.0.1-3 (fake runtime:
nothing is left behind in Docker). ``--clients`` threads (default 50) run for
``--duration-s`` (default 120) through the three nodes in turn, each on its own
containers (so each client's model is exact): create (``run=true``, then wait
Running), show, list, stop (wait Stopped) / start (wait Running), delete
(``force``, then show answers 404). Every answer is checked against the model:
an unexpected status is an error, a 5xx or a broken connection is a server error.

After the clients stop: every node's list (``all_projects``) equals the model
(each live container once, with the model's status, nothing deleted comes back),
each container is in exactly one node's store, and every node's RSS and open fd
count, sampled every 2 s, did not grow without bound (end of run vs. after the
first quarter: RSS ≤ +64 MiB and +50 %, fds ≤ +64).

Output: ``{clients, duration_s, ops: {op: {n, p50_ms, p99_ms}}, errors,
server_errors, lost, doubled, extra (counts; samples beside them), status_mismatch,
processes: {node: {rss_mb: [after the first quarter, end], fds: [...], peaks}},
growth_ok, reference: {what, list_idle_p50_ms}}``; the reference is
the list latency of the idle cluster measured in the same run before the load.
Exit status 1 when an invariant breaks. ``--time-budget-s`` (``bench/run_all.py``
passes what its run budget leaves) cuts the clients' run so the whole soak fits;
``duration_s`` is then what ran, ``duration_asked_s`` what was asked.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import requests  # noqa: E402

from bench.stats import pct  # noqa: E402

IMAGE = "zund-test/busybox:latest"  # the fake runtime's local image
RUNNER = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done']
MAX_LIVE = 3          # containers a client keeps at most
WAIT_S = 60.0         # longest wait for a container to reach a status
RSS_SLACK_MB = 64.0
RSS_RATIO = 1.5
FD_SLACK = 64


class Client:
    """One soak client: its own containers, its own model, its own counts."""

    def __init__(self, index: int, nodes, deadline: float, seed: int):
        self.index = index
        self.nodes = nodes
        self.deadline = deadline
        self.rng = random.Random(seed * 1000 + index)
        self.session = requests.Session()
        self.live: dict[str, str] = {}        # uuid -> Running | Stopped
        self.deleted: set[str] = set()
        self.names: dict[str, str] = {}
        self.made = 0
        self.lat: dict[str, list] = collections.defaultdict(list)
        self.errors: list[str] = []
        self.server_errors: list[str] = []

    # -- HTTP ----------------------------------------------------------------------------

    def call(self, op: str, method: str, path: str, expect, **kw):
        node = self.nodes[self.rng.randrange(len(self.nodes))]
        headers = {"X-Auth-Token": "admin:demo", "OpenStack-API-Version": "container 1.40",
                   "Content-Type": "application/json"}
        t0 = time.monotonic()
        try:
            r = self.session.request(method, node.endpoint + path, headers=headers,
                                     timeout=60, **kw)
        except requests.RequestException as e:
            self.server_errors.append(f"{op} {path} via {node.name}: {type(e).__name__}")
            return None
        self.lat[op].append(time.monotonic() - t0)
        if r.status_code >= 500:
            self.server_errors.append(f"{op} {path} via {node.name}: {r.status_code} "
                                      f"{r.text[:200]}")
            return None
        if r.status_code not in ((expect,) if isinstance(expect, int) else expect):
            self.errors.append(f"{op} {path} via {node.name}: {r.status_code} {r.text[:200]}")
            return None
        return r

    def wait_for(self, uuid: str, status: str) -> bool:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            r = self.call("show", "GET", f"/containers/{uuid}", 200)
            if r is None:
                return False
            body = r.json()
            if body["status"] == status and body["task_state"] is None:
                return True
            if body["status"] == "Error":
                self.errors.append(f"{uuid} in Error: {body.get('status_reason')}")
                return False
            time.sleep(0.2)
        self.errors.append(f"{uuid} not {status} within {WAIT_S} s")
        return False

    # -- operations ---------------------------------------------------------------------

    def create(self) -> None:
        name = f"soak{self.index}-{self.made}"
        self.made += 1
        r = self.call("create", "POST", "/containers?run=true", 202,
                      json={"name": name, "image": IMAGE, "command": RUNNER, "cpu": 0.1,
                            "memory": 16, "image_pull_policy": "ifnotpresent"})
        if r is None:
            return
        uuid = r.json()["uuid"]
        self.live[uuid] = "Running"
        self.names[uuid] = name
        self.wait_for(uuid, "Running")

    def toggle(self, uuid: str) -> None:
        if self.live[uuid] == "Running":
            if self.call("stop", "POST", f"/containers/{uuid}/stop", 202) is not None:
                self.live[uuid] = "Stopped"
                self.wait_for(uuid, "Stopped")
        else:
            if self.call("start", "POST", f"/containers/{uuid}/start", 202) is not None:
                self.live[uuid] = "Running"
                self.wait_for(uuid, "Running")

    def delete(self, uuid: str) -> None:
        if self.call("delete", "DELETE", f"/containers/{uuid}?force=True", 204) is None:
            return
        del self.live[uuid]
        self.deleted.add(uuid)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:  # a delete may finish asynchronously
            r = self.call("show", "GET", f"/containers/{uuid}", (200, 404))
            if r is None or r.status_code == 404:
                return
            time.sleep(0.2)
        self.errors.append(f"{uuid} still shown {WAIT_S} s after its delete")

    def show(self, uuid: str) -> None:
        r = self.call("show", "GET", f"/containers/{uuid}", 200)
        if r is not None and r.json()["status"] != self.live[uuid]:
            self.errors.append(f"{uuid} shown {r.json()['status']}, model {self.live[uuid]}")

    def list(self) -> None:
        r = self.call("list", "GET", "/containers", 200)
        if r is None:
            return
        seen = {c["uuid"] for c in r.json()["containers"]}
        missing = set(self.live) - seen
        if missing:
            self.errors.append(f"list misses {sorted(missing)[:3]}")

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            x = self.rng.random()
            mine = sorted(self.live)
            if not mine or (x < 0.25 and len(mine) < MAX_LIVE):
                self.create()
            elif x < 0.45:
                self.show(self.rng.choice(mine))
            elif x < 0.6:
                self.list()
            elif x < 0.8:
                self.toggle(self.rng.choice(mine))
            else:
                self.delete(self.rng.choice(mine))


def _proc_sample(pid: int) -> tuple[float, int]:
    """(RSS MiB, open fds) of process ``pid``."""
    rss = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def _stored(node) -> list[str]:
    path = os.path.join(node.state_path, "zund.sqlite")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return [row[0] for row in conn.execute("SELECT uuid FROM containers")]
    finally:
        conn.close()


def soak(workdir: str, clients: int = 50, duration_s: float = 120.0, seed: int = 1) -> dict:
    """Run the soak on a fresh 3-node cluster under ``workdir``; the JSON document."""
    from tests.support.nodeproc import start_cluster, stop_cluster

    nodes = start_cluster(workdir, 3, "soak", runtimes="fake", cpus=64, memory_mb=65536)
    try:
        r = nodes[0].api("PUT", "/quotas/demo",
                         json={"containers": -1, "cpu": -1, "memory": -1, "disk": -1})
        assert r.status_code == 200, r.text
        idle = []
        for i in range(20):
            t0 = time.monotonic()
            nodes[i % 3].api("GET", "/containers").raise_for_status()
            idle.append(time.monotonic() - t0)
        samples: dict[str, list] = {n.name: [] for n in nodes}
        stop = threading.Event()

        def sampler():
            while not stop.is_set():
                for n in nodes:
                    samples[n.name].append(_proc_sample(n.proc.pid))
                stop.wait(2.0)

        watcher = threading.Thread(target=sampler, daemon=True)
        watcher.start()
        started = time.monotonic()
        deadline = started + duration_s
        workers = [Client(i, nodes, deadline, seed) for i in range(clients)]
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            for f in [pool.submit(w.run) for w in workers]:
                f.result()
        elapsed = time.monotonic() - started
        stop.set()
        watcher.join(10)
        for n in nodes:  # the end sample, the clients gone
            samples[n.name].append(_proc_sample(n.proc.pid))

        model = {u: s for w in workers for u, s in w.live.items()}
        deleted = set().union(*(w.deleted for w in workers))
        listed_by = {}
        for n in nodes:
            r = n.api("GET", "/containers?all_projects=1")
            r.raise_for_status()
            listed_by[n.name] = r.json()["containers"]
        lost, doubled, extra, mismatch = set(), set(), set(), []
        for name, rows in listed_by.items():
            count = collections.Counter(c["uuid"] for c in rows)
            doubled |= {u for u, k in count.items() if k > 1}
            lost |= set(model) - set(count)
            extra |= set(count) - set(model)
            mismatch += [f"{name}: {c['uuid']} {c['status']} != {model[c['uuid']]}"
                         for c in rows if c["uuid"] in model and c["status"] != model[c["uuid"]]]
        held = collections.Counter(u for n in nodes for u in _stored(n))
        doubled |= {u for u, k in held.items() if k > 1}
        lost |= set(model) - set(held)
        extra |= {u for u in held if u not in model}
        growth = {}
        for name, s in samples.items():
            first = s[max(1, len(s) // 4)] if len(s) > 1 else s[0]
            end = s[-1]
            growth[name] = {"rss_mb": [round(first[0], 1), round(end[0], 1)],
                            "fds": [first[1], end[1]],
                            "rss_peak_mb": round(max(x[0] for x in s), 1),
                            "fds_peak": max(x[1] for x in s)}
        growth_ok = all(
            g["rss_mb"][1] <= max(g["rss_mb"][0] * RSS_RATIO, g["rss_mb"][0] + RSS_SLACK_MB)
            and g["fds"][1] <= g["fds"][0] + FD_SLACK for g in growth.values())
        lat: dict = collections.defaultdict(list)
        for w in workers:
            for op, xs in w.lat.items():
                lat[op].extend(xs)
        errors = [e for w in workers for e in w.errors]
        server_errors = [e for w in workers for e in w.server_errors]
        return {
            "clients": clients, "duration_s": round(elapsed, 1),
            "ops": {op: {"n": len(xs), "p50_ms": round(pct(sorted(xs), 50) * 1000, 1),
                         "p99_ms": round(pct(sorted(xs), 99) * 1000, 1)}
                    for op, xs in sorted(lat.items())},
            "ops_total": sum(len(xs) for xs in lat.values()),
            "live_at_end": len(model), "deleted": len(deleted),
            "errors": len(errors), "error_samples": errors[:10],
            "server_errors": len(server_errors), "server_error_samples": server_errors[:10],
            "lost": len(lost), "doubled": len(doubled), "extra": len(extra),
            "lost_doubled_extra_samples": sorted(lost)[:5] + sorted(doubled)[:5]
            + sorted(extra)[:5],
            "status_mismatch": mismatch[:10],
            "processes": growth, "growth_ok": growth_ok,
            "reference": {"what": "list latency of the idle cluster, same run",
                          "list_idle_p50_ms": round(pct(sorted(idle), 50) * 1000, 1)},
        }
    finally:
        stop_cluster(nodes)


def sound(out: dict) -> bool:
    return not (out["errors"] or out["server_errors"] or out["lost"] or out["doubled"]
                or out["extra"] or out["status_mismatch"]) and out["growth_ok"]


#: what a soak spends outside its clients' run: starting 3 nodes, the idle
#: reference, the clients' last operations, the final checks, stopping
SETUP_S = 20.0
#: the shortest soak a time budget may cut the run to
MIN_DURATION_S = 20.0


def budgeted_duration(duration_s: float, budget_s: float | None) -> float:
    """The clients' run time: ``duration_s``, cut so that the whole soak fits in
    ``budget_s`` (never below MIN_DURATION_S: a shorter soak says little)."""
    if budget_s is None:
        return duration_s
    return max(MIN_DURATION_S, min(duration_s, budget_s - SETUP_S))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration-s", type=float, default=120.0)
    ap.add_argument("--time-budget-s", type=float, default=None,
                    help="the whole soak's time: the clients' run is cut to fit "
                         f"(at least {MIN_DURATION_S:.0f} s)")
    ap.add_argument("--seed", type=int, default=1)
    ns = ap.parse_args(argv)
    duration_s = budgeted_duration(ns.duration_s, ns.time_budget_s)
    with tempfile.TemporaryDirectory(prefix="zund-soak-") as tmp:
        out = soak(tmp, ns.clients, duration_s, ns.seed)
    out["duration_asked_s"] = ns.duration_s
    print(json.dumps(out, indent=1))
    return 0 if sound(out) else 1


if __name__ == "__main__":
    sys.exit(main())
