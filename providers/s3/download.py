"""Parallel ranged download into a preallocated temp file next to the destination, then a check of
size and hashes, fsync and rename. Nothing ever appears under the destination name unverified.

Runs of consecutive ranges are fetched by worker threads, one GET each (``stretches``), and
written with ``os.pwrite``; a range is done once its last byte is written; a hasher thread follows
the contiguous finished prefix (reading the page cache through a mapping), so the sha256 is ready
shortly after the last byte arrives instead of costing a second pass; each hashed range is handed
to the kernel's writeback at once, so the fsync before the rename has little left to write.
A transient failure keeps the temp file and the set of finished ranges (``Partial``), so the retry
layer's next ``get`` fetches only what is missing; ``on_done`` lets the caller journal each
finished range, so that a later process can do the same after kill -9
(providers.download_journal).
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

from providers.errors import TransientError
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


def download_ranges(
    client: Any,
    *,
    bucket: str,
    key: str,
    dest: Path,
    partial: Partial,
    concurrency: int,
    hash_names: set[str],
    expected: Mapping[str, str],
    progress: Progress,
    errors: Callable[[str], Any],
    what: str,
    on_done: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """Fill ``partial.temp`` with every missing range, hash it in order, verify, commit to
    ``dest``. Raises with ``partial`` updated; the caller decides whether to keep the temp file."""
    size, rsize = partial.size, partial.range_size
    n_ranges = -(-size // rsize)  # 0 for an empty object: nothing to fetch, no bogus Range
    fd = os.open(partial.temp, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size != size:
            os.ftruncate(fd, size)
        cond = threading.Condition()
        failed: list[BaseException] = []
        todo = [i for i in range(n_ranges) if i not in partial.done]
        hasher = MultiHasher(hash_names)

        def finished(index: int) -> None:
            if on_done is not None:
                on_done(index)  # after the pwrites: the range's bytes are in the file
            with cond:
                partial.done.add(index)
                cond.notify_all()

        def fetch(stretch: list[int]) -> None:
            if failed:
                return
            start = stretch[0] * rsize
            end = min(size, (stretch[-1] + 1) * rsize) - 1
            try:
                with errors(f"{what} bytes {start}-{end}"):
                    resp = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")
                    if resp["ETag"].strip('"') != partial.etag:
                        raise TransientError(f"{what}: the object changed during the download")
                    body = resp["Body"]
                    offset, pending = start, iter(stretch)
                    index = next(pending)
                    while chunk := body.read(CHUNK):
                        os.pwrite(fd, chunk, offset)
                        offset += len(chunk)
                        progress(len(chunk))
                        # Each range of the stretch counts as done as soon as its last byte is
                        # written, so the hasher follows and a kill loses at most one range.
                        while index is not None and offset >= min(size, (index + 1) * rsize):
                            finished(index)
                            index = next(pending, None)
                    if offset != end + 1:
                        raise TransientError(f"{what}: short read at {offset} of range {start}")
            except BaseException as exc:
                with cond:
                    failed.append(exc)
                    cond.notify_all()

        def hash_in_order() -> None:
            for index in range(n_ranges):
                with cond:
                    while index not in partial.done and not failed:
                        cond.wait()
                    if failed:
                        return
                start, length = index * rsize, min(size, (index + 1) * rsize) - index * rsize
                # Hashed straight from the page cache through a mapping of this one range:
                # no copy into a buffer (~25% less CPU than preadv), and only one range is
                # mapped at a time, so the mapped pages never add up in the RSS.
                with mmap.mmap(fd, length, prot=mmap.PROT_READ, offset=start) as mm:
                    view = memoryview(mm)
                    try:
                        for at in range(0, length, HASH_READ):
                            hasher.update(view[at : at + HASH_READ])
                    finally:
                        view.release()
                start_writeback(fd, start, length)

        hasher_thread = threading.Thread(target=hash_in_order, name="s3-hash", daemon=True)
        hasher_thread.start()
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="s3-get") as pool:
            list(pool.map(fetch, stretches(todo, rsize, concurrency)))
        hasher_thread.join()
        if failed:
            raise failed[0]
    finally:
        os.close(fd)
    actual = hasher.hexdigests()
    verify(what, expected_size=size, actual_size=os.path.getsize(partial.temp))
    verify(what, expected=expected, actual=actual)
    commit_temp(partial.temp, dest)
    return actual


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
    client: Any,
    *,
    bucket: str,
    key: str,
    etag: str,
    size: int,
    start: int,
    chunk_size: int,
    progress: Progress,
    errors: Callable[[str], Any],
    what: str,
) -> Iterator[bytes]:
    """Yield bytes ``start``..end of the object from one streamed GET (``Range: bytes=start-``),
    reading ``chunk_size`` at a time, so memory holds one chunk, not the object. The ETag from
    the HEAD is pinned: a different object behind the GET is a TransientError, a new attempt."""
    if start > size:
        raise ValueError(f"{what}: start {start} is beyond the object's {size} bytes")
    if start == size:  # nothing left (an empty object, or resuming at the end): no bogus Range
        return
    args = {"Bucket": bucket, "Key": key}
    if start:
        args["Range"] = f"bytes={start}-"
    with errors(what):
        resp = client.get_object(**args)
    body = resp["Body"]
    try:
        if (resp.get("ETag") or "").strip('"') != etag:
            raise TransientError(f"{what}: the object changed during the read")
        offset = start
        while True:
            # Read under the error table, yield outside it: an exception thrown into the
            # generator at the yield is the caller's, not ours to translate.
            with errors(f"{what} at byte {offset}"):
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
