"""Delta put on S3: the new object is one multipart upload whose parts lying wholly inside
reusable ranges are copied on the server from the previous version (UploadPartCopy), the others
sent from the file.

Parts are a multiple of the range size (at least the configured chunk size and S3's 5 MiB, at
most 10,000 of them), so a part is copied only when every range in it is reusable and its end
lies within the source. Everything else is ``MultipartUpload``: the same journal (a copied part
is journaled like a sent one, only once checked, so a process killed with kill -9 continues the
same upload without sending or copying a finished part again, and even a plain ``put`` of the
same file may adopt it), the same whole-file read for sha256 and each part's checksum, the same
abort on a mismatch.

Never trust, verify: a range the caller calls equal may not be. Each copied part is checked
against the file's bytes without downloading it: the server's CRC32 of the copied part (in a
``crc32`` upload, S3 and SeaweedFS compute it for UploadPartCopy too) and, where a part's ETag is
its md5, that ETag against the md5 read here. A copied part that the server vouches for by
neither (measured: SeaweedFS in an upload without a checksum algorithm gives a copied part an
ETag that is no md5) cannot be checked: the upload is aborted and NotSupported raised, as for a
server without UploadPartCopy (501). After completion the object's size and sha256 metadata are
checked and, where ETags are md5-based, its multipart ETag recomputed from the parts' md5s; an
object that fails is deleted.

The source must still be the object the caller read: every copy carries
``CopySourceIfMatch=<its etag>`` (AWS and SeaweedFS answer 412 for another object:
PreconditionFailed), and because moto ignores that header (measured), the source is also looked at
(HEAD) before the first copy and after the last one, before anything is completed. Either failure
aborts the upload.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from providers.base import BeforeCommitFn, ObjectInfo, ProgressFn, Reuse
from providers.errors import (
    IntegrityError,
    NotFound,
    NotSupported,
    PreconditionFailed,
    ProviderError,
)
from providers.s3.bucket import Bucket
from providers.s3.errors import error_code
from providers.s3.multipart import MultipartUpload, Source
from providers.s3.parts import MAX_PART, part_size_for
from providers.s3.upload_ops import abort_upload
from providers.transfer import MultiHasher, Progress, hash_file

if TYPE_CHECKING:
    from providers.s3.provider import S3Provider

_MD5 = re.compile(r"^[0-9a-f]{32}$")
_NOT_IMPLEMENTED = {"NotImplemented", "XNotImplemented"}


def delta_part_size(size: int, chunksize: int, range_size: int) -> int:
    """The plain put's part size for ``size`` bytes, rounded up to a whole number of ranges."""
    if range_size <= 0:
        raise ValueError(f"range size must be positive, not {range_size}")
    base = part_size_for(size, chunksize)
    return -(-base // range_size) * range_size


def copyable_parts(size: int, part_size: int, reuse: Reuse, source_size: int) -> frozenset[int]:
    """Numbers (from 1) of the parts whose every range is reusable and that end within the
    source."""
    rs = reuse.range_size
    out = set()
    for number in range(1, max(1, -(-size // part_size)) + 1):
        start = (number - 1) * part_size
        end = min(size, start + part_size)
        if start >= end or end > source_size:
            continue
        if all(i in reuse.ranges for i in range(start // rs, (end - 1) // rs + 1)):
            out.add(number)
    return frozenset(out)


def check_source(info: ObjectInfo, reuse: Reuse, what: str) -> None:
    """PreconditionFailed unless ``info`` (a HEAD of the source) is the object ``reuse`` names."""
    theirs, mine = reuse.source_identity, info.identity
    changed = [k for k in theirs.keys() & mine.keys() if theirs[k] != mine[k]]
    if changed or not theirs.get("etag"):
        raise PreconditionFailed(
            f"{what}: {reuse.source_key} is no longer the object the reuse was computed "
            f"against ({dict(theirs)} then, {dict(mine)} now)"
        )


class DeltaUpload(MultipartUpload):
    """A MultipartUpload that copies the parts in ``copy`` from ``source_key`` (pinned by
    ``source_etag``) instead of sending them, checking each copy against the file."""

    def __init__(
        self, bucket: Bucket, key: str, source: Source, journal_dir: Path, *, source_key: str,
        source_etag: str, copy: frozenset[int], etag_is_md5: bool, recheck: Any,
    ) -> None:  # fmt: skip
        super().__init__(bucket, key, source, journal_dir)
        self.source_key, self.source_etag = source_key, source_etag
        self.copy, self.etag_is_md5 = copy, etag_is_md5
        self.recheck = recheck  # called once every part is up: the source still the same?
        self._copied: list[int] = []  # lengths of the parts copied by this call (any thread)

    @property
    def copied(self) -> int:
        return sum(self._copied)

    def wants_md5(self, number: int) -> bool:
        # With CRC32 part checksums every part is vouched for by its CRC32, sent or copied (the
        # server returns a copy's), and CompleteMultipartUpload holds the server to the list:
        # no md5 pass over the file. Otherwise every part's md5 when the final ETag can be
        # recomputed, and a copied part's in any case.
        if self.header is not None and self.header.checksum == "crc32":
            return False
        return self.etag_is_md5 or number in self.copy

    def copied_on_server(self, number: int) -> bool:
        return number in self.copy

    def _put_part(self, number: int, start: int, length: int, value: str) -> int:
        if number not in self.copy:
            return super()._put_part(number, start, length, value)
        self._copy(number, start, length, value)
        return 0

    def _copy(self, number: int, start: int, length: int, value: str) -> None:
        b, header = self.bucket, self.header
        assert header is not None
        what = f"copy part {number} of {self.key} from {self.source_key}"
        try:
            with b.errors(what):
                r = b.client.upload_part_copy(
                    Bucket=b.name, Key=self.key, UploadId=header.upload_id, PartNumber=number,
                    CopySource={"Bucket": b.name, "Key": self.source_key},
                    CopySourceRange=f"bytes={start}-{start + length - 1}",
                    CopySourceIfMatch='"' + self.source_etag.strip('"') + '"',
                )  # fmt: skip
        except NotFound as exc:
            if "NoSuchUpload" in str(exc):
                raise  # our upload was aborted: send_parts restarts it
            raise PreconditionFailed(f"{what}: the source is gone") from exc
        except ProviderError as exc:
            if _not_implemented(exc):
                raise NotSupported(f"{what}: the server has no UploadPartCopy") from exc
            raise
        result = r.get("CopyPartResult") or {}
        etag = str(result.get("ETag") or "")
        self._check_copy(what, number, value, etag, result.get("ChecksumCRC32"), start, length)
        self.etags[number], self.sums[number] = etag, value
        self.journal.add_part(number, etag, header.checksum, value)
        self._copied.append(length)

    def _check_copy(
        self, what: str, number: int, value: str, etag: str, server_crc: str | None,
        start: int, length: int,
    ) -> None:  # fmt: skip
        assert self.header is not None
        checks: list[tuple[str, str, str]] = []  # (name, the server's, ours)
        if self.header.checksum == "crc32" and server_crc:
            checks.append(("CRC32", server_crc, value))
        md5, plain = self.md5s.get(number), etag.strip('"').lower()
        if not checks and md5 is None and self.etag_is_md5:
            md5 = self.md5s[number] = _md5_of(self.source.path, start, length)
        if self.etag_is_md5 and md5 is not None and _MD5.match(plain):
            checks.append(("md5", plain, md5))
        if not checks:
            raise NotSupported(
                f"{what}: the server vouches for the copied bytes by neither a checksum nor an "
                f"md5 ETag ({etag!r}), so the copy cannot be checked"
            )
        for name, theirs, ours in checks:
            if theirs != ours:
                raise IntegrityError(
                    f"{what}: the copied bytes are not the file's ({name} {theirs} on the "
                    f"server, {ours} here): the reused range differs; the upload was aborted"
                )

    def check_source(self, hasher: MultiHasher) -> None:
        super().check_source(hasher)
        self.recheck()

    def expected_etag(self) -> str | None:
        """The multipart ETag S3 gives the completed object (the md5 of its parts' md5s), when
        every part's md5 is known here and the server gave every part an md5 ETag (a server
        that does not is not held to S3's arithmetic for the whole object either)."""
        assert self.header is not None
        n = max(1, -(-self.header.size // self.header.part_size))
        if not self.etag_is_md5 or any(i not in self.md5s for i in range(1, n + 1)):
            return None
        if not all(_MD5.match(self.etags.get(i, "").strip('"').lower()) for i in range(1, n + 1)):
            return None
        joined = b"".join(bytes.fromhex(self.md5s[i]) for i in range(1, n + 1))
        return f"{hashlib.md5(joined).hexdigest()}-{n}"


def _md5_of(path: Path, start: int, length: int) -> str:
    """The md5 of a part read again: a server that returned no CRC32 for a copy (rare)."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        f.seek(start)
        while length > 0 and (chunk := f.read(min(length, 8 << 20))):
            h.update(chunk)
            length -= len(chunk)
    return h.hexdigest()


def _not_implemented(exc: BaseException) -> bool:
    import botocore.exceptions as bex

    cause = exc.__cause__
    if not isinstance(cause, bex.ClientError):
        return False
    code, status = error_code(cause)
    return code in _NOT_IMPLEMENTED or status == 501


def put_reusing(
    provider: S3Provider,
    key: str,
    src_path: Path,
    reuse: Reuse,
    *,
    expected_hashes: Mapping[str, str] | None = None,
    progress: ProgressFn | None = None,
    before_commit: BeforeCommitFn | None = None,
) -> tuple[ObjectInfo, int]:
    """``PutReusingFn`` for ``provider`` (see providers.base)."""
    src, config = Path(src_path), provider.config
    size = os.path.getsize(src)
    what = f"put {key} reusing {reuse.source_key}"
    expected = {k: v for k, v in (expected_hashes or {}).items() if v}
    part_size = delta_part_size(size, config.multipart_chunksize, reuse.range_size)

    def source_head() -> ObjectInfo:
        try:
            info = provider.stat(reuse.source_key)
        except NotFound as exc:
            raise PreconditionFailed(f"{what}: the source is gone") from exc
        check_source(info, reuse, what)
        return info

    copy = copyable_parts(size, part_size, reuse, source_head().size)
    if not copy or part_size > MAX_PART:
        put = provider.put(
            key, src, expected_hashes=expected, progress=progress, before_commit=before_commit
        )
        return put, 0
    sha256 = expected.get("sha256") or hash_file(src, ("sha256",))["sha256"]
    object_key = provider._key(key)
    upload = DeltaUpload(
        provider._bucket, object_key, Source.of(src, sha256, expected),
        provider.state_dir / "uploads", source_key=provider._key(reuse.source_key),
        source_etag=reuse.source_identity["etag"], copy=copy,
        etag_is_md5=config.etag_may_be_md5, recheck=source_head,
    )  # fmt: skip
    try:
        upload.run(
            part_size=part_size,
            checksum=config.part_checksum,
            concurrency=config.concurrency,
            create_args={"Metadata": {"sha256": sha256}, **config.put_args},
            progress=Progress(progress),
            before_commit=before_commit,
        )
    except (PreconditionFailed, IntegrityError, NotSupported):
        # Definitive: nothing of this upload may ever be completed. The caller puts the whole file.
        if upload.header is not None:
            abort_upload(upload.bucket, object_key, upload.header.upload_id)
        upload.journal.clear()
        raise
    info = provider.stat(key)
    wanted = upload.expected_etag()
    problem = None
    if info.size != size or info.hashes.get("sha256") != sha256:
        problem = f"the stored object ({info}) does not match the file"
    elif wanted is not None and info.etag and "-" in info.etag and info.etag != wanted:
        problem = f"its ETag {info.etag} is not {wanted}, recomputed from the file"
    if problem:
        try:
            provider.delete(key)  # a wrong object must not stand under the key
        except ProviderError as exc:
            raise IntegrityError(f"{what}: {problem}; deleting it failed: {exc}") from exc
        raise IntegrityError(f"{what}: {problem}; the object was deleted")
    return info, upload.copied
