"""Hash while reading; copy while hashing; a hash cache so unchanged files are never read again.

- ``hash_file`` streams a file through sha256 (and md5 on request) in one pass.
- ``HashCache`` remembers the sha256 of a file keyed by (size, mtime_ns, inode) in
  ``<models_dir>/.model-safety/hashes.json``; a file whose stat is unchanged is not re-read.
- ``atomic_copy`` copies into a unique temp file in the destination directory, hashing the bytes
  as they pass, fsyncs, checks the hash against the expected one, renames into place and fsyncs
  the directory. Reading, hashing and writing run in three threads (hashlib and file I/O release
  the GIL), so a copy of a new file costs about one sha256 pass instead of a hash plus a copy.
- ``BYTES_READ`` counts every byte this module reads from files, so a benchmark or a test can
  show that a second run over unchanged files reads none.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

ProgressFn = Callable[[int], None]

CHUNK = 8 * 1024 * 1024
BUFFERS = 4
# Flush written data to disk every this many bytes, in the writer thread, so that the final fsync
# has little left to do and disk writeback overlaps with hashing instead of following it.
FLUSH_EVERY = 64 * 1024 * 1024
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
    return {name: hashlib.new(name) for name in algos}


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


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(dest: Path, data: bytes) -> None:
    tmp = temp_path(dest)
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    finally:
        with suppress(FileNotFoundError):
            tmp.unlink()


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
    try:
        digests = _pipelined_copy(src, tmp, _new_hashers(algos), progress)
        if expected_sha256 is not None and digests.get("sha256") != expected_sha256:
            raise HashMismatch(
                f"{src}: content hashes to {digests.get('sha256', '?')[:12]}, expected "
                f"{expected_sha256[:12]}; the source changed or is damaged"
            )
        return tmp, digests
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise


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
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    finally:
        with suppress(FileNotFoundError):
            tmp.unlink()
    return digests


def _pipelined_copy(
    src: Path, tmp: Path, hashers: dict[str, Any], progress: ProgressFn | None
) -> dict[str, str]:
    """reader thread -> hashing (this thread) -> writer thread, over a small pool of buffers."""
    free: queue.Queue[bytearray] = queue.Queue()
    to_hash: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
    to_write: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
    for _ in range(BUFFERS):
        free.put(bytearray(CHUNK))
    stop = threading.Event()
    errors: list[BaseException] = []

    def get(q: queue.Queue[Any]) -> Any:
        # Bounded waits so that a stopped pipeline never leaves a thread blocked forever.
        while not stop.is_set():
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                continue
        return None

    def reader(fh: Any) -> None:
        try:
            while not stop.is_set():
                buf = get(free)
                if buf is None:
                    return
                n = fh.readinto(buf)
                if not n:
                    to_hash.put(None)
                    return
                BYTES_READ.add(n)
                to_hash.put((buf, n))
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    def writer(fd: int) -> None:
        try:
            pending = 0
            while True:
                item = get(to_write)
                if item is None:
                    return
                buf, n = item
                view = memoryview(buf)[:n]
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                pending += n
                if pending >= FLUSH_EVERY:
                    os.fdatasync(fd)
                    pending = 0
                free.put(buf)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    with open(src, "rb") as fh:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        started: list[threading.Thread] = []  # only these can be joined, even after Ctrl-C
        try:
            for target, arg in ((reader, fh), (writer, fd)):
                thread = threading.Thread(target=target, args=(arg,), daemon=True)
                thread.start()
                started.append(thread)
            while True:
                item = get(to_hash)
                if item is None:
                    break
                buf, n = item
                view = memoryview(buf)[:n]
                for h in hashers.values():
                    h.update(view)
                to_write.put((buf, n))
                if progress:
                    progress(n)
            if not stop.is_set():
                to_write.put(None)
                started[1].join()
            if errors:
                raise errors[0]
            os.fsync(fd)
        finally:
            stop.set()
            for thread in started:
                thread.join()
            os.close(fd)
    return {name: h.hexdigest() for name, h in hashers.items()}


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
        self._entries: dict[str, dict[str, Any]] = {}
        self._dirty = False
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("files"), dict):
                self._entries = data["files"]
        except (OSError, ValueError):
            pass  # a missing or damaged cache only costs re-reading files

    def lookup(self, path: Path, st: os.stat_result | None = None) -> str | None:
        entry = self._entries.get(path.name)
        if entry is None:
            return None
        st = st or path.stat()
        return entry.get("sha256") if entry.get("stat") == _stat_key(st) else None

    def remember(self, path: Path, sha256: str, st: os.stat_result | None = None) -> None:
        st = st or path.stat()
        self._entries[path.name] = {"stat": _stat_key(st), "sha256": sha256}
        self._dirty = True

    def forget(self, name: str) -> None:
        if self._entries.pop(name, None) is not None:
            self._dirty = True

    def sha256(self, path: Path, progress: ProgressFn | None = None, *, fresh: bool = False) -> str:
        """The sha256 of ``path``, from the cache when its stat is unchanged (unless ``fresh``)."""
        st = path.stat()
        if not fresh:
            cached = self.lookup(path, st)
            if cached:
                return cached
        digest = hash_file(path, progress=progress)["sha256"]
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
