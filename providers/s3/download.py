"""Parallel ranged download into a preallocated temp file next to the destination, then a check of
size and hashes, fsync and rename. Nothing ever appears under the destination name unverified.

Runs of consecutive ranges are fetched by worker threads, one GET each (``stretches``), and
written at their offsets (``providers.fileio.Positional``: ``os.pwrite``, or a handle per worker
where there is none); a range is done once its last byte is written; a hasher thread follows the
contiguous finished prefix (reading the page cache through a mapping), so the sha256 is ready
shortly after the last byte arrives instead of costing a second pass; each hashed range is handed
to the kernel's writeback at once, so the fsync before the rename has little left to write.
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

from providers import fileio
from providers.base import ObjectInfo
from providers.errors import TransientError
from providers.s3.bucket import Bucket
from providers.transfer import (
    CHUNK,
    MultiHasher,
    Progress,
    commit_temp,
    start_writeback,
    verify,
)

MAX_GET = 32 * 1024 * 1024  # the most one ranged GET asks for (see stretches)
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
        self, bucket: Bucket, key: str, partial: Partial, *, concurrency: int, what: str
    ) -> None:
        self.bucket, self.key, self.partial = bucket, key, partial
        self.concurrency, self.what = concurrency, what
        self.n_ranges = -(-partial.size // partial.range_size)  # 0 for an empty object
        self._cond = threading.Condition()
        self._failed: list[BaseException] = []
        self._fd = -1

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
        hasher = MultiHasher({"sha256"} | {n for n in expected if n in ("sha256", "md5")})
        self._fd = os.open(partial.temp, os.O_RDWR | os.O_CREAT | fileio.BINARY, 0o644)
        self._out = fileio.Positional(partial.temp, self._fd)
        try:
            if os.fstat(self._fd).st_size != partial.size:
                os.ftruncate(self._fd, partial.size)
            todo = [i for i in range(self.n_ranges) if i not in partial.done]
            hasher_thread = threading.Thread(
                target=self._hash_in_order, args=(hasher,), name="s3-hash", daemon=True
            )
            hasher_thread.start()
            runs = stretches(todo, partial.range_size, self.concurrency)
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="s3-get") as pool:
                list(pool.map(lambda run: self._fetch(run, progress, on_done), runs))
            hasher_thread.join()
            if self._failed:
                raise self._failed[0]
        finally:
            self._out.close()
            os.close(self._fd)
        actual = hasher.hexdigests()
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
                body = resp["Body"]
                offset, pending = start, iter(stretch)
                index = next(pending)
                while chunk := body.read(CHUNK):
                    self._out.write_all(chunk, offset)
                    offset += len(chunk)
                    progress(len(chunk))
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
        except BaseException as exc:
            with self._cond:
                self._failed.append(exc)
                self._cond.notify_all()

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
