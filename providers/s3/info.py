"""What an S3 response says about an object, as an ObjectInfo: the hashes it vouches for and
the identity that changes when the object is rewritten."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from providers.base import ObjectInfo

_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")


def rclone_md5(meta: Mapping) -> str | None:
    """rclone stores the whole file's md5 as base64 in ``x-amz-meta-md5chksum`` when it uploads
    in parts (the ETag is then no md5): the hex md5, or None when absent or malformed."""
    value = meta.get("md5chksum")
    if not isinstance(value, str):
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return None
    return digest.hex() if len(digest) == 16 else None


def identity(etag: str | None, version_id: str | None) -> dict[str, str]:
    """A rewrite gets a new ETag (a new version id too in a versioned bucket), even with the
    same bytes' metadata copied over; listings carry the ETag only."""
    out = {"etag": etag} if etag else {}
    if version_id and version_id != "null":
        out["version_id"] = version_id
    return out


def object_info(
    key: str,
    size: int,
    etag: str | None,
    modified: Any,
    meta: Mapping,
    version_id: str | None = None,
    *,
    etag_may_be_md5: bool,
) -> ObjectInfo:
    etag = etag.strip('"') if etag else None
    hashes: dict[str, str] = {}
    if meta.get("sha256"):
        hashes["sha256"] = meta["sha256"]
    if etag and etag_may_be_md5 and _MD5_ETAG.match(etag):
        hashes["md5"] = etag
    elif md5 := rclone_md5(meta):
        hashes["md5"] = md5
    return ObjectInfo(key, size, hashes, modified, etag, identity(etag, version_id))
