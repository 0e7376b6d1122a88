"""The requests around a multipart upload that are not the upload itself: is an upload whose
answer was lost already stored, which parts does the server hold, aborting one of ours or every
one our journals record."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from providers.errors import NotFound, TransientError
from providers.journal import scan
from providers.s3.bucket import Bucket

log = logging.getLogger(__name__)

KIND = "s3-upload"  # the journal kind of providers.s3.multipart's uploads


def stored_object(b: Bucket, key: str, size: int, sha256: str) -> dict[str, Any] | None:
    """HEAD of ``key`` when it holds exactly ``size`` bytes with ``sha256`` in its metadata."""
    try:
        with b.errors("stat after an upload vanished"):
            head = b.client.head_object(Bucket=b.name, Key=key)
    except NotFound:
        return None
    same = head.get("ContentLength") == size and head.get("Metadata", {}).get("sha256") == sha256
    return head if same else None


def list_parts(b: Bucket, key: str, upload_id: str) -> dict[int, set[str]]:
    """Part number -> the ETags (unquoted, lower case) the server lists for it. A set: SeaweedFS
    lists every upload of a part number that was sent twice, and completes with whichever one
    the CompleteMultipartUpload names by ETag (AWS keeps only the last)."""
    parts: dict[int, set[str]] = {}
    with b.errors("list parts"):
        for page in b.client.get_paginator("list_parts").paginate(
            Bucket=b.name, Key=key, UploadId=upload_id
        ):
            for p in page.get("Parts", []):
                parts.setdefault(int(p["PartNumber"]), set()).add(p["ETag"].strip('"').lower())
    return parts


def abort_upload(b: Bucket, key: str, upload_id: str) -> None:
    """Abort an upload of ours; one already gone is fine, a network failure is only logged
    (the next run's journal scan tries again)."""
    try:
        with b.errors("abort multipart upload"):
            b.client.abort_multipart_upload(Bucket=b.name, Key=key, UploadId=upload_id)
    except NotFound:
        pass
    except TransientError as exc:
        log.warning("could not abort upload %s of %s: %s", upload_id, key, exc)


def abort_orphans(b: Bucket, journal_dir: Path) -> int:
    """Abort every upload our journals record for this bucket and drop the journals: used when
    the caller knows no upload is in progress. Journals we cannot read (torn, foreign, of an
    older format) can never be resumed: they are dropped too, but not counted."""
    count = 0
    for journal, raw in scan(journal_dir, KIND):
        if raw is None:
            journal.clear()
            continue
        if raw.get("bucket") != b.name:
            continue
        abort_upload(b, str(raw.get("key")), str(raw.get("upload_id")))
        journal.clear()
        count += 1
    return count
