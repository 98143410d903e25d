"""Shared pieces for the peer RPC tests: one task.Clock, the real node-local
containers (LocalContainers over a ContainerManager and the fake runtime, so owner
calls run the real code), a fake placement handler, the PeerAPI behind StubTreq
and a PeerClient using that StubTreq."""

from __future__ import annotations

import itertools

import attrs
import pytest
from treq.testing import StubTreq
from twisted.internet import defer, task

from zund.api.policy import make_enforcer
from zund.cluster import signing, wire
from zund.cluster.peer_client import PeerClient
from zund.cluster.peer_server import PeerAPI
from zund.cluster.types import Bid, Decline, NodeView
from zund.common import errors
from zund.common.context import RequestContext
from zund.compute import capacity
from zund.compute.local import LocalContainers
from zund.compute.manager import ContainerManager, ManagerConfig
from zund.records import CreateRequest
from zund.runtimes.fake import TEST_IMAGE, FakeRuntime
from zund.store import Store

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
START = 1_700_000_000.0  # a realistic epoch for the shared clock
SERVER = "n2"
CALLER = "n1"
CTX = RequestContext(user_id="u1", project_id="p1", roles=("member", "reader"))
OTHER_CTX = RequestContext(user_id="u2", project_id="p2", roles=("member", "reader"))
ADMIN = RequestContext.admin("p1")
RUNNER = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done']
HOST_FACTS = capacity.HostFacts(cpus=8, mem_total_mb=16384, disk_total_gb=100,
                                architecture="x86_64", os="Linux", kernel_version="6.1")
ENFORCER = make_enforcer()
_names = itertools.count(1)


def create_request(run: bool = True, **fields) -> CreateRequest:
    """A complete create request, as the API builds it."""
    fields.setdefault("image", TEST_IMAGE)
    fields.setdefault("command", RUNNER)
    fields.setdefault("name", f"c-{next(_names)}")
    fields.setdefault("cpu", 1.0)
    fields.setdefault("memory", 512)
    return CreateRequest.from_dict(dict(fields, run=run))


def sync_blocking(fn, *a, **kw):
    return defer.maybeDeferred(fn, *a, **kw)


def node_view(name: str, state: str = "alive", peer: str | None = None) -> NodeView:
    return NodeView(name=name, state=state, api=f"{name}:9517", peer=peer or f"{name}:9518",
                    meta=None)


class FakeHandlers:
    """IPeerHandlers with a fake bidder and the real node-local containers.

    ``answers`` maps a request uuid to the Bid/Decline to give (default: a bid)."""

    def __init__(self, containers: LocalContainers, node: str = SERVER):
        self.containers = containers
        self.node = node
        self.reservations: dict[str, object] = {}
        self.released: list[str] = []
        self.answers: dict[str, object] = {}
        self._ids = itertools.count(1)

    async def bid(self, request):
        answer = self.answers.get(request.uuid)
        if answer is not None:
            return answer
        rid = f"r{next(self._ids)}"
        self.reservations[rid] = request
        return Bid(node=self.node, reservation_id=rid, score=0.5, expires_at=10.0)

    async def commit(self, reservation_id, ctx, uuid, placement, request):
        if reservation_id not in self.reservations:
            raise errors.ServiceUnavailable(reason=f"reservation {reservation_id} expired")
        del self.reservations[reservation_id]
        return await self.containers.create(ctx, request, uuid=uuid, placement=placement)

    async def release(self, reservation_id):
        self.released.append(reservation_id)
        self.reservations.pop(reservation_id, None)


@attrs.define
class Harness:
    clock: task.Clock
    store: Store
    runtime: FakeRuntime
    manager: ContainerManager
    handlers: FakeHandlers
    api: PeerAPI
    stub: StubTreq
    client: PeerClient
    node: NodeView

    def run(self, coro_or_d, max_steps: int = 2000):
        """Drive a coroutine/Deferred to completion: pump StubTreq, advance the clock."""
        d = coro_or_d if isinstance(coro_or_d, defer.Deferred) else \
            defer.Deferred.fromCoroutine(coro_or_d)
        out = []
        d.addBoth(out.append)
        steps = 0
        while not out:
            self.stub.flush()
            if out:
                break
            self.clock.advance(0.05)
            steps += 1
            assert steps < max_steps, "operation did not finish"
        if hasattr(out[0], "raiseException"):
            out[0].raiseException()
        return out[0]

    def settle(self):
        self.run(self.manager.drain(60))

    def signer(self, name: str = CALLER, key: bytes = KEY) -> signing.Signer:
        return signing.Signer(name, [key], self.clock)

    def create(self, ctx=CTX, run=True, **fields):
        rec = self.run(self.manager.create(ctx, create_request(run, **fields)))
        self.settle()
        return self.run(self.store.get_container(rec.uuid))

    def post_raw(self, path: str, payload, *, signer: signing.Signer | None = None,
                 target: str = SERVER, headers: dict | None = None, body: bytes | None = None):
        """POST without the client: (status, decoded body or raw bytes)."""
        data = wire.pack(payload) if body is None else body
        hdrs = {"Content-Type": [wire.CONTENT_TYPE]}
        if signer is not None:
            for k, v in signer.headers("POST", path, data, target).items():
                hdrs[k] = [v]
        for k, v in (headers or {}).items():
            hdrs[k] = [v]
        resp = self.run(self.stub.request("POST", f"http://{SERVER}:9518{path}",
                                          headers=hdrs, data=data))
        content = self.run(self.stub.content(resp))
        try:
            return resp.code, wire.unpack(content)
        except wire.WireError:
            return resp.code, content


@pytest.fixture
def h(tmp_path):
    clock = task.Clock()
    clock.advance(START)
    store = Store(str(tmp_path / "zund.sqlite"), run_blocking=sync_blocking)
    runtime = FakeRuntime(SERVER, clock=clock)
    manager = ContainerManager(ManagerConfig(node=SERVER, sync_interval_s=3600.0), store,
                               {"runc": runtime}, clock, host_facts=HOST_FACTS)
    handlers = FakeHandlers(LocalContainers(manager, ENFORCER))
    verifier = signing.Verifier(SERVER, [KEY, OTHER_KEY], clock, skew_s=30.0)
    api = PeerAPI(SERVER, handlers, verifier, clock, max_body_bytes=64 * 1024)
    stub = StubTreq(api.resource())
    client = PeerClient(CALLER, signing.Signer(CALLER, [KEY], clock), stub,
                        timeout_s=5.0, clock=clock)
    harness = Harness(clock, store, runtime, manager, handlers, api, stub, client,
                      node_view(SERVER, peer="n2:9518"))
    harness.run(store.open())
    harness.run(manager.startService())
    yield harness
    harness.run(manager.stopService())
    harness.run(store.close())
