"""Streaming zstd: compress a file into a verified temp, decompress one back, check one.

Everything streams in chunks of a few MiB, so a 50 GB checkpoint never sits in memory.
Compression uses zstd's own worker threads (one per core) while this thread reads and hashes;
the output is one standard zstd frame with the content size and checksum in it, so the stock
``zstd -d`` restores it. Every function hashes the model bytes (the sha256 that identifies the
copy) and the stored bytes (the ``.zst`` file's own sha256) in the same pass.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.faultpoints import crash_point
from agent.local.hashing import FLUSH_EVERY, HashMismatch, removed_on_error, take, temp_path
from agent.rules.codec import ZSTD_LEVEL
from providers import fileio

CHUNK = 4 << 20
SLOTS = 4  # buffers in flight in a decompressing pipeline
ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class Digests:
    """The model bytes' identity and the stored file's own."""

    sha256: str
    size: int
    stored_sha256: str
    stored_size: int


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError as exc:  # pragma: no cover - a dependency; says what to install
        raise OSError(
            "compression: zstd needs the zstandard package (pip install zstandard)"
        ) from exc
    return zstandard


def threads() -> int:
    return max(1, os.cpu_count() or 1)


class _Sink:
    """A file-like sink for zstandard's stream writer. The stored bytes are hashed by the
    read-back that verifies them, not here: one sha256 pass fewer on the compressing side."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0
        self.pending = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.size += len(data)
        self.pending += len(data)
        if self.pending >= FLUSH_EVERY:
            fileio.datasync(self.fd)
            self.pending = 0
        return len(data)

    def flush(self) -> None:
        pass


def compress_to_temp(
    src: Path,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    progress: ProgressFn | None = None,
    level: int = ZSTD_LEVEL,
    verify: bool = True,
) -> tuple[Path, Digests]:
    """Compress ``src`` into a durable temp beside ``dest``, then read the temp back,
    decompressing, and check it holds ``src``'s bytes. The caller renames the temp into place
    (or unlinks it); on any error the temp is removed here.

    With ``expected_sha256`` (every caller but the benchmark knows it) the source is not hashed
    as it is read: the read-back's sha256 of the decompressed bytes must equal it, which also
    catches a source that changed or was damaged, and the compressing pass then does what the
    ``zstd`` CLI does, no more. ``verify=False``: no read-back (the benchmark's figure)."""
    zstd = _zstd()
    hash_source = expected_sha256 is None
    tmp = temp_path(dest)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | fileio.BINARY, 0o644)
    with removed_on_error(tmp, dest):
        try:
            plain = hashlib.sha256()
            sink = _Sink(fd)
            cctx = zstd.ZstdCompressor(
                level=level, threads=threads(), write_checksum=True, write_content_size=True
            )
            with open(src, "rb", buffering=0) as fh:
                size = os.fstat(fh.fileno()).st_size
                read = 0
                buf = bytearray(CHUNK)
                view = memoryview(buf)
                with cctx.stream_writer(sink, size=size, closefd=False) as writer:
                    while n := fh.readinto(buf):
                        if hash_source:
                            plain.update(view[:n])
                        writer.write(view[:n])
                        read += n
                        if progress:
                            progress(n)
                        crash_point("compress-progress")  # test-only: a temp half written
            os.fsync(fd)
        finally:
            os.close(fd)
        model_sha = expected_sha256 or plain.hexdigest()
        if read != size:
            raise HashMismatch(f"{src}: changed size while it was read ({read} of {size} bytes)")
        if not verify:  # the benchmark's compression-only figure
            return tmp, Digests(model_sha, read, "", sink.size)
        back = scan(tmp)  # what is on disk, not what we meant to write
        if (back.size, back.stored_size) != (read, sink.size):
            raise HashMismatch(f"{tmp}: the compressed copy does not decompress to {src.name}")
        if back.sha256 != model_sha:
            raise HashMismatch(
                f"{src}: content hashes to {back.sha256[:12]}, expected {model_sha[:12]}; "
                "the source changed or is damaged"
            )
        return tmp, back


def _frames(
    path: Path,
    out: Callable[[memoryview], None],
    *,
    stored_hash: bool = True,
    out_in_thread: bool = False,
    aligned: bool = False,
) -> tuple[str, int, str]:
    """Decompress ``path`` chunk by chunk into ``out``: (model sha256, model size, stored
    sha256, "" unless ``stored_hash``). A damaged frame (zstd's content checksum, a truncated
    file) raises HashMismatch.

    A pipeline over a few reused buffers, as a plain copy is: a thread reads and decompresses
    into a free buffer (zstd releases the GIL), this thread hashes the model bytes, and ``out``
    runs here or, with ``out_in_thread`` (a writer that waits on the disk), in a thread of its
    own, so a flush never stalls the decompression or the hash. Reusing the buffers spares a
    fresh allocation (and its page faults) per chunk; with ``aligned`` they are page-aligned,
    for a writer that writes them with O_DIRECT."""
    zstd = _zstd()
    plain = hashlib.sha256()
    stored = hashlib.sha256()
    free: queue.Queue[Any] = queue.Queue()
    for _ in range(SLOTS):
        free.put(fileio.aligned_buffer(CHUNK) if aligned else bytearray(CHUNK))
    filled: queue.Queue[tuple[Any, int] | None] = queue.Queue()
    hashed: queue.Queue[tuple[Any, int] | None] = queue.Queue()
    stop = threading.Event()
    failed: list[BaseException] = []

    class _Tee:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def read(self, n: int = -1) -> bytes:
            data = self.fh.read(n)
            stored.update(data)
            return data

    def produce() -> None:
        try:
            with open(path, "rb", buffering=0) as fh:
                reader = zstd.ZstdDecompressor().stream_reader(
                    _Tee(fh) if stored_hash else fh,
                    read_size=CHUNK,
                    read_across_frames=True,
                    closefd=False,
                )
                while (buf := take(free, stop)) is not None:
                    n = reader.readinto(buf)
                    if not n:
                        break
                    filled.put((buf, n))
                if stored_hash and not stop.is_set():
                    stored.update(fh.read())  # bytes after the last frame belong to the file
        except BaseException as exc:
            failed.append(exc)
            stop.set()
        finally:
            filled.put(None)

    def write() -> None:
        try:
            while (item := take(hashed, stop)) is not None:
                buf, n = item
                with memoryview(buf)[:n] as view:
                    out(view)
                free.put(buf)
        except BaseException as exc:
            failed.append(exc)
            stop.set()

    workers = [threading.Thread(target=produce, name="zstd-decompress", daemon=True)]
    if out_in_thread:
        workers.append(threading.Thread(target=write, name="zstd-write", daemon=True))
    for worker in workers:
        worker.start()
    size = 0
    try:
        while (item := take(filled, stop)) is not None:
            buf, n = item
            with memoryview(buf)[:n] as view:
                plain.update(view)
                if not out_in_thread:
                    out(view)
            size += n
            if out_in_thread:
                hashed.put(item)
            else:
                free.put(buf)
        hashed.put(None)
        for worker in workers:
            while worker.is_alive() and not stop.is_set():
                worker.join(timeout=0.05)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    if failed:
        if isinstance(failed[0], zstd.ZstdError):
            raise HashMismatch(f"{path}: not a readable zstd frame ({failed[0]})") from None
        raise failed[0]
    return plain.hexdigest(), size, stored.hexdigest() if stored_hash else ""


def scan(path: Path, progress: ProgressFn | None = None) -> Digests:
    """Decompress ``path`` without writing anything: both identities, in one pass."""

    def out(view: memoryview) -> None:
        if progress:
            progress(len(view))

    sha, size, stored = _frames(path, out)
    return Digests(sha, size, stored, path.stat().st_size)


def decompress_to_temp(
    src: Path,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    progress: ProgressFn | None = None,
) -> tuple[Path, Digests]:
    """Decompress ``src`` into a durable temp beside ``dest`` (fsynced), checked against
    ``expected_sha256`` (the model bytes'). The caller renames it into place or unlinks it."""
    tmp = temp_path(dest)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | fileio.BINARY, 0o644)
    with removed_on_error(tmp, dest):
        # O_DIRECT from the pipeline's page-aligned buffers where the file system takes it, as a
        # range-checked pull writes: no copy of every byte into fresh page-cache pages, nothing
        # left for the fsync. The last unaligned bytes, and every byte where O_DIRECT is
        # missing or refused, go through the page cache, flushed as a copy is.
        writer = fileio.DirectWriter(tmp, fd)
        try:
            written = [0, 0]  # bytes so far, buffered bytes not yet flushed

            def out(view: memoryview) -> None:
                if progress:
                    progress(len(view))
                writer.write_all(view, written[0])
                written[0] += len(view)
                if not writer.direct:
                    written[1] += len(view)
                    if written[1] >= FLUSH_EVERY:
                        # writeback overlaps with decompressing, the fsync is short
                        fileio.datasync(fd)
                        written[1] = 0
                crash_point("decompress-progress")  # test-only: a temp half written

            sha, size, stored = _frames(
                src, out, stored_hash=False, out_in_thread=True, aligned=True
            )
            writer.close()
            os.fsync(fd)
        finally:
            writer.close()
            os.close(fd)
        if expected_sha256 is not None and sha != expected_sha256:
            raise HashMismatch(
                f"{src}: decompresses to content hashing to {sha[:12]}, expected "
                f"{expected_sha256[:12]}; the compressed copy is damaged"
            )
        return tmp, Digests(sha, size, stored, src.stat().st_size)
