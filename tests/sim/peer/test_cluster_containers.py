"""ClusterContainers (the IContainers of the whole cluster) on entry node n1, with
the real peer server of owner node n2 behind StubTreq: one round trip per owner
call when the owner is known, policy before any call, one relocation on a stale
cache, dead owners reported, services with their real state and change time."""

from __future__ import annotations

import datetime
import random

import pytest
from zope.interface.verify import verifyObject

from tests.support.client import USER_TOKEN, Client
from zund.api.app import ApiConfig, ZunAPI
from zund.cluster.directory import Directory
from zund.cluster.facade import ClusterContainers
from zund.common import errors
from zund.common.context import RequestContext
from zund.compute.interface import ContainerRef, IContainers
from zund.compute.local import LocalContainers
from zund.compute.manager import ContainerManager, ManagerConfig
from zund.runtimes.fake import FakeRuntime
from zund.store import Store

from .conftest import CALLER, CTX, ENFORCER, HOST_FACTS, SERVER, START, create_request, \
    node_view, sync_blocking

ENTRY = CALLER  # n1
MISSING = "99999999-9999-4999-8999-999999999999"
ALICE = RequestContext(user_id="alice", project_id="projA", roles=("member", "reader"))


class NoHostCoordinator:
    """A coordinator for which no node can host anything."""

    async def place(self, req, ctx, create):
        e = errors.NoValidHost()
        e.decision = {"why": "no candidate passed the filters", "rounds": []}
        raise e


class Entry:
    """Node n1: its own store and manager, and the cluster containers over n2."""

    def __init__(self, h, tmp_path):
        self.h = h
        self.states = {ENTRY: ("alive", START - 50.0), SERVER: ("alive", START - 100.0)}
        self.store = Store(str(tmp_path / "n1.sqlite"), run_blocking=sync_blocking)
        h.run(self.store.open())
        self.manager = ContainerManager(ManagerConfig(node=ENTRY, sync_interval_s=3600.0),
                                        self.store, {"runc": FakeRuntime(ENTRY, clock=h.clock)},
                                        h.clock, host_facts=HOST_FACTS)
        h.run(self.manager.startService())
        self.local = LocalContainers(self.manager, ENFORCER)
        self.directory = Directory(self.local, self.view, h.client, h.clock, local_node=ENTRY)
        self.cluster = ClusterContainers(ENTRY, self.local, NoHostCoordinator(), self.directory,
                                         h.client, self.view, rng=random.Random(5))

    def view(self):
        out = []
        for name, (state, changed) in self.states.items():
            v = node_view(name, state, peer="n2:9518" if name == SERVER else None)
            out.append(type(v)(v.name, v.state, v.api, v.peer, v.meta, changed_at=changed))
        return out

    def rpcs(self) -> int:
        return self.h.api.stats["requests"]

    def close(self):
        self.h.run(self.manager.stopService())
        self.h.run(self.store.close())


@pytest.fixture
def entry(h, tmp_path):
    e = Entry(h, tmp_path)
    yield e
    e.close()


def ref(ident, rule="container:get_one"):
    return ContainerRef(ident=ident, rule=rule)


def test_both_implementations_provide_icontainers(entry):
    """The node-local and the cluster containers both verify against IContainers."""
    assert verifyObject(IContainers, entry.local)
    assert verifyObject(IContainers, entry.cluster)


def test_owner_call_to_a_known_owner_is_one_round_trip(entry, h):
    """With the owner cached (as after a placement), an action is ONE peer call that
    looks up, checks policy on the record and acts on the owner."""
    rec = h.create(CTX, name="web")
    entry.directory.remember(rec.uuid, SERVER, rec)
    before = entry.rpcs()
    h.run(entry.cluster.stop(CTX, ref(rec.uuid, "container:stop")))
    assert entry.rpcs() - before == 1
    h.settle()
    assert h.run(h.store.get_container(rec.uuid)).status == "Stopped"


def test_unknown_owner_is_located_cheaply_then_called(entry, h):
    """Unknown owner: one LOCATE round (no runtime round trip) then the owner call;
    afterwards the owner is known and a show is one call."""
    rec = h.create(CTX, name="web")
    before = entry.rpcs()
    shown = h.run(entry.cluster.show(CTX, ref("web")))
    assert shown.uuid == rec.uuid and shown.status == "Running"
    assert entry.rpcs() - before == 2
    before = entry.rpcs()
    h.run(entry.cluster.show(CTX, ref(rec.uuid)))
    assert entry.rpcs() - before == 1


def test_stale_cache_is_relocated_once(entry, h):
    """The cached owner answers not found: the directory is asked once more without
    the cache, and the answer is the truth (here: nowhere)."""
    entry.directory.remember(MISSING, SERVER)
    before = entry.rpcs()
    with pytest.raises(errors.ContainerNotFound):
        h.run(entry.cluster.start(CTX, ref(MISSING, "container:start")))
    assert entry.rpcs() - before == 2
    assert entry.directory.cached_owner(MISSING) is None


def test_local_records_never_leave_the_node(entry, h):
    """A record this node holds is acted on locally: no peer call."""
    rec = h.run(entry.manager.create(CTX, create_request(name="here")))
    entry.h.run(entry.manager.drain(60))
    before = entry.rpcs()
    assert h.run(entry.cluster.show(CTX, ref("here"))).uuid == rec.uuid
    assert entry.rpcs() == before


def test_unplaceable_create_is_kept_by_the_entry_node(entry, h):
    """Nobody can host it: an Error record kept here (host None), found like any other."""
    rec = h.run(entry.cluster.create(CTX, create_request(name="nowhere")))
    assert rec.status == "Error" and rec.host is None
    before = entry.rpcs()
    assert h.run(entry.cluster.show(CTX, ref("nowhere"))).uuid == rec.uuid
    assert entry.rpcs() == before


def test_container_uuids_come_from_the_injected_rng(entry, h):
    """New uuids are drawn from the injected rng: a seeded run replays them."""
    rec = h.run(entry.cluster.create(CTX, create_request(name="seeded")))
    expected = random.Random(5).getrandbits(128)
    assert rec.uuid.replace("-", "")[-12:] == f"{expected:032x}"[-12:]


def test_dead_owner_shows_last_known_record_as_unknown(entry, h):
    """Gossip says the owner died: show reports the cached record with status Unknown,
    actions are ServiceUnavailable naming the node; no peer call."""
    rec = h.create(CTX, name="web")
    h.run(entry.cluster.show(CTX, ref(rec.uuid)))  # learn it
    entry.states[SERVER] = ("dead", START)
    before = entry.rpcs()
    assert h.run(entry.cluster.show(CTX, ref(rec.uuid))).status == "Unknown"
    with pytest.raises(errors.ServiceUnavailable, match=SERVER):
        h.run(entry.cluster.stop(CTX, ref(rec.uuid, "container:stop")))
    assert entry.rpcs() == before


def test_list_merges_every_node(entry, h):
    """A cluster list holds this node's and the peer's records, none partial."""
    remote = h.create(CTX, name="there")
    here = h.run(entry.manager.create(CTX, create_request(name="here")))
    listing = h.run(entry.cluster.list(CTX))
    assert {r.uuid for r in listing.records} == {remote.uuid, here.uuid}
    assert listing.partial_nodes == frozenset()


def api_client(entry, h, **config):
    api = ZunAPI(entry.cluster, ApiConfig(node=ENTRY, **config), ENFORCER, clock=h.clock)

    def pump():
        h.stub.flush()
        h.clock.advance(0.05)

    return Client(api.resource(), pump=pump)


def test_forbidden_caller_costs_no_peer_call(entry, h):
    """The API checks the rule before routing: a member's force delete is 403 and
    the owner is never asked."""
    rec = h.create(ALICE, name="web")
    entry.directory.remember(rec.uuid, SERVER, rec)
    client = api_client(entry, h)
    before = entry.rpcs()
    r = client.delete(f"/v1/containers/{rec.uuid}?force=True", token=USER_TOKEN)
    assert r.status == 403 and entry.rpcs() == before
    r = client.post(f"/v1/containers/{rec.uuid}/stop", token=USER_TOKEN)
    assert r.status == 202 and entry.rpcs() - before == 1


def test_api_actions_through_the_cluster(entry, h):
    """Through the HTTP API on n1: show, an action and its record on n2."""
    rec = h.create(ALICE, name="web")
    client = api_client(entry, h)
    assert client.get("/v1/containers/web", token=USER_TOKEN).json["uuid"] == rec.uuid
    assert client.post(f"/v1/containers/{rec.uuid}/pause", token=USER_TOKEN).status == 202
    h.settle()
    assert h.run(h.store.get_container(rec.uuid)).status == "Paused"
    assert client.get(f"/v1/containers/{MISSING}", token=USER_TOKEN).status == 404


def _zun(seconds: float) -> str:
    t = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).replace(tzinfo=None)
    return str(t.replace(microsecond=0))


def test_services_show_each_peers_state_and_change_time(entry, h):
    """/v1/services: a dead peer is down since its last state change; a live peer is
    up, created at its last change."""
    entry.states[SERVER] = ("dead", START - 30.0)
    client = api_client(entry, h)
    services = {s["host"]: s for s in client.get("/v1/services").json["services"]}
    assert services[SERVER]["state"] == "down"
    assert services[SERVER]["updated_at"] == _zun(START - 30.0)
    assert services[SERVER]["last_seen_up"] == _zun(START - 30.0)
    assert services[ENTRY]["state"] == "up"
    entry.states[SERVER] = ("alive", START - 10.0)
    services = {s["host"]: s for s in client.get("/v1/services").json["services"]}
    assert services[SERVER]["state"] == "up"
    assert services[SERVER]["created_at"] == _zun(START - 10.0)
