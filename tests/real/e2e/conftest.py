import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TEST_IMAGE = "zund-test/busybox:latest"


@pytest.fixture(scope="session")
def real_docker():
    """A real dockerd with the locally built test image. Fails (never skips) when absent."""
    if os.environ.get("ZUND_SKIP_DOCKER") == "1":
        pytest.skip("ZUND_SKIP_DOCKER=1 set explicitly")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("dockerd is not running: start it with tools/start-dockerd.sh")
    subprocess.run(["sh", os.path.join(ROOT, "tools/build-test-image.sh")], check=True,
                   capture_output=True)
    return TEST_IMAGE


@pytest.fixture
def workdir(tmp_path):
    yield str(tmp_path)
    shutil.rmtree(tmp_path, ignore_errors=True)
