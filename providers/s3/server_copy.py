"""Server-side copy: CopyObject up to 5 GiB, UploadPartCopy in parallel above (S3's limit for a
single copy). The bytes never leave the server; the sha256 metadata travels with them."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from providers.s3.bucket import Bucket
from providers.s3.parts import MAX_PART

COPY_LIMIT = 5 * 1024**3


@dataclass(frozen=True)
class CopyJob:
    """Object ``src_key`` (``size`` bytes) copied to ``dst_key`` with ``metadata``."""

    src_key: str
    dst_key: str
    size: int
    metadata: Mapping[str, str]


def copy_object(
    b: Bucket,
    job: CopyJob,
    *,
    create_args: Mapping[str, str],
    part_size: int,
    concurrency: int,
    copy_limit: int = COPY_LIMIT,
) -> None:
    """``create_args``: the backend's extra arguments of a request that creates an object."""
    client, bucket, errors = b.client, b.name, b.errors
    src_key, dst_key, size, metadata = job.src_key, job.dst_key, job.size, job.metadata
    extra_args = create_args
    source = {"Bucket": bucket, "Key": src_key}
    if size <= copy_limit:
        with errors(f"copy {src_key} -> {dst_key}"):
            client.copy_object(
                Bucket=bucket,
                Key=dst_key,
                CopySource=source,
                MetadataDirective="REPLACE",
                Metadata=dict(metadata),
                **extra_args,
            )
        return
    part_size = min(part_size, MAX_PART)
    with errors(f"copy {src_key} -> {dst_key}: create"):
        upload_id = client.create_multipart_upload(
            Bucket=bucket, Key=dst_key, Metadata=dict(metadata), **extra_args
        )["UploadId"]
    n_parts = -(-size // part_size)

    def copy_part(number: int) -> dict[str, Any]:
        start = (number - 1) * part_size
        end = min(size, start + part_size) - 1
        with errors(f"copy {src_key} -> {dst_key}: part {number}"):
            r = client.upload_part_copy(
                Bucket=bucket,
                Key=dst_key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=source,
                CopySourceRange=f"bytes={start}-{end}",
            )
        return {"PartNumber": number, "ETag": r["CopyPartResult"]["ETag"]}

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            parts = list(pool.map(copy_part, range(1, n_parts + 1)))
        with errors(f"copy {src_key} -> {dst_key}: complete"):
            client.complete_multipart_upload(
                Bucket=bucket, Key=dst_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
    except BaseException:
        # A failed copy leaves no orphaned upload behind (s3transfer registers the same cleanup).
        try:
            with errors("abort copy"):
                client.abort_multipart_upload(Bucket=bucket, Key=dst_key, UploadId=upload_id)
        except Exception:
            pass
        raise
