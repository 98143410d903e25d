"""The fake engine's filesystem: a flat ``{absolute path: FakeFile}`` tree.

A tree is a plain dict so an image's tree can be copied into a container (and
a container's back into an image by ``commit``) with one comprehension. The
functions here are the only code that knows how paths nest: listing,
``mkdir -p``, writing, following symlinks, and the tar archives docker's
``get_archive``/``put_archive`` exchange (with docker's archive ``stat``).

Paths given to these functions are absolute and normalised; callers resolve a
container's working directory first (``FakeContainer.abspath``).
"""

from __future__ import annotations

import datetime
import io
import posixpath
import tarfile

import attrs

from zund.common import errors

#: Go's os.ModeDir and os.ModeSymlink, as docker reports them in archive stats.
DIR_MODE_BIT = 1 << 31
SYMLINK_MODE_BIT = 1 << 27
#: Directories every image starts with.
BASE_DIRS = ("/", "/bin", "/sbin", "/usr", "/usr/bin", "/usr/sbin", "/etc", "/root", "/proc",
             "/sys", "/dev")
#: How many symlinks ``resolve`` follows before giving up (a loop).
MAX_SYMLINKS = 8


@attrs.frozen  # shared between an image's tree and its containers' (copy_tree)
class FakeFile:
    kind: str  # "file" | "dir" | "link"
    data: bytes = b""
    mode: int = 0o644
    mtime: float = 0.0
    link_target: str = ""


def base_tree(now: float, applets: tuple) -> dict[str, FakeFile]:
    """A busybox-like root: the usual directories, ``/etc/passwd`` and ``/etc/group``,
    ``/bin/busybox`` and one ``/bin/<applet>`` symlink to it per applet."""
    fs = {p: FakeFile("dir", mode=0o755, mtime=now) for p in BASE_DIRS}
    fs["/tmp"] = FakeFile("dir", mode=0o1777, mtime=now)
    fs["/etc/passwd"] = FakeFile(
        "file", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644, now)
    fs["/etc/group"] = FakeFile("file", b"root:x:0:\nnogroup:x:65534:\n", 0o644, now)
    fs["/bin/busybox"] = FakeFile("file", b"\x7fELF", 0o755, now)
    for applet in applets:
        fs["/bin/" + applet] = FakeFile("link", mode=0o777, mtime=now, link_target="busybox")
    return fs


def copy_tree(fs: dict) -> dict:
    """A container's own tree: a new dict sharing the (frozen) entries; writes replace
    entries, so the image's tree is never changed (1,000 containers: -2.8 MB)."""
    return dict(fs)


def resolve(fs: dict, path: str) -> FakeFile | None:
    """The entry at ``path``, following symlinks (at most MAX_SYMLINKS)."""
    f = fs.get(path)
    seen = 0
    while f is not None and f.kind == "link" and seen < MAX_SYMLINKS:
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), f.link_target))
        f = fs.get(path)
        seen += 1
    return f


def children(fs: dict, path: str) -> list:
    """Absolute paths of the direct children of directory ``path``, sorted."""
    prefix = path.rstrip("/") + "/"
    return sorted(p for p in fs
                  if p.startswith(prefix) and "/" not in p[len(prefix):] and p != path)


def listdir(fs: dict, path: str) -> list | None:
    """Names in directory ``path`` (``[name]`` for a file); None if it does not exist."""
    f = fs.get(path)
    if f is None:
        return None
    if f.kind != "dir":
        return [posixpath.basename(path)]
    prefix = path.rstrip("/") + "/"
    return [p[len(prefix):] for p in children(fs, path)]


def mkdir(fs: dict, path: str, parents: bool, now: float) -> bool:
    """``mkdir [-p] path``; False where the shell's mkdir would fail."""
    parent = posixpath.dirname(path)
    if parent not in fs:
        if not parents or not mkdir(fs, parent, True, now):
            return False
    existing = fs.get(path)
    if existing is not None:
        return existing.kind == "dir" and parents
    fs[path] = FakeFile("dir", mode=0o755, mtime=now)
    return True


def write_file(fs: dict, path: str, data: bytes, append: bool, now: float) -> None:
    old = fs.get(path)
    if append and old is not None and old.kind == "file":
        data = old.data + data
    fs[path] = FakeFile("file", data, old.mode if old else 0o644, now)


# -- archives --------------------------------------------------------------------

def _utc_text(ts: float) -> str:
    dt = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def archive(fs: dict, path: str) -> tuple[bytes, dict]:
    """``(tar bytes, docker's archive stat)`` of the entry at ``path`` (which exists)."""
    f = fs[path]
    name = posixpath.basename(path) or "/"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_to_tar(tar, fs, path, name)
    mode = (f.mode | DIR_MODE_BIT) if f.kind == "dir" else f.mode
    if f.kind == "link":
        mode |= SYMLINK_MODE_BIT
    size = {"file": len(f.data), "dir": 4096}.get(f.kind, len(f.link_target))
    stat = {"name": name, "size": size, "mode": mode, "mtime": _utc_text(f.mtime),
            "linkTarget": f.link_target}
    return buf.getvalue(), stat


def _add_to_tar(tar: tarfile.TarFile, fs: dict, path: str, arcname: str) -> None:
    f = fs[path]
    info = tarfile.TarInfo(arcname)
    info.mode = f.mode & 0o7777
    info.mtime = int(f.mtime)
    if f.kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        prefix = path.rstrip("/") + "/"
        for child in children(fs, path):
            _add_to_tar(tar, fs, child, arcname.rstrip("/") + "/" + child[len(prefix):])
    elif f.kind == "link":
        info.type = tarfile.SYMTYPE
        info.linkname = f.link_target
        tar.addfile(info)
    else:
        info.size = len(f.data)
        tar.addfile(info, io.BytesIO(f.data))


def extract(fs: dict, dest: str, data: bytes, now: float) -> None:
    """Unpack tar ``data`` under directory ``dest`` (which exists); entries that
    would escape ``dest`` are skipped. A bad archive is a RuntimeFailure."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar.getmembers():
                rel = posixpath.normpath(member.name.lstrip("/"))
                if rel in (".", "") or rel.startswith(".."):
                    continue
                full = posixpath.join(dest, rel)
                mkdir(fs, posixpath.dirname(full), True, now)
                if member.isdir():
                    fs[full] = FakeFile("dir", mode=member.mode or 0o755, mtime=member.mtime)
                elif member.issym():
                    fs[full] = FakeFile("link", mode=0o777, mtime=member.mtime,
                                        link_target=member.linkname)
                elif member.isfile():
                    content = tar.extractfile(member).read()
                    fs[full] = FakeFile("file", content, member.mode, member.mtime)
    except tarfile.TarError as e:
        raise errors.RuntimeFailure(reason=f"invalid tar archive: {e}") from e
