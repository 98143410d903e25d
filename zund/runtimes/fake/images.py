"""The fake engine's images: what a local image is, and how references are spelled.

The engine (``engine.py``) keeps the local image store and the "registry" (the
references tests made pullable); this module only defines the value and the
reference rules they share.
"""

from __future__ import annotations

import hashlib

import attrs

TEST_IMAGE = "zund-test/busybox:latest"


def normalize_image(image: str) -> str:
    """``busybox`` -> ``busybox:latest``; references with a tag or digest unchanged."""
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last:
        return image
    return image + ":latest"


def content_id(*parts: str) -> str:
    """A docker-looking 64-hex id derived from ``parts`` (deterministic)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@attrs.define
class FakeImage:
    name: str
    id: str
    cmd: list
    entrypoint: list | None
    env: dict
    fs: dict  # {path: FakeFile}, copied into each container made from it
