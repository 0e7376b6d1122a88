"""The storage contract: what the agent may ask of a remote, stated once.

Keys are ``/``-separated relative names (``dinesh_ai_model_v2024-03-04.pth``,
``.model-safety/catalog.json``); each provider maps them under its own prefix or folder.
Providers know nothing of models, versions or retention.

Every provider has the core operations of ``Provider``. What varies between backends is said in
one place, ``Provider.capabilities`` (modelled on rclone's ``fs.Features``): a few flags plus the
optional operations themselves, None where the backend cannot do them. A caller branches on
``capabilities.copy is None`` and calls ``capabilities.copy(...)``; a wrapper (the retry layer)
builds its own Capabilities from the inner one, wrapping each operation that is there and
leaving out the ones that are not, so what it offers is exactly what the backend offers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

if TYPE_CHECKING:
    from providers.ranges import RangeHashes

# Called with the number of bytes moved since the previous call. May be called from worker threads.
ProgressFn = Callable[[int], None]
# Called by ``put`` once every byte is on the remote and checked, just before the object becomes
# visible under its key (S3: before CompleteMultipartUpload; a local remote: before the rename;
# Drive: before the last chunk). It may block, e.g. until a check of the file running beside the
# upload is done. If it raises, the upload is abandoned, nothing appears under the key, and the
# exception reaches the caller unchanged (never retried). It may run more than once when a put is
# retried after it returned.
BeforeCommitFn = Callable[[], None]

HASH_NAMES = ("sha256", "md5")
STREAM_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    # Only hashes the backend vouches for without a download, e.g. {"sha256": "...", "md5": "..."}.
    hashes: Mapping[str, str] = field(default_factory=dict)
    modified: datetime | None = None
    etag: str | None = None
    # What the backend says about the stored object that changes whenever it is rewritten, even
    # with the same size and metadata (S3: etag, version id; Drive: md5Checksum, headRevisionId;
    # a local remote: size and mtime_ns). Recorded at push; a later difference in any key both
    # sides have means the object was replaced since. Listings may carry fewer keys than stat.
    identity: Mapping[str, str] = field(default_factory=dict)


class CopyFn(Protocol):
    def __call__(self, src_key: str, dst_key: str) -> ObjectInfo:
        """Copy ``src_key`` to ``dst_key`` on the server: the bytes never travel through us."""
        ...


class GetBytesFn(Protocol):
    def __call__(self, key: str) -> tuple[bytes, ObjectInfo]:
        """A small whole object (the remote catalog) and its info; checked against the hashes
        the backend holds (IntegrityError when they differ)."""
        ...


class PutBytesFn(Protocol):
    def __call__(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> ObjectInfo:
        """Write a small whole object. Where ``Capabilities.conditional_write`` holds,
        ``if_none_match=True`` fails with PreconditionFailed when the key exists and
        ``if_match=etag`` fails with PreconditionFailed when the object's etag differs."""
        ...


class IterBytesFn(Protocol):
    def __call__(
        self,
        key: str,
        *,
        chunk_size: int = STREAM_CHUNK,
        progress: ProgressFn | None = None,
        start: int = 0,
    ) -> Iterator[bytes]:
        """Yield the bytes of ``key`` from byte offset ``start`` to the end, in order, in chunks of
        at most ``chunk_size`` bytes (an empty object yields nothing in total). ``start`` is the
        resume offset: the retry layer reopens a stream broken by a transient error at the bytes
        already yielded. Raises NotFound for a missing key and translated provider errors like
        every other call; being a generator, they surface when iteration starts or later. A
        stream that ends early raises TransientError, never a silent short read. Nothing is
        written to disk and memory stays bounded by a few chunks. ``progress`` gets each chunk's
        length as it is yielded. The bytes are not checked against stored hashes: hashing them
        is the caller's job. Close the iterator (or exhaust it) to release the connection."""
        ...


class AbortUploadsFn(Protocol):
    def __call__(self) -> int:
        """Remove what uploads this agent started and cannot resume left behind (S3
        multipart uploads, temp copies on a local remote); returns how many. The caller must know
        no upload of its own is in progress (the agent holds its models-dir lock)."""
        ...


class PartSizeFn(Protocol):
    def __call__(self, key: str) -> int | None:
        """The size of the first part of ``key``, an object uploaded in parts, when the server
        tells it (S3: HEAD with partNumber=1); None when it does not."""
        ...


@dataclass(frozen=True)
class Reuse:
    """For ``put_reusing``: the ranges of the file being put that hold the same bytes, at the
    same offsets, as ``source_key`` on the same remote, which must still be the object whose
    identity (``ObjectInfo.identity``) is ``source_identity``."""

    source_key: str
    source_identity: Mapping[str, str]
    range_size: int  # bytes per range (providers.ranges)
    ranges: frozenset[int]  # indexes of the reusable ranges


class PutReusingFn(Protocol):
    def __call__(
        self,
        key: str,
        src_path: Path,
        reuse: Reuse,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
        before_commit: BeforeCommitFn | None = None,
    ) -> tuple[ObjectInfo, int]:
        """``put``, with the reusable ranges copied on the server from ``reuse.source_key``
        instead of sent (S3: UploadPartCopy; a local remote: copy_file_range). Returns the
        object's info and the bytes copied on the server; ``progress`` counts bytes sent only.
        A provider may copy fewer ranges than offered (a part is copied only if every range in
        it is reusable) but never sends a byte it was not given. The assembled object is checked
        against ``expected_hashes`` and the file, without a download, before it becomes visible
        under ``key``; if the source is no longer the object ``source_identity`` names,
        PreconditionFailed is raised and nothing is visible (the caller sends the whole file).
        Resumes after kill -9 like ``put``, neither sending nor copying finished parts again.
        Raises NotSupported when the server turns out to lack the copy it needs."""
        ...


OPTIONAL_OPERATIONS = (
    "copy",
    "get_bytes",
    "put_bytes",
    "iter_bytes",
    "abort_incomplete_uploads",
    "part_size",
    "put_reusing",
)


@dataclass(frozen=True)
class Capabilities:
    """What a remote can do beyond the core operations: flags, and the optional operations
    themselves (None: not available)."""

    hashes: frozenset[str]  # hash names `stat` returns without downloading
    conditional_write: bool = False  # `put_bytes` honours if_match / if_none_match
    # An interrupted put or get continues on a later call, even in a new process after kill -9,
    # without moving again what already arrived (the conformance suite holds backends to it).
    resumable: bool = False
    copy: CopyFn | None = None
    get_bytes: GetBytesFn | None = None
    put_bytes: PutBytesFn | None = None
    iter_bytes: IterBytesFn | None = None
    abort_incomplete_uploads: AbortUploadsFn | None = None
    # Present where a multipart ETag is md5-based (``<md5 of the parts' md5s>-N``, S3 without
    # KMS keys), so that it can be recomputed from the bytes with the right part size.
    part_size: PartSizeFn | None = None
    # A delta put: unchanged ranges copied on the server from an object already there.
    put_reusing: PutReusingFn | None = None

    @property
    def server_side_copy(self) -> bool:
        return self.copy is not None

    @property
    def small_objects(self) -> bool:
        return self.get_bytes is not None and self.put_bytes is not None

    def narrow(self, **changes: Any) -> Capabilities:
        """A copy with some flags changed or operations removed (``narrow(copy=None)``)."""
        return dataclasses.replace(self, **changes)

    def wrap(
        self, wrapper: Callable[[str, Callable[..., Any]], Callable[..., Any]]
    ) -> Capabilities:
        """A copy whose every present operation is ``wrapper(name, operation)``; absent ones
        stay absent."""
        ops = {n: getattr(self, n) for n in OPTIONAL_OPERATIONS}
        return self.narrow(**{n: wrapper(n, op) for n, op in ops.items() if op is not None})


@runtime_checkable
class Provider(Protocol):
    """The core operations every backend has, as the agent sees them (through the retry layer)."""

    name: str
    capabilities: Capabilities

    def put(
        self,
        key: str,
        src_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
        before_commit: BeforeCommitFn | None = None,
    ) -> ObjectInfo:
        """Upload ``src_path`` to ``key``. Verifies size and the hashes in ``expected_hashes``
        (computed while reading when absent); on mismatch raises IntegrityError and leaves no
        object under ``key``. ``before_commit`` (see BeforeCommitFn) runs after that check and
        before the object becomes visible. An interrupted upload resumes on a later call where
        the backend keeps a journal."""
        ...

    def get(
        self,
        key: str,
        dest_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
        expected_ranges: RangeHashes | None = None,
    ) -> ObjectInfo:
        """Download ``key`` atomically to ``dest_path`` (temp file in the same directory, fsync,
        rename). Resumes an interrupted transfer with Range requests. Checks size and every hash
        known (expected or held by the backend); on mismatch raises IntegrityError and leaves no
        file at ``dest_path``. ``expected_ranges``: the range hashes recorded with the expected
        sha256 (providers.ranges); a backend may check each range against them as it arrives
        instead of hashing the whole file (S3 does), and then stops at the first bad range."""
        ...

    def stat(self, key: str) -> ObjectInfo: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""
        ...

    def close(self) -> None: ...


class Backend(Provider, Protocol):
    """A provider as ``open_provider`` finds it in its registry: constructed from one entry of
    the config's ``remotes:`` (the agent's keys removed)."""

    @classmethod
    def from_settings(
        cls, name: str, settings: Mapping[str, Any], *, state_dir: Path | None = None
    ) -> Self:
        """Check ``settings`` (ConfigError naming the remote on an unknown or bad key) and build
        the provider; no request is sent. ``state_dir`` is where it may keep resume journals
        (``~/.cache/model-safety/<type>-<name>`` when None)."""
        ...
