"""The real private registry that tools/registry.sh started (docker-registry with
htpasswd on 127.0.0.1; tools/run-tests.sh exports ``ZUND_REGISTRY_ENV``, the
KEY=VALUE file it wrote), and pushing the test image into it."""

from __future__ import annotations


import attrs
import pytest

from tests.support.services import service_env


@attrs.frozen(repr=False)
class Registry:
    addr: str  # 127.0.0.1:PORT
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Registry(addr={self.addr!r}, username={self.username!r})"

    def push(self, source: str, repository: str, tag: str) -> str:
        """``source`` (a local image) pushed as ``addr/repository:tag`` with the
        registry's login; the local tag is removed again so a node must pull it."""
        import docker

        ref = f"{self.addr}/{repository}"
        client = docker.from_env()
        try:
            client.images.get(source).tag(ref, tag)
            auth = {"username": self.username, "password": self.password}
            for line in client.images.push(ref, tag, auth_config=auth, stream=True,
                                           decode=True):
                if "error" in line:
                    raise AssertionError(f"push of {ref}:{tag} failed: {line['error']}")
            client.images.remove(f"{ref}:{tag}")
        finally:
            client.close()
        return f"{ref}:{tag}"


@pytest.fixture(scope="session")
def real_registry() -> Registry:
    """The run's registry. Fails (never skips) when tools/registry.sh did not run."""
    values = service_env("registry", "ZUND_REGISTRY_ENV", "registry.sh")
    return Registry(values["ZUND_REGISTRY_ADDR"], values["ZUND_REGISTRY_USER"],
                    values["ZUND_REGISTRY_PASSWORD"])
