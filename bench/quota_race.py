"""Quota race: N concurrent creates of one project through 5 entry nodes, with a
container quota Q, against the same creates of another project with no quota
(the reference, same run). One JSON line per mode:
{mode, clock, requests, accepted, created, overshoot, p50_ms, quota, reference}.

- ``sim``: a simulated cluster (real node services, in-memory network with small
  delays). Latencies are on the simulation's clock (network delays and timeouts
  modelled, CPU time not): the difference to the reference is the claim round trip.
- ``real``: 5 ``zund serve`` processes on 127.0.0.1-5 (fake runtime, signed peer
  RPC over loopback HTTP), N client threads at once; wall-clock latencies of
  POST /v1/containers as the clients see them (also split: accepted, refused —
  a refusal costs only the claim, so compare ``p50_accepted_ms`` with the
  reference's). ``created`` is counted from every node's listing afterwards.

Exits non-zero when any mode overshoots or creates fewer than min(Q, N).

    python3 bench/quota_race.py [--mode sim|real|both] [--requests 50] [--quota 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer  # noqa: E402

from tests.support.harness import SimCluster, SimConfig  # noqa: E402
from tests.support.memrpc import LinkFaults  # noqa: E402

TENANT = "bench:projq"


def race(seed: int, requests: int, quota: int | None) -> dict:
    """The simulated race (one fresh SimCluster per call)."""
    c = SimCluster(seed, SimConfig(nodes=5), LinkFaults(delay=(0.0005, 0.003))).start()
    try:
        limit = -1 if quota is None else quota
        r = c.api(0, "PUT", "/quotas/projq", token="admin:demo",
                  json={"containers": limit, "cpu": -1, "memory": -1, "disk": -1})
        assert r.status == 200, r.body
        times: list[float] = []

        def timed(i):
            start = c.clock.seconds()
            d = c.request_async(i % 5, "POST", "/containers", token=TENANT,
                                json={"image": "zund-test/busybox:latest", "name": f"b{i}",
                                      "memory": 32, "cpu": 0.1})

            def done(resp):
                times.append((c.clock.seconds() - start) * 1000.0)
                return resp
            return d.addCallback(done)

        answers = c.wait(defer.gatherResults([timed(i) for i in range(requests)]),
                         timeout_s=600)
        created = len({rec.uuid for n in c.nodes
                       for rec in c.run(n.store.list_containers("projq"))})
        return {"requests": requests, "accepted": sum(a.status == 202 for a in answers),
                "created": created,
                "overshoot": max(0, created - quota) if quota is not None else 0,
                "p50_ms": round(statistics.median(times), 3)}
    finally:
        c.stop()


def real_races(requests: int, quota: int) -> dict:
    """The race on 5 real processes: first a warm-up, then the reference (project
    ``projref``, unlimited) and the quota race (``projq``, ``quota`` containers) on
    the same cluster."""
    from tests.support.nodeproc import start_cluster, stop_cluster

    wd = tempfile.mkdtemp(prefix="zund-bench-quota-")
    nodes = start_cluster(wd, 5, "bq", memory_mb=16384, cpus=32, runtimes="fake")
    try:
        def one(project: str, i: int):
            body = {"image": "zund-test/busybox:latest", "name": f"{project}-{i}",
                    "command": ["sleep", "1000000"], "memory": 32, "cpu": 0.1}
            t0 = time.perf_counter()
            r = nodes[i % 5].api("POST", "/containers", token=f"bench:{project}", json=body)
            return (time.perf_counter() - t0) * 1000.0, r.status_code

        def run(project: str, limit: int | None, count: int) -> dict:
            r = nodes[0].api("PUT", f"/quotas/{project}",
                             json={"containers": -1 if limit is None else limit,
                                   "cpu": -1, "memory": -1, "disk": -1})
            r.raise_for_status()
            with concurrent.futures.ThreadPoolExecutor(count) as pool:
                answers = list(pool.map(lambda i: one(project, i), range(count)))
            created = set()
            for node in nodes:
                listed = node.api("GET", "/containers?limit=1000", token=f"bench:{project}")
                listed.raise_for_status()
                created |= {c["uuid"] for c in listed.json()["containers"]}
            return {"requests": count, "accepted": sum(s == 202 for _, s in answers),
                    "created": len(created),
                    "overshoot": 0 if limit is None else max(0, len(created) - limit),
                    "p50_ms": _p50([ms for ms, _ in answers]),
                    "p50_accepted_ms": _p50([ms for ms, s in answers if s == 202]),
                    "p50_refused_ms": _p50([ms for ms, s in answers if s == 403])}

        run("warm", None, 5)
        out = run("projq", quota, requests)
        out["reference"] = run("projref", None, requests)
        return out
    finally:
        stop_cluster(nodes)


def _p50(values: list) -> float | None:
    return round(statistics.median(values), 3) if values else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--mode", choices=("sim", "real", "both"), default="both")
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--quota", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    ok = True
    for mode in (("sim", "real") if a.mode == "both" else (a.mode,)):
        if mode == "sim":
            out = race(a.seed, a.requests, a.quota)
            out["reference"] = race(a.seed, a.requests, None)
            out["clock"] = "simulated"
        else:
            out = real_races(a.requests, a.quota)
            out["clock"] = "wall"
        out = {"mode": mode, "quota": a.quota, **out}
        print(json.dumps(out), flush=True)
        ok = ok and out["overshoot"] == 0 and out["created"] == min(a.quota, a.requests)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
