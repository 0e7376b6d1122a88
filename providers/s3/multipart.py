"""Our own S3 multipart upload driver: parallel parts, a checksum on every part that the server
verifies (``x-amz-checksum-crc32`` by default, or Content-MD5 with ``part_checksum: md5``; a bad
one is rejected with BadDigest / InvalidChecksum), and a journal on local disk so that a process
killed mid-upload resumes on the next call and sends only the missing parts.

The journal (providers.journal, kind ``s3-upload``, one per destination object under
``<state_dir>/uploads/``): the header is {bucket, key, upload_id, size, mtime_ns, part_size,
sha256, checksum}; each record is one finished part {part, etag, <checksum>: value} (md5 as hex,
crc32 as the base64 S3 wants back in CompleteMultipartUpload). An upload whose checksum differs
from the one now configured is an orphan: it is aborted and started afresh (S3 requires every
part of an upload created with a checksum algorithm to carry that checksum). Part checksums live
in the journal because ListParts on SeaweedFS does not return them; ListParts is still asked on
resume, and a part is trusted only when the server lists it with the ETag we recorded, or, for a
part the server holds but the journal does not (a run killed after sending it, before the
answer), when its ETag is the md5 of our bytes for that part: S3 and SeaweedFS give a part the
md5 of its bytes as ETag (not under SSE-KMS/SSE-C, where it never matches and the part is simply
sent again). After a kill this saves resending the parts that were in flight (one per
connection).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from providers.base import BeforeCommitFn
from providers.errors import IntegrityError, NotFound, TransientError
from providers.journal import Journal
from providers.s3.bucket import Bucket
from providers.s3.parts import FileSlice, PartReader, checksum_args
from providers.s3.upload_ops import KIND, abort_upload, list_parts, stored_object
from providers.transfer import CHUNK, MultiHasher, Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Header:
    bucket: str
    key: str
    upload_id: str
    size: int
    mtime_ns: int
    part_size: int
    sha256: str
    checksum: str


class UploadJournal(Journal):
    """The journal of the upload of one object, with typed header and part records."""

    def __init__(self, directory: Path, bucket: str, key: str) -> None:
        super().__init__(directory, KIND, f"{bucket}\0{key}")

    def load(self) -> tuple[Header | None, dict[int, dict[str, str]]]:
        raw, records = self.read()
        try:
            header = Header(**raw) if raw is not None else None
        except TypeError:
            return None, {}
        if header is None:
            return None, {}
        parts: dict[int, dict[str, str]] = {}
        for rec in records:
            # A part without the header's checksum is not resumable: it is sent again.
            value, etag, number = rec.get(header.checksum), rec.get("etag"), rec.get("part")
            if isinstance(value, str) and isinstance(etag, str) and type(number) is int:
                parts[number] = {"etag": etag, "checksum": value}
        return header, parts

    def add_part(self, number: int, etag: str, algorithm: str, value: str) -> None:
        self.append({"part": number, "etag": etag, algorithm: value})


@dataclass(frozen=True)
class Source:
    """The file to upload and what it must hash to: ``sha256`` is stored as metadata at create
    time; it and ``verify_hashes`` are checked against the bytes actually read before the
    upload is completed."""

    path: Path
    sha256: str
    verify_hashes: Mapping[str, str]
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path, sha256: str, verify_hashes: Mapping[str, str]) -> Source:
        st = os.stat(path)
        return cls(path, sha256, dict(verify_hashes), st.st_size, st.st_mtime_ns)


class MultipartUpload:
    """One upload of ``source`` to ``key``: resume the journaled upload of the same file or
    create one, send the missing parts, check the bytes read, complete. On a hash mismatch the
    upload is aborted and nothing appears under the key."""

    def __init__(self, bucket: Bucket, key: str, source: Source, journal_dir: Path) -> None:
        self.bucket, self.key, self.source = bucket, key, source
        self.journal = UploadJournal(journal_dir, bucket.name, key)
        self.header: Header | None = None
        self.server_parts: dict[int, set[str]] = {}
        self.etags: dict[int, str] = {}
        self.sums: dict[int, str] = {}
        self.resumed = False  # parts were taken from an earlier run (journal or server)
        self.md5s: dict[int, str] = {}  # md5 hex of the parts read, where one was computed

    def run(
        self, *, part_size: int, checksum: str, concurrency: int, create_args: Mapping[str, Any],
        progress: Progress, before_commit: BeforeCommitFn | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        stored = self.resume(part_size, checksum)
        if stored is not None:
            return stored  # completed by an earlier call, after its before_commit passed
        if self.header is None:
            self.create(part_size, checksum, create_args)
        hasher = self.send_parts(concurrency, progress)
        self.check_source(hasher)
        if before_commit is not None:
            self.gate(before_commit)
        return self.complete()

    def gate(self, before_commit: BeforeCommitFn) -> None:
        """Wait for the caller's word before completing; a refusal aborts the upload, so none
        of its parts can ever be completed into an object."""
        header = self.header
        assert header is not None
        try:
            before_commit()
        except Exception:
            abort_upload(self.bucket, self.key, header.upload_id)
            self.journal.clear()
            raise

    # -- resume or create ----------------------------------------------------------------------
    def resume(self, part_size: int, checksum: str) -> dict[str, Any] | None:
        """Adopt the journaled upload of this very file, if any (``self.header`` set, finished
        parts in ``etags`` / ``sums``). Returns the object's HEAD when that upload was completed
        already, its answer lost on the way back."""
        header, done = self.journal.load()
        if header is None:
            return None
        src, b = self.source, self.bucket
        mine = (b.name, self.key, src.size, src.mtime_ns, part_size, src.sha256, checksum)
        theirs = (header.bucket, header.key, header.size, header.mtime_ns, header.part_size,
                  header.sha256, header.checksum)  # fmt: skip
        if mine != theirs:
            # An upload of ours for an older file (or other part size or checksum) is an orphan.
            abort_upload(b, header.key, header.upload_id)
            return None
        try:
            server_parts = list_parts(b, self.key, header.upload_id)
        except NotFound:  # completed or aborted meanwhile
            # Completed: the object is this file (same size, same sha256 in its metadata), so
            # nothing is sent again.
            stored = stored_object(b, self.key, src.size, src.sha256)
            if stored is not None:
                self.journal.clear()
            return stored
        self.header, self.server_parts = header, server_parts
        # A part counts as sent only if the server still lists it with the ETag we recorded, or
        # (see send_parts) with an ETag that is the md5 of our bytes for that part.
        for n, rec in done.items():
            if rec["etag"].strip('"').lower() in server_parts.get(n, ()):
                self.etags[n], self.sums[n] = rec["etag"], rec["checksum"]
        if self.etags:
            self.resumed = True
            log.info("resuming upload of %s: %d part(s) already on the server, not sent again",
                     self.key, len(self.etags))  # fmt: skip
        return None

    def create(self, part_size: int, checksum: str, create_args: Mapping[str, Any]) -> None:
        b, src = self.bucket, self.source
        algo = {"ChecksumAlgorithm": "CRC32"} if checksum == "crc32" else {}
        with b.errors("create multipart upload"):
            upload_id = b.client.create_multipart_upload(
                Bucket=b.name, Key=self.key, **algo, **create_args
            )["UploadId"]
        self.header = Header(b.name, self.key, upload_id, src.size, src.mtime_ns, part_size,
                             src.sha256, checksum)  # fmt: skip
        self.server_parts = {}
        self.journal.start(asdict(self.header))

    # -- send ----------------------------------------------------------------------------------
    def send_parts(self, concurrency: int, progress: Progress) -> MultiHasher:
        """Read the whole file in order (for its hashes and each part's checksum) and send every
        part the server does not hold, ``concurrency`` at a time. Returns the file's hashes."""
        header = self.header
        assert header is not None
        size, part_size = header.size, header.part_size
        n_parts = max(1, -(-size // part_size))
        # Bounds how far the hashing reader runs ahead of the senders, so a failure stops it early.
        slots = threading.BoundedSemaphore(2 * concurrency)
        hasher = MultiHasher({"sha256"} | {n for n in self.source.verify_hashes if n == "md5"})
        futures: list[Future[None]] = []

        def send(number: int, start: int, length: int, value: str) -> None:
            try:
                progress(self._put_part(number, start, length, value))
            finally:
                slots.release()

        def copy(number: int, start: int, length: int, value: str) -> None:
            progress(self._put_part(number, start, length, value))

        # Parts copied on the server get their own connections and no read-ahead slot (they
        # hold no bytes of ours): the parts to send start while the server is still copying.
        with (
            ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="s3-part") as pool,
            ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="s3-copy") as copies,
        ):
            try:
                with open(self.source.path, "rb", buffering=0) as f:
                    reader = PartReader(f, hasher, CHUNK)
                    for number in range(1, n_parts + 1):
                        start = (number - 1) * part_size
                        length = min(part_size, size - start)
                        value = self._read(reader, number, start, length)
                        if value is None:
                            continue
                        if self.copied_on_server(number):
                            futures.append(copies.submit(copy, number, start, length, value))
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
                self.journal.clear()
                raise TransientError(
                    f"upload of {self.key} was aborted on the server; restarting"
                ) from exc
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
        return hasher

    def _read(self, reader: PartReader, number: int, start: int, length: int) -> str | None:
        """Read part ``number``; its checksum when it must be sent, None when the server holds
        it already (from the journal, or adopted here)."""
        header = self.header
        assert header is not None
        wanted = self.wants_md5(number)
        if number in self.etags:
            md5 = reader.read(start, length, None, want_md5=wanted)[1]
            if md5 is not None:
                self.md5s[number] = md5
            return None
        held = self.server_parts.get(number, set())
        value, md5 = reader.read(start, length, header.checksum, want_md5=bool(held) or wanted)
        assert value is not None
        if md5 is not None:
            self.md5s[number] = md5
        if md5 is not None and md5 in held:
            # On the server but not in the journal: sent by a run killed before the answer came
            # back. Its ETag is the md5 of our bytes for it, so it is this part: adopted.
            self.etags[number], self.sums[number] = f'"{md5}"', value
            self.journal.add_part(number, f'"{md5}"', header.checksum, value)
            self.resumed = True
            return None
        return value

    def wants_md5(self, number: int) -> bool:
        """Whether part ``number``'s md5 is needed beyond the checksum sent (a subclass's check)."""
        return False

    def copied_on_server(self, number: int) -> bool:
        """Whether part ``number`` is copied on the server instead of sent (a subclass's)."""
        return False

    def _put_part(self, number: int, start: int, length: int, value: str) -> int:
        """Put part ``number`` on the server (its checksum ``value``); returns the bytes sent."""
        self._send(number, FileSlice(self.source.path, start, length), value)
        return length

    def _send(self, number: int, body: FileSlice, value: str) -> None:
        b, header = self.bucket, self.header
        assert header is not None
        try:
            with b.errors(f"upload part {number}"):
                resp = b.client.upload_part(
                    Bucket=b.name,
                    Key=self.key,
                    UploadId=header.upload_id,
                    PartNumber=number,
                    Body=body,
                    ContentLength=len(body),
                    **checksum_args(header.checksum, value),
                )
        finally:
            body.close()
        self.etags[number], self.sums[number] = resp["ETag"], value
        self.journal.add_part(number, resp["ETag"], header.checksum, value)

    # -- check and complete --------------------------------------------------------------------
    def check_source(self, hasher: MultiHasher) -> None:
        """Abort (nothing appears under the key) when the file changed while it was read or its
        bytes do not hash to what the caller expects."""
        src, header = self.source, self.header
        assert header is not None
        after = os.stat(src.path)
        actual = hasher.hexdigests()
        problem = None
        if (after.st_size, after.st_mtime_ns) != (src.size, src.mtime_ns):
            problem = f"put {self.key}: {src.path} changed while it was being uploaded"
        elif actual["sha256"] != src.sha256 or any(
            actual[n].lower() != v.lower() for n, v in src.verify_hashes.items() if n in actual
        ):
            problem = (
                f"put {self.key}: the file's content ({actual}) does not match the expected "
                f"sha256 {src.sha256} / {dict(src.verify_hashes)}; the upload was aborted"
            )
        if problem:
            abort_upload(self.bucket, self.key, header.upload_id)
            self.journal.clear()
            raise IntegrityError(problem)

    def complete(self) -> dict[str, Any]:
        b, header = self.bucket, self.header
        assert header is not None
        n_parts = max(1, -(-header.size // header.part_size))
        parts: list[dict[str, Any]] = [
            {"PartNumber": n, "ETag": self.etags[n]} for n in range(1, n_parts + 1)
        ]
        if header.checksum == "crc32":  # S3 requires each part's checksum of a CRC32 upload
            for part in parts:
                part["ChecksumCRC32"] = self.sums[part["PartNumber"]]
        try:
            with b.errors("complete multipart upload"):
                resp = b.client.complete_multipart_upload(
                    Bucket=b.name, Key=self.key, UploadId=header.upload_id,
                    MultipartUpload={"Parts": parts},
                )  # fmt: skip
        except IntegrityError as exc:
            if not self.resumed:
                raise
            # A part record taken from the journal (a damaged line: its checksum no longer
            # matches the part on the server) made the server refuse the list. The bytes on the
            # server are not in doubt, the journal is: drop both and let the retry layer start
            # afresh.
            abort_upload(b, self.key, header.upload_id)
            self.journal.clear()
            raise TransientError(
                f"put {self.key}: the server refused the parts recorded by an earlier run "
                f"({exc}); restarting the upload"
            ) from exc
        self.journal.clear()
        return resp


def _raise_first(futures: list[Future[None]]) -> None:
    for fut in futures:
        if fut.done() and fut.exception() is not None:
            raise fut.exception()  # type: ignore[misc]
