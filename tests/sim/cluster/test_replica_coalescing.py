"""Replicator's send window (issue 13 §1): a record's quick successive generations,
and other records bound for the same holder, reach each holder in one REPLICATE
carrying the newest generation; changes further apart than the window are sent
apart, and a delete's tombstone is never lost to the window."""

from __future__ import annotations

from twisted.internet import defer, task

from zund.cluster.replicas import Replicator, holders
from zund.cluster.types import NodeView
from zund.store import RecordChange

NODES = ["n1", "n2", "n3", "n4", "n5"]
WINDOW_S = 0.05


class ListenerStore:
    """The part of ``zund.store.Store`` the Replicator uses, holding no records."""

    def __init__(self):
        self.listeners = []

    def add_listener(self, fn):
        self.listeners.append(fn)

    def remove_listener(self, fn):
        self.listeners.remove(fn)

    def commit(self, uuid: str, generation: int, record) -> None:
        for fn in list(self.listeners):
            fn(RecordChange(uuid, generation, record))

    async def list_containers(self):
        return []

    async def drop_replicas(self, uuids):
        return None

    async def list_replicas(self, owners, *args, **kwargs):
        return []


class Holders:
    """Peer client stand-in: every REPLICATE a holder received, in order."""

    def __init__(self):
        self.received: dict[str, list[list]] = {}

    async def replicate(self, node: NodeView, batch):
        self.received.setdefault(node.name, []).append(
            [(i.uuid, i.generation, i.record) for i in batch])

    async def replica_sync(self, node, owner, digest):
        return []


def replicator(clock) -> tuple[Replicator, ListenerStore, Holders]:
    view = [NodeView(n, "alive", f"{n}:1", f"{n}:2", None) for n in NODES]
    store, client = ListenerStore(), Holders()
    r = Replicator("n1", store, lambda: view, client, clock, replicas=2,
                   coalesce_s=WINDOW_S)
    r.startService()
    clock.advance(1.0)  # the first membership tick (and its empty repair pass)
    return r, store, client


def uuid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def test_generations_within_the_window_reach_each_holder_in_one_send():
    """created, Creating, Created, Running inside one window: each holder gets one
    REPLICATE with only the newest generation."""
    clock = task.Clock()
    r, store, client = replicator(clock)
    u = uuid(1)
    for gen, status in enumerate(("new", "Creating", "Created", "Running"), start=1):
        store.commit(u, gen, {"status": status})
        clock.advance(0.01)
    clock.advance(WINDOW_S)
    want = holders(u, "n1", NODES, 2)
    assert sorted(client.received) == sorted(want)
    for name in want:
        assert client.received[name] == [[(u, 4, {"status": "Running"})]]
    r.stopService()


def test_records_for_the_same_holder_share_one_send():
    """Changes of several records queued for one holder go in one batch."""
    clock = task.Clock()
    r, store, client = replicator(clock)
    uuids = [uuid(i) for i in range(20)]
    for u in uuids:
        store.commit(u, 1, {"status": "Running"})
    clock.advance(WINDOW_S)
    for name in NODES[1:]:
        mine = {u for u in uuids if name in holders(u, "n1", NODES, 2)}
        sends = client.received.get(name, [])
        assert len(sends) == (1 if mine else 0)
        assert {u for batch in sends for u, _, _ in batch} == mine
    r.stopService()


def test_changes_apart_are_sent_apart_and_the_tombstone_arrives():
    """A change after the window was sent goes in a later REPLICATE; a delete
    right after it still reaches every holder, as the newest generation."""
    clock = task.Clock()
    r, store, client = replicator(clock)
    u = uuid(7)
    store.commit(u, 1, {"status": "Running"})
    clock.advance(WINDOW_S)
    store.commit(u, 2, {"status": "Stopped"})
    clock.advance(0.001)
    store.commit(u, 3, None)  # deleted
    clock.advance(WINDOW_S)
    for name in holders(u, "n1", NODES, 2):
        assert client.received[name] == [[(u, 1, {"status": "Running"})],
                                         [(u, 3, None)]]
    r.stopService()


def test_changes_during_a_send_wait_for_the_next_window():
    """Items queued while a REPLICATE is in flight go together, one window later."""
    clock = task.Clock()
    view = [NodeView(n, "alive", f"{n}:1", f"{n}:2", None) for n in NODES]
    store, client = ListenerStore(), Holders()
    gate: list[defer.Deferred] = []

    class SlowHolders(Holders):
        async def replicate(self, node, batch):
            d = defer.Deferred()
            gate.append(d)
            await d
            await super().replicate(node, batch)

    client = SlowHolders()
    r = Replicator("n1", store, lambda: view, client, clock, replicas=1,
                   coalesce_s=WINDOW_S)
    r.startService()
    clock.advance(1.0)
    u1 = uuid(1)
    peer = holders(u1, "n1", NODES, 1)[0]
    same = [uuid(i) for i in range(2, 40) if holders(uuid(i), "n1", NODES, 1)[0] == peer][:3]
    store.commit(u1, 1, {"status": "Running"})
    clock.advance(WINDOW_S)
    assert len(gate) == 1  # the first send is in flight
    for u in same:
        store.commit(u, 1, {"status": "Running"})
    gate.pop().callback(None)
    assert len(gate) == 0  # the newcomers wait for their window
    clock.advance(WINDOW_S)
    assert len(gate) == 1
    gate.pop().callback(None)
    assert client.received[peer] == [[(u1, 1, {"status": "Running"})],
                                     [(u, 1, {"status": "Running"}) for u in same]]
    r.stopService()
