"""Simulated gossip benchmark: traffic per node and update dissemination time.

For each size N, N full ``GossipService`` nodes run on ``zund.gossip.memnet``
with one simulated clock (lan timings, no loss).  Members start from a full,
alive member list (steady state, not a join storm), then we measure:

- packets and bytes sent per node per simulated second over a window (UDP):
  these should stay flat as N grows; plus the amortised push-pull (TCP) bytes,
  which grow like memberlist's: O(N / log N) per node;
- simulated seconds until 99.99% of the other nodes see a metadata update;
- simulated seconds until every other node sees a crashed node as dead.

Prints one JSON document on stdout.  ``--sizes 10,100,1000`` (default).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

from zund.gossip import config
from zund.gossip.sim import SimCluster


def run_size(n: int, window_s: float, seed: int) -> dict:
    wall = time.monotonic()
    cluster = SimCluster(seed=seed, config=config.lan())
    for i in range(n):
        cluster.add_node(i, seeds=[])
    cluster.bootstrap_full()
    stats = cluster.net.stats
    cluster.run(35.0)  # warm-up: every node's first push-pull (staggered over 30 s) and probe rounds
    # One push-pull per node happened in the warm-up; each node repeats it every
    # push_pull_scale(30 s, n), so this is the amortised TCP cost.
    pushpull_amortised = sum(stats.stream_bytes.values()) / (n * config.push_pull_scale(30.0, n))

    before = (sum(stats.packets_sent.values()), sum(stats.bytes_sent.values()), sum(stats.stream_bytes.values()))
    cluster.run(window_s)
    after = (sum(stats.packets_sent.values()), sum(stats.bytes_sent.values()), sum(stats.stream_bytes.values()))
    per = n * window_s
    traffic = {
        "packets_per_node_per_s": round((after[0] - before[0]) / per, 3),
        "bytes_per_node_per_s": round((after[1] - before[1]) / per, 1),
        "pushpull_tcp_bytes_per_node_per_s_amortised": round(pushpull_amortised, 1),
    }

    # Dissemination of a metadata update to 99.99% of the other nodes.
    origin = cluster.nodes["n1"]
    others = [node for name, node in cluster.nodes.items() if name != "n1"]
    need = math.ceil(0.9999 * len(others))
    origin.set_metadata(b"bench-update")
    p0 = sum(stats.packets_sent.values())

    def informed():
        return sum(1 for node in others if node._membership.member("n1").meta == b"bench-update") >= need
    dissemination = cluster.run_until(informed, 60.0, step_s=0.005)
    dissemination_packets = sum(stats.packets_sent.values()) - p0

    # Failure detection: crash n2, time until every other node sees it dead.
    cluster.run(5.0)
    cluster.nodes["n2"].stop_without_leave()
    watchers = [node for name, node in cluster.nodes.items() if name != "n2"]
    detection = cluster.run_until(
        lambda: all(node._membership.member("n2").state == "dead" for node in watchers), 120.0, step_s=0.05)
    false_dead = sum(1 for e in cluster.events if e[2] == "dead" and e[3] != "n2")
    return {
        "nodes": n,
        "window_s": window_s,
        **traffic,
        "dissemination_s_99_99pct": None if dissemination is None else round(dissemination, 3),
        "dissemination_packets_total": dissemination_packets,
        "detection_all_s": None if detection is None else round(detection, 2),
        "false_dead_events": false_dead,
        "wall_s": round(time.monotonic() - wall, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--window", type=float, default=30.0, help="simulated seconds of steady-state traffic")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    results = [run_size(int(s), args.window, args.seed) for s in args.sizes.split(",") if s.strip()]
    print(json.dumps({"benchmark": "gossip_sim", "profile": "lan", "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
