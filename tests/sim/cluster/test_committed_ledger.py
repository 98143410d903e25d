"""``CommittedLedger`` over the real SQLite store (in memory, synchronous): the sums a
bid reads stay equal to what the store's records add up to, through creates, saves,
deletes and unplaceable records, loaded at any point."""

from __future__ import annotations

import math
import random

from twisted.internet import defer

from zund.cluster.bidding import Committed, CommittedLedger
from zund.records import CreateRequest, new_record
from zund.store import Store
from tests.support.harness import sync_blocking


def done(d):
    out = []
    defer.ensureDeferred(d).addBoth(out.append)
    assert out, "did not complete synchronously"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def record(uuid: str, cpu: float, memory: int, project: str, placed: bool = True):
    request = CreateRequest(image="busybox", name=f"c-{uuid}", cpu=cpu, memory=memory, disk=1)
    return new_record(uuid, project, "u", request, host="n1" if placed else None,
                      runtime="fake", availability_zone="nova",
                      status="Creating" if placed else "Error")


def same(ledger: CommittedLedger, store: Store) -> None:
    got = done(ledger())
    records = done(store.list_containers())
    want = Committed.of(records)
    # exact: the correctly rounded sum (Committed.of adds floats in order and drifts)
    assert got.cpu_used == math.fsum(r.cpu for r in records if r.placed)
    assert (got.mem_used_mb, got.disk_used_gb, dict(got.tenants)) == (
        want.mem_used_mb, want.disk_used_gb, dict(want.tenants))
    assert set(got.uuids) == set(want.uuids)


def test_the_ledger_follows_creates_saves_and_deletes_of_the_store():
    """A random mix of creates (some unplaceable), resizes and deletes: after every
    step the ledger equals the sum of the store's records (cpu exactly, no drift)."""
    store = Store(":memory:", run_blocking=sync_blocking)
    done(store.open())
    ledger = CommittedLedger(store.list_containers)
    store.add_listener(ledger.on_change)
    rng = random.Random(5)
    live: dict = {}
    for i in range(300):
        action = rng.random()
        if action < 0.55 or not live:
            rec = record(f"u{i}", rng.choice([0.1, 0.25, 0.3, 0.5]), rng.choice([32, 64]),
                         rng.choice(["p1", "p2", "p3"]), placed=rng.random() > 0.1)
            done(store.create_container(rec))
            live[rec.uuid] = rec
        elif action < 0.75:
            rec = live[rng.choice(sorted(live))]
            rec.cpu = rng.choice([0.1, 0.2, 0.7])
            done(store.save_container(rec))
        else:
            uuid = rng.choice(sorted(live))
            done(store.delete_container(uuid))
            del live[uuid]
        if i == 40:
            same(ledger, store)  # first read loads, then changes keep it current
        elif i > 40 and i % 7 == 0:
            same(ledger, store)
    for uuid in sorted(live):
        done(store.delete_container(uuid))
    got = done(ledger())
    assert (got.cpu_used, got.mem_used_mb, got.tenants, list(got.uuids)) == (0.0, 0, {}, [])


def test_a_change_older_than_what_is_counted_is_ignored():
    """A record change of a lower generation never replaces a newer one."""
    store = Store(":memory:", run_blocking=sync_blocking)
    done(store.open())
    ledger = CommittedLedger(store.list_containers)
    store.add_listener(ledger.on_change)
    rec = record("a", 0.5, 64, "p1")
    done(store.create_container(rec))
    stale = rec.copy()
    rec.cpu = 1.0
    done(store.save_container(rec))

    class Change:
        uuid, generation, record = "a", stale.generation, stale

    ledger.on_change(Change())
    assert done(ledger()).cpu_used == 1.0


def test_usage_for_the_gossip_metadata_equals_summing_every_record():
    """What the announcer publishes from the ledger (``usage``) is what summing every
    record gave it: counts, memory, disk, per-project counts; cpu without drift."""
    from zund.compute import capacity

    store = Store(":memory:", run_blocking=sync_blocking)
    done(store.open())
    ledger = CommittedLedger(store.list_containers)
    store.add_listener(ledger.on_change)
    rng = random.Random(9)
    for i in range(60):
        done(store.create_container(record(f"u{i}", rng.choice([0.1, 0.25, 0.5]), 64,
                                           rng.choice(["p1", "p2"]),
                                           placed=rng.random() > 0.2)))
        if i % 3 == 0:
            done(store.delete_container(f"u{rng.randrange(i + 1)}"))
        records = done(store.list_containers())
        got, want = done(ledger.usage()), capacity.usage_of(records)
        assert (got.containers, got.mem_used_mb, got.disk_used_gb, got.tenants) == (
            want.containers, want.mem_used_mb, want.disk_used_gb, want.tenants)
        assert math.isclose(got.cpu_used, want.cpu_used, abs_tol=1e-9)
