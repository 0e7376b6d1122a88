"""The storage interface every backend implements (see DESIGN.md §3).

Keys are ``/``-separated relative names (``dinesh_ai_model_v2024-03-04.pth``,
``.model-safety/catalog.json``); each provider maps them under its own prefix or folder.
Providers know nothing of models, versions or retention.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

# Called with the number of bytes moved since the previous call. May be called from worker threads.
ProgressFn = Callable[[int], None]

HASH_NAMES = ("sha256", "md5")


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    # Only hashes the backend vouches for without a download, e.g. {"sha256": "...", "md5": "..."}.
    hashes: Mapping[str, str] = field(default_factory=dict)
    modified: datetime | None = None
    etag: str | None = None


@dataclass(frozen=True)
class Capabilities:
    hashes: frozenset[str]  # hash names `stat` returns without downloading
    server_side_copy: bool
    multipart: bool
    resumable: bool  # an interrupted `put` resumes on a later call
    conditional_write: bool  # `put_bytes` honours if_match / if_none_match
    max_connections: int = 1


@runtime_checkable
class Provider(Protocol):
    name: str
    capabilities: Capabilities

    def put(
        self,
        key: str,
        src_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
    ) -> ObjectInfo:
        """Upload ``src_path`` to ``key``. Verifies size and the hashes in ``expected_hashes``
        (computed while reading when absent); on mismatch raises IntegrityError and leaves no
        object under ``key``."""
        ...

    def get(
        self,
        key: str,
        dest_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
    ) -> ObjectInfo:
        """Download ``key`` atomically to ``dest_path`` (temp file in the same directory, fsync,
        rename). Resumes an interrupted transfer with Range requests. Checks size and every hash
        known (expected or held by the backend); on mismatch raises IntegrityError and leaves no
        file at ``dest_path``."""
        ...

    def stat(self, key: str) -> ObjectInfo: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Copier(Protocol):
    """Backends whose ``capabilities.server_side_copy`` is true."""

    def copy(self, src_key: str, dst_key: str) -> ObjectInfo: ...


@runtime_checkable
class SmallObjects(Protocol):
    """Small whole objects (the remote catalog), with conditional writes where declared.

    ``put_bytes(..., if_none_match=True)`` fails with PreconditionFailed when the key exists;
    ``if_match=etag`` fails with PreconditionFailed when the object's etag differs.
    """

    def get_bytes(self, key: str) -> tuple[bytes, ObjectInfo]: ...

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> ObjectInfo: ...


@runtime_checkable
class Streamer(Protocol):
    """Backends that can read an object as a stream, without a temporary file (``verify --deep``
    re-hashes remote objects this way)."""

    def iter_bytes(
        self,
        key: str,
        *,
        chunk_size: int = 8 * 1024 * 1024,
        progress: ProgressFn | None = None,
    ) -> Iterator[bytes]:
        """Yield the bytes of ``key`` in order, in chunks of at most ``chunk_size`` bytes (an
        empty object yields nothing in total). Raises NotFound for a missing key and translated
        provider errors like every other call; being a generator, they surface when iteration
        starts or later. A stream that ends early raises TransientError, never a silent short
        read. Nothing is written to disk and memory stays bounded by a few chunks. ``progress``
        gets each chunk's length as it is yielded. The bytes are not checked against stored
        hashes: hashing them is the caller's job. Close the iterator (or exhaust it) to release
        the connection.

        Our backends also take a keyword ``start: int = 0`` (begin at that byte offset), which
        RetryingProvider uses to resume a stream broken by a transient error."""
        ...


@runtime_checkable
class UploadJanitor(Protocol):
    """Backends that can leave incomplete uploads behind (S3 multipart). The caller must know no
    upload of its own is in progress (the agent holds its models-dir lock)."""

    def abort_incomplete_uploads(self) -> int:
        """Abort the uploads this agent started and can no longer resume; returns how many."""
        ...
