"""Placement on 5 real ``zund serve`` processes (127.0.0.1-5, fake runtime, signed
peer RPC over loopback HTTP). Prints JSON.

- ``decision_ms``: the coordinator's own decision time (filter, bid round over
  HTTP, choice) up to sending the COMMIT, as recorded in each container's
  ``compute__schedule_container`` event;
- ``api_create_ms``: POST /v1/containers round trip as a client sees it;
- ``placements_per_s``: creates accepted per second with 8 concurrent clients
  spread over random entry nodes;
- ``oversubscribed_nodes``: nodes whose allocations exceed their declared
  capacity afterwards (must be 0).

The reference for decision quality and for the pure decision path is
``bench/placement.py`` (in-memory network, omniscient placer on the same
sequence); this run shows what HTTP and process boundaries add.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.stats import pct  # noqa: E402
from tests.support.nodeproc import start_cluster, stop_cluster  # noqa: E402



def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=220)  # ~78% of the 80 vCPUs
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    wd = tempfile.mkdtemp(prefix="zund-bench-placement-")
    nodes = start_cluster(wd, 5, "bp", memory_mb=8192, cpus=16, runtimes="fake")
    api_ms = []
    try:
        def one(i):
            node = nodes[rng.randrange(5)]
            body = {"image": "zund-test/busybox:latest", "command": ["true"],
                    "cpu": rng.choice([0.1, 0.25, 0.5]), "memory": rng.choice([32, 64, 128])}
            t0 = time.perf_counter()
            r = node.api("POST", "/containers", token=f"admin:p{i % 8}", json=body)
            dt = (time.perf_counter() - t0) * 1000
            r.raise_for_status()
            return dt, r.json()

        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - t0
        placed = [c for _, c in results if c["host"]]
        api_ms = [dt for dt, _ in results]
        decision_ms = []
        for c in placed[: min(100, len(placed))]:
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
        print(json.dumps({
            "benchmark": "placement_real", "nodes": 5, "requests": args.requests,
            "clients": args.clients, "placed": len(placed),
            "placements_per_s": round(len(results) / wall, 1),
            "decision_ms_p50": round(statistics.median(decision_ms), 2),
            "decision_ms_p99": round(pct(decision_ms, 99), 2),
            "api_create_ms_p50": round(statistics.median(api_ms), 2),
            "api_create_ms_p99": round(pct(api_ms, 99), 2),
            "oversubscribed_nodes": over,
            "containers_per_node": {h["hostname"]: h["total_containers"] for h in hosts},
        }, indent=2))
    finally:
        stop_cluster(nodes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
