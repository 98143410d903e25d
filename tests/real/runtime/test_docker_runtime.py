"""DockerRuntime specifics: pure translation helpers, an absent engine, and the
exec timeout against the real engine."""

from __future__ import annotations

import datetime
import time
import uuid as uuidlib

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from zund.common import errors
from zund.runtimes.base import ContainerSpec, RuntimeStatus
from zund.runtimes.docker import (
    DockerConfig,
    DockerRuntime,
    exposed_port_numbers,
    parse_docker_time,
    state_from_inspect,
    zun_stats,
)
from zund.runtimes.executor import make_run_blocking, run_blocking_sync


def test_parse_docker_time_to_naive_utc():
    """Nanosecond RFC 3339 becomes naive UTC; the zero time means never."""
    assert parse_docker_time("2024-03-04T19:48:49.123456789Z") == \
        datetime.datetime(2024, 3, 4, 19, 48, 49, 123456)
    assert parse_docker_time("2024-03-04T21:48:49+02:00") == datetime.datetime(2024, 3, 4, 19, 48, 49)
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time("") is None


def test_state_from_inspect_maps_status_and_labels():
    """docker inspect output becomes a RuntimeState."""
    state = state_from_inspect({
        "Id": "abc", "Name": "/zun-u1",
        "State": {"Status": "exited", "ExitCode": 3, "Error": "",
                  "StartedAt": "2024-01-01T00:00:00Z", "FinishedAt": "2024-01-01T00:00:01Z"},
        "Config": {"Hostname": "h", "ExposedPorts": {"80/tcp": {}},
                   "Labels": {"zund.uuid": "u1", "zund.node": "n", "zund.project": "p"}}})
    assert (state.uuid, state.status, state.exit_code, state.ports, state.node) == \
        ("u1", RuntimeStatus.EXITED, 3, (80,), "n")
    running = state_from_inspect({"Id": "x", "State": {"Status": "running", "ExitCode": 0},
                                  "Config": {}})
    assert running.exit_code is None and running.started_at is None
    assert exposed_port_numbers({"53/udp": {}, "8080/tcp": {}}) == (53, 8080)


def test_zun_stats_from_an_empty_sample():
    """A sample of a stopped container gives zeros, not a ZeroDivisionError."""
    res = zun_stats("zun-x", {"memory_stats": {}, "cpu_stats": {}, "precpu_stats": {}})
    assert res["CPU %"] == 0.0 and res["MEM %"] == 0.0 and res["NET I/O(B)"] == "0/0"


@pytest_twisted.ensureDeferred
async def test_absent_engine_is_runtime_unavailable():
    """open() against a socket with no engine raises RuntimeUnavailable."""
    rt = DockerRuntime(DockerConfig(api_url="unix:///nonexistent/zund-docker.sock",
                                    api_version="1.41", default_timeout_s=2),
                       "n", run_blocking_sync)
    with pytest.raises(errors.RuntimeUnavailable):
        await rt.open()
    with pytest.raises(errors.RuntimeUnavailable):
        await rt.inspect("u")


@pytest.fixture
def short_exec_runtime(docker_available):
    run_blocking, pool = make_run_blocking(reactor, 4)
    pool.start()
    rt = DockerRuntime(DockerConfig(network_mode="none", default_timeout_s=30,
                                    execute_timeout_s=1.0),
                       "test-exec-" + uuidlib.uuid4().hex[:8], run_blocking)
    pytest_twisted.blockon(defer.ensureDeferred(rt.open()))
    yield rt
    pytest_twisted.blockon(defer.ensureDeferred(rt.close()))
    pool.stop()


@pytest_twisted.ensureDeferred
async def test_execute_is_bounded_by_execute_timeout(short_exec_runtime, test_image):
    """A silent exec longer than execute_timeout_s fails with RuntimeFailure in bounded time."""
    rt = short_exec_runtime
    spec = ContainerSpec(uuid=str(uuidlib.uuid4()), image=test_image, node=rt.node_name,
                         project_id="p",
                         command=("sh", "-c", 'trap "exit 0" TERM; while true; do sleep 0.1; done'))
    await rt.create(spec)
    try:
        await rt.start(spec.uuid)
        started = time.monotonic()
        with pytest.raises(errors.RuntimeFailure):
            await rt.execute(spec.uuid, ["sleep", "5"])
        assert time.monotonic() - started < 4
    finally:
        await rt.remove(spec.uuid, True)


LONG_RUNNER = ("sh", "-c", 'trap "exit 0" TERM; while true; do sleep 0.1; done')


def _spec(rt, image, **kwargs) -> ContainerSpec:
    return ContainerSpec(uuid=str(uuidlib.uuid4()), image=image, node=rt.node_name,
                         project_id="p", **kwargs)


@pytest_twisted.ensureDeferred
async def test_create_and_start_answers_the_running_state_in_one_job(short_exec_runtime,
                                                                      test_image):
    """create_and_start makes and starts the container and answers what an inspect
    after the start says: running, its id, start time, hostname and ports, ours."""
    rt = short_exec_runtime
    spec = _spec(rt, test_image, command=LONG_RUNNER, exposed_ports={"80/tcp": {}},
                 cpu=0.1, memory_mb=32)
    steps: dict = {}
    try:
        state = await rt.create_and_start(spec, steps)
        seen = await rt.inspect(spec.uuid)
        assert state.status == RuntimeStatus.RUNNING == seen.status
        assert state.runtime_id == seen.runtime_id and state.started_at == seen.started_at
        assert state.hostname == seen.hostname and state.ports == (80,)
        assert state.node == rt.node_name and state.uuid == spec.uuid
        assert set(steps) == {"create_ms", "start_ms", "inspect_ms"}
    finally:
        await rt.remove(spec.uuid, True)


@pytest_twisted.ensureDeferred
async def test_create_and_start_of_a_process_that_exits_at_once_reports_it(
        short_exec_runtime, test_image):
    """The state is the engine's after the start: a command that exits at once is
    exited (or, if the inspect came first, running and then exited), never lost."""
    rt = short_exec_runtime
    spec = _spec(rt, test_image, command=("sh", "-c", "exit 3"))
    try:
        state = await rt.create_and_start(spec)
        assert state.status in (RuntimeStatus.EXITED, RuntimeStatus.RUNNING)
        if state.status == RuntimeStatus.EXITED:
            assert state.exit_code == 3
    finally:
        await rt.remove(spec.uuid, True)


@pytest_twisted.ensureDeferred
async def test_create_and_start_with_a_missing_image_makes_nothing(short_exec_runtime):
    """A missing image is ImageNotFound (as create's), and no object is left."""
    rt = short_exec_runtime
    spec = _spec(rt, "127.0.0.1:1/zund-test/missing:latest", command=LONG_RUNNER)
    with pytest.raises(errors.ImageNotFound):
        await rt.create_and_start(spec)
    with pytest.raises(errors.RuntimeObjectNotFound):
        await rt.inspect(spec.uuid)


@pytest_twisted.ensureDeferred
async def test_create_and_start_whose_start_fails_leaves_the_created_object(
        short_exec_runtime, test_image):
    """A start that fails (no such executable) raises RuntimeFailure with the
    engine's reason; the object made stays, not running, for the caller to find."""
    rt = short_exec_runtime
    spec = _spec(rt, test_image, command=("/no/such/executable",))
    try:
        with pytest.raises(errors.RuntimeFailure) as raised:
            await rt.create_and_start(spec)
        assert not isinstance(raised.value, errors.ImageNotFound)
        assert "no/such/executable" in str(raised.value)
        left = await rt.inspect(spec.uuid)
        assert left.runtime_id and left.status != RuntimeStatus.RUNNING
    finally:
        await rt.remove(spec.uuid, True)
