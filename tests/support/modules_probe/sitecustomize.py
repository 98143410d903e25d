"""Test probe for tests/real/e2e/test_daemon_imports.py: a Python process started
with this directory on ``PYTHONPATH`` and ``ZUND_TEST_MODULES_OUT`` set writes the
names in ``sys.modules`` to that file when it exits normally."""

import atexit
import os
import sys

_OUT = os.environ.get("ZUND_TEST_MODULES_OUT")

if _OUT:
    def _write_modules():
        with open(_OUT, "w") as f:
            f.write("\n".join(sorted(sys.modules)) + "\n")

    atexit.register(_write_modules)
