"""The IRuntime contract against the in-memory FakeRuntime (real reactor as its clock)."""

from __future__ import annotations

import pytest
from twisted.internet import reactor

from tests.support.runtime_contract import RuntimeContract
from zund.runtimes.fake import FakeRuntime


class TestFakeRuntimeContract(RuntimeContract):
    @pytest.fixture
    def node(self):
        return "test-fake"

    @pytest.fixture
    def runtime(self, node):
        return FakeRuntime(node, clock=reactor)


class TestFakeRuntimeWithoutOptionalCapabilities(RuntimeContract):
    """A runtime declaring no optional capability refuses every optional call."""

    @pytest.fixture
    def node(self):
        return "test-fake-bare"

    @pytest.fixture
    def runtime(self, node):
        return FakeRuntime(node, clock=reactor, capabilities=frozenset())
