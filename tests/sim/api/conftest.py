"""The API over the real node-local stack: ZunAPI → LocalContainers →
ContainerManager → Store (SQLite in a temp dir, synchronous) and the fake runtime,
all on one task.Clock. Tests assert on HTTP answers and on the resulting state."""

from __future__ import annotations

import random

import pytest
from twisted.internet import defer, task

from tests.support.client import Client
from zund.api.app import ApiConfig, ZunAPI
from zund.api.policy import make_enforcer
from zund.common.context import RequestContext
from zund.compute import capacity
from zund.compute.local import LocalContainers
from zund.compute.manager import ContainerManager, ManagerConfig
from zund.records import CreateRequest
from zund.runtimes.fake import TEST_IMAGE, FakeRuntime
from zund.store import Store

NODE = "node1"
RUNNER = ["sh", "-c", 'trap "exit 0" TERM; while true; do sleep 1; done']
HOST_FACTS = capacity.HostFacts(cpus=48, mem_total_mb=128446, disk_total_gb=16,
                                architecture="x86_64", os="Debian GNU/Linux 12",
                                kernel_version="6.1.0")


def sync_blocking(fn, *a, **kw):
    return defer.maybeDeferred(fn, *a, **kw)


class Stack:
    """One node's containers behind the API, driven on ``clock``."""

    def __init__(self, tmp_path, enforcer, config: ApiConfig | None = None):
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.enforcer = enforcer
        self.runtime = FakeRuntime(NODE, clock=self.clock)
        self.store = Store(str(tmp_path / "zund.sqlite"), run_blocking=sync_blocking)
        self.run(self.store.open())
        self.manager = ContainerManager(
            ManagerConfig(node=NODE, sync_interval_s=3600.0, labels={"type": "test"}),
            self.store, {"runc": self.runtime}, self.clock, host_facts=HOST_FACTS)
        self.run(self.manager.startService())
        self.containers = LocalContainers(self.manager, enforcer)
        self.names = iter(range(1, 10_000))
        self.config = config or ApiConfig(node=NODE, max_limit=1000, public_url=None)

    def api(self, containers=None, config: ApiConfig | None = None) -> ZunAPI:
        return ZunAPI(containers or self.containers, config or self.config, self.enforcer,
                      clock=self.clock, rng=random.Random(7))

    def client(self, api: ZunAPI | None = None) -> Client:
        return Client((api or self.api()).resource(), pump=self.pump)

    def pump(self) -> None:
        self.clock.advance(0.1)

    def run(self, coro_or_d, max_steps: int = 5000):
        """Drive a coroutine/Deferred to completion, advancing the clock."""
        d = (coro_or_d if isinstance(coro_or_d, defer.Deferred)
             else defer.Deferred.fromCoroutine(coro_or_d))
        out = []
        d.addBoth(out.append)
        for _ in range(max_steps):
            if out:
                break
            self.clock.advance(0.1)
        assert out, "operation did not finish"
        if hasattr(out[0], "raiseException"):
            out[0].raiseException()
        return out[0]

    def settle(self) -> None:
        self.run(self.manager.drain(60))

    def get(self, uuid: str):
        return self.run(self.store.get_container(uuid))

    def add(self, name: str | None = None, status: str = "Running", project_id: str = "demo",
            user_id: str = "admin", **fields):
        """A container really created (and driven to ``status``) through the manager."""
        ctx = RequestContext(user_id=user_id, project_id=project_id)
        fields.setdefault("image", TEST_IMAGE)
        fields.setdefault("command", RUNNER)
        fields.setdefault("cpu", 1.0)
        fields.setdefault("memory", 512)
        request = CreateRequest.from_dict(dict(
            fields, name=name or f"c-{next(self.names)}", run=status != "Created"))
        rec = self.run(self.manager.create(ctx, request))
        self.settle()
        rec = self.get(rec.uuid)
        if status in ("Stopped", "Paused") and rec.status == "Running":
            op = self.manager.stop if status == "Stopped" else self.manager.pause
            self.run(op(ctx, rec))
            self.settle()
        rec = self.get(rec.uuid)
        assert rec.status == status, (rec.status, rec.status_reason)
        return rec

    def close(self) -> None:
        self.run(self.manager.stopService())
        self.run(self.store.close())


@pytest.fixture(scope="session")
def enforcer():
    return make_enforcer()


@pytest.fixture
def stack(tmp_path, enforcer):
    s = Stack(tmp_path, enforcer)
    yield s
    s.close()


@pytest.fixture
def client(stack):
    return stack.client()
