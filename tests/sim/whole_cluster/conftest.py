"""Seeds for the simulated tier.

Each test gets a seed: ``ZUND_SIM_SEED`` when set (replay a failure), else a fixed
seed derived from the test's name (CI is reproducible). ``ZUND_SIM_SEED=random``
draws a fresh one (fault campaigns). The seed is printed, so a failing run's
captured output says how to replay it.
"""

from __future__ import annotations

import os
import random
import zlib

import pytest

from tests.support.harness import SimCluster


def _seed_for(nodeid: str) -> int:
    env = os.environ.get("ZUND_SIM_SEED", "")
    if env == "random":
        return random.SystemRandom().getrandbits(32)
    if env:
        return int(env)
    return zlib.crc32(nodeid.encode())


@pytest.fixture(autouse=True)
def _nothing_on_the_global_reactor():
    """A simulation runs on its own clock: it must leave no timer on the global reactor."""
    from twisted.internet import reactor

    before = set(reactor.getDelayedCalls())
    yield
    added = [dc for dc in reactor.getDelayedCalls() if dc not in before]
    assert not added, f"simulation scheduled on the global reactor: {added}"


@pytest.fixture
def seed(request) -> int:
    value = _seed_for(request.node.nodeid)
    print(f"simulation seed {value}; replay: ZUND_SIM_SEED={value} pytest '{request.node.nodeid}'")
    return value


@pytest.fixture
def make_cluster(seed):
    """``make_cluster(config=None, faults=None)`` → a started SimCluster; stopped after."""
    made = []

    def make(config=None, faults=None, start=True):
        c = SimCluster(seed, config, faults)
        made.append(c)
        return c.start() if start else c

    yield make
    for c in made:
        c.heal()
        c.stop()
