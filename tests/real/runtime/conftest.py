"""Fixtures of the real micro-VM tests (``test_libvirt_*.py``).

- ``libvirt_available`` (session): libvirtd answers, the guest kernel and a
  static busybox are there (``tools/setup-libvirt.sh``); otherwise the test
  FAILS with what is missing, unless ``ZUND_SKIP_LIBVIRT=1`` is set.
- ``state_dir`` (session): a world-traversable directory for the guests' files.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from tests.support.libvirt_guests import prerequisites


@pytest.fixture(scope="session")
def libvirt_available(docker_available) -> bool:
    if os.environ.get("ZUND_SKIP_LIBVIRT") == "1":
        pytest.skip("ZUND_SKIP_LIBVIRT=1: real libvirt tests disabled explicitly")
    missing = prerequisites()
    if missing:
        pytest.fail(f"libvirt micro-VM runtime unavailable: {missing}; or set "
                    "ZUND_SKIP_LIBVIRT=1 to skip these tests", pytrace=False)
    return True


@pytest.fixture(scope="session")
def state_dir(libvirt_available):
    # QEMU runs as an unprivileged user: the initrds must sit under world-traversable
    # directories, which pytest's tmp_path (under a 0700 directory) is not.
    d = tempfile.mkdtemp(prefix="zund-microvm-", dir="/var/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)
