"""The quota ledger's counting (zund.cluster.quota, pure: ``now`` comes in)."""

import pytest

from zund.cluster.quota import Ledger, demand
from zund.common import errors

LIMITS = {"containers": -1, "cpu": 2, "memory": -1, "disk": -1}


def test_twenty_tenth_of_a_vcpu_claims_fit_a_limit_of_two_vcpus():
    """Fractional vCPUs add up exactly: the 20th 0.1-vCPU claim fits cpu=2, the
    21st is refused naming cpu, and the usage reads 2."""
    ledger = Ledger()
    for i in range(20):
        ledger.claim(f"u{i}", demand(0.1, 32, 0), LIMITS, now=0.0, ttl_s=30.0)
        assert ledger.settle(f"u{i}", committed=True)
    with pytest.raises(errors.QuotaExceeded) as e:
        ledger.claim("u20", demand(0.1, 32, 0), LIMITS, now=0.0, ttl_s=30.0)
    assert str(e.value) == "Quota exceeded for resources: ['cpu']"
    assert ledger.in_use()["cpu"] == 2
