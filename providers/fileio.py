"""File I/O that behaves the same on Linux, macOS and Windows: positional reads and writes,
space reservation, directory fsync and rename, each with the fallback its platform needs.

- ``os.pwrite`` / ``os.pread`` / ``os.preadv`` (POSIX; not on Windows): where they are missing a
  positional access is a ``seek`` then ``write`` / ``readinto`` on a handle nobody else moves at
  the same time: a :class:`Positional` gives each worker thread its own handle on the file, and
  the single-worker helpers below use the caller's descriptor under a lock.
- ``os.posix_fallocate`` (Linux; not on macOS or Windows): space is reserved by extending the file
  with ``truncate`` instead, which sets the size but leaves the blocks to be allocated on write, so
  a full disk shows up on a later write rather than up front (still before the rename).
- ``os.fdatasync`` (not on macOS): ``os.fsync`` instead, which also flushes the metadata.
- Directory fsync needs ``os.O_DIRECTORY`` (not on Windows): where it is missing the rename is
  left to the file system's own ordering; NTFS journals its metadata, so a rename that returned
  survives a crash, though the last instant before a power cut may still be lost.
- ``os.O_DIRECT`` (Linux; not on macOS or Windows), and file systems that refuse it (tmpfs before
  Linux 6.6, some network and FUSE mounts): a :class:`DirectWriter` then writes through the page
  cache like everyone else (see its docstring for why it prefers not to).
- ``os.replace`` fails on Windows while any process (a virus scanner, an indexer) has the target
  open: :func:`replace` retries a sharing violation briefly before it gives up.

Every decision is made at call time, not at import, so a test can take an API away after this
module was imported and see the fallback run.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import threading
import time
from pathlib import Path
from typing import BinaryIO

# Anything memoryview accepts (collections.abc.Buffer from Python 3.12 on)
Buffer = bytes | bytearray | memoryview

# Windows opens descriptors in text mode unless told otherwise (newline translation would
# corrupt every checkpoint): every os.open of a data file ORs this in. 0 elsewhere.
BINARY = getattr(os, "O_BINARY", 0)

# How long a rename waits out another process's open handle on the target (Windows).
REPLACE_ATTEMPTS = 6
REPLACE_FIRST_WAIT = 0.05  # seconds, doubled per attempt: about 1.5 s in all

# The seek + write fallback moves the descriptor's one shared offset: one mover at a time.
_seek_lock = threading.Lock()


def has_positional_io() -> bool:
    """True where the OS writes and reads at an offset without moving a shared file position."""
    return hasattr(os, "pwrite") and hasattr(os, "pread")


def pwrite_all(fd: int, data: Buffer, offset: int) -> None:
    """Write all of ``data`` at ``offset`` of ``fd``; the file position is not relied on."""
    view = memoryview(data).cast("B")
    pwrite = getattr(os, "pwrite", None)
    if pwrite is not None:
        while view:
            n = pwrite(fd, view, offset)
            view, offset = view[n:], offset + n
        return
    with _seek_lock:
        os.lseek(fd, offset, os.SEEK_SET)
        while view:
            n = os.write(fd, view)
            view = view[n:]


def pread(fd: int, length: int, offset: int) -> bytes:
    """Up to ``length`` bytes at ``offset`` of ``fd`` (fewer only at the end of the file)."""
    buf = bytearray(length)
    n = preadinto(fd, buf, offset)
    return bytes(buf) if n == length else bytes(memoryview(buf)[:n])


def preadinto(fd: int, buf: bytearray | memoryview, offset: int) -> int:
    """Fill ``buf`` from ``offset`` of ``fd``; returns the bytes read (short only at the end)."""
    view = memoryview(buf).cast("B")
    total = 0
    preadv = getattr(os, "preadv", None)
    if preadv is not None:
        while total < len(view):
            n = preadv(fd, [view[total:]], offset + total)
            if not n:
                break
            total += n
        return total
    with _seek_lock:
        os.lseek(fd, offset, os.SEEK_SET)
        while total < len(view):
            n = _read_into(fd, view[total:])
            if not n:
                break
            total += n
    return total


def _read_into(fd: int, view: memoryview) -> int:
    data = os.read(fd, len(view))
    view[: len(data)] = data
    return len(data)


class Positional:
    """Positional writes into one file from several worker threads at once.

    With ``os.pwrite`` every worker writes through the caller's descriptor. Without it each
    worker thread opens its own handle on ``path`` on first use and seeks it (one handle per
    worker, so no worker waits on another's seek). :meth:`close` closes those handles; call it
    before the file is renamed (Windows refuses to rename a file that is open).
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = Path(path), fd
        self._local = threading.local()
        self._handles: list[BinaryIO] = []
        self._lock = threading.Lock()

    def write_all(self, data: Buffer, offset: int) -> None:
        if hasattr(os, "pwrite"):
            pwrite_all(self.fd, data, offset)
            return
        handle = self._handle()
        handle.seek(offset)
        view = memoryview(data).cast("B")
        while view:
            n = handle.write(view)
            view = view[n:]

    def _handle(self) -> BinaryIO:
        handle = getattr(self._local, "handle", None)
        if handle is None:
            handle = open(self.path, "r+b", buffering=0)  # noqa: SIM115 - closed by close()
            self._local.handle = handle
            with self._lock:
                self._handles.append(handle)
        return handle

    def close(self) -> None:
        with self._lock:
            handles, self._handles = self._handles, []
        for handle in handles:
            handle.close()

    def __enter__(self) -> Positional:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# O_DIRECT wants the buffer, the offset and the length aligned to the device's logical block
# size: 512 or 4096 bytes on every disk in use, so 4096 satisfies both.
DIRECT_ALIGN = 4096
# what a file system that opens with O_DIRECT but cannot write that way answers (EINVAL on most;
# some FUSE and network mounts say the operation is not supported)
_DIRECT_REFUSED = {errno.EINVAL, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


def aligned_buffer(size: int) -> mmap.mmap:
    """``size`` writable bytes at a page-aligned address (an anonymous mapping), so that any slice
    starting at a multiple of DIRECT_ALIGN can be written with O_DIRECT."""
    return mmap.mmap(-1, size)


class DirectWriter(Positional):
    """Positional writes that bypass the page cache (``O_DIRECT``) where the platform and the file
    system allow it, for a file that is written once, fsynced and renamed.

    Why: a buffered write copies every byte into a newly allocated page-cache page and leaves it
    for writeback, and on a small virtual machine that copy into fresh memory was most of a
    download's CPU (a 2 GB get: 3.6-4.5 s of system time, against 0.8-1.0 s with O_DIRECT, where
    the disk reads the caller's buffer by DMA). The fsync before the rename had to wait for those
    bytes to reach the disk anyway. The cost: the file is not in the page cache afterwards.

    A write goes direct only when its buffer (from :func:`aligned_buffer`), offset and length are
    multiples of DIRECT_ALIGN; any other (the file's last bytes) goes through the buffered
    descriptor ``fd``, which the kernel keeps coherent with the direct writes as long as no two
    writes to one page run at the same time (a download writes each byte once). Where O_DIRECT is
    missing, the file system refuses it at open, or a direct write fails with EINVAL, every write
    is buffered (:class:`Positional`).
    """

    def __init__(self, path: Path, fd: int) -> None:
        super().__init__(path, fd)
        self.direct_fd = -1
        flag = getattr(os, "O_DIRECT", None)
        if flag is not None and hasattr(os, "pwrite"):
            with contextlib.suppress(OSError):
                self.direct_fd = os.open(path, os.O_WRONLY | flag | BINARY)
        self.direct = self.direct_fd >= 0  # False for good after a refused write

    def write_all(self, data: Buffer, offset: int) -> None:
        view = memoryview(data).cast("B")
        if self.direct and not (offset | len(view)) % DIRECT_ALIGN:
            try:
                pwrite_all(self.direct_fd, view, offset)
                return
            except OSError as exc:
                if exc.errno not in _DIRECT_REFUSED:
                    raise
                self.direct = False  # a file system that takes O_DIRECT at open, not at write
        super().write_all(view, offset)

    def close(self) -> None:
        if self.direct_fd >= 0:
            os.close(self.direct_fd)
            self.direct_fd, self.direct = -1, False
        super().close()


def reserve(fd: int, size: int) -> None:
    """Reserve ``size`` bytes for the file behind ``fd`` so a full disk fails early where the OS
    can say so up front (posix_fallocate); elsewhere the file is extended to ``size`` with
    truncate. Raises ENOSPC; other refusals (a file system that does not support it) pass."""
    if not size:
        return
    fallocate = getattr(os, "posix_fallocate", None)
    try:
        if fallocate is not None:
            fallocate(fd, 0, size)
        else:
            os.ftruncate(fd, size)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise


def datasync(fd: int) -> None:
    """Flush a file's data to disk: ``fdatasync`` where there is one (not on macOS), else
    ``fsync``, which also writes the metadata."""
    getattr(os, "fdatasync", os.fsync)(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable where the platform can fsync a directory (POSIX,
    ``os.O_DIRECTORY``); skipped where it cannot (Windows: see the module docstring)."""
    flag = getattr(os, "O_DIRECTORY", None)
    if flag is None:
        return
    fd = os.open(directory, os.O_RDONLY | flag)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(src: Path | str, dest: Path | str) -> None:
    """``os.replace`` that waits out a short-lived open handle on ``dest`` (Windows: a virus
    scanner or indexer reading a file just written makes a rename over it fail with a sharing
    violation, PermissionError). A refusal that outlasts the retries is raised as it is."""
    wait = REPLACE_FIRST_WAIT
    for attempt in range(REPLACE_ATTEMPTS):
        try:
            os.replace(src, dest)
            return
        except PermissionError:
            if attempt == REPLACE_ATTEMPTS - 1:
                raise
            time.sleep(wait)
            wait *= 2


def unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        Path(path).unlink()
