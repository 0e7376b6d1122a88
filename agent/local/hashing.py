"""Hash while reading; copy while hashing; a hash cache so unchanged files are never read again.

- ``hash_file`` streams a file through sha256 (and md5 on request) in one pass.
- ``HashCache`` remembers the sha256 of a file keyed by (size, mtime_ns, inode) in
  ``<models_dir>/.model-safety/hashes.json``; a file whose stat is unchanged is not re-read.
- ``atomic_copy`` copies into a unique temp file in the destination directory, hashing the bytes
  as they pass, fsyncs, checks the hash, renames into place and fsyncs the directory. Reading,
  hashing and writing run in three threads (hashlib and file I/O release the GIL): a copy of a
  new file costs about one sha256 pass instead of a hash plus a copy.
- ``BYTES_READ`` counts the bytes this module reads: a second run over unchanged files reads none.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.faultpoints import crash_point
from providers import fileio
from providers.fileio import fsync_dir

ProgressFn = Callable[[int], None]

CHUNK = 8 * 1024 * 1024
# Copies move 1 MiB at a time: the chunk just hashed is still in the CPU cache when the writer
# copies it into the page cache (measured here: 8 MiB writes ran at half the speed).
COPY_CHUNK = 1024 * 1024
QUEUE_DEPTH = 8  # chunks the writer may lag behind the hasher (the buffer pool bounds it)
# Flush written data to disk every this many bytes, in the writer thread, so that the final fsync
# has little left to do and disk writeback overlaps with hashing instead of following it.
FLUSH_EVERY = 16 * 1024 * 1024  # measured here: 16 MiB beat 8, 32 and 64
TEMP_SUFFIX = ".incomplete"


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n


BYTES_READ = _Counter()


def bytes_read() -> int:
    """Bytes read from files by this module since the process started."""
    return BYTES_READ.value


class HashMismatch(OSError):
    """The bytes copied do not hash to what the source's catalog entry or cache says."""


def _new_hashers(algos: Iterable[str]) -> dict[str, Any]:
    """hashlib objects by name; "ranges" is the range-hash list (providers.ranges), whose
    hexdigest is its serialised form."""
    from providers.ranges import RangeHasher

    return {name: RangeHasher() if name == "ranges" else hashlib.new(name) for name in algos}


def hash_file(
    path: Path, algos: Iterable[str] = ("sha256",), progress: ProgressFn | None = None
) -> dict[str, str]:
    """Hex digests of ``path`` for each algorithm, in one streaming pass."""
    hashers = _new_hashers(algos)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb") as fh:
        while n := fh.readinto(buf):
            BYTES_READ.add(n)
            for h in hashers.values():
                h.update(view[:n])
            if progress:
                progress(n)
    return {name: h.hexdigest() for name, h in hashers.items()}


def temp_path(dest: Path) -> Path:
    """A unique temp name beside ``dest``; hidden, so nothing mistakes it for a real file."""
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")


# Our temp names: 12 hex digits (providers' partial downloads, longer tags, resume: not ours).
OUR_TEMP_RE = re.compile(r"\..+\.[0-9a-f]{12}" + re.escape(TEMP_SUFFIX))


def atomic_write_bytes(dest: Path, data: bytes, point: str = "state-write") -> None:
    tmp = temp_path(dest)
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        crash_point(point)  # test-only: a state file's temp written, not renamed
        fileio.replace(tmp, dest)
        fsync_dir(dest.parent)
    finally:
        with suppress(FileNotFoundError):
            tmp.unlink()


@contextmanager
def removed_on_error(tmp: Path, dest: Path) -> Iterator[None]:
    """For the block that fills temp file ``tmp`` for ``dest``: on any error (Ctrl-C included)
    the temp is removed, and a full disk is reported with ``dest``'s directory (the CLI prints
    the file name an OSError carries)."""
    try:
        yield
    except OSError as exc:
        with suppress(FileNotFoundError):
            tmp.unlink()
        if exc.errno == errno.ENOSPC and not exc.filename:
            raise OSError(exc.errno, exc.strerror, str(dest.parent)) from exc
        raise
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise


def copy_to_temp(
    src: Path,
    dest: Path,
    *,
    algos: Iterable[str] = ("sha256",),
    expected_sha256: str | None = None,
    progress: ProgressFn | None = None,
) -> tuple[Path, dict[str, str]]:
    """Copy ``src`` into a durable temp file beside ``dest`` and return (temp, digests).

    The caller renames the temp into place (several files can then be switched together) and
    must unlink it if it does not. On any error, the temp file is removed here.
    """
    tmp = temp_path(dest)
    with removed_on_error(tmp, dest):
        digests = _pipelined_copy(src, tmp, _new_hashers(algos), progress)
        if expected_sha256 is not None and digests.get("sha256") != expected_sha256:
            raise HashMismatch(
                f"{src}: content hashes to {digests.get('sha256', '?')[:12]}, expected "
                f"{expected_sha256[:12]}; the source changed or is damaged"
            )
        return tmp, digests


def atomic_copy(
    src: Path,
    dest: Path,
    *,
    algos: Iterable[str] = ("sha256",),
    expected_sha256: str | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, str]:
    """Copy ``src`` to ``dest`` atomically; returns the digests of the bytes written."""
    tmp, digests = copy_to_temp(
        src, dest, algos=algos, expected_sha256=expected_sha256, progress=progress
    )
    try:
        fileio.replace(tmp, dest)
        fsync_dir(dest.parent)
    finally:
        with suppress(FileNotFoundError):
            tmp.unlink()
    return digests


def _pipelined_copy(
    src: Path, tmp: Path, hashers: dict[str, Any], progress: ProgressFn | None
) -> dict[str, str]:
    """Read and hash each chunk in this thread while a writer thread copies the chunks already
    hashed into the temp file with copy_file_range (in the kernel, page cache to page cache, no
    second user-space copy), falling back to write() from the same buffer where the kernel
    cannot. The caller checks that the source's stat did not change during the copy, so the
    bytes written are the bytes hashed. Measured alternatives: read+write of the hashed buffer
    costs a second memory copy (1.5x one sha256 pass here); a read-only mmap is as fast but a
    source truncated during the copy (torch.save rewrites in place) kills the process (SIGBUS);
    a third thread for reading was no faster on two cores.
    """
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | fileio.BINARY, 0o644)
    try:
        with open(src, "rb", buffering=0) as fh:
            size = os.fstat(fh.fileno()).st_size
            # Reserve the space up front: a full disk fails before any data is written, and the
            # file system can allocate one extent instead of many.
            fileio.reserve(fd, size)
            copied = _hash_and_write(fh, fd, hashers, progress)
            if copied != size:
                os.ftruncate(fd, copied)  # the source shrank; the hash check will say so
        os.fsync(fd)
    finally:
        os.close(fd)
    return {name: h.hexdigest() for name, h in hashers.items()}


def take(q: queue.Queue[Any], stop: threading.Event) -> Any:
    """The next item of a pipeline's queue, or None once ``stop`` is set: waits are bounded, so
    a stopped pipeline never leaves a thread blocked for ever."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.05)
        except queue.Empty:
            continue
    return None


def _hash_and_write(fh: Any, fd: int, hashers: dict[str, Any], progress: ProgressFn | None) -> int:
    free: queue.Queue[bytearray] = queue.Queue()
    for _ in range(QUEUE_DEPTH + 2):
        free.put(bytearray(COPY_CHUNK))
    to_write: queue.Queue[tuple[bytearray, int, int] | None] = queue.Queue()
    src_fd = fh.fileno()
    kernel_copy = [hasattr(os, "copy_file_range")]
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            pending = 0
            while (item := take(to_write, stop)) is not None:
                buf, n, offset = item
                done = 0
                if kernel_copy[0]:
                    try:
                        while done < n:
                            copied_now = os.copy_file_range(
                                src_fd, fd, n - done, offset + done, offset + done
                            )
                            if copied_now == 0:
                                break  # source shrank; the stat check reports it
                            done += copied_now
                    except OSError as exc:
                        if exc.errno not in (
                            errno.EXDEV,
                            errno.ENOSYS,
                            errno.EINVAL,
                            errno.EOPNOTSUPP,
                            errno.EBADF,
                        ):
                            raise
                        kernel_copy[0] = False
                if done < n:
                    with memoryview(buf)[done:n] as data:
                        fileio.pwrite_all(fd, data, offset + done)
                pending += n
                if pending >= FLUSH_EVERY:
                    fileio.datasync(fd)
                    pending = 0
                free.put(buf)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    copied = 0
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        while (buf := take(free, stop)) is not None:
            n = fh.readinto(buf)
            if not n:
                break
            with memoryview(buf)[:n] as data:
                for h in hashers.values():
                    h.update(data)
            BYTES_READ.add(n)
            to_write.put((buf, n, copied))
            copied += n
            if progress:
                progress(n)
        to_write.put(None)
        while thread.is_alive() and not stop.is_set():
            thread.join(timeout=0.05)
        if errors:
            raise errors[0]
    finally:
        stop.set()
        thread.join()
    return copied


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


class HashCache:
    """sha256 per file name, valid while (size, mtime_ns, inode) is unchanged.

    A bit flip written through the file system changes mtime and is caught; silent rot on the
    medium is not, which is what ``verify`` (always a full re-read) is for.
    """

    FILE = "hashes.json"

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / self.FILE
        # told (sha256, serialised range hashes) when a first hash of a content computed them
        self.keep_ranges: Callable[[str, str], None] | None = None
        self._entries: dict[str, dict[str, Any]] = {}
        self._dirty = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("files"), dict):
                self._entries = data["files"]
        except (OSError, ValueError):
            pass  # a missing or damaged cache only costs re-reading files

    def _key(self, path: Path) -> str:
        """A file in models_dir is known by its name, one inside a directory copy by its path
        from models_dir (``llama-ft_v2026-11-30/config.json``)."""
        root = self.path.parent.parent
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name

    def lookup(self, path: Path, st: os.stat_result | None = None) -> str | None:
        entry = self._entries.get(self._key(path))
        if entry is None:
            return None
        st = st or path.stat()
        return entry.get("sha256") if entry.get("stat") == _stat_key(st) else None

    def remember(self, path: Path, sha256: str, st: os.stat_result | None = None) -> None:
        st = st or path.stat()
        self._entries[self._key(path)] = {"stat": _stat_key(st), "sha256": sha256}
        self._dirty = True

    def forget(self, name: str) -> None:
        """Forget a file's hash, and for a directory copy the hashes of every file in it."""
        for key in [k for k in self._entries if k == name or k.startswith(name + "/")]:
            del self._entries[key]
            self._dirty = True

    def shas(self) -> set[str]:
        return {e["sha256"] for e in self._entries.values() if isinstance(e.get("sha256"), str)}

    def sha256(self, path: Path, progress: ProgressFn | None = None, *, fresh: bool = False) -> str:
        """The sha256 of ``path``, from the cache when its stat is unchanged (unless ``fresh``)."""
        st = path.stat()
        if not fresh:
            cached = self.lookup(path, st)
            if cached:
                return cached
        # a content seen for the first time gets its range hashes in the same read; a fresh
        # re-hash (verify) only checks what is known
        ranges = self.keep_ranges is not None and not fresh
        digests = hash_file(path, ("sha256", "ranges") if ranges else ("sha256",), progress)
        digest = digests["sha256"]
        if ranges and self.keep_ranges is not None:
            self.keep_ranges(digest, digests["ranges"])
        # Only cache if the file did not change while it was being read.
        if _stat_key(path.stat()) == _stat_key(st):
            self.remember(path, digest, st)
        return digest

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"version": 1, "files": self._entries}, indent=0, sort_keys=True)
        try:
            atomic_write_bytes(self.path, payload.encode("utf-8"))
            self._dirty = False
        except OSError:
            pass  # a cache that cannot be saved (read-only dir) costs time, never correctness


@dataclass
class Staged:
    """A file being copied: temp written and verified, waiting to be renamed into place (by a
    backup or a restore)."""

    source: Path
    dest: Path
    temp: Path
    sha256: str
    companion: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
