"""Micro-VM volumes: one raw ext4 disk image per volume under ``volumes_path``.

``<name>.img`` is a sparse file of exactly the volume's size (the size is
enforced by construction: the guest sees a disk of that many bytes), formatted
once with ``mkfs.ext4 -F`` (a file, no loop device). Its inode tables are left
lazily initialised: a fresh sparse file reads as zeros, which is what the kernel
would write there. ``<name>.json`` holds the labels; a volume exists when both
files do (the image is renamed into place only after mkfs succeeded, the labels
are written after it).

QEMU takes a write lock on an image it has open, so two running guests can never
mount one volume at once (the second start fails with QEMU's lock error) --
ext4 is not a cluster filesystem.

Every function here is blocking; callers run them through ``run_blocking``.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess

#: zund's label holding the requested size in GiB (zund.runtimes.base.LABEL_VOLUME_SIZE)
SIZE_LABEL = "zund.volume.size_gb"
MIN_SIZE_BYTES = 16 << 20
MAX_NAME = 200
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MKFS_TIMEOUT_S = 120.0


class DiskError(Exception):
    """A volume image could not be made (reason in the message)."""


def size_bytes(labels: dict, default_gb: int) -> int:
    """The image size from the size label (GiB, may be fractional), in whole MiB."""
    raw = (labels or {}).get(SIZE_LABEL)
    try:
        gb = float(raw) if raw not in (None, "") else float(default_gb)
    except ValueError as e:
        raise DiskError(f"volume size {raw!r} is not a number of GiB") from e
    if not math.isfinite(gb) or gb <= 0:
        raise DiskError(f"volume size {raw!r} must be a positive number of GiB")
    mib = int(math.ceil(gb * 1024))
    return max(mib << 20, MIN_SIZE_BYTES)


def check_name(name: str) -> None:
    if len(name) > MAX_NAME or not _NAME_RE.match(name):
        raise DiskError(f"invalid volume name {name!r}")


def image_path(volumes_path: str, name: str) -> str:
    check_name(name)
    return os.path.join(volumes_path, name + ".img")


def _labels_path(volumes_path: str, name: str) -> str:
    return os.path.join(volumes_path, name + ".json")


def read_labels(volumes_path: str, name: str) -> dict | None:
    """The volume's labels, or None when the volume does not exist."""
    img = image_path(volumes_path, name)
    try:
        with open(_labels_path(volumes_path, name)) as f:
            labels = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    if not os.path.exists(img):
        return None
    return dict(labels.get("labels") or {})


def create(volumes_path: str, name: str, labels: dict, default_gb: int,
           mkfs: str = "mkfs.ext4") -> dict:
    """Make the volume unless it exists; answer its labels (the existing ones if so)."""
    found = read_labels(volumes_path, name)
    if found is not None:
        return found
    img = image_path(volumes_path, name)
    size = size_bytes(labels, default_gb)
    os.makedirs(volumes_path, exist_ok=True)
    tmp = img + f".tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.truncate(size)
        proc = subprocess.run(
            [mkfs, "-F", "-q", "-m", "0", "-L", name[-16:],
             "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", tmp],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=MKFS_TIMEOUT_S)
        if proc.returncode != 0:
            raise DiskError(f"{mkfs} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, img)
    except FileNotFoundError as e:
        raise DiskError(f"{mkfs} not found (apt-get install e2fsprogs)") from e
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    record = {"labels": dict(labels or {}), "size_bytes": size}
    ltmp = _labels_path(volumes_path, name) + ".tmp"
    with open(ltmp, "w") as f:
        json.dump(record, f)
    os.replace(ltmp, _labels_path(volumes_path, name))
    return dict(labels or {})


def remove(volumes_path: str, name: str) -> None:
    """Delete the labels first (the volume stops existing), then the image."""
    for path in (_labels_path(volumes_path, name), image_path(volumes_path, name)):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
