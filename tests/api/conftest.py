import random

import pytest

from tests.api.client import Client
from tests.api.fakes import FakeManager
from zund.api.app import ApiConfig, ZunAPI
from zund.api.policy import make_enforcer


@pytest.fixture(scope="session")
def enforcer():
    return make_enforcer()


@pytest.fixture
def manager():
    return FakeManager()


@pytest.fixture
def config():
    return ApiConfig(node="node1", max_limit=1000, public_url=None)


@pytest.fixture
def api(manager, config, enforcer):
    return ZunAPI(manager, config, enforcer, rng=random.Random(7))


@pytest.fixture
def client(api):
    return Client(api.resource())
