"""Fixtures shared by every test tier.

- ``docker_available`` (session): the real Docker engine answers and the test
  image exists. CI starts the engine (``tools/start-dockerd.sh``); this fixture
  only checks it and builds the image (``tools/build-test-image.sh``). When the
  engine is missing the test FAILS, unless ``ZUND_SKIP_DOCKER=1`` is set.
- ``test_image``: the local busybox image every real-engine test uses.
- ``fake_runtime``: factory for :class:`zund.runtimes.fake.FakeRuntime`.
- ``run_blocking_sync``: synchronous stand-in for the thread-pool executor.
- hypothesis without its per-example deadline (profile ``zund``): a property
  states what must hold, not how fast one example runs; the fast tiers share the
  CPU with the engines CI starts meanwhile, and a stalled example must not fail.
- an autouse guard that fails any test during which Twisted logged an
  unhandled error (an unhandled failure in a Deferred, or an error Twisted
  itself caught and logged, e.g. in a ``callLater`` callback). Opt out with
  ``@pytest.mark.allow_logged_errors``.

Async tests use ``@pytest_twisted.ensureDeferred`` on the default reactor.
"""

from __future__ import annotations

import gc
import os
import pathlib
import subprocess

import pytest
from hypothesis import settings
from twisted.logger import LogLevel, globalLogPublisher

REPO = pathlib.Path(__file__).resolve().parents[1]
TEST_IMAGE = "zund-test/busybox:latest"

settings.register_profile("zund", deadline=None)
settings.load_profile("zund")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_logged_errors: do not fail the test when Twisted logs an unhandled error")


# -- unhandled errors ------------------------------------------------------------

#: Critical failures logged by Twisted itself mean "nobody handled this error":
#: a failed Deferred garbage-collected (``twisted.internet.defer``), an exception
#: in a ``callLater``/thread callback (``twisted.internet.base``), in a protocol,
#: or a legacy ``log.err``. zund's own ``log.failure`` events are not counted.
def _is_unhandled_error(event) -> bool:
    namespace = event.get("log_namespace") or ""
    if namespace != "log_legacy" and not namespace.startswith("twisted."):
        return False
    if event.get("log_level") != LogLevel.critical:
        return False
    return (event.get("log_failure") or event.get("failure")) is not None or bool(event.get("isError"))


@pytest.fixture(autouse=True)
def _fail_on_unhandled_errors(request):
    """Fail the test if an unhandled error was logged while it ran (magic-wormhole style)."""
    seen: list = []

    def observer(event):
        if _is_unhandled_error(event):
            seen.append(event)

    globalLogPublisher.addObserver(observer)
    try:
        yield
        # Unreferenced failed Deferreds only report themselves when collected.
        gc.collect()
    finally:
        globalLogPublisher.removeObserver(observer)
    if seen and request.node.get_closest_marker("allow_logged_errors") is None:
        texts = []
        for event in seen:
            failure = event.get("log_failure") or event.get("failure")
            if failure is not None:
                texts.append(failure.getTraceback())
        if not texts:
            texts = [str(event.get("log_format") or event.get("message")) for event in seen]
        pytest.fail("unhandled error(s) logged during the test:\n" + "\n".join(texts),
                    pytrace=False)


# -- runtimes ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def docker_available() -> bool:
    """The real engine answers and the test image is present; fails loudly otherwise."""
    if os.environ.get("ZUND_SKIP_DOCKER") == "1":
        pytest.skip("ZUND_SKIP_DOCKER=1: real Docker engine tests disabled explicitly")
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.fail(f"Docker engine unavailable ({e}). Start it with tools/start-dockerd.sh "
                    "or set ZUND_SKIP_DOCKER=1 to skip real-engine tests.", pytrace=False)
    if info.returncode != 0:
        pytest.fail("Docker engine unavailable (`docker info` failed: "
                    f"{(info.stderr or info.stdout).strip()[:500]}). Start it with "
                    "tools/start-dockerd.sh or set ZUND_SKIP_DOCKER=1 to skip real-engine tests.",
                    pytrace=False)
    build = subprocess.run([str(REPO / "tools" / "build-test-image.sh")], capture_output=True,
                           text=True, timeout=300)
    if build.returncode != 0:
        pytest.fail(f"could not build {TEST_IMAGE}: {(build.stderr or build.stdout).strip()[:1000]}",
                    pytrace=False)
    return True


@pytest.fixture
def test_image() -> str:
    return TEST_IMAGE


@pytest.fixture
def fake_runtime():
    """Factory: ``fake_runtime(node_name="node-1", clock=None, **kwargs) -> FakeRuntime``."""
    from zund.runtimes.fake import FakeRuntime

    def make(node_name: str = "node-1", clock=None, **kwargs) -> FakeRuntime:
        return FakeRuntime(node_name, clock, **kwargs)

    return make


@pytest.fixture
def run_blocking_sync():
    """``run_blocking(fn, *args) -> Deferred`` that runs inline (unit tests)."""
    from zund.runtimes.executor import run_blocking_sync as run

    return run
