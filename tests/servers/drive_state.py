"""The emulator's data: files, upload sessions, fault rules, counters, and the JSON shapes
Drive v2 answers with. Shared by the HTTP handler (drive_handler.py) and the test-facing
DriveEmulator (drive_emulator.py)."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

FOLDER_MIME = "application/vnd.google-apps.folder"


@dataclass
class DriveFile:
    id: str
    title: str
    mime_type: str
    parents: list[str]
    data: bytes = b""
    trashed: bool = False
    version: int = 1
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    properties: dict[str, str] = field(default_factory=dict)

    def __setattr__(self, name: str, value: Any) -> None:
        # Drive computes md5Checksum once per content; hashing 64 MB on every metadata GET would
        # make the emulator, not the client, the bottleneck.
        super().__setattr__(name, value)
        if name == "data":
            super().__setattr__("md5", hashlib.md5(value).hexdigest())
            # like Drive, every new content is a new head revision (metadata edits are not)
            super().__setattr__("head_revision", getattr(self, "head_revision", 0) + 1)

    @property
    def etag(self) -> str:
        return f'"{self.id}/{self.version}"'


@dataclass
class UploadSession:
    metadata: dict[str, Any]
    size: int | None
    target_id: str | None  # None: insert a new file; else update this one
    data: bytearray = field(default_factory=bytearray)
    # Set when the upload finished: like Drive, later requests on the session get the file.
    completed_id: str | None = None


@dataclass
class FaultRule:
    """Answer the next ``times`` requests whose method and path match with a failure.

    kind: "json" (Drive-style error body with ``reason``), "html" (a proxy's HTML page, non-JSON)
    or "reset" (close the socket without answering). ``partial`` (upload chunks only): keep the
    first half of the chunk's bytes before failing, as a server that died mid-chunk would.
    ``times`` and ``skip`` are decremented as requests match (tests read them).
    """

    method: str
    path: str  # regex, searched in the path
    status: int = 503
    times: int = 1
    kind: str = "json"
    reason: str = "backendError"
    partial: bool = False
    skip: int = 0  # let this many matching requests through first (fault in the middle)


class DriveState:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.files: dict[str, DriveFile] = {}
        self.sessions: dict[str, UploadSession] = {}
        self.tokens: set[str] = set()
        self.public_keys: dict[str, Any] = {}  # service-account client_email -> RSA public key
        self.refresh_tokens: set[str] = set()
        self.faults: list[FaultRule] = []
        self.quota_bytes: int | None = None
        self.corrupt_uploads = 0  # flip one byte of the next N finished uploads (bad transit)
        self.counters: dict[str, int] = {}
        self._ids = itertools.count(1)
        self.files["root"] = DriveFile("root", "My Drive", FOLDER_MIME, [])

    def new_id(self) -> str:
        return f"f{next(self._ids):06d}{uuid.uuid4().hex[:10]}"

    def bump(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + n

    def used_bytes(self) -> int:
        return sum(len(f.data) for f in self.files.values())


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def file_resource(f: DriveFile, base_url: str = "") -> dict[str, Any]:
    res: dict[str, Any] = {
        "kind": "drive#file",
        "id": f.id,
        "etag": f.etag,
        "title": f.title,
        "mimeType": f.mime_type,
        "labels": {"trashed": f.trashed},
        "createdDate": _iso(f.created),
        "modifiedDate": _iso(f.modified),
        "parents": [
            {"kind": "drive#parentReference", "id": p, "isRoot": p == "root"} for p in f.parents
        ],
        "properties": [
            {"kind": "drive#property", "key": k, "value": v, "visibility": "PRIVATE"}
            for k, v in sorted(f.properties.items())
        ],
    }
    if f.mime_type != FOLDER_MIME:
        res["fileSize"] = str(len(f.data))
        res["md5Checksum"] = f.md5
        res["headRevisionId"] = f"{f.id}r{f.head_revision}"
        if base_url:  # pydrive2's FetchContent downloads from here
            res["downloadUrl"] = f"{base_url}drive/v2/files/{f.id}?alt=media"
    return res


def error_body(status: int, reason: str, message: str) -> bytes:
    err = {"errors": [{"domain": "global", "reason": reason, "message": message}]}
    return json.dumps({"error": {**err, "code": status, "message": message}}).encode()
