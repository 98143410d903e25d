#!/usr/bin/env bash
# Print the bin directory of the Python the tests use when it is not `python3` on
# PATH, else nothing. A stock Debian python3 is EXTERNALLY-MANAGED (PEP 668: pip
# refuses to install into it), so tools/setup-host.sh makes a venv for the tests,
# ZUND_TEST_VENV (default /opt/zund-test); run-tests.sh puts it first on PATH.
set -euo pipefail
if python3 -c 'import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'
then
    echo "${ZUND_TEST_VENV:-/opt/zund-test}/bin"
fi
