"""The real Glance that tools/glance.sh started (noauth; tools/run-tests.sh exports
``ZUND_GLANCE_ENV``, the KEY=VALUE file it wrote), and what tests need of it:
a keystoneauth adapter, pushing a ``docker save`` archive as a
``container_format=docker`` image, and the node config that points zund at it."""

from __future__ import annotations

import os
import subprocess
import uuid as uuidlib

import attrs
import pytest

from tests.support.services import service_env
from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import session as ks_session


@attrs.frozen
class Glance:
    url: str

    def adapter(self) -> ks_adapter.Adapter:
        return ks_adapter.Adapter(ks_session.Session(), service_type="image",
                                  endpoint_override=self.url)

    def node_config(self) -> dict:
        """The ``[glance]`` section of a zund node using this Glance."""
        return {"glance": {"endpoint_override": self.url}}

    def push_archive(self, archive_path: str, name: str) -> str:
        """Upload ``archive_path`` as image ``name`` (container_format docker); its id."""
        a = self.adapter()
        made = a.post("/v2/images", json={"name": name, "container_format": "docker",
                                          "disk_format": "raw"}).json()
        with open(archive_path, "rb") as f:
            a.put(f"/v2/images/{made['id']}/file", data=f,
                  headers={"Content-Type": "application/octet-stream"})
        return made["id"]

    def push_docker_image(self, image: str, workdir: str, name: str | None = None) -> tuple:
        """``docker save image`` pushed under ``name`` (default: a unique one);
        -> (glance id, name, archive path)."""
        name = name or f"g1-{uuidlib.uuid4().hex[:8]}"
        path = os.path.join(workdir, f"{name}.tar")
        subprocess.run(["docker", "save", "-o", path, image], check=True, capture_output=True)
        return self.push_archive(path, name), name, path

    def delete(self, image_id: str) -> None:
        self.adapter().delete(f"/v2/images/{image_id}", raise_exc=False)


@pytest.fixture(scope="session")
def real_glance() -> Glance:
    """The run's Glance. Fails (never skips) when tools/glance.sh did not run."""
    values = service_env("Glance", "ZUND_GLANCE_ENV", "glance.sh")
    return Glance(url=values["ZUND_GLANCE_URL"])
