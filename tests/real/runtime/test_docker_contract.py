"""The IRuntime contract against the REAL Docker engine.

Needs a running engine (``tools/start-dockerd.sh``) and the local test image
(built on demand). Without an engine these tests fail, unless
``ZUND_SKIP_DOCKER=1`` is set. Containers run with ``network_mode=none`` and are
labelled with a per-session node name; everything with that label is removed at
the end of the session.
"""

from __future__ import annotations

import uuid as uuidlib

import docker
import docker.errors
import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from tests.support.runtime_contract import RuntimeContract
from zund.runtimes.base import LABEL_NODE
from zund.runtimes.docker import DockerConfig, DockerRuntime
from zund.runtimes.executor import make_run_blocking

SESSION_NODE = "test-" + uuidlib.uuid4().hex[:10]


def _sweep(node_prefix: str, repo_prefix: str) -> None:
    """Remove every container labelled with our node (prefix) and our committed images."""
    client = docker.from_env(timeout=60)
    try:
        for c in client.containers.list(all=True, filters={"label": LABEL_NODE}):
            if (c.labels.get(LABEL_NODE) or "").startswith(node_prefix):
                try:
                    c.remove(force=True, v=True)
                except docker.errors.NotFound:
                    pass
        for image in client.images.list():
            for tag in image.tags:
                if tag.startswith(repo_prefix):
                    try:
                        client.images.remove(tag, force=True)
                    except docker.errors.NotFound:
                        pass
    finally:
        client.close()


@pytest.fixture(scope="session")
def docker_session(docker_available):
    run_blocking, pool = make_run_blocking(reactor, 8)
    pool.start()
    runtime = DockerRuntime(
        DockerConfig(network_mode="none", default_timeout_s=30.0, execute_timeout_s=30.0),
        SESSION_NODE, run_blocking)
    try:
        pytest_twisted.blockon(defer.ensureDeferred(runtime.open()))
        yield runtime
    finally:
        try:
            _sweep(SESSION_NODE, f"zund-test/commit-{SESSION_NODE}")
        finally:
            pytest_twisted.blockon(defer.ensureDeferred(runtime.close()))
            pool.stop()


class TestDockerRuntimeContract(RuntimeContract):
    @pytest.fixture
    def node(self):
        return SESSION_NODE

    @pytest.fixture
    def runtime(self, docker_session):
        return docker_session

    async def forget_image(self, runtime, ref: str) -> None:
        client = docker.from_env(timeout=60)
        try:
            client.images.remove(ref, force=True)
        except docker.errors.NotFound:
            pass
        finally:
            client.close()
