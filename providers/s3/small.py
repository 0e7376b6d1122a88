"""The small-object operations of the ``s3`` backend (the remote catalog, markers): one whole
object per request, checked against the sha256 in its metadata."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from providers.base import ObjectInfo
from providers.errors import NotFound, PreconditionFailed
from providers.s3.info import identity
from providers.transfer import MultiHasher, verify

if TYPE_CHECKING:
    from providers.s3.provider import S3Provider


def get_bytes(provider: S3Provider, key: str) -> tuple[bytes, ObjectInfo]:
    with provider._errors(f"get {key}"):
        r = provider.client.get_object(Bucket=provider.bucket, Key=provider._key(key))
        data = r["Body"].read()
    info = provider._info(
        key,
        len(data),
        r.get("ETag"),
        r.get("LastModified"),
        r.get("Metadata", {}),
        r.get("VersionId"),
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
    provider: S3Provider,
    key: str,
    data: bytes,
    *,
    if_match: str | None = None,
    if_none_match: bool = False,
) -> ObjectInfo:
    hasher = MultiHasher(provider._put_hashes({}))
    hasher.update(data)
    cond: dict[str, str] = {}
    if if_none_match:
        cond["IfNoneMatch"] = "*"
    if if_match is not None:
        cond["IfMatch"] = '"' + if_match.strip('"') + '"'
    try:
        r = provider._put_object(key, data, hasher.hexdigests(), **cond)
    except NotFound as exc:
        # AWS and moto answer If-Match on a missing key with 404, SeaweedFS with 412: both
        # mean the object is not the one the caller read.
        if if_match is None:
            raise
        raise PreconditionFailed(f"put {key}: {key} no longer exists") from exc
    etag = (r.get("ETag") or "").strip('"') or None
    sha = hasher.hexdigests()["sha256"]
    return ObjectInfo(
        key, len(data), {"sha256": sha}, None, etag, identity(etag, r.get("VersionId"))
    )
