"""The ``s3`` backend: AWS S3 or any S3-compatible server (``endpoint_url``, path-style);
settings: providers.s3.config.

Objects carry their whole-file sha256 as user metadata (``x-amz-meta-sha256``), which ``stat``
returns as ``hashes["sha256"]``; a single-part, non-KMS object also reports its ETag as md5, and
one rclone uploaded in parts the md5 it keeps in ``x-amz-meta-md5chksum`` (``stat`` only: listings
carry no metadata). A multipart ETag is never compared with an md5: ``part_size`` tells the first
part's size, so that a caller can recompute one from the bytes. botocore's own retries are off
(one attempt): retrying is the job of providers.retry, and a multipart upload resumes from its
journal. A download resumes too, even in a new process after kill -9: finished ranges are
journaled under ``state_dir/downloads`` (providers.journal) next to a deterministic temp file.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self

from providers.base import STREAM_CHUNK, BeforeCommitFn, Capabilities, ObjectInfo, ProgressFn
from providers.errors import (
    IntegrityError,
    NotFound,
    ProviderError,
    TransientError,
)
from providers.journal import DOWNLOADS, Journal, journal_dir, mark, resume_download
from providers.ranges import RangeHashes
from providers.s3.bucket import Bucket
from providers.s3.config import S3Settings, make_client
from providers.s3.delta import put_reusing
from providers.s3.download import MAX_GET, Partial, RangedDownload, remove_quietly, stream_object
from providers.s3.errors import s3_errors
from providers.s3.info import object_info
from providers.s3.multipart import MultipartUpload, Source
from providers.s3.parts import checksum_args, crc32_b64, part_size_for
from providers.s3.small import get_bytes, put_bytes
from providers.s3.upload_ops import abort_orphans
from providers.transfer import MultiHasher, Progress, check_key, hash_file, temp_path_for, verify

log = logging.getLogger(__name__)

MIB = 1024**2


class S3Provider:
    def __init__(self, name: str, client: Any, settings: S3Settings, *, state_dir: Path) -> None:
        self.name = name
        self.client = client
        self.config = settings
        self.bucket = settings.bucket
        self.prefix = settings.key_prefix
        self.state_dir = state_dir
        self._bucket = Bucket(client, settings.bucket, self._errors)
        # Downloads whose temp file and journal are kept for the next attempt (see get).
        self._pending: dict[tuple[str, Path], tuple[Journal, Path]] = {}
        self.capabilities = Capabilities(
            hashes=frozenset({"sha256"}),
            conditional_write=True,
            resumable=True,
            copy=self.copy,
            get_bytes=functools.partial(get_bytes, self),  # providers.s3.small
            put_bytes=functools.partial(put_bytes, self),
            iter_bytes=self.iter_bytes,
            abort_incomplete_uploads=self.abort_incomplete_uploads,
            part_size=self.part_size if settings.etag_may_be_md5 else None,
            put_reusing=functools.partial(put_reusing, self),  # a delta put: providers.s3.delta
        )

    @classmethod
    def from_settings(
        cls, name: str, settings: Mapping[str, Any], *, state_dir: Path | None = None
    ) -> Self:
        config = S3Settings.from_settings(name, settings)
        state = journal_dir(state_dir, "s3", name)
        return cls(name, make_client(name, config), config, state_dir=state)

    # --- helpers -----------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _errors(self, what: str) -> Any:
        return s3_errors(self.name, self.bucket, what)

    def _info(
        self,
        key: str,
        size: int,
        etag: str | None,
        modified: Any,
        meta: Mapping,
        version_id: str | None = None,
    ) -> ObjectInfo:
        may_be_md5 = self.config.etag_may_be_md5
        return object_info(key, size, etag, modified, meta, version_id, etag_may_be_md5=may_be_md5)

    def _head(self, key: str) -> ObjectInfo:
        with self._errors(f"stat {key}"):
            r = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        return self._info(
            key,
            r["ContentLength"],
            r.get("ETag"),
            r.get("LastModified"),
            r.get("Metadata", {}),
            r.get("VersionId"),
        )

    # --- Provider ----------------------------------------------------------------------------

    def put(
        self,
        key: str,
        src_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
        before_commit: BeforeCommitFn | None = None,
    ) -> ObjectInfo:
        src = Path(src_path)
        object_key = self._key(key)
        expected = {k: v for k, v in (expected_hashes or {}).items() if v}
        report = Progress(progress)
        size = os.path.getsize(src)
        if size <= self.config.threshold:
            data = src.read_bytes()
            hasher = MultiHasher(self._put_hashes(expected))
            hasher.update(data)
            hashes = hasher.hexdigests()
            verify(
                f"put {key}",
                expected_size=size,
                actual_size=len(data),
                expected=expected,
                actual=hashes,
            )
            if before_commit is not None:
                before_commit()  # one request makes it visible: nothing is sent before the word
            self._put_object(key, data, hashes)
            report(len(data))
        else:
            # The sha256 goes into the metadata at create time, so it must be known up front:
            # from the caller, or from one extra read pass. It is re-checked against the bytes
            # actually sent before the upload is completed.
            sha256 = expected.get("sha256") or hash_file(src, ("sha256",))["sha256"]
            upload = MultipartUpload(
                self._bucket,
                object_key,
                Source.of(src, sha256, expected),
                self.state_dir / "uploads",
            )
            upload.run(
                part_size=part_size_for(size, self.config.multipart_chunksize),
                checksum=self.config.part_checksum,
                concurrency=self.config.concurrency,
                create_args={"Metadata": {"sha256": sha256}, **self.config.put_args},
                progress=report,
                before_commit=before_commit,
            )
            hashes = {"sha256": sha256}
        info = self._head(key)
        if info.size != size or info.hashes.get("sha256") != hashes["sha256"]:
            raise IntegrityError(f"put {key}: the stored object ({info}) does not match the file")
        return info

    def _put_hashes(self, expected: Mapping[str, str]) -> tuple[str, ...]:
        """What a single-part put hashes: sha256 always, md5 only if it is sent or expected."""
        return (
            ("sha256", "md5")
            if self.config.part_checksum == "md5" or "md5" in expected
            else ("sha256",)
        )

    def _put_object(self, key: str, data: bytes, hashes: Mapping[str, str], **cond: str) -> dict:
        if self.config.part_checksum == "crc32":
            check = checksum_args("crc32", crc32_b64(zlib.crc32(data)))
        else:
            check = checksum_args("md5", hashes["md5"])
        with self._errors(f"put {key}"):
            return self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=data,
                **check,
                Metadata={"sha256": hashes["sha256"]},
                **self.config.put_args,
                **cond,
            )

    def get(
        self,
        key: str,
        dest_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
        expected_ranges: RangeHashes | None = None,
    ) -> ObjectInfo:
        dest = Path(dest_path)
        info = self._head(key)
        expected = {k: v for k, v in (expected_hashes or {}).items() if v}
        what = f"get {key}"
        # A stored hash that contradicts the caller's expectation fails before any download.
        verify(what, expected=expected, actual=info.hashes)
        wanted = {**info.hashes, **expected}
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest = Path(os.path.abspath(dest))
        # The temp name and the journal are deterministic, so a later attempt -- the retry
        # layer's, or a new process after kill -9 -- finds them and fetches only missing ranges.
        tag = hashlib.sha256(f"{key}\0{info.etag}".encode()).hexdigest()[:16]
        temp = temp_path_for(dest, tag)
        # ranges of the recorded range hashes' size: each is checked as it arrives (download.py)
        usable = (
            expected_ranges is not None
            and expected_ranges.size <= MAX_GET  # larger ones would serialise the download
            and expected_ranges.fits(info.size)
        )
        rsize = (
            expected_ranges.size
            if usable and expected_ranges is not None
            else part_size_for(info.size, self.config.multipart_chunksize)
        )
        n_ranges = -(-info.size // rsize)
        header = {"bucket": self.bucket, "key": self._key(key), "dest": str(dest),
                  "temp": str(temp), "etag": info.etag or "", "size": info.size,
                  "range_size": rsize}  # fmt: skip
        journal = self._journal(key, dest)

        def temp_ok(done: list[int]) -> bool:
            sized = temp.is_file() and temp.stat().st_size == info.size
            return sized and all(0 <= i < n_ranges for i in done)

        done = resume_download(journal, header, dest, temp_ok)
        partial = Partial(temp, info.etag or "", info.size, rsize, set(done))
        self._pending[(key, dest)] = journal, temp
        download = RangedDownload(
            self._bucket, self._key(key), partial, concurrency=self.config.concurrency, what=what,
            ranges=expected_ranges if usable else None,
        )  # fmt: skip
        try:
            download.run(dest, wanted, Progress(progress), functools.partial(mark, journal))
        except TransientError:
            raise  # temp and journal stay: the next attempt resumes from them
        except IntegrityError as exc:
            self._discard(key, dest)
            if not done:
                raise  # definitive: a fresh download of this object does not hash right
            # Resumed from an earlier run's journal: a damaged record (a range marked done that
            # never was) is the likelier cause. Both are gone now; the retry starts afresh.
            raise TransientError(
                f"{what}: the download resumed from an earlier run came out wrong ({exc}); "
                "restarting it from the beginning"
            ) from exc
        except Exception:
            self._discard(key, dest)  # definitive (not found, a caller's error)
            raise
        except BaseException:
            raise  # interrupted (Ctrl-C, SIGTERM): temp and journal stay, the next run resumes
        self._discard(key, dest)  # committed: the temp was renamed, the journal is done
        return info

    def _journal(self, key: str, dest: Path) -> Journal:
        ident = f"{self.bucket}\0{self._key(key)}\0{dest}"
        return Journal(self.state_dir / DOWNLOADS, "s3-download", ident)

    def _discard(self, key: str, dest: Path) -> None:
        journal, temp = self._pending.pop((key, dest), (self._journal(key, dest), None))
        if temp is not None:
            remove_quietly(temp)
        journal.clear()

    def stat(self, key: str) -> ObjectInfo:
        return self._head(key)

    def part_size(self, key: str) -> int | None:
        """The first part's size of a multipart object (HEAD with partNumber=1, which AWS,
        SeaweedFS and moto answer with that part's Content-Length); None when the server
        refuses the question or answers it with something that is no part size."""
        try:
            with self._errors(f"stat {key} part 1"):
                r = self.client.head_object(Bucket=self.bucket, Key=self._key(key), PartNumber=1)
        except (TransientError, NotFound):
            raise
        except ProviderError as exc:
            log.info("%s: %s does not say its part size: %s", self.name, key, exc)
            return None
        size = r.get("ContentLength")
        return size if isinstance(size, int) and size > 0 else None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors(f"list {prefix!r}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix) :]
                    yield self._info(key, obj["Size"], obj.get("ETag"), obj.get("LastModified"), {})

    def delete(self, key: str) -> None:
        with self._errors(f"delete {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        from providers.s3.server_copy import CopyJob, copy_object

        src = self._head(src_key)
        metadata = {"sha256": src.hashes["sha256"]} if "sha256" in src.hashes else {}
        job = CopyJob(self._key(src_key), self._key(dst_key), src.size, metadata)
        copy_object(
            self._bucket,
            job,
            create_args=self.config.put_args,
            part_size=max(part_size_for(src.size, self.config.multipart_chunksize), 512 * MIB),
            concurrency=self.config.concurrency,
        )
        info = self._head(dst_key)
        if info.size != src.size or info.hashes.get("sha256") != src.hashes.get("sha256"):
            raise IntegrityError(
                f"copy {src_key} -> {dst_key}: the copy ({info}) differs from {src}"
            )
        return info

    def iter_bytes(
        self,
        key: str,
        *,
        chunk_size: int = STREAM_CHUNK,
        progress: ProgressFn | None = None,
        start: int = 0,
    ) -> Iterator[bytes]:
        """HEAD, then one streamed GET from byte ``start`` (the retry layer resumes with it)."""
        info = self._head(key)
        yield from stream_object(
            self._bucket,
            self._key(key),
            info,
            start=start,
            chunk_size=chunk_size,
            progress=Progress(progress),
        )

    # --- housekeeping ----------------------------------------------------------------------------

    def abort_incomplete_uploads(self) -> int:
        """Abort every multipart upload our journals record for this bucket (call when no upload
        of this agent is running). Returns how many were aborted."""
        return abort_orphans(self._bucket, self.state_dir / "uploads")

    def close(self) -> None:
        """Drop the downloads this provider left for a retry that never came (a process killed
        before close keeps them: its next run resumes)."""
        for key, dest in list(self._pending):
            self._discard(key, dest)

    def __repr__(self) -> str:
        return f"S3Provider({self.name!r}, bucket={self.bucket!r}, prefix={self.prefix!r})"
