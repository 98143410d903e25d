"""The micro-VM runtime's warm pool (``[libvirt] warm_pool_size``) against REAL
libvirt + QEMU: the whole runtime contract with the pool on, and what is the
pool's own: a create claims a booted guest, a claimed guest that never started
is ``created``, a crashed process's warm guests are discarded by the next open
while its containers stay, close leaves no warm guest, containers the pool
cannot serve boot cold, the most frequent recent shape takes the pool over (one
create of another shape does not), two alternating shapes share a pool of two,
warm guests hold their shape's capacity and
boot only when the node's bidder has room (a shape without room does not keep
a smaller one cold), a container that fits only without a warm guest takes its
place (the guest set aside by the bid, destroyed at the commit; kept and
claimed when the container is of its shape; back in the pool when the bid is
released), and retiring the pool (a draining node) destroys them.

Same prerequisites and TCG guests as ``test_libvirt_contract.py``; every domain
carries a per-session node name and is removed at the end of the session.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid as uuidlib

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from tests.support.libvirt_guests import URI, make_config, sweep, wait_warm
from tests.support.runtime_contract import (
    TEST_IMAGE, RuntimeContract, wait_exited)
from zund.cluster import policies
from zund.cluster.bidding import Bidder
from zund.cluster.metadata import NodeFacts
from zund.cluster.simnet import SimRecord
from zund.cluster.types import Bid, PlacementRequest
from zund.common import errors
from zund.compute import capacity
from zund.runtimes.base import ContainerSpec, Mount, RuntimeStatus, runtime_object_name

SESSION_NODE = "test-mvpool-" + uuidlib.uuid4().hex[:8]
WARM_S = 90.0  # a TCG guest boots in a few seconds; a loaded CI host is slower


def _pool_domains(node: str) -> dict:
    """{name: (active, pool flag)} of the warm-pool-named domains of ``node``."""
    import libvirt

    from zund.runtimes.libvirt import POOL_PREFIX, _meta

    conn = libvirt.open(URI)
    try:
        out = {}
        for dom in conn.listAllDomains(0):
            try:
                if not dom.name().startswith(POOL_PREFIX):
                    continue
                meta = _meta(dom)
                if meta is not None and meta.node == node:
                    out[dom.name()] = (bool(dom.isActive()), meta.pool)
            except libvirt.libvirtError:
                continue  # destroyed while we looked
        return out
    finally:
        conn.close()


def _node_bidder(rt, node: str, mem_mb, records: list) -> Bidder:
    """A real bidder for ``node`` (4 cpus, ``mem_mb()`` MiB, the committed
    ``records``) wired to ``rt`` as the service wires them: the refill asks it for
    room, and its bids count and may set the warm guests aside."""
    async def view():
        return list(records)

    bidder = Bidder(node, lambda: {"cpus": 4.0, "mem_mb": mem_mb(), "disk_gb": 10},
                    view, reactor, 10.0, policies.load_policy("spread"), "off",
                    NodeFacts(az="nova", runtimes=["microvm"]), warm=rt)
    rt.warm_guest_room = bidder.hold_if_room
    return bidder


def _open_runtime(state_dir, node, **overrides):
    from zund.runtimes.executor import make_run_blocking
    from zund.runtimes.libvirt import LibvirtRuntime

    run_blocking, pool = make_run_blocking(reactor, 8)
    pool.start()
    overrides.setdefault("warm_pool_size", 1)
    rt = LibvirtRuntime(make_config(state_dir, **overrides), node, run_blocking, reactor)
    return rt, pool


@pytest.fixture(scope="module")
def pooled_session(state_dir):
    # module scope: the warm guest (an idle TCG guest takes ~6 % of a core) goes
    # with this module instead of idling through the rest of the real tier
    rt, pool = _open_runtime(state_dir, SESSION_NODE)
    try:
        pytest_twisted.blockon(defer.ensureDeferred(rt.open()))
        yield rt
    finally:
        try:
            pytest_twisted.blockon(defer.ensureDeferred(rt.close()))
        finally:
            sweep(SESSION_NODE)
            pool.stop()


class TestWarmPoolRuntimeContract(RuntimeContract):
    """The shared contract, every create of a pooled shape served by a warm guest
    once the pool has one: the pool changes how a guest starts, never what a
    container does."""

    @pytest.fixture
    def node(self):
        return SESSION_NODE

    @pytest.fixture
    def runtime(self, pooled_session):
        return pooled_session

    # Containers with volumes or injected files never take a warm guest (they
    # need their own initrd and disks): test_libvirt_contract.py runs those.
    test_volume_data_outlives_its_container = None
    test_injected_file_is_there_at_first_start = None


class TestWarmPool:
    @pytest.fixture(autouse=True)
    def _cleanup(self, pooled_session):
        self._made: list = []
        yield
        for rt, uuid in self._made:
            try:
                pytest_twisted.blockon(defer.ensureDeferred(rt.remove(uuid, True)))
            except Exception:
                pass

    def spec(self, rt, node=SESSION_NODE, **kwargs) -> ContainerSpec:
        kwargs.setdefault("image", TEST_IMAGE)
        kwargs.setdefault("project_id", "pool-project")
        spec = ContainerSpec(uuid=str(uuidlib.uuid4()), node=node, **kwargs)
        self._made.append((rt, spec.uuid))
        return spec

    async def close_own(self, rt, pool) -> None:
        """Remove the containers this test made on ``rt`` (its own runtime), then
        close it and its thread pool."""
        for _, uuid in self._made:
            await rt.remove(uuid, True)
        self._made.clear()
        await rt.close()
        pool.stop()

    async def warm_shape(self, rt, **kwargs) -> None:
        """Make ``kwargs``' shape the pool's (one create) and wait for a warm guest."""
        first = self.spec(rt, command=("true",), **kwargs)
        await rt.create(first)
        await wait_warm(rt, timeout_s=WARM_S)

    @pytest_twisted.ensureDeferred
    async def test_create_claims_a_booted_guest_which_runs_the_container(self,
                                                                         pooled_session):
        """With a warm guest there, create takes it (no zun-<uuid> domain is made):
        created until start, then it runs this container's command, environment
        and hostname, exits with its code, and the pool is refilled."""
        rt = pooled_session
        await self.warm_shape(rt)
        before = {n for n, (_, pool) in _pool_domains(SESSION_NODE).items() if pool}
        spec = self.spec(rt, command=("sh", "-c", 'echo "$GREETING from $(hostname)"; exit 3'),
                         environment={"GREETING": "hi there"}, hostname="warmhost")
        state = await rt.create(spec)
        assert state.status == RuntimeStatus.CREATED
        claimed = {n for n, (_, pool) in _pool_domains(SESSION_NODE).items() if not pool}
        assert claimed & before, "the container is not one of the warm guests"
        assert runtime_object_name(spec.uuid) not in subprocess.run(
            ["virsh", "-c", URI, "list", "--all", "--name"], capture_output=True,
            text=True, check=True).stdout.split()
        # the name it could not take is its title, live and in the definition
        guest = next(iter(claimed & before))
        titled = subprocess.run(["virsh", "-c", URI, "list", "--all", "--title"],
                                capture_output=True, text=True, check=True).stdout
        assert any(line.split()[1:2] == [guest] and line.split()[-1] ==
                   runtime_object_name(spec.uuid) for line in titled.splitlines()), titled
        assert f"<title>{runtime_object_name(spec.uuid)}</title>" in subprocess.run(
            ["virsh", "-c", URI, "dumpxml", "--inactive", guest], capture_output=True,
            text=True, check=True).stdout
        await rt.start(spec.uuid)
        state = await wait_exited(rt, spec.uuid, 30)
        assert state.exit_code == 3
        assert await rt.logs(spec.uuid, True, True, False, None, None) == \
            "hi there from warmhost\n"
        assert state.uuid == spec.uuid and state.hostname == "warmhost"
        assert spec.uuid in [s.uuid for s in await rt.list(SESSION_NODE)]
        await wait_warm(rt, timeout_s=WARM_S)

    @pytest_twisted.ensureDeferred
    async def test_claimed_guest_stopped_before_start_stays_created_and_boots_later(
            self, pooled_session):
        """A claim that is never started: kill and pause refuse (not running), stop
        leaves it created, and start then boots it and sends its config again."""
        rt = pooled_session
        await self.warm_shape(rt)
        spec = self.spec(rt, command=("sh", "-c", "echo late start"))
        await rt.create(spec)
        for refused in (rt.kill(spec.uuid, None), rt.pause(spec.uuid)):
            with pytest.raises(errors.RuntimeFailure):
                await refused
        await rt.stop(spec.uuid, 5)
        assert (await rt.inspect(spec.uuid)).status == RuntimeStatus.CREATED
        await rt.start(spec.uuid)
        assert (await wait_exited(rt, spec.uuid, 60)).exit_code == 0
        assert await rt.logs(spec.uuid, True, True, False, None, None) == "late start\n"

    @pytest_twisted.ensureDeferred
    async def test_close_leaves_no_warm_guest(self, state_dir):
        """close() destroys the pool's guests (and their files); open() warms nothing
        before a create says which shape."""
        node = SESSION_NODE + "-close"
        rt, pool = _open_runtime(state_dir, node)
        try:
            await rt.open()
            assert _pool_domains(node) == {}
            await self.warm_shape(rt)
            warm = _pool_domains(node)
            assert [pool for _, pool in warm.values()] == [True]
            files = rt._guest_files(next(iter(warm)))
            assert os.path.exists(files[0])
        finally:
            await self.close_own(rt, pool)
        assert _pool_domains(node) == {}
        assert not any(os.path.exists(p) for p in files)

    @pytest_twisted.ensureDeferred
    async def test_open_after_a_crash_discards_warm_guests_and_keeps_containers(
            self, state_dir):
        """A zund killed with SIGKILL leaves its warm guest and a running container;
        the next open on that node discards the warm guest only: the container is
        listed running and stops normally."""
        node = SESSION_NODE + "-crash"
        script = os.path.join(os.path.dirname(__file__), "warm_pool_crash_helper.py")
        proc = subprocess.Popen(
            [sys.executable, script, state_dir, node, URI, make_config(state_dir).kernel_path],
            stdout=subprocess.PIPE, text=True, cwd=os.getcwd(),
            env=dict(os.environ, PYTHONPATH=os.getcwd()))
        try:
            line = await _readline(proc)
            assert line.startswith("READY "), line
            uuid = line.split()[1]
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        left = _pool_domains(node)
        assert sorted(left.values()) == [(True, False), (True, True)], left
        rt, pool = _open_runtime(state_dir, node)
        self._made.append((rt, uuid))
        try:
            await rt.open()
            assert list(_pool_domains(node).values()) == [(True, False)]
            listed = {s.uuid: s for s in await rt.list(node)}
            assert listed[uuid].status == RuntimeStatus.RUNNING
            await rt.stop(uuid, 10)
            assert (await wait_exited(rt, uuid, 30)).exit_code == 0
            await rt.remove(uuid, False)
            self._made.clear()
            assert _pool_domains(node) == {}
        finally:
            await rt.close()
            pool.stop()
            sweep(node)

    @pytest_twisted.ensureDeferred
    async def test_containers_the_pool_cannot_serve_boot_cold(self, pooled_session):
        """An injected file needs the container's own initrd: a zun-<uuid> domain,
        with the file there, even while a warm guest of the shape waits."""
        rt = pooled_session
        await self.warm_shape(rt)
        spec = self.spec(rt, command=("cat", "/etc/motd-zund"),
                         mounts=(Mount(kind="file", destination="/etc/motd-zund",
                                       content=b"from the host\n"),))
        await rt.create(spec)
        assert runtime_object_name(spec.uuid) in subprocess.run(
            ["virsh", "-c", URI, "list", "--all", "--name"], capture_output=True,
            text=True, check=True).stdout.split()
        await rt.start(spec.uuid)
        assert (await wait_exited(rt, spec.uuid, 60)).exit_code == 0
        assert await rt.logs(spec.uuid, True, True, False, None, None) == "from the host\n"
        assert await rt._call(rt.warm_guests) == 1

    @pytest_twisted.ensureDeferred
    async def test_the_most_frequent_shape_takes_the_pool_over(self, state_dir):
        """One create of another shape boots cold and leaves the warm guest alone;
        once that shape is the most frequent of the latest creates, the old
        shape's guest is retired and one of the new shape waits."""
        node = SESSION_NODE + "-shape"
        rt, pool = _open_runtime(state_dir, node)
        try:
            await rt.open()
            await self.warm_shape(rt, node=node)
            old = {n for n, (_, p) in _pool_domains(node).items() if p}
            other = self.spec(rt, node=node, command=("true",), memory_mb=160)
            await rt.create(other)
            assert runtime_object_name(other.uuid) in subprocess.run(
                ["virsh", "-c", URI, "list", "--all", "--name"], capture_output=True,
                text=True, check=True).stdout.split()
            assert {n for n, (_, p) in _pool_domains(node).items() if p} == old
            assert await rt._call(rt.warm_guests) == 1
            await self.warm_shape(rt, node=node, memory_mb=160)
            deadline = time.monotonic() + WARM_S
            while True:
                now = {n for n, (_, p) in _pool_domains(node).items() if p}
                if not (now & old):
                    break
                assert time.monotonic() < deadline, "the old shape's guest was not retired"
                await task.deferLater(reactor, 0.1, lambda: None)
            assert len(now) == 1
            xml = subprocess.run(["virsh", "-c", URI, "dumpxml", next(iter(now))],
                                 capture_output=True, text=True, check=True).stdout
            assert "<memory unit='KiB'>163840</memory>" in xml
        finally:
            await self.close_own(rt, pool)
            sweep(node)

    @pytest_twisted.ensureDeferred
    async def test_two_alternating_shapes_share_a_pool_of_two(self, state_dir):
        """With ``warm_pool_size = 2`` and two shapes alternating, each shape gets a
        guest: both are held, and the next create of each shape claims its own
        (no zun-<uuid> domain) and runs in a guest of its memory."""
        node = SESSION_NODE + "-two"
        rt, pool = _open_runtime(state_dir, node, warm_pool_size=2)
        try:
            await rt.open()
            for memory_mb in (128, 160):
                await rt.create(self.spec(rt, node=node, command=("true",), cpu=0.5,
                                          memory_mb=memory_mb))
            await wait_warm(rt, n=2, timeout_s=2 * WARM_S)
            assert rt.held_capacity() == capacity.Held(cpus=1.0, mem_mb=288, count=2)
            warm = {n for n, (_, p) in _pool_domains(node).items() if p}
            assert len(warm) == 2
            for memory_mb in (128, 160):
                spec = self.spec(rt, node=node, command=("true",), cpu=0.5,
                                 memory_mb=memory_mb)
                await rt.create(spec)
                guest = await rt._call(lambda u=spec.uuid: rt._domain_name(u))
                assert guest in warm, f"{memory_mb} MiB create did not claim a warm guest"
                xml = subprocess.run(["virsh", "-c", URI, "dumpxml", guest],
                                     capture_output=True, text=True, check=True).stdout
                assert f"<memory unit='KiB'>{memory_mb * 1024}</memory>" in xml
            assert rt.pool_stats["create_warm"] == 2
        finally:
            await self.close_own(rt, pool)
            sweep(node)

    @pytest_twisted.ensureDeferred
    async def test_warm_guests_hold_their_shapes_capacity(self, pooled_session):
        """A warm guest holds what a container of its shape holds (its cpu, the
        guest's memory): from its boot until a create claims it; the refill holds
        it again at once, and every change is told to the listeners."""
        rt = pooled_session
        seen: list = []
        rt.held_listeners.append(lambda: seen.append(rt.held_capacity()))
        try:
            await self.warm_shape(rt, cpu=0.5, memory_mb=128)
            one = capacity.Held(cpus=0.5, mem_mb=128, count=1)
            assert rt.held_capacity() == one
            seen.clear()
            await rt.create(self.spec(rt, command=("true",), cpu=0.5, memory_mb=128))
            # claimed (nothing held), then the refill's guest holds it again
            assert seen[:2] == [capacity.Held(), one]
            assert rt.held_capacity() == one
            await wait_warm(rt, timeout_s=WARM_S)
            assert rt.held_capacity() == one
        finally:
            rt.held_listeners.clear()

    @pytest_twisted.ensureDeferred
    async def test_retire_destroys_the_pool_until_the_next_create(self, pooled_session):
        """retire_pool (a draining node): the warm guest is destroyed, nothing is
        held or refilled; the next create of a shape warms again."""
        rt = pooled_session
        await self.warm_shape(rt)
        warm = {n for n, (_, pool) in _pool_domains(SESSION_NODE).items() if pool}
        rt.retire_pool()
        assert rt.held_capacity() == capacity.Held()
        deadline = time.monotonic() + WARM_S
        while warm & set(_pool_domains(SESSION_NODE)):
            assert time.monotonic() < deadline, "the retired guest is still there"
            await task.deferLater(reactor, 0.1, lambda: None)
        if rt._pool_fill is not None:
            await rt._pool_fill
        assert not any(pool for _, pool in _pool_domains(SESSION_NODE).values())
        await self.warm_shape(rt)
        assert rt.held_capacity().count == 1

    @pytest_twisted.ensureDeferred
    async def test_no_warm_guest_boots_without_room_on_the_node(self, state_dir):
        """The refill asks the node's bidder first: with 64 MiB free beside the
        node's containers no 128 MiB guest boots (none held, no domain); once the
        node has room, one boots and is held."""
        node = SESSION_NODE + "-room"
        rt, pool = _open_runtime(state_dir, node)
        total = {"mem_mb": 256}
        records: list = []
        _node_bidder(rt, node, lambda: total["mem_mb"], records)
        try:
            await rt.open()
            first = self.spec(rt, node=node, command=("true",), memory_mb=128)
            records.append(SimRecord(first.uuid, "p", 1.0, 192, 0, node))
            await rt.create(first)
            if rt._pool_fill is not None:
                await rt._pool_fill
            assert rt.held_capacity() == capacity.Held()
            assert _pool_domains(node) == {}
            total["mem_mb"] = 1024
            await rt.create(self.spec(rt, node=node, command=("true",), memory_mb=128))
            await wait_warm(rt, timeout_s=WARM_S)
            assert rt.held_capacity().count == 1
            assert [p for _, p in _pool_domains(node).values()] == [True]
        finally:
            await self.close_own(rt, pool)
            sweep(node)

    @contextlib.asynccontextmanager
    async def full_but_for_a_guest(self, state_dir, name: str, mem_mb: int):
        """A runtime of its own for node ``<session>-<name>`` with its real bidder
        over ``mem_mb`` MiB, a 128 MiB container (a record) and a waiting 128 MiB
        warm guest of its shape -> ``(rt, node, bidder, records, guest names)``;
        closed and swept at the end."""
        node = f"{SESSION_NODE}-{name}"
        rt, pool = _open_runtime(state_dir, node)
        records: list = []
        bidder = _node_bidder(rt, node, lambda: mem_mb, records)
        try:
            await rt.open()
            first = self.spec(rt, node=node, command=("true",), cpu=1.0, memory_mb=128)
            records.append(SimRecord(first.uuid, "p", 1.0, 128, 0, node))
            await rt.create(first)
            await wait_warm(rt, timeout_s=WARM_S)
            warm = set(_pool_domains(node))
            assert len(warm) == 1 and rt.yieldable_capacity().mem_mb == 128
            yield rt, node, bidder, records, warm
        finally:
            await self.close_own(rt, pool)
            sweep(node)

    @staticmethod
    def placement(spec) -> PlacementRequest:
        return PlacementRequest(request_id="r-" + spec.uuid, uuid=spec.uuid, project_id="p",
                                user_id="u", cpu=spec.cpu, memory_mb=spec.memory_mb,
                                runtime="microvm", image=spec.image)

    @staticmethod
    def record_of(node: str, records: list):
        async def do_create(res):
            r = res.request
            records.append(SimRecord(r.uuid, r.project_id, r.cpu, r.memory_mb, 0, node))
            return r.uuid
        return do_create

    @pytest_twisted.ensureDeferred
    async def test_a_container_that_fits_only_without_the_warm_guest_takes_its_place(
            self, state_dir):
        """512 MiB on the node, a 128 MiB container and a 128 MiB warm guest: the
        node's bidder admits a 320 MiB container, which fits only without the
        guest. Asked first what it would give up (a dry run), the runtime keeps
        the guest; the bid sets it aside (it holds nothing, still runs, is
        destroyed by nothing yet); the commit destroys it (it is not of the
        container's shape), the container is created cold, and the refill then
        finds no room for another guest."""
        async with self.full_but_for_a_guest(state_dir, "yield", 512) as (
                rt, node, bidder, records, warm):
            assert rt.yield_capacity(0.0, 64, dry_run=True).mem_mb == 128
            assert rt.yieldable_capacity().mem_mb == 128 and rt.pool_stats["warm_yielded"] == 0
            big = self.spec(rt, node=node, command=("true",), cpu=1.0, memory_mb=320)
            bid = await bidder.bid(self.placement(big))
            assert isinstance(bid, Bid), bid
            assert rt.held_capacity() == capacity.Held()
            assert rt.pool_stats["warm_yielded"] == 0 and set(_pool_domains(node)) == warm
            await bidder.commit(bid.reservation_id, self.record_of(node, records))
            assert rt.pool_stats["warm_yielded"] == 1 and rt.pool_stats["warm_kept"] == 0
            deadline = time.monotonic() + WARM_S
            while warm & set(_pool_domains(node)):
                assert time.monotonic() < deadline, "the yielded guest is still there"
                await task.deferLater(reactor, 0.1, lambda: None)
            cold = rt.pool_stats["create_cold"]
            await rt.create(big)
            assert rt.pool_stats["create_cold"] == cold + 1
            if rt._pool_fill is not None:
                await rt._pool_fill
            assert rt.pool_stats["warm_no_room"] >= 1
            assert rt.held_capacity() == capacity.Held() and _pool_domains(node) == {}

    @pytest_twisted.ensureDeferred
    async def test_a_container_of_the_guests_shape_that_fits_only_without_it_takes_it_warm(
            self, state_dir):
        """256 MiB on the node, a 128 MiB container and a 128 MiB warm guest: a
        second container of that shape fits only without the guest. The bid sets
        the guest aside, the commit keeps it for the container, and the create
        claims that very guest (a warm create, no guest destroyed), which then
        runs the container's command."""
        async with self.full_but_for_a_guest(state_dir, "own", 256) as (
                rt, node, bidder, records, warm):
            spec = self.spec(rt, node=node, command=("sh", "-c", "echo kept; exit 4"),
                             cpu=1.0, memory_mb=128)
            bid = await bidder.bid(self.placement(spec))
            assert isinstance(bid, Bid), bid
            assert rt.held_capacity() == capacity.Held() and set(_pool_domains(node)) == warm
            await bidder.commit(bid.reservation_id, self.record_of(node, records))
            assert rt.pool_stats["warm_kept"] == 1 and rt.pool_stats["warm_yielded"] == 0
            counts = (rt.pool_stats["create_warm"], rt.pool_stats["create_cold"])
            await rt.create(spec)
            assert (rt.pool_stats["create_warm"], rt.pool_stats["create_cold"]) == \
                (counts[0] + 1, counts[1])
            assert {n: p for n, (_, p) in _pool_domains(node).items()} == \
                {n: False for n in warm}, "the container is not the guest set aside for it"
            await rt.start(spec.uuid)
            state = await wait_exited(rt, spec.uuid, 30)
            assert state.exit_code == 4
            assert await rt.logs(spec.uuid, True, False, False, None, None) == "kept\n"

    @pytest_twisted.ensureDeferred
    async def test_a_warm_guest_set_aside_for_a_released_bid_goes_back_to_the_pool(
            self, state_dir):
        """The same full node: a bid for a container of the guest's shape sets it
        aside; the coordinator chose another node and releases the bid. The guest
        was never destroyed: it is back in the pool, held and waiting, and serves
        the next create of its shape warm."""
        async with self.full_but_for_a_guest(state_dir, "back", 256) as (
                rt, node, bidder, records, warm):
            lost = self.spec(rt, node=node, command=("true",), cpu=1.0, memory_mb=128)
            bid = await bidder.bid(self.placement(lost))
            assert isinstance(bid, Bid), bid
            assert rt.yieldable_capacity() == capacity.Held()
            bidder.release(bid.reservation_id)
            assert rt.yieldable_capacity().mem_mb == 128 and rt.held_capacity().count == 1
            assert rt.pool_stats["warm_returned"] == 1 and rt.pool_stats["warm_yielded"] == 0
            assert {n: p for n, (_, p) in _pool_domains(node).items()} == \
                {n: True for n in warm}
            assert await rt._call(rt.warm_guests) == 1
            records.pop()  # the first container is gone: room for the next one
            warm_creates = rt.pool_stats["create_warm"]
            await rt.create(self.spec(rt, node=node, command=("true",), cpu=1.0,
                                      memory_mb=128))
            assert rt.pool_stats["create_warm"] == warm_creates + 1

    @pytest_twisted.ensureDeferred
    async def test_a_shape_without_room_does_not_keep_a_smaller_one_cold(self, state_dir):
        """A pool of 2 shared by a 320 and a 128 MiB shape (one guest each, the 320
        MiB one first), on a node with 200 MiB free: the refill passes over the
        320 MiB shape, which has no room, and warms the 128 MiB one."""
        node = SESSION_NODE + "-skip"
        rt, pool = _open_runtime(state_dir, node, warm_pool_size=2)
        records: list = []
        free = {"mb": 0}
        _node_bidder(rt, node, lambda: sum(r.memory for r in records) + free["mb"], records)

        async def create(memory_mb: int) -> None:
            spec = self.spec(rt, node=node, command=("true",), cpu=0.5, memory_mb=memory_mb)
            records.append(SimRecord(spec.uuid, "p", 0.5, memory_mb, 0, node))
            await rt.create(spec)
            if rt._pool_fill is not None:
                await rt._pool_fill

        try:
            await rt.open()
            for memory_mb in (128, 320):  # no room at all yet
                await create(memory_mb)
            assert rt.held_capacity() == capacity.Held() and _pool_domains(node) == {}
            free["mb"] = 200
            no_room = rt.pool_stats["warm_no_room"]
            await create(320)
            # one guest each, the 320 MiB shape asked first (it has no room)
            assert [(mb, n) for (_, _, mb), n in rt._plan.items()] == [(320, 1), (128, 1)]
            assert rt.pool_stats["warm_no_room"] == no_room + 1
            await wait_warm(rt, timeout_s=WARM_S)
            assert rt.held_capacity() == capacity.Held(cpus=0.5, mem_mb=128, count=1)
            (name,) = _pool_domains(node)
            xml = subprocess.run(["virsh", "-c", URI, "dumpxml", name],
                                 capture_output=True, text=True, check=True).stdout
            assert "<memory unit='KiB'>131072</memory>" in xml
        finally:
            await self.close_own(rt, pool)
            sweep(node)


async def _readline(proc) -> str:
    """The helper's first line, read on a thread (it may take a minute under TCG)."""
    from twisted.internet import threads
    return await threads.deferToThread(proc.stdout.readline)
