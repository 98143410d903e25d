"""Fault campaigns (issue 11 items 1 and 6): prints JSON.

- ``sim``: ``--sim-runs`` seeded runs of the simulated whole cluster
  (tests/sim/whole_cluster/test_chaos_sim.py: 4 real nodes on one clock, slow fake engine,
  durable stores) with random interleavings of creates, deletes, message loss,
  duplication, delay, kill -9, restarts and partitions; summed counts of twins,
  lost acknowledged creates, stuck records, oversubscribed nodes and orphans (all
  must be 0), with what the clients were told. A run replays from its seed
  (``--seed``).
- ``real``: ``--creates`` creates (default 200) in bursts through node 1 of a
  3-node cluster of real ``zund serve`` processes on Docker while node 2 or 3 is
  killed -9 at a random moment of each burst and restarted
  (tests/real/e2e/test_chaos_real.py): lost / doubled / orphaned / stuck counts (all
  must be 0) and how the creates were answered. ``--no-real`` skips it.

Exit status 1 when any count is not 0.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BREACHES_SIM = ("twins", "lost", "stuck", "oversubscribed", "orphans")
BREACHES_REAL = ("lost", "doubled", "orphaned", "stuck", "errors")


def random_steps(rng: random.Random, n: int) -> list:
    """Steps in the vocabulary of ``run_campaign`` (see tests/sim/whole_cluster/test_chaos_sim.py)."""
    steps = []
    for _ in range(n):
        kind = rng.choice(["create", "create", "delete", "faults", "kill", "restart",
                           "partition", "heal", "advance"])
        if kind == "create":
            steps.append((kind, rng.randrange(4), rng.randint(1, 8)))
        elif kind == "delete":
            steps.append((kind, rng.randrange(4), rng.randrange(1000)))
        elif kind == "faults":
            steps.append((kind, rng.choice([0.0, 0.1, 0.3]), rng.choice([0.0, 0.1, 0.3]),
                          rng.choice([0.0, 0.2, 1.0]), rng.choice([0.0, 0.05, 0.5])))
        elif kind in ("kill", "restart", "partition"):
            steps.append((kind, rng.randint(1, 3)))
        elif kind == "heal":
            steps.append((kind,))
        else:
            steps.append((kind, rng.choice([0.05, 0.3, 1.0, 2.0, 5.0])))
    return steps


def sim_campaign(runs: int, seed: int) -> dict:
    from tests.sim.whole_cluster.test_chaos_sim import run_campaign

    rng = random.Random(seed)
    totals: collections.Counter = collections.Counter()
    refused: collections.Counter = collections.Counter()
    failing = []
    started = time.monotonic()
    for _ in range(runs):
        run_seed = rng.getrandbits(32)
        steps = random_steps(random.Random(run_seed), rng.randint(6, 16))
        with tempfile.TemporaryDirectory() as tmp:
            v = run_campaign(run_seed, steps, pathlib.Path(tmp))
        for k in BREACHES_SIM:
            totals[k] += len(v[k])
        if any(v[k] for k in BREACHES_SIM):
            failing.append(run_seed)
        totals["accepted"] += v["accepted"]
        totals["deleted"] += v["deleted"]
        totals["unanswered"] += v["unanswered"]
        totals["kills"] += sum(1 for s in steps if s[0] == "kill")
        totals["partitions"] += sum(1 for s in steps if s[0] == "partition")
        refused.update({str(k): n for k, n in v["refused"].items()})
    return dict(totals, runs=runs, seed=seed, refused=dict(refused), failing_seeds=failing,
                seconds=round(time.monotonic() - started, 1))


def real_campaign(creates: int, burst: int, seed: int) -> dict:
    import subprocess

    from tests.real.e2e.test_chaos_real import kill9_campaign

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run(["sh", os.path.join(here, "tools/build-test-image.sh")], check=True,
                   capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        got = kill9_campaign(tmp, "zund-test/busybox:latest", creates=creates, burst=burst,
                             seed=seed, settle_s=300.0)
    return {k: (len(v) if k in BREACHES_REAL else v) for k, v in got.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim-runs", type=int, default=20)
    ap.add_argument("--creates", type=int, default=200)
    ap.add_argument("--burst", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-real", action="store_true")
    args = ap.parse_args(argv)
    out = {"sim": sim_campaign(args.sim_runs, args.seed)}
    if not args.no_real:
        out["real"] = real_campaign(args.creates, args.burst, args.seed)
    print(json.dumps(out, indent=2, sort_keys=True))
    bad = any(out["sim"][k] for k in BREACHES_SIM) or (
        "real" in out and any(out["real"][k] for k in BREACHES_REAL))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
