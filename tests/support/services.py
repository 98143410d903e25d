"""The loopback services a real-tier run starts (Keystone, Glance, a registry):
each tools/<name>.sh writes KEY=VALUE lines to an env file named by an environment
variable; a test that needs the service fails — never skips — without it."""

from __future__ import annotations

import os

import pytest


def service_env(name: str, variable: str, script: str) -> dict[str, str]:
    """The KEY=VALUE lines of the env file ``$variable`` names (``name`` and
    ``script`` make the failure say how to start the service)."""
    path = os.environ.get(variable)
    if not path or not os.path.exists(path):
        pytest.fail(f"no {name}: run `ZUND_CI_DIR=... bash tools/{script} start` and export "
                    f"{variable}=$ZUND_CI_DIR/{script[:-3]}/{script[:-3]}.env "
                    f"(tools/run-tests.sh does both)")
    values = {}
    with open(path) as f:
        for line in f:
            key, sep, value = line.strip().partition("=")
            if sep:
                values[key] = value
    return values
