"""Our own S3 multipart upload driver: parallel parts, a checksum on every part that the server
verifies (``x-amz-checksum-crc32`` by default, or Content-MD5 with ``part_checksum: md5``; a bad
one is rejected with BadDigest / InvalidChecksum), and a journal on local disk so that a process
killed mid-upload resumes on the next call and sends only the missing parts.

The journal (JSON lines, one file per destination object under ``<state_dir>/uploads/``):
line 1 is the header {bucket, key, upload_id, size, mtime_ns, part_size, sha256, checksum};
every further line is one finished part {part, etag, <checksum>: value} (md5 as hex, crc32 as the
base64 S3 wants back in CompleteMultipartUpload). A header without ``checksum`` was written before
CRC32 existed and means md5. An upload whose checksum differs from the one now configured is an
orphan: it is aborted and started afresh (S3 requires every part of an upload created with a
checksum algorithm to carry that checksum). Appends are single small writes, so a kill -9 leaves
at worst a torn last line, which is ignored. Part checksums live in the journal because ListParts
on SeaweedFS does not return them; ListParts is still asked on resume, and a part is trusted only
when the server lists it with the ETag we recorded, or, for a part the server holds but the
journal does not (a run killed after sending it, before the answer), when its ETag is the md5 of
our bytes for that part: S3 and SeaweedFS give a part the md5 of its bytes as ETag (not under
SSE-KMS/SSE-C, where it never matches and the part is simply sent again). After a kill this
saves resending the parts that were in flight (one per connection).

Memory stays bounded for any file size and part size: no part is ever held in memory. The main
thread reads the file once, in order, for the whole-file sha256 (which must be sequential) and
each part's checksum in the same pass; workers then stream their part from the file
(``_FileSlice``). Re-reading comes from the page cache; measured here, holding 8 MiB part buffers
instead pushed peak RSS to ~200 MB with no throughput gain, since uploads are bound by the server.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import threading
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from providers.errors import IntegrityError, NotFound, TransientError
from providers.transfer import CHUNK, MultiHasher, Progress, atomic_write

log = logging.getLogger(__name__)

MIN_PART = 5 * 1024**2
MAX_PART = 5 * 1024**3
MAX_PARTS = 10_000
# Per-part checksum algorithms: CRC32 (zlib, ~3 GB/s) is the default; MD5 (~650 MB/s) is for
# S3-compatible servers that predate the flexible-checksum headers.
PART_CHECKSUMS = ("crc32", "md5")


def crc32_b64(crc: int) -> str:
    """S3's ``x-amz-checksum-crc32`` form: base64 of the CRC's 4 bytes, big-endian (as botocore)."""
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


def checksum_args(algorithm: str, value: str) -> dict[str, str]:
    """The request parameter that makes the server verify a body against our checksum ``value``
    (crc32: base64 as sent; md5: hex, as kept in the journal)."""
    if algorithm == "crc32":
        return {"ChecksumCRC32": value}
    return {"ContentMD5": base64.b64encode(bytes.fromhex(value)).decode()}


def part_size_for(size: int, chunksize: int) -> int:
    """s3transfer's rule: the configured chunk size, grown so the file fits in 10,000 parts,
    clamped to S3's 5 MiB .. 5 GiB."""
    part = max(chunksize, -(-size // MAX_PARTS), MIN_PART)
    return min(part, MAX_PART)


@dataclass
class Header:
    bucket: str
    key: str
    upload_id: str
    size: int
    mtime_ns: int
    part_size: int
    sha256: str
    checksum: str = "md5"  # absent in journals written before CRC32 support: those used md5


class Journal:
    def __init__(self, directory: Path, bucket: str, key: str) -> None:
        digest = hashlib.sha256(f"{bucket}\0{key}".encode()).hexdigest()[:32]
        self.path = directory / f"{digest}.jsonl"
        self._lock = threading.Lock()

    def load(self) -> tuple[Header | None, dict[int, dict[str, str]]]:
        try:
            lines = self.path.read_text().splitlines()
            header = Header(**json.loads(lines[0]))
        except (OSError, ValueError, TypeError, IndexError):
            return None, {}
        parts: dict[int, dict[str, str]] = {}
        for line in lines[1:]:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                rec = json.loads(line)
                # A part without the header's checksum is not resumable: it is sent again.
                value = rec[header.checksum]
                parts[int(rec["part"])] = {"etag": rec["etag"], "checksum": str(value)}
        return header, parts

    def start(self, header: Header) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path, private=True) as f:
            f.write((json.dumps(asdict(header)) + "\n").encode())

    def add_part(self, number: int, etag: str, algorithm: str, value: str) -> None:
        line = json.dumps({"part": number, "etag": etag, algorithm: value}) + "\n"
        with self._lock, open(self.path, "a") as f:
            f.write(line)
            f.flush()

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _FileSlice:
    """A seekable read-only window on a file, so botocore can sign and send one part of a large
    file (and rewind it) without the part ever being held in memory."""

    def __init__(self, path: Path, start: int, length: int) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by the worker in finally
        self._start, self._len, self._pos = start, length, 0

    def read(self, n: int = -1) -> bytes:
        left = self._len - self._pos
        n = left if n is None or n < 0 else min(n, left)
        if n <= 0:
            return b""
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._len}[whence]
        self._pos = max(0, min(self._len, base + offset))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def __len__(self) -> int:
        return self._len

    def close(self) -> None:
        self._f.close()


def upload_multipart(
    client: Any,
    *,
    bucket: str,
    key: str,
    src: Path,
    sha256: str,
    part_size: int,
    concurrency: int,
    journal_dir: Path,
    create_args: Mapping[str, Any],
    progress: Progress,
    errors: Callable[[str], Any],
    verify_hashes: Mapping[str, str],
    checksum: str = "crc32",
) -> dict[str, Any]:
    """Upload ``src`` to ``key`` in parts, resuming a journaled upload of the same file.

    ``checksum`` (one of PART_CHECKSUMS) is sent with every part for the server to verify.
    ``sha256`` is stored as metadata at create time and checked against the bytes actually read
    before the upload is completed; on mismatch the upload is aborted (nothing appears under the
    key). ``errors(what)`` is the backend's error-translating context manager."""
    st = os.stat(src)
    size = st.st_size
    journal = Journal(journal_dir, bucket, key)
    header, done = journal.load()
    server_parts: dict[int, set[str]] = {}
    if header is not None:
        ours = (size, st.st_mtime_ns, part_size, sha256, checksum)
        same = ours == (
            header.size,
            header.mtime_ns,
            header.part_size,
            header.sha256,
            header.checksum,
        )
        if same and header.bucket == bucket and header.key == key:
            try:
                server_parts = _list_parts(client, bucket, key, header.upload_id, errors)
            except NotFound:  # completed or aborted meanwhile
                # Completed, with its answer lost on the way back: the object is this file
                # (same size, same sha256 in its metadata), so nothing is sent again.
                stored = _stored_object(client, bucket, key, size, sha256, errors)
                if stored is not None:
                    journal.remove()
                    return stored
                header = None
        else:
            # An upload of ours for an older file (or other part size or checksum) is an orphan.
            _abort(client, bucket, key, header.upload_id, errors)
            header = None
    if header is None:
        journal.remove()
        done, server_parts = {}, {}
        algo = {"ChecksumAlgorithm": "CRC32"} if checksum == "crc32" else {}
        with errors("create multipart upload"):
            upload_id = client.create_multipart_upload(
                Bucket=bucket, Key=key, **algo, **create_args
            )["UploadId"]
        header = Header(bucket, key, upload_id, size, st.st_mtime_ns, part_size, sha256, checksum)
        journal.start(header)
    # A part counts as sent only if the server still lists it with the ETag we recorded, or
    # (see the read loop) with an ETag that is the md5 of our bytes for that part.
    finished = {
        n: rec
        for n, rec in done.items()
        if rec["etag"].strip('"').lower() in server_parts.get(n, ())
    }
    if finished:
        log.info(
            "resuming upload of %s: %d part(s) already on the server, not sent again",
            key,
            len(finished),
        )

    n_parts = max(1, -(-size // part_size))
    # Bounds how far the hashing reader runs ahead of the senders, so a failure stops it early.
    slots = threading.BoundedSemaphore(2 * concurrency)
    hasher = MultiHasher({"sha256"} | {n for n in verify_hashes if n == "md5"})
    etags: dict[int, str] = {n: rec["etag"] for n, rec in finished.items()}
    sums: dict[int, str] = {n: rec["checksum"] for n, rec in finished.items()}

    adopted = 0

    def send(number: int, start: int, length: int, value: str) -> None:
        body: _FileSlice | None = None
        try:
            body = _FileSlice(src, start, length)
            with errors(f"upload part {number}"):
                resp = client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=header.upload_id,
                    PartNumber=number,
                    Body=body,
                    ContentLength=length,
                    **checksum_args(checksum, value),
                )
            etag = resp["ETag"]
            etags[number], sums[number] = etag, value
            journal.add_part(number, etag, checksum, value)
            progress(length)
        finally:
            if body is not None:
                body.close()
            slots.release()

    futures: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="s3-part") as pool:
        try:
            buf = memoryview(bytearray(CHUNK))
            with open(src, "rb", buffering=0) as f:
                for number in range(1, n_parts + 1):
                    start = (number - 1) * part_size
                    length = min(part_size, size - start)
                    algo = None if number in finished else checksum
                    held = set() if algo is None else server_parts.get(number, set())
                    value, md5 = _read_part(
                        f, start, length, hasher, algo, buf, want_md5=bool(held)
                    )
                    if value is None:
                        continue
                    if md5 is not None and md5 in held:
                        # On the server but not in the journal: sent by a run killed before
                        # the answer came back. Its ETag is the md5 of our bytes for it, so it
                        # is this part: adopted, not sent again.
                        etags[number], sums[number] = f'"{md5}"', value
                        journal.add_part(number, f'"{md5}"', checksum, value)
                        adopted += 1
                        continue
                    # Polls failures while waiting so a dead upload does not keep reading.
                    while not slots.acquire(timeout=0.5):
                        _raise_first(futures)
                    _raise_first(futures)
                    futures.append(pool.submit(send, number, start, length, value))
            wait(futures, return_when=FIRST_EXCEPTION)
            _raise_first(futures)
        except NotFound as exc:
            # NoSuchUpload: someone (a lifecycle rule, another agent's cleanup) aborted our
            # upload. The journal is useless now; the retry layer's next attempt starts afresh.
            journal.remove()
            raise TransientError(f"upload of {key} was aborted on the server; restarting") from exc
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise

    after = os.stat(src)
    if (after.st_size, after.st_mtime_ns) != (size, st.st_mtime_ns):
        _abort(client, bucket, key, header.upload_id, errors)
        journal.remove()
        raise IntegrityError(f"put {key}: {src} changed while it was being uploaded")
    actual = hasher.hexdigests()
    if actual["sha256"] != sha256 or any(
        actual[n].lower() != v.lower() for n, v in verify_hashes.items() if n in actual
    ):
        _abort(client, bucket, key, header.upload_id, errors)
        journal.remove()
        raise IntegrityError(
            f"put {key}: the file's content ({actual}) does not match the expected "
            f"sha256 {sha256} / {dict(verify_hashes)}; the upload was aborted"
        )
    parts: list[dict[str, Any]] = [
        {"PartNumber": n, "ETag": etags[n]} for n in range(1, n_parts + 1)
    ]
    if checksum == "crc32":  # S3 requires each part's checksum of an upload created with one
        for part in parts:
            part["ChecksumCRC32"] = sums[part["PartNumber"]]
    try:
        with errors("complete multipart upload"):
            resp = client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=header.upload_id, MultipartUpload={"Parts": parts}
            )
    except IntegrityError as exc:
        if not finished and not adopted:
            raise
        # A part record taken from the journal (a damaged line: its checksum no longer matches
        # the part on the server) made the server refuse the list. The bytes on the server are
        # not in doubt, the journal is: drop both and let the retry layer start afresh.
        _abort(client, bucket, key, header.upload_id, errors)
        journal.remove()
        raise TransientError(
            f"put {key}: the server refused the parts recorded by an earlier run ({exc}); "
            "restarting the upload"
        ) from exc
    journal.remove()
    return resp


def _read_part(
    f: Any,
    start: int,
    length: int,
    hasher: MultiHasher,
    checksum: str | None,
    buf: memoryview,
    *,
    want_md5: bool = False,
) -> tuple[str | None, str | None]:
    """Read one part, in file order, into the whole-file hash; return its ``checksum`` (None: no
    checksum wanted, a part already on the server) and, with ``want_md5``, its md5 hex. One read
    serves all: the server verifies the part against this checksum, so the bytes it stores are
    the bytes hashed here."""
    f.seek(start)
    crc = 0
    md5 = hashlib.md5() if checksum == "md5" or want_md5 else None
    remaining = length
    while remaining:
        n = f.readinto(buf[: min(len(buf), remaining)])
        if not n:
            raise IntegrityError(f"the file shrank while uploading (short read at {start})")
        chunk = buf[:n]
        hasher.update(chunk)
        if checksum == "crc32":
            crc = zlib.crc32(chunk, crc)  # releases the GIL for large buffers
        if md5 is not None:
            md5.update(chunk)
        remaining -= n
    digest = md5.hexdigest() if md5 is not None else None
    if checksum is None:
        return None, digest
    return (crc32_b64(crc) if checksum == "crc32" else digest), digest


def _raise_first(futures: list[Future[None]]) -> None:
    for fut in futures:
        if fut.done() and fut.exception() is not None:
            raise fut.exception()  # type: ignore[misc]


def _stored_object(
    client: Any, bucket: str, key: str, size: int, sha256: str, errors: Any
) -> dict[str, Any] | None:
    """HEAD of ``key`` when it holds exactly ``size`` bytes with ``sha256`` in its metadata."""
    try:
        with errors("stat after an upload vanished"):
            head = client.head_object(Bucket=bucket, Key=key)
    except NotFound:
        return None
    same = head.get("ContentLength") == size and head.get("Metadata", {}).get("sha256") == sha256
    return head if same else None


def _list_parts(
    client: Any, bucket: str, key: str, upload_id: str, errors: Any
) -> dict[int, set[str]]:
    """Part number -> the ETags (unquoted, lower case) the server lists for it. A set: SeaweedFS
    lists every upload of a part number that was sent twice, and completes with whichever one
    the CompleteMultipartUpload names by ETag (AWS keeps only the last)."""
    parts: dict[int, set[str]] = {}
    with errors("list parts"):
        for page in client.get_paginator("list_parts").paginate(
            Bucket=bucket, Key=key, UploadId=upload_id
        ):
            for p in page.get("Parts", []):
                parts.setdefault(int(p["PartNumber"]), set()).add(p["ETag"].strip('"').lower())
    return parts


def _abort(client: Any, bucket: str, key: str, upload_id: str, errors: Any) -> None:
    """Abort an upload of ours; one already gone is fine, a network failure is only logged
    (the next run's journal scan tries again)."""
    try:
        with errors("abort multipart upload"):
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except NotFound:
        pass
    except TransientError as exc:
        log.warning("could not abort upload %s of %s: %s", upload_id, key, exc)


def abort_orphans(client: Any, journal_dir: Path, bucket: str, errors: Any) -> int:
    """Abort every upload our journals record for ``bucket`` and drop the journals: used when the
    caller knows no upload is in progress (``S3Provider.abort_incomplete_uploads``)."""
    count = 0
    for path in sorted(journal_dir.glob("*.jsonl")):
        try:
            header = Header(**json.loads(path.read_text().splitlines()[0]))
        except (OSError, ValueError, TypeError, IndexError):
            continue
        if header.bucket != bucket:
            continue
        _abort(client, bucket, header.key, header.upload_id, errors)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        count += 1
    return count
