"""The node store on the create path (issue 13 §1, §2): group commit and point reads
on the reactor thread, against the same store with both off, in the same run.

Each create does what the owner node's store sees on a create+run: a point read
(the retry check), the insert with its action and placement event (one commit),
a read, the final save with the action finished (one commit), a read. ``--flows``
creates run at once on one real reactor with the store's own thread, on a file in
a temporary directory (``synchronous=FULL``: one fsync per COMMIT).

- ``grouped``: the store as built;
- ``reference``: the same store with ``max_group=1`` (one COMMIT per write
  transaction) and point reads sent to the store thread (as before issue 13);
- ``grouped_thread_reads``: group commit, every read on the store thread (what
  point reads add on their own).

Figures per create: process CPU (``cpu_ms_per_create``: the node's cost; the
comparable figure on a shared machine), wall time, COMMITs per write transaction,
and how late a 1 ms reactor timer fired (p99, max: reads on the reactor thread
must not stall it).
The two variants alternate ``--rounds`` times; medians are printed. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import defer, task  # noqa: E402

from zund.common import errors  # noqa: E402
from zund.records import ContainerRecord  # noqa: E402
from zund.store import Store  # noqa: E402


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _one_create(store: Store, i: int, tag: str) -> None:
    uuid = "5b8e5a59-3c51-4d8e-%04x-%012x" % (hash(tag) & 0xFFFF, i)
    try:
        await store.get_container(uuid)
    except errors.ContainerNotFound:
        pass
    rec = ContainerRecord(uuid=uuid, project_id="p", user_id="u", image="busybox",
                          name=f"c{i}", command=["sh", "-c", "sleep 1"],
                          environment={"A": "1"}, labels={"app": "web"}, cpu=0.5, memory=64)
    action_id = await store.create_container(
        rec, action=("create", f"req-{i}", "u", "p", "compute__do_container_create"),
        events=(("compute__schedule_container", "Success", {"winner": "n1"}),))
    rec = await store.get_container(uuid)
    rec.status = "Running"
    await store.save_container(rec, finish_action=action_id)
    await store.get_container(uuid)


async def _variant(reactor, directory: str, grouped: bool, point_reads: bool, creates: int,
                   flows: int, tag: str) -> dict:
    store = Store(os.path.join(directory, f"{tag}.sqlite"), reactor=reactor,
                  max_group=Store.MAX_GROUP if grouped else 1, point_reads=point_reads)
    await store.open()
    numbers = iter(range(creates))

    async def flow():
        for i in numbers:
            await _one_create(store, i, tag)

    # the reactor's own stalls: how late a 1 ms timer fires while the creates run
    lags: list[float] = []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        lags.append(max(0.0, now - last[0] - 0.001))
        last[0] = now

    ticker = task.LoopingCall(tick)
    ticker.clock = reactor
    ticker.start(0.001)
    cpu0, t0, commits0 = _cpu_s(), time.perf_counter(), store.commits
    await defer.gatherResults([defer.Deferred.fromCoroutine(flow()) for _ in range(flows)])
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    ticker.stop()
    commits = store.commits - commits0
    await store.close()
    lags.sort()
    return {"cpu_ms_per_create": cpu * 1000 / creates, "wall_ms_per_create": wall * 1000 / creates,
            "commits_per_write": commits / (2 * creates),
            "reactor_lag_ms_p99": lags[int(0.99 * (len(lags) - 1))] * 1000 if lags else 0.0,
            "reactor_lag_ms_max": lags[-1] * 1000 if lags else 0.0}


async def run(reactor, creates: int, flows: int, rounds: int) -> dict:
    variants = {"reference": (False, False), "grouped_thread_reads": (True, False),
                "grouped": (True, True)}
    results: dict = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="zund-bench-store-") as directory:
        for r in range(rounds):
            for name, (grouped, point_reads) in variants.items():
                results[name].append(await _variant(reactor, directory, grouped, point_reads,
                                                    creates, flows, f"{name}-{r}"))
    out = {"benchmark": "store_commit", "creates": creates, "flows": flows, "rounds": rounds}
    for name, runs in results.items():
        out[name] = {k: round(statistics.median(x[k] for x in runs), 3) for k in runs[0]}
    out["cpu_ratio"] = round(out["grouped"]["cpu_ms_per_create"]
                             / out["reference"]["cpu_ms_per_create"], 3)
    out["wall_ratio"] = round(out["grouped"]["wall_ms_per_create"]
                              / out["reference"]["wall_ms_per_create"], 3)
    out["load_average_1m"] = round(os.getloadavg()[0], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--creates", type=int, default=400)
    ap.add_argument("--flows", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    out: dict = {}

    async def go(reactor):
        out.update(await run(reactor, args.creates, args.flows, args.rounds))
        print(json.dumps(out, indent=2))

    task.react(lambda reactor: defer.Deferred.fromCoroutine(go(reactor)))


if __name__ == "__main__":
    main()
