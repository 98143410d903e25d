"""Simulated gossip benchmark: traffic per node and update dissemination time.

For each size N, N full ``GossipService`` nodes run on ``zund.gossip.memnet``
with one simulated clock (lan timings, no loss).  Members start from a full,
alive member list (steady state, not a join storm), then we measure:

- packets and bytes sent per node per simulated second over a window (UDP):
  these should stay flat as N grows; plus the amortised push-pull (TCP) bytes,
  which grow like memberlist's: O(N / log N) per node;
- simulated seconds until 99.99% of the other nodes see a metadata update;
- simulated seconds until every other node sees a crashed node as dead;
- false positives: then ``--loss`` packet loss and ``--slow-frac`` of the nodes
  slow (every packet they receive 0.1-0.9 s late, Lifeguard's slow node) for
  ``--fp-window`` simulated seconds: live nodes declared dead (must be 0) and
  suspicions raised (refuted); finally a second crash detected under that stress.

``--compare-memberlist`` repeats every size with memberlist's suspicion rules
(minimum = suspicion_mult, no out-of-turn probes of a suspect) to show what the
zund parameters (``zund.gossip.config``, docs/design.md "Gossip") change.

Prints one JSON document on stdout.  ``--sizes 10,100,1000`` (default).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time

from zund.gossip import config
from zund.gossip.sim import SimCluster, sim_addr
from zund.gossip.suspicion import expected_confirmations, suspicion_timeout


def parameters(cfg, n: int) -> dict:
    """The detection timings ``cfg`` gives a cluster of n members."""
    return {
        "probe_interval_s": cfg.probe_interval_s,
        "probe_timeout_s": cfg.probe_timeout_s,
        "suspicion_min_s": round(suspicion_timeout(cfg.suspicion_min_mult, n, cfg.probe_interval_s), 3),
        "suspicion_max_s": round(cfg.suspicion_max_timeout_mult
                                 * suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval_s), 3),
        "confirmations_k": expected_confirmations(cfg.suspicion_mult, n),
        "out_of_turn_probers": min(cfg.suspicion_probers, max(n - 2, 0)),
        "push_min_interval_s": cfg.push_min_interval_s,
    }


def run_size(n: int, window_s: float, seed: int, cfg=None, loss: float = 0.01, slow_frac: float = 0.01,
             fp_window_s: float = 30.0, unreachable: bool = False) -> dict:
    wall = time.monotonic()
    cfg = cfg or config.lan()
    cluster = SimCluster(seed=seed, config=cfg)
    # a crashed member's host answers its datagrams with "port unreachable"
    # (zund.gossip.transport); False: it vanishes silently, like a dead host
    cluster.net.unreachable = unreachable
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

    # False positives under stress: loss plus slow nodes, nobody else crashes.
    cluster.net.loss = loss
    rng = random.Random(seed)
    slow = rng.sample([i for i in range(n) if i not in (2, 3)], max(1, round(slow_frac * n)))
    for i in slow:
        cluster.net.set_slow(sim_addr(i), (0.1, 0.9))
    mark = len(cluster.events)
    cluster.run(fp_window_s)
    stressed = cluster.events[mark:]
    stress_false_dead = sum(1 for e in stressed if e[2] in ("dead", "leave") and e[3] != "n2")
    stress_suspicions = sum(1 for e in stressed if e[2] == "suspect" and e[3] != "n2")
    cluster.nodes["n3"].stop_without_leave()
    watchers = [node for name, node in cluster.nodes.items() if name not in ("n2", "n3")]
    stressed_detection = cluster.run_until(
        lambda: all(node._membership.member("n3").state == "dead" for node in watchers), 120.0, step_s=0.05)
    stress_false_dead += sum(1 for e in cluster.events[mark:] if e[2] in ("dead", "leave")
                             and e[3] not in ("n2", "n3"))
    return {
        "nodes": n,
        "host_answers_for_the_dead": unreachable,
        "parameters": parameters(cfg, n),
        "window_s": window_s,
        **traffic,
        "dissemination_s_99_99pct": None if dissemination is None else round(dissemination, 3),
        "dissemination_packets_total": dissemination_packets,
        "detection_all_s": None if detection is None else round(detection, 2),
        "false_dead_events": false_dead,
        "stress": {"loss": loss, "slow_nodes": len(slow), "window_s": fp_window_s,
                   "false_dead_events": stress_false_dead, "suspect_events": stress_suspicions,
                   "detection_all_s": None if stressed_detection is None else round(stressed_detection, 2)},
        "wall_s": round(time.monotonic() - wall, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--window", type=float, default=30.0, help="simulated seconds of steady-state traffic")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--loss", type=float, default=0.01, help="packet loss in the stress phase")
    parser.add_argument("--slow-frac", type=float, default=0.01, help="share of slow nodes in the stress phase")
    parser.add_argument("--fp-window", type=float, default=30.0, help="simulated seconds of the stress phase")
    parser.add_argument("--host-answers", action="store_true",
                        help="crashed members' hosts answer with ICMP port unreachable (a dead "
                             "process on a live host) instead of silence (a dead host)")
    parser.add_argument("--compare-memberlist", action="store_true",
                        help="also run memberlist's suspicion rules (slower, for the docs)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    configs = {"zund": config.lan()}
    if args.compare_memberlist:
        configs["memberlist"] = config.lan(suspicion_min_mult=config.lan().suspicion_mult, suspicion_probers=0)
    out = {"benchmark": "gossip_sim", "profile": "lan"}
    for label, cfg in configs.items():
        key = "results" if label == "zund" else f"results_{label}"
        out[key] = [run_size(n, args.window, args.seed, cfg, args.loss, args.slow_frac, args.fp_window,
                             args.host_answers)
                    for n in sizes]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
