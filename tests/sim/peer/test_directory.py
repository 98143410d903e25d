"""Directory: local store first, then the placement cache (no call at all), then
every live peer (LOCATE, no runtime round trip); dead owners reported as Unknown;
list_all names the nodes that did not answer."""

import datetime

import pytest
from twisted.internet import defer, task

from oslo_utils.uuidutils import is_uuid_like

from zund.cluster.directory import Directory
from zund.common import errors
from zund.common.context import RequestContext
from zund.compute.interface import Listing
from zund.records import ContainerRecord

from .conftest import node_view

CTX = RequestContext(user_id="u1", project_id="p1")
OTHER = RequestContext(user_id="u2", project_id="p2")
ADMIN = RequestContext.admin("p1")
T0 = datetime.datetime(2024, 1, 1)
U = ["%08d-0000-4000-8000-000000000000" % i for i in range(10)]


def record(uuid, name="web", project="p1", host="n1", status="Running"):
    return ContainerRecord(uuid=uuid, project_id=project, user_id="u", image="busybox",
                           name=name, host=host, status=status, created_at=T0)


class Store:
    """One node's records with the manager's lookup/list scoping rules."""

    def __init__(self, *records):
        self.records = {r.uuid: r for r in records}
        self.fail = None

    async def locate(self, ctx, ident, all_projects=False):
        if self.fail:
            raise self.fail
        if is_uuid_like(ident):
            rec = self.records.get(ident.lower())
            if rec is None or not (ctx.is_admin or rec.project_id == ctx.project_id):
                raise errors.ContainerNotFound(ident=ident)
            return rec
        found = [r for r in self.records.values() if r.name == ident
                 and (ctx.is_admin or r.project_id == ctx.project_id)]
        if not found:
            raise errors.ContainerNotFound(ident=ident)
        if len(found) > 1:
            raise errors.Conflicts(name=ident)
        return found[0]

    async def list(self, ctx, all_projects=False):
        if self.fail:
            raise self.fail
        return [r for r in self.records.values()
                if (all_projects and ctx.is_admin) or r.project_id == ctx.project_id]


class FakeLocal(Store):
    """The directory's view of LocalContainers: locate, list (a Listing), node."""

    node = "n0"

    async def list(self, ctx, all_projects=False):
        return Listing(await super().list(ctx, all_projects))


class FakeClient:
    """PeerClient stand-in: each node is a Store; a node in ``down`` raises
    ServiceUnavailable, one in ``hang`` never answers."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.down, self.hang = set(), set()
        self.asked = []
        self.calls = []

    def _node(self, node):
        self.asked.append(node.name)
        if node.name in self.down:
            raise errors.ServiceUnavailable(reason=f"{node.name} down")
        return self.nodes[node.name]

    async def locate(self, node, ctx, ident, all_projects=False):
        store = self._node(node)
        if node.name in self.hang:
            await defer.Deferred()
        return await store.locate(ctx, ident)

    async def list_containers(self, node, ctx, all_projects=False):
        store = self._node(node)
        if node.name in self.hang:
            await defer.Deferred()
        return await store.list(ctx, all_projects)


class World:
    def __init__(self):
        self.clock = task.Clock()
        self.local = FakeLocal()
        self.stores = {"n1": Store(), "n2": Store(), "n3": Store()}
        self.client = FakeClient(self.stores)
        self.states = {"n0": "alive", "n1": "alive", "n2": "alive", "n3": "alive"}
        self.directory = Directory(self.local, self.peers, self.client, self.clock,
                                   cache_ttl_s=300.0)

    def peers(self):
        return [node_view(n, s) for n, s in self.states.items()]

    def run(self, coro):
        d = defer.Deferred.fromCoroutine(coro)
        out = []
        d.addBoth(out.append)
        assert out, "did not finish synchronously"
        if hasattr(out[0], "raiseException"):
            out[0].raiseException()
        return out[0]


@pytest.fixture
def w():
    return World()


def test_local_hit_asks_nobody(w):
    """A container in the local store is returned with owner None, no peer asked."""
    w.local.records[U[0]] = record(U[0], host="n0")
    found = w.run(w.directory.find(CTX, U[0]))
    assert found.node is None and found.record.uuid == U[0] and w.client.asked == []


def test_cache_hit_asks_nobody(w):
    """After remember(), a uuid's owner comes from the cache without any call (the
    caller's one owner call goes straight there)."""
    w.directory.remember(U[1], "n2")
    found = w.run(w.directory.find(CTX, U[1]))
    assert found.node.name == "n2" and found.uuid == U[1] and found.from_cache
    assert w.client.asked == []


def test_peer_hit_is_cached(w):
    """An unknown uuid is asked of every live peer; the owner is then cached."""
    w.stores["n3"].records[U[2]] = record(U[2], host="n3")
    found = w.run(w.directory.find(CTX, U[2]))
    assert found.node.name == "n3" and sorted(w.client.asked) == ["n1", "n2", "n3"]
    w.client.asked.clear()
    again = w.run(w.directory.find(CTX, U[2]))
    assert again.node.name == "n3" and again.record.uuid == U[2] and w.client.asked == []


def test_dead_and_suspect_nodes(w):
    """Dead nodes are not asked; suspect ones are."""
    w.states.update(n1="dead", n2="suspect")
    w.stores["n2"].records[U[3]] = record(U[3], host="n2")
    found = w.run(w.directory.find(CTX, U[3]))
    assert found.node.name == "n2" and "n1" not in w.client.asked


def test_dead_owner_reports_last_record_as_unknown(w):
    """A cached container whose owner is dead is reported with status Unknown."""
    w.stores["n1"].records[U[4]] = record(U[4], host="n1")
    w.run(w.directory.find(CTX, U[4]))  # learn it
    w.states["n1"] = "dead"
    w.client.asked.clear()
    found = w.run(w.directory.find(CTX, U[4]))
    assert found.gone and found.node.name == "n1" and found.node.state == "dead"
    assert found.record.status == "Unknown" and w.client.asked == []


def test_owner_gone_from_the_view_is_reported_from_the_placement_record(w):
    """remember() with the commit's record is enough to report Unknown later."""
    w.directory.remember(U[5], node_view("n9"), record(U[5], host="n9"))
    found = w.run(w.directory.find(CTX, U[5]))
    assert found.node.name == "n9" and found.record.status == "Unknown"


def test_unknown_record_keeps_project_scoping(w):
    """Another project cannot see a dead node's cached container."""
    w.directory.remember(U[5], "n9", record(U[5], host="n9", project="p1"))
    with pytest.raises(errors.ContainerNotFound):
        w.run(w.directory.find(OTHER, U[5]))
    assert w.directory.last_known(OTHER, U[5]) is None


def test_last_known_record_of_an_unanswering_owner_is_unknown(w):
    """For an owner that is alive in gossip but does not answer, the cache gives the
    last record with status Unknown."""
    w.stores["n1"].records[U[6]] = record(U[6], host="n1")
    w.run(w.directory.find(CTX, U[6]))
    assert w.directory.last_known(CTX, U[6]).status == "Unknown"


def test_cache_expires(w):
    """After cache_ttl_s the cache is not trusted: everyone is asked again."""
    w.stores["n2"].records[U[1]] = record(U[1], host="n2")
    w.directory.remember(U[1], "n2")
    w.clock.advance(301)
    assert w.directory.cached_owner(U[1]) is None
    w.run(w.directory.find(CTX, U[1]))
    assert sorted(w.client.asked) == ["n1", "n2", "n3"]


def test_relocation_without_the_cache_asks_everyone(w):
    """A stale cache entry (the caller's owner call said not found) is bypassed."""
    w.stores["n3"].records[U[7]] = record(U[7], host="n3")
    w.directory.remember(U[7], "n1")
    assert w.run(w.directory.find(CTX, U[7])).node.name == "n1"
    found = w.run(w.directory.find(CTX, U[7], use_cache=False))
    assert found.node.name == "n3" and not found.from_cache


def test_unplaceable_record_is_found_where_it_is_kept(w):
    """A record nobody could host (host None) is routed to the node that holds it."""
    w.stores["n2"].records[U[9]] = record(U[9], host=None, status="Error")
    found = w.run(w.directory.find(CTX, U[9]))
    assert found.node.name == "n2"


def test_not_found_anywhere(w):
    """Nobody holds it: ContainerNotFound."""
    with pytest.raises(errors.ContainerNotFound):
        w.run(w.directory.find(CTX, U[8]))


def test_not_found_but_a_node_did_not_answer_is_service_unavailable(w):
    """Never a silent 404 when a live node could hold the container."""
    w.client.down.add("n2")
    with pytest.raises(errors.ServiceUnavailable, match="n2"):
        w.run(w.directory.find(CTX, U[8]))


def test_name_on_two_nodes_conflicts(w):
    """A name that exists on two nodes (same scope) is ambiguous: Conflicts."""
    w.stores["n1"].records[U[1]] = record(U[1], name="dup", host="n1")
    w.stores["n2"].records[U[2]] = record(U[2], name="dup", host="n2")
    with pytest.raises(errors.Conflicts):
        w.run(w.directory.find(CTX, "dup"))


def test_name_on_one_node_is_found_and_scoped(w):
    """A name is found in the caller's scope only."""
    w.stores["n2"].records[U[2]] = record(U[2], name="db", host="n2")
    w.stores["n1"].records[U[1]] = record(U[1], name="db", host="n1", project="p2")
    found = w.run(w.directory.find(CTX, "db"))
    assert found.node.name == "n2" and found.record.uuid == U[2]


def test_list_all_merges_and_names_partial_nodes(w):
    """Local and peer records are merged; a failing and a hanging node are named."""
    w.local.records[U[0]] = record(U[0], host="n0")
    w.stores["n1"].records[U[1]] = record(U[1], host="n1")
    w.stores["n1"].records[U[2]] = record(U[2], host="n1", project="p2")
    w.client.down.add("n2")
    w.states["n3"] = "dead"
    listing = w.run(w.directory.list_all(CTX))
    assert sorted(r.uuid for r in listing.records) == [U[0], U[1]]
    assert listing.partial_nodes == {"n2"}
    listing = w.run(w.directory.list_all(ADMIN, all_projects=True))
    assert sorted(r.uuid for r in listing.records) == [U[0], U[1], U[2]]
    assert w.directory.cached_owner(U[1]) == "n1"


def test_list_all_with_a_real_timeout():
    """With PeerClient's clock timeouts, a hanging node ends up in partial_nodes."""
    from tests.sim.peer.conftest import START
    from zund.cluster import signing
    from zund.cluster.peer_client import PeerClient

    class Never:
        def request(self, *a, **kw):
            return defer.Deferred()

    clock = task.Clock()
    clock.advance(START)
    client = PeerClient("n0", signing.Signer("n0", [b"k" * 32], clock), Never(),
                        timeout_s=2.0, clock=clock)
    local = FakeLocal(record(U[0], host="n0"))
    directory = Directory(local, lambda: [node_view("n0"), node_view("n1")], client, clock)
    d = defer.Deferred.fromCoroutine(directory.list_all(CTX))
    out = []
    d.addBoth(out.append)
    assert out == []
    clock.advance(2.1)
    listing = out[0]
    assert [r.uuid for r in listing.records] == [U[0]] and listing.partial_nodes == {"n1"}


def test_local_list_failure_is_raised(w):
    """A failing local store fails the list (it is not a partial answer)."""
    w.local.fail = errors.RuntimeFailure(reason="disk")
    with pytest.raises(errors.RuntimeFailure):
        w.run(w.directory.list_all(CTX))


def test_remember_ignores_the_local_node_and_is_bounded(w):
    """This node is never cached; the cache keeps at most max_cache_entries."""
    w.directory.remember(U[0], "n0")
    assert w.directory.cached_owner(U[0]) is None
    small = Directory(w.local, w.peers, w.client, w.clock, max_cache_entries=2)
    for u in U[:3]:
        small.remember(u, "n1")
    assert small.cached_owner(U[0]) is None and small.cached_owner(U[2]) == "n1"
