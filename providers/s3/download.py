"""Parallel ranged download into a preallocated temp file next to the destination, then a check of
size and hashes, fsync and rename. Nothing ever appears under the destination name unverified.

Runs of consecutive ranges are fetched by worker threads, one GET each (``stretches``), read
into one reused buffer per worker (``providers.s3.body``: one copy, no bytes object per chunk)
and written at their offsets (``providers.fileio.Positional``: ``os.pwrite``, or a handle per
worker where there is none); a range is done once its last byte is written; a hasher thread
follows the contiguous finished prefix (reading the page cache through a mapping), so the sha256
is ready shortly after the last byte arrives instead of costing a second pass; each hashed range
is handed to the kernel's writeback at once, so the fsync before the rename has little left to
write.
Given the range hashes recorded at push (providers.ranges) with the expected sha256, each
fetching thread checks every range of its own against them as the bytes arrive (BLAKE3, the GIL
released), a range counts as done only once it matched, and no sha256 pass runs at all: every
byte equals what was pushed, so the file's sha256 is the one recorded with those ranges, and the
bytes are written past the page cache (``fileio.DirectWriter``: O_DIRECT where the platform and
the file system take it), since nothing reads them back: on a small virtual machine the copy into
fresh page-cache pages was most of the pull's CPU. A range
that does not match stops the download (IntegrityError naming it); ranges finished by an earlier
attempt or process are read back and checked before the rename.
A transient failure keeps the temp file and the set of finished ranges (``Partial``), so the retry
layer's next ``get`` fetches only what is missing; ``on_done`` lets the caller journal each
finished range, so that a later process can do the same after kill -9
(providers.journal).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from providers import fileio
from providers.base import ObjectInfo
from providers.errors import IntegrityError, TransientError
from providers.ranges import DIGEST, RangeHashes, range_digest
from providers.s3.body import BodyReader
from providers.s3.bucket import Bucket
from providers.transfer import (
    MultiHasher,
    Progress,
    commit_temp,
    start_writeback,
    verify,
)

MAX_GET = 32 * 1024 * 1024  # the most one ranged GET asks for (see stretches)
# Bytes per receive buffer (one per worker thread), written as one piece. A 2 GB get in-process:
# 1 MiB 1.8 CPU-s, 2 MiB 1.5, 4 MiB 1.3 (fewer reads and writes); peak RSS 72, 73, 92 MB.
READ = 2 * 1024 * 1024
HASH_READ = 4 * 1024 * 1024  # bytes per hash update: few GIL hand-offs, the GIL free meanwhile


@dataclass
class Partial:
    """A download interrupted by a transient error, resumable by the next attempt."""

    temp: Path
    etag: str
    size: int
    range_size: int
    done: set[int] = field(default_factory=set)


class RangedDownload:
    """The missing ranges of ``partial`` fetched into its temp file by ``concurrency`` workers,
    hashed in order, verified and committed. ``what`` names the download in errors."""

    def __init__(
        self, bucket: Bucket, key: str, partial: Partial, *, concurrency: int, what: str,
        ranges: RangeHashes | None = None,
    ) -> None:  # fmt: skip
        self.bucket, self.key, self.partial = bucket, key, partial
        self.concurrency, self.what = concurrency, what
        # checked range by range when they fit this download (see the module docstring)
        fits = (
            ranges is not None and ranges.size == partial.range_size and ranges.fits(partial.size)
        )
        self.ranges = ranges if fits else None
        self._checked: set[int] = set()  # ranges this call fetched and found matching
        self.n_ranges = -(-partial.size // partial.range_size)  # 0 for an empty object
        self._cond = threading.Condition()
        self._failed: list[BaseException] = []
        self._fd = -1
        self._local = threading.local()  # each worker's receive buffer

    def run(
        self,
        dest: Path,
        expected: Mapping[str, str],
        progress: Progress,
        on_done: Callable[[int], None] | None = None,
    ) -> dict[str, str]:
        """Fill the temp file with every missing range, check it against ``expected`` (sha256 is
        always computed), commit it to ``dest``. Raises with ``partial`` updated; the caller
        decides whether to keep the temp file. ``on_done(index)`` follows each range written."""
        partial = self.partial
        if "sha256" not in expected:
            self.ranges = None  # the ranges vouch for the content whose sha256 was expected
        hasher = MultiHasher({"sha256"} | {n for n in expected if n in ("sha256", "md5")})
        self._fd = os.open(partial.temp, os.O_RDWR | os.O_CREAT | fileio.BINARY, 0o644)
        # range-checked bytes need no reading back: they bypass the page cache (fileio)
        writer = fileio.Positional if self.ranges is None else fileio.DirectWriter
        self._out = writer(partial.temp, self._fd)
        try:
            if os.fstat(self._fd).st_size != partial.size:
                os.ftruncate(self._fd, partial.size)
            todo = [i for i in range(self.n_ranges) if i not in partial.done]
            hasher_thread = threading.Thread(
                target=self._hash_in_order, args=(hasher,), name="s3-hash", daemon=True
            )
            if self.ranges is None:
                hasher_thread.start()
            runs = stretches(todo, partial.range_size, self.concurrency)
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3-get") as pool:
                list(pool.map(lambda run: self._fetch(run, progress, on_done), runs))
            if self.ranges is None:
                hasher_thread.join()
            if self._failed:
                raise self._failed[0]
            if self.ranges is not None:
                self._check_resumed()
        finally:
            self._out.close()
            os.close(self._fd)
        # every range matched what was pushed: the sha256 is the one recorded with the ranges
        actual = hasher.hexdigests() if self.ranges is None else dict(expected)
        verify(self.what, expected_size=partial.size, actual_size=os.path.getsize(partial.temp))
        verify(self.what, expected=expected, actual=actual)
        commit_temp(partial.temp, dest)
        return actual

    def _end(self, index: int) -> int:
        """The offset just past range ``index``."""
        return min(self.partial.size, (index + 1) * self.partial.range_size)

    def _fetch(
        self, stretch: list[int], progress: Progress, on_done: Callable[[int], None] | None
    ) -> None:
        """One GET for a run of consecutive ranges, written with pwrite as it arrives."""
        if self._failed:
            return
        b, what, partial = self.bucket, self.what, self.partial
        start, end = stretch[0] * partial.range_size, self._end(stretch[-1]) - 1
        try:
            with b.errors(f"{what} bytes {start}-{end}"):
                resp = b.client.get_object(
                    Bucket=b.name, Key=self.key, Range=f"bytes={start}-{end}"
                )
                if resp["ETag"].strip('"') != partial.etag:
                    raise TransientError(f"{what}: the object changed during the download")
                if resp.get("ContentLength", end + 1 - start) != end + 1 - start:
                    raise TransientError(f"{what}: the server sent other bytes than the range")
                body = BodyReader(resp["Body"])
                offset, pending = start, iter(stretch)
                index = next(pending)
                check = (
                    None if self.ranges is None else _RangeCheck(self.ranges, start, partial.size)
                )
                buf = self._buffer()
                while n := body.fill(buf[: min(len(buf), end + 1 - offset)]):
                    chunk = buf[:n]
                    self._out.write_all(chunk, offset)
                    if check is not None:
                        self._checked.update(check.feed(chunk, what))  # before they count as done
                    offset += n
                    progress(n)
                    # Each range of the stretch counts as done as soon as its last byte is
                    # written, so the hasher follows and a kill loses at most one range.
                    while index is not None and offset >= self._end(index):
                        if on_done is not None:
                            on_done(index)  # after the pwrites: the range's bytes are in the file
                        with self._cond:
                            partial.done.add(index)
                            self._cond.notify_all()
                        index = next(pending, None)
                if offset != end + 1:
                    raise TransientError(f"{what}: short read at {offset} of range {start}")
                body.finish()
        except BaseException as exc:
            with self._cond:
                self._failed.append(exc)
                self._cond.notify_all()

    def _buffer(self) -> memoryview:
        """This worker thread's receive buffer, reused by each of its GETs (page-aligned, for
        O_DIRECT): no new bytes object per chunk."""
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = memoryview(fileio.aligned_buffer(READ))
        return buf

    def _check_resumed(self) -> None:
        """Read back and check the ranges an earlier attempt or process finished: a journal can
        outlive the bytes it vouches for (a power cut), the bytes themselves cannot lie."""
        assert self.ranges is not None
        rsize = self.partial.range_size
        for index in sorted(self.partial.done - self._checked):
            start = index * rsize
            length = self._end(index) - start
            with mmap.mmap(self._fd, length, access=mmap.ACCESS_READ, offset=start) as mm:
                view = memoryview(mm)
                try:
                    ok = range_digest(view) == self.ranges[index]
                finally:
                    view.release()
            if not ok:
                raise IntegrityError(
                    f"{self.what}: bytes {start}-{start + length - 1}, finished by an earlier "
                    "attempt, differ from the range hash recorded at push"
                )

    def _hash_in_order(self, hasher: MultiHasher) -> None:
        rsize = self.partial.range_size
        for index in range(self.n_ranges):
            with self._cond:
                while index not in self.partial.done and not self._failed:
                    self._cond.wait()
                if self._failed:
                    return
            start = index * rsize
            length = self._end(index) - start
            # Hashed straight from the page cache through a mapping of this one range: no copy
            # into a buffer (~25% less CPU than preadv), and only one range is mapped at a time,
            # so the mapped pages never add up in the RSS.
            with mmap.mmap(self._fd, length, access=mmap.ACCESS_READ, offset=start) as mm:
                view = memoryview(mm)
                try:
                    for at in range(0, length, HASH_READ):
                        hasher.update(view[at : at + HASH_READ])
                finally:
                    view.release()
            start_writeback(self._fd, start, length)


class _RangeCheck:
    """The range hashes of one GET's bytes, checked against the recorded ones as they arrive."""

    def __init__(self, ranges: RangeHashes, start: int, file_size: int) -> None:
        self.ranges, self.size, self.file_size = ranges, ranges.size, file_size
        self.index, self.filled = start // ranges.size, 0
        self.hasher = _new_blake3()

    def feed(self, chunk: bytes, what: str) -> set[int]:
        """Hash ``chunk``; returns the ranges it completed (each matched, else IntegrityError)."""
        done: set[int] = set()
        view = memoryview(chunk)
        while view:
            length = self.ranges.span(self.index, self.file_size)[1]
            take = min(len(view), length - self.filled)
            self.hasher.update(view[:take])
            self.filled, view = self.filled + take, view[take:]
            if self.filled == length:
                self._close(what)
                done.add(self.index - 1)
        return done

    def _close(self, what: str) -> None:
        if self.hasher.digest(length=DIGEST) != self.ranges[self.index]:
            start = self.index * self.size
            raise IntegrityError(
                f"{what}: bytes {start}-{start + self.filled - 1} differ from the range hash "
                "recorded at push: the object's bytes are not the ones pushed"
            )
        self.index, self.filled, self.hasher = self.index + 1, 0, _new_blake3()


def _new_blake3() -> Any:
    from blake3 import blake3

    return blake3()


def stretches(todo: list[int], rsize: int, concurrency: int) -> list[list[int]]:
    """The missing ranges grouped into one GET per run of consecutive ranges, each at most
    MAX_GET bytes, and about three GETs per connection. Why not one GET per range: each request
    costs ~2 ms of CPU in botocore (signing, hooks, parsing), which on a small machine competes
    with the server and the hashing (8 MiB ranges: ~0.1 s of a 400 MB pull's 0.55 s CPU). Why
    not bigger: the hasher can only follow the lowest unfinished range, so the bytes in flight
    (connections x GET size) are what it hashes after the last byte has arrived."""
    per = max(1, min(MAX_GET // rsize, -(-len(todo) // (3 * max(1, concurrency)))))
    runs: list[list[int]] = []
    for index in todo:
        if runs and index == runs[-1][-1] + 1 and len(runs[-1]) < per:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def stream_object(
    b: Bucket, key: str, head: ObjectInfo, *, start: int, chunk_size: int, progress: Progress
) -> Iterator[bytes]:
    """Yield bytes ``start``..end of object ``key`` from one streamed GET (``Range:
    bytes=start-``), reading ``chunk_size`` at a time, so memory holds one chunk, not the object.
    The ETag from the HEAD (``head``) is pinned: a different object behind the GET is a
    TransientError, a new attempt."""
    what, etag, size = f"read {head.key}", head.etag or "", head.size
    if start > size:
        raise ValueError(f"{what}: start {start} is beyond the object's {size} bytes")
    if start == size:  # nothing left (an empty object, or resuming at the end): no bogus Range
        return
    args = {"Bucket": b.name, "Key": key}
    if start:
        args["Range"] = f"bytes={start}-"
    with b.errors(what):
        resp = b.client.get_object(**args)
    body = resp["Body"]
    try:
        if (resp.get("ETag") or "").strip('"') != etag:
            raise TransientError(f"{what}: the object changed during the read")
        offset = start
        while True:
            # Read under the error table, yield outside it: an exception thrown into the
            # generator at the yield is the caller's, not ours to translate.
            with b.errors(f"{what} at byte {offset}"):
                chunk = body.read(chunk_size)
            if not chunk:
                break
            offset += len(chunk)
            progress(len(chunk))
            yield chunk
        if offset != size:
            raise TransientError(f"{what}: the stream ended at byte {offset} of {size}")
    finally:
        body.close()


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
