"""Failures a user or an operator can act on (issue 10 items 6 and 8):
image errors name the image, the pull policy and the cause; a runtime whose Python
package is missing is dropped at start with one line naming the package extra."""

from __future__ import annotations

import random
import sys

import pytest

from zund.common import errors
from zund.gossip.memnet import HeapClock, MemoryNetwork
from zund.service import build_node
from zund.store import Store

from tests.sim.cluster.test_node_service import HOST, node_conf, outcome, wait_until
from tests.sim.runtime.test_runtime_shared import ImageAPI, _source, run

from .conftest import sync_blocking
from .test_manager import Harness, create


# -- images ------------------------------------------------------------------------------

def test_a_failed_pull_names_the_image_the_policy_and_the_registry_cause():
    """ifnotpresent on a missing image pulls; the failure says so and quotes the cause."""
    with pytest.raises(errors.ImagePullFailed) as info:
        run(_source(ImageAPI()).ensure("missing:1", "IfNotPresent"))
    assert str(info.value) == (
        "Failed to pull image missing:1 (image_pull_policy 'ifnotpresent': not present on "
        "this node): manifest for missing:1 not found")


def test_policy_always_says_the_pull_happens_on_every_create():
    """A failed pull under ``always`` names that policy."""
    with pytest.raises(errors.ImagePullFailed) as info:
        run(_source(ImageAPI()).ensure("missing:1", "always"))
    assert "image_pull_policy 'always': pulled on every create" in str(info.value)


def test_policy_never_and_a_missing_image_says_nothing_was_pulled():
    """``never`` with no local image: ImageNotFound naming the image, the policy and
    what to do instead."""
    with pytest.raises(errors.ImageNotFound) as info:
        run(_source(ImageAPI()).ensure("missing:1", "never"))
    assert str(info.value) == (
        "Image missing:1 could not be found: it is not present on this node and "
        "image_pull_policy is 'never', so it was not pulled (pull it on the node, or "
        "create with image_pull_policy 'ifnotpresent').")


@pytest.mark.parametrize("policy, expected", [
    ("ifnotpresent", "Failed to pull image nosuch/image:1 (image_pull_policy 'ifnotpresent': "
                     "not present on this node): manifest for nosuch/image:1 not found"),
    ("never", "Image nosuch/image:1 could not be found: it is not present on this node and "
              "image_pull_policy is 'never'"),
])
def test_the_containers_status_reason_carries_the_image_error(tmp_path, policy, expected):
    """Over the (verified) fake runtime the Error record's status_reason is that message."""
    h = Harness(tmp_path)
    h.start()
    try:
        rec = create(h, image="nosuch/image:1", image_pull_policy=policy)
        h.settle()
        got = h.get(rec.uuid)
        assert got.status == "Error"
        assert got.status_reason.startswith(expected)
    finally:
        h.stop()


# -- a runtime whose package is not installed -------------------------------------------

def test_libvirt_without_libvirt_python_is_dropped_with_the_extra_named(monkeypatch):
    """enabled_runtimes = fake,libvirt on a host without libvirt-python: the node
    builds and starts with the fake runtime only; the log line names the extra."""
    # the module as if not installed (None in sys.modules makes `import` fail)
    monkeypatch.setitem(sys.modules, "libvirt", None)
    monkeypatch.delitem(sys.modules, "zund.runtimes.libvirt", raising=False)
    clock = HeapClock()
    clock.advance(1_700_000_000.0)
    net = MemoryNetwork(clock, random.Random(1))
    conf = node_conf(1)
    conf.set_override("enabled_runtimes", ["fake", "libvirt"])
    logged = []
    from twisted.logger import globalLogPublisher
    globalLogPublisher.addObserver(logged.append)
    try:
        node = build_node(conf, clock, random.Random(1), host_facts=HOST,
                          store=Store(":memory:", run_blocking=sync_blocking),
                          gossip_transport_factory=net.transport, listen=False)
        started = outcome(node.startService())
        wait_until(clock, lambda: started)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert started == [None]
    assert node.parts.manager.runtime_names() == ["runc"]
    reasons = [str(e.get("reason")) for e in logged
               if e.get("log_format", "").startswith("node.runtime.unavailable")]
    assert len(reasons) == 1 and "\n" not in reasons[0]
    assert "libvirt-python is not installed" in reasons[0]
    assert "pip install 'zund[libvirt]'" in reasons[0]
    stopped = outcome(node.stopService())
    wait_until(clock, lambda: stopped)


def test_the_stand_in_of_a_missing_runtime_refuses_to_open():
    """What the node drops: open raises RuntimeUnavailable with the reason."""
    from zund.runtimes.base import MissingRuntime

    rt = MissingRuntime("microvm", "libvirt-python is not installed")
    with pytest.raises(errors.RuntimeUnavailable) as info:
        run(rt.open())
    assert str(info.value) == ("Runtime microvm is not available: "
                               "libvirt-python is not installed")
