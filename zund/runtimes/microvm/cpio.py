"""A writer for the "newc" cpio format, the one the Linux initramfs unpacker reads.

Format (``man 5 cpio``, kernel ``Documentation/driver-api/early-userspace/buffer-format.rst``):
each entry is a 110-byte ASCII header (magic ``070701`` and thirteen 8-digit hex
fields), the NUL-terminated name padded to a multiple of 4 bytes, then the data
padded to a multiple of 4. The archive ends with an entry named ``TRAILER!!!``.

Hard links: the kernel links an entry to an earlier one with the same
(dev, ino) when ``nlink >= 2`` (``init/initramfs.c: maybe_link``); the first
entry carries the data, later ones have size 0. :meth:`CpioWriter.add_hardlink`
does that; the caller must have written the target with ``nlink=2``.

Concatenated archives (each with its own trailer, each optionally compressed)
form a valid initramfs; a later entry replaces an earlier one with the same path.
Pure: it only writes to the file object it is given.
"""

from __future__ import annotations

import stat
from typing import BinaryIO

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


def _pad4(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


class CpioWriter:
    """Append newc entries to ``fileobj``. Call :meth:`close` to write the trailer."""

    def __init__(self, fileobj: BinaryIO, mtime: int = 0):
        self._f = fileobj
        self._mtime = int(mtime)
        self._next_ino = 1  # 0 is never used: the kernel treats it like any other, but tools don't
        self._closed = False

    def _header(self, name: str, mode: int, size: int, *, ino: int | None = None,
                nlink: int = 1, uid: int = 0, gid: int = 0, mtime: int | None = None,
                rdevmajor: int = 0, rdevminor: int = 0) -> int:
        if self._closed:
            raise ValueError("archive is closed")
        if ino is None:
            ino = self._next_ino
            self._next_ino += 1
        raw = name.encode("utf-8", "surrogateescape") + b"\0"
        fields = (ino, mode, uid, gid, nlink, self._mtime if mtime is None else mtime,
                  size, 0, 0, rdevmajor, rdevminor, len(raw), 0)
        for value in fields:
            if not 0 <= value <= 0xFFFFFFFF:
                raise ValueError(f"cpio field out of range for {name!r}: {value}")
        header = MAGIC + b"".join(b"%08X" % v for v in fields)
        self._f.write(header)
        self._f.write(raw)
        self._f.write(_pad4(len(header) + len(raw)))
        return ino

    def add_dir(self, name: str, perm: int = 0o755, **kw) -> int:
        return self._header(name, stat.S_IFDIR | (perm & 0o7777), 0, nlink=2, **kw)

    def add_file(self, name: str, data: bytes, perm: int = 0o644, **kw) -> int:
        ino = self._header(name, stat.S_IFREG | (perm & 0o7777), len(data), **kw)
        self._f.write(data)
        self._f.write(_pad4(len(data)))
        return ino

    def add_file_stream(self, name: str, src: BinaryIO, size: int, perm: int = 0o644,
                        chunk: int = 1 << 20, **kw) -> int:
        """Like add_file, copying exactly ``size`` bytes from ``src``."""
        ino = self._header(name, stat.S_IFREG | (perm & 0o7777), size, **kw)
        left = size
        while left:
            buf = src.read(min(chunk, left))
            if not buf:
                raise ValueError(f"short read for {name!r}: {left} bytes missing")
            self._f.write(buf)
            left -= len(buf)
        self._f.write(_pad4(size))
        return ino

    def add_symlink(self, name: str, target: str, **kw) -> int:
        data = target.encode("utf-8", "surrogateescape")
        ino = self._header(name, stat.S_IFLNK | 0o777, len(data), **kw)
        self._f.write(data)
        self._f.write(_pad4(len(data)))
        return ino

    def add_hardlink(self, name: str, target_ino: int, perm: int = 0o644, **kw) -> int:
        """A second name for the regular file written earlier as ``target_ino``
        (which must have been written with ``nlink=2``)."""
        return self._header(name, stat.S_IFREG | (perm & 0o7777), 0, ino=target_ino,
                            nlink=2, **kw)

    def add_device(self, name: str, kind: int, major: int, minor: int,
                   perm: int = 0o600, **kw) -> int:
        """``kind`` is ``stat.S_IFCHR``, ``stat.S_IFBLK`` or ``stat.S_IFIFO``."""
        if kind not in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            raise ValueError("kind must be S_IFCHR, S_IFBLK or S_IFIFO")
        return self._header(name, kind | (perm & 0o7777), 0, rdevmajor=major,
                            rdevminor=minor, **kw)

    def close(self) -> None:
        if not self._closed:
            self._header(TRAILER, 0, 0, ino=0, nlink=1, mtime=0)
            self._closed = True


def read_entries(data: bytes) -> list:
    """Parse a (possibly concatenated, uncompressed) newc archive into
    ``[(name, mode, ino, nlink, data, (rdevmajor, rdevminor))]``; trailers omitted.
    For tests and debugging; the kernel is the real reader."""
    out = []
    pos = 0
    while pos < len(data):
        if data[pos:pos + 4] == b"\0\0\0\0":  # padding between concatenated archives
            pos += 4
            continue
        if data[pos:pos + 6] != MAGIC:
            raise ValueError(f"bad cpio magic at offset {pos}")
        f = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        ino, mode, nlink, size, rmaj, rmin, namesize = f[0], f[1], f[4], f[6], f[9], f[10], f[11]
        name_start = pos + 110
        name = data[name_start:name_start + namesize - 1].decode("utf-8", "surrogateescape")
        pos = name_start + namesize
        pos += (4 - pos % 4) % 4
        body = data[pos:pos + size]
        pos += size
        pos += (4 - pos % 4) % 4
        if name != TRAILER:
            out.append((name, mode, ino, nlink, body, (rmaj, rmin)))
    return out
