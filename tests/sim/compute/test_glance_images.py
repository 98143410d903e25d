"""GlanceImages: verify before load, cache after, refuse what is not a docker image.
Glance's HTTP side is a stand-in here (the real one is in tests/e2e)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
from twisted.internet import defer

from zund.common import errors
from zund.images.engine import FakeImageEngine
from zund.images.glance import GlanceImage, GlanceImages
from zund.runtimes.fake import FakeRuntime


def archive(tags) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = json.dumps([{"Config": "x.json", "RepoTags": tags, "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class StandInGlance:
    """Images by id; ``download`` writes the data and hashes it as GlanceClient does."""

    def __init__(self):
        self.images: dict[str, tuple[GlanceImage, bytes]] = {}
        self.downloads = 0

    def add(self, image_id, name, data, *, sha512=None, container_format="docker"):
        image = GlanceImage(id=image_id, name=name, status="active",
                            container_format=container_format, disk_format="raw",
                            size=len(data), checksum=hashlib.md5(data).hexdigest(),
                            os_hash_algo="sha512",
                            os_hash_value=sha512 or hashlib.sha512(data).hexdigest())
        self.images[image_id] = (image, data)

    def get(self, image_id):
        from keystoneauth1 import exceptions

        if image_id not in self.images:
            raise exceptions.NotFound()
        return self.images[image_id][0]

    def list(self, **filters):
        return [i for i, _ in self.images.values()
                if "name" not in filters or i.name == filters["name"]]

    def download(self, image_id, dest_path, algo):
        self.downloads += 1
        data = self.images[image_id][1]
        with open(dest_path, "wb") as f:
            f.write(data)
        return hashlib.md5(data).hexdigest(), hashlib.new(algo, data).hexdigest()


def sync(fn):
    return defer.maybeDeferred(fn)


def run(coro):
    d = defer.Deferred.fromCoroutine(coro)
    out = []
    d.addBoth(out.append)
    assert out, "did not finish synchronously"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


@pytest.fixture
def parts(tmp_path):
    glance = StandInGlance()
    runtime = FakeRuntime("node1")
    images = GlanceImages(glance, FakeImageEngine(runtime), str(tmp_path / "cache"), sync)
    return glance, runtime, images


def test_a_glance_image_is_loaded_under_its_name_and_then_served_from_the_cache(parts):
    """First fetch downloads and loads; the second downloads nothing."""
    glance, runtime, images = parts
    glance.add("11111111-1111-1111-1111-111111111111", "web", archive(["app/web:1"]))
    image, downloaded = run(images.fetch("web"))
    assert downloaded and "web:latest" in runtime.images
    assert "zund-glance/11111111-1111-1111-1111-111111111111:latest" in runtime.images
    _, again = run(images.fetch("11111111-1111-1111-1111-111111111111", "web2"))
    assert again is False and glance.downloads == 1 and "web2:latest" in runtime.images


def test_data_that_does_not_match_glances_hash_is_refused(parts):
    """A sha512 mismatch is ImagePullFailed naming the hash; nothing is loaded."""
    glance, runtime, images = parts
    glance.add("22222222-2222-2222-2222-222222222222", "bad", archive(["app/bad:1"]),
               sha512="0" * 128)
    with pytest.raises(errors.ImagePullFailed, match="sha512"):
        run(images.fetch("bad"))
    assert "app/bad:1" not in runtime.images and "bad:latest" not in runtime.images


def test_an_image_that_is_not_a_docker_archive_is_refused(parts):
    """container_format bare: refused before any download."""
    glance, _, images = parts
    glance.add("33333333-3333-3333-3333-333333333333", "disk", b"qcow", container_format="bare")
    with pytest.raises(errors.ImagePullFailed, match="container_format"):
        run(images.fetch("disk"))
    assert glance.downloads == 0


def test_an_unknown_name_is_image_not_found(parts):
    """Neither an id nor a name Glance knows."""
    _, _, images = parts
    with pytest.raises(errors.ImageNotFound):
        run(images.fetch("nothing"))


def test_search_matches_by_substring_or_exactly(parts):
    """Search returns Zun's search view of matching Glance images."""
    glance, _, images = parts
    glance.add("44444444-4444-4444-4444-444444444444", "busybox-glance", archive(["b:1"]))
    assert [i.name for i in run(images.search("busy"))] == ["busybox-glance"]
    assert run(images.search("busy", exact=True)) == []
    view = run(images.search("busybox-glance", exact=True))[0].search_view()
    assert set(view) == {"id", "name", "tags", "status", "size", "metadata"}
