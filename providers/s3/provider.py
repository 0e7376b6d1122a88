"""The ``s3`` backend: AWS S3 or any S3-compatible server (``endpoint_url``, path-style).

Settings (a ``remotes:`` entry): ``bucket`` (required), ``prefix``, ``region``, ``endpoint_url``,
``profile`` (a profile of the AWS shared credentials/config files; otherwise boto3's usual chain:
environment, files, instance role), ``aws_access_key_id`` / ``aws_secret_access_key`` /
``aws_session_token`` (write them as ``${ENV_VAR}`` references, never literally),
``storage_class``, ``sse`` (``AES256`` or ``aws:kms``),
``sse_kms_key_id``, and transfer settings with s3transfer's names: ``multipart_threshold``,
``multipart_chunksize`` (both default 8 MiB; sizes may be written "8MiB"),
``max_request_concurrency`` (default 10); ``connect_timeout`` / ``read_timeout`` in seconds.

``part_checksum`` (``crc32`` or ``md5``, default ``crc32``): the checksum sent with every uploaded
part and single-part object, which the server verifies before it stores the bytes (a corrupted
request is rejected, never stored). ``crc32`` is sent as ``x-amz-checksum-crc32`` and costs far
less CPU; choose ``md5`` (sent as ``Content-MD5``) for an older S3-compatible server that does
not support the ``x-amz-checksum-*`` headers. Changing it does not break a resumed upload: an
interrupted upload made with the other checksum is aborted and started again.

Objects carry their whole-file sha256 as user metadata (``x-amz-meta-sha256``), which ``stat``
returns as ``hashes["sha256"]``; a single-part, non-KMS object also reports its ETag as md5.
A multipart ETag is never compared with an md5. botocore's own retries are off (one attempt):
retrying is the job of providers.retry, and a multipart upload resumes from its journal.
A download resumes too, even in a new process after kill -9: finished ranges are journaled under
``state_dir/downloads`` (providers.download_journal) next to a deterministic temp file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self

from providers.base import Capabilities, ObjectInfo, ProgressFn
from providers.config import check_backend, parse_size
from providers.download_journal import DownloadJournal, resume_or_start
from providers.errors import IntegrityError, NotFound, PreconditionFailed, TransientError
from providers.s3.download import Partial, download_ranges, remove_quietly, stream_object
from providers.s3.errors import s3_errors
from providers.s3.multipart import (
    PART_CHECKSUMS,
    abort_orphans,
    checksum_args,
    crc32_b64,
    part_size_for,
    upload_multipart,
)
from providers.transfer import MultiHasher, Progress, check_key, temp_path_for, verify

log = logging.getLogger(__name__)

MIB = 1024**2
SINGLE_PUT_LIMIT = 64 * MIB  # above this, multipart even if multipart_threshold is larger
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")


class S3Provider:
    def __init__(
        self,
        name: str,
        client: Any,
        *,
        bucket: str,
        prefix: str = "",
        multipart_threshold: int = 8 * MIB,
        multipart_chunksize: int = 8 * MIB,
        max_request_concurrency: int = 10,
        extra_put_args: Mapping[str, str] | None = None,
        part_checksum: str = "crc32",
        state_dir: Path,
    ) -> None:
        if part_checksum not in PART_CHECKSUMS:
            raise ValueError(
                f"part_checksum must be one of {PART_CHECKSUMS}, not {part_checksum!r}"
            )
        self.name = name
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.multipart_threshold = min(multipart_threshold, SINGLE_PUT_LIMIT)
        self.multipart_chunksize = multipart_chunksize
        self.concurrency = max(1, max_request_concurrency)
        self.extra_put_args = dict(extra_put_args or {})
        self.part_checksum = part_checksum
        self.state_dir = state_dir
        # Downloads whose temp file and journal are kept for the next attempt (see get).
        self._pending: dict[tuple[str, Path], tuple[DownloadJournal, Path]] = {}
        # A plain (single-part) ETag is the md5 of the bytes, except under SSE-KMS / SSE-C.
        sse = self.extra_put_args.get("ServerSideEncryption")
        self._etag_may_be_md5 = sse in (None, "AES256")
        self.capabilities = Capabilities(
            hashes=frozenset({"sha256"}),
            conditional_write=True,
            copy=self.copy,
            get_bytes=self.get_bytes,
            put_bytes=self.put_bytes,
            iter_bytes=self.iter_bytes,
            abort_incomplete_uploads=self.abort_incomplete_uploads,
        )

    @classmethod
    def from_settings(
        cls, name: str, settings: Mapping[str, Any], *, state_dir: Path | None = None
    ) -> Self:
        check_backend(name, "s3", settings)
        part_checksum = str(settings.get("part_checksum") or "crc32").lower()
        if part_checksum not in PART_CHECKSUMS:
            from providers.errors import ConfigError

            raise ConfigError(
                f"remote {name!r}: part_checksum must be {' or '.join(PART_CHECKSUMS)}, "
                f"not {settings['part_checksum']!r}"
            )
        _import_botocore_without_pyopenssl()
        import boto3  # lazily: only an opened s3 remote needs boto3
        import botocore.config
        import botocore.exceptions

        concurrency = int(settings.get("max_request_concurrency", 10))
        endpoint = settings.get("endpoint_url") or None
        config = botocore.config.Config(
            region_name=settings.get("region"),
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=concurrency + 2,
            connect_timeout=float(settings.get("connect_timeout", 10)),
            read_timeout=float(settings.get("read_timeout", 60)),
            # S3-compatible servers are addressed by path; AWS picks virtual hosts itself.
            # payload_signing_enabled=False: over plain http botocore would otherwise sha256 every
            # request body for the signature (~0.35 s CPU per 400 MB), which protects nothing our
            # server-verified per-part checksum does not (over https it already sends
            # UNSIGNED-PAYLOAD with a checksum).
            s3={
                "addressing_style": "path" if endpoint else "auto",
                "payload_signing_enabled": False,
            },
            # We send our own checksum per part; botocore's default extra CRC32 would cost a
            # second pass over every byte for no added protection.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            session = boto3.session.Session(
                profile_name=settings.get("profile"),
                region_name=settings.get("region"),
                aws_access_key_id=settings.get("aws_access_key_id") or None,
                aws_secret_access_key=settings.get("aws_secret_access_key") or None,
                aws_session_token=settings.get("aws_session_token") or None,
            )
            client = session.client("s3", endpoint_url=endpoint, config=config)
        except botocore.exceptions.ProfileNotFound as exc:
            from providers.errors import ConfigError

            raise ConfigError(f"remote {name!r}: {exc}; fix profile:") from exc
        extra: dict[str, str] = {}
        if settings.get("storage_class"):
            extra["StorageClass"] = str(settings["storage_class"])
        if settings.get("sse"):
            extra["ServerSideEncryption"] = str(settings["sse"])
        if settings.get("sse_kms_key_id"):
            extra["SSEKMSKeyId"] = str(settings["sse_kms_key_id"])
        default_state = Path.home() / ".cache" / "model-safety" / f"s3-{name}"
        return cls(
            name,
            client,
            bucket=str(settings["bucket"]),
            prefix=str(settings.get("prefix") or ""),
            multipart_threshold=parse_size(settings.get("multipart_threshold", 8 * MIB), name),
            multipart_chunksize=parse_size(settings.get("multipart_chunksize", 8 * MIB), name),
            max_request_concurrency=concurrency,
            extra_put_args=extra,
            part_checksum=part_checksum,
            state_dir=Path(state_dir) if state_dir else default_state,
        )

    # --- helpers -----------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _errors(self, what: str) -> Any:
        return s3_errors(self.name, self.bucket, what)

    def _info(
        self, key: str, size: int, etag: str | None, modified: Any, meta: Mapping
    ) -> ObjectInfo:
        etag = etag.strip('"') if etag else None
        hashes: dict[str, str] = {}
        if meta.get("sha256"):
            hashes["sha256"] = meta["sha256"]
        if etag and self._etag_may_be_md5 and _MD5_ETAG.match(etag):
            hashes["md5"] = etag
        return ObjectInfo(key, size, hashes, modified, etag)

    def _head(self, key: str) -> ObjectInfo:
        with self._errors(f"stat {key}"):
            r = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        return self._info(
            key, r["ContentLength"], r.get("ETag"), r.get("LastModified"), r.get("Metadata", {})
        )

    # --- Provider ----------------------------------------------------------------------------

    def put(
        self,
        key: str,
        src_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
    ) -> ObjectInfo:
        src = Path(src_path)
        object_key = self._key(key)
        expected = {k: v for k, v in (expected_hashes or {}).items() if v}
        report = Progress(progress)
        size = os.path.getsize(src)
        if size <= self.multipart_threshold:
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
            self._put_object(key, data, hashes)
            report(len(data))
        else:
            # The sha256 goes into the metadata at create time, so it must be known up front:
            # from the caller, or from one extra read pass. It is re-checked against the bytes
            # actually sent before the upload is completed.
            sha256 = expected.get("sha256") or _sha256_file(src)
            upload_multipart(
                self.client,
                bucket=self.bucket,
                key=object_key,
                src=src,
                sha256=sha256,
                part_size=part_size_for(size, self.multipart_chunksize),
                concurrency=self.concurrency,
                journal_dir=self.state_dir / "uploads",
                create_args={"Metadata": {"sha256": sha256}, **self.extra_put_args},
                progress=report,
                errors=self._errors,
                verify_hashes=expected,
                checksum=self.part_checksum,
            )
            hashes = {"sha256": sha256}
        info = self._head(key)
        if info.size != size or info.hashes.get("sha256") != hashes["sha256"]:
            raise IntegrityError(f"put {key}: the stored object ({info}) does not match the file")
        return info

    def _put_hashes(self, expected: Mapping[str, str]) -> tuple[str, ...]:
        """What a single-part put hashes: sha256 always, md5 only if it is sent or expected."""
        return (
            ("sha256", "md5") if self.part_checksum == "md5" or "md5" in expected else ("sha256",)
        )

    def _put_object(self, key: str, data: bytes, hashes: Mapping[str, str], **cond: str) -> dict:
        if self.part_checksum == "crc32":
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
                **self.extra_put_args,
                **cond,
            )

    def get(
        self,
        key: str,
        dest_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
    ) -> ObjectInfo:
        dest = Path(dest_path)
        info = self._head(key)
        expected = {k: v for k, v in (expected_hashes or {}).items() if v}
        what = f"get {key}"
        # A stored hash that contradicts the caller's expectation fails before any download.
        verify(what, expected=expected, actual=info.hashes)
        wanted = {**info.hashes, **expected}
        names = {"sha256"} | {n for n in wanted if n in ("sha256", "md5")}
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest = Path(os.path.abspath(dest))
        # The temp name and the journal are deterministic, so a later attempt -- the retry
        # layer's, or a new process after kill -9 -- finds them and fetches only missing ranges.
        tag = hashlib.sha256(f"{key}\0{info.etag}".encode()).hexdigest()[:16]
        temp = temp_path_for(dest, tag)
        rsize = part_size_for(info.size, self.multipart_chunksize)
        n_ranges = -(-info.size // rsize)
        header = {"bucket": self.bucket, "key": self._key(key), "dest": str(dest),
                  "temp": str(temp), "etag": info.etag or "", "size": info.size,
                  "range_size": rsize}  # fmt: skip
        journal = self._journal(key, dest)

        def temp_ok(done: list[int]) -> bool:
            sized = temp.is_file() and temp.stat().st_size == info.size
            return sized and all(0 <= i < n_ranges for i in done)

        done = resume_or_start(journal, header, dest, temp_ok)
        partial = Partial(temp, info.etag or "", info.size, rsize, set(done))
        self._pending[(key, dest)] = journal, temp
        try:
            download_ranges(
                self.client,
                bucket=self.bucket,
                key=self._key(key),
                dest=dest,
                partial=partial,
                concurrency=self.concurrency,
                hash_names=names,
                expected=wanted,
                progress=Progress(progress),
                errors=self._errors,
                what=what,
                on_done=journal.mark,
            )
        except TransientError:
            journal.close()  # temp and journal stay: the next attempt resumes from them
            raise
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
            journal.close()  # interrupted (Ctrl-C, SIGTERM): the next run resumes
            raise
        self._discard(key, dest)  # committed: the temp was renamed, the journal is done
        return info

    def _journal(self, key: str, dest: Path) -> DownloadJournal:
        ident = f"{self.bucket}\0{self._key(key)}\0{dest}"
        return DownloadJournal(self.state_dir / "downloads", ident)

    def _discard(self, key: str, dest: Path) -> None:
        journal, temp = self._pending.pop((key, dest), (self._journal(key, dest), None))
        if temp is not None:
            remove_quietly(temp)
        journal.clear()

    def stat(self, key: str) -> ObjectInfo:
        return self._head(key)

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
        from providers.s3.server_copy import copy_object

        src = self._head(src_key)
        copy_object(
            self.client,
            bucket=self.bucket,
            src_key=self._key(src_key),
            dst_key=self._key(dst_key),
            size=src.size,
            metadata={"sha256": src.hashes["sha256"]} if "sha256" in src.hashes else {},
            extra_args=self.extra_put_args,
            part_size=max(part_size_for(src.size, self.multipart_chunksize), 512 * MIB),
            concurrency=self.concurrency,
            errors=self._errors,
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
        chunk_size: int = 8 * MIB,
        progress: ProgressFn | None = None,
        start: int = 0,
    ) -> Iterator[bytes]:
        """Streamer: HEAD, then one streamed GET from byte ``start`` (the retry layer resumes)."""
        info = self._head(key)
        yield from stream_object(
            self.client,
            bucket=self.bucket,
            key=self._key(key),
            etag=info.etag or "",
            size=info.size,
            start=start,
            chunk_size=chunk_size,
            progress=Progress(progress),
            errors=self._errors,
            what=f"read {key}",
        )

    # --- SmallObjects --------------------------------------------------------------------------

    def get_bytes(self, key: str) -> tuple[bytes, ObjectInfo]:
        with self._errors(f"get {key}"):
            r = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            data = r["Body"].read()
        info = self._info(
            key, len(data), r.get("ETag"), r.get("LastModified"), r.get("Metadata", {})
        )
        verify(f"get {key}", expected_size=r["ContentLength"], actual_size=len(data))
        if "sha256" in info.hashes:
            verify(
                f"get {key}",
                expected=info.hashes,
                actual={"sha256": hashlib.sha256(data).hexdigest()},
            )
        return data, info

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> ObjectInfo:
        hasher = MultiHasher(self._put_hashes({}))
        hasher.update(data)
        cond: dict[str, str] = {}
        if if_none_match:
            cond["IfNoneMatch"] = "*"
        if if_match is not None:
            cond["IfMatch"] = '"' + if_match.strip('"') + '"'
        try:
            r = self._put_object(key, data, hasher.hexdigests(), **cond)
        except NotFound as exc:
            # AWS and moto answer If-Match on a missing key with 404, SeaweedFS with 412: both
            # mean the object is not the one the caller read.
            if if_match is None:
                raise
            raise PreconditionFailed(f"put {key}: {key} no longer exists") from exc
        etag = (r.get("ETag") or "").strip('"') or None
        return ObjectInfo(key, len(data), {"sha256": hasher.hexdigests()["sha256"]}, None, etag)

    # --- housekeeping ----------------------------------------------------------------------------

    def abort_incomplete_uploads(self) -> int:
        """Abort every multipart upload our journals record for this bucket (call when no upload
        of this agent is running). Returns how many were aborted."""
        return abort_orphans(self.client, self.state_dir / "uploads", self.bucket, self._errors)

    def close(self) -> None:
        """Drop the downloads this provider left for a retry that never came (a process killed
        before close keeps them: its next run resumes)."""
        for key, dest in list(self._pending):
            self._discard(key, dest)

    def __repr__(self) -> str:
        return f"S3Provider({self.name!r}, bucket={self.bucket!r}, prefix={self.prefix!r})"


def _import_botocore_without_pyopenssl() -> None:
    """Import botocore.httpsession without urllib3.contrib.pyopenssl: botocore imports it only to
    get back the standard library's ``ssl.SSLContext`` (its fallback, urllib3.util.ssl_, gives
    the same class), and where pyOpenSSL is installed (pydrive2 brings it) that import loads
    pyOpenSSL and cryptography: ~30 ms of the start-up of every command that opens an s3 remote.
    The block is lifted at once, so anything else may still import the module."""
    name = "urllib3.contrib.pyopenssl"
    if "botocore.httpsession" in sys.modules or name in sys.modules:
        return
    sys.modules[name] = None  # type: ignore[assignment]  # makes `import` raise ImportError
    try:
        import botocore.httpsession  # noqa: F401
    finally:
        if sys.modules.get(name, 0) is None:
            del sys.modules[name]


def _sha256_file(path: Path) -> str:
    from providers.transfer import hash_file

    return hash_file(path, ("sha256",))["sha256"]
