"""The ``local`` backend: a directory on another disk or a NAS mount (``path:``).

Objects are plain files under the root, named by their key, so a human can browse the mirror.
Hashes (sha256, md5) are computed while copying and kept in a sidecar under ``.ms-hashes/``,
valid only while the file's size and mtime match; otherwise they are recomputed. Copies are real
copies, never hard links: a hard link would share the bytes with the source and defeat a backup.
The one exception is ``put_reusing`` (providers/local_delta.py) on btrfs or xfs: its reused ranges
are reflinks, blocks shared copy-on-write with the previous version, so a rewrite of either never
reaches the other but a damaged disk block is damaged in both.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from filelock import FileLock

from providers.base import BeforeCommitFn, Capabilities, ObjectInfo, ProgressFn, Reuse
from providers.config import check_backend
from providers.errors import (
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ProviderError,
    QuotaExceeded,
)
from providers.local_delta import assemble
from providers.ranges import RangeHashes
from providers.transfer import CHUNK, MultiHasher, Progress, atomic_write, check_key, verify

META_DIR = ".ms-hashes"  # sidecars and lock files; never listed, never a valid key
# providers.transfer.temp_path_for names (uuid4 hex), and put_reusing's journals beside its temp
# files (providers.local_delta); STALE_TEMP_S: idle that long, it is a leftover
_TEMP_RE = re.compile(r"\..+\.[0-9a-f]{32}(\.jsonl)?\.incomplete")
STALE_TEMP_S = 600
HASHES = ("sha256", "md5")


class LocalProvider:
    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self.capabilities = Capabilities(
            hashes=frozenset(HASHES),
            conditional_write=True,
            copy=self.copy,
            get_bytes=self.get_bytes,
            put_bytes=self.put_bytes,
            iter_bytes=self.iter_bytes,
            abort_incomplete_uploads=self.abort_incomplete_uploads,
            put_reusing=self.put_reusing,
        )

    @classmethod
    def from_settings(
        cls, name: str, settings: Mapping[str, Any], *, state_dir: Path | None = None
    ) -> Self:
        check_backend(name, "local", settings)
        root = Path(os.path.expanduser(str(settings["path"])))
        # Only the last level is created: an unmounted NAS must not silently become a directory
        # on the local disk.
        if not root.parent.is_dir():
            raise NotFound(f"remote {name!r}: {root.parent} does not exist: mount it or fix path:")
        root.mkdir(exist_ok=True)
        return cls(name, root)

    # --- paths ---------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        check_key(key)
        if key.split("/", 1)[0] == META_DIR:
            raise ValueError(f"invalid key {key!r}: {META_DIR}/ is reserved")
        return self.root.joinpath(*key.split("/"))

    def _meta(self, key: str) -> Path:
        path = self.root.joinpath(META_DIR, *key.split("/"))
        return path.with_name(path.name + ".json")

    # --- hashes --------------------------------------------------------------------------

    def _hashes(self, key: str, st: os.stat_result) -> dict[str, str]:
        try:
            meta = json.loads(self._meta(key).read_text())
            if meta["size"] == st.st_size and meta["mtime_ns"] == st.st_mtime_ns:
                return {n: meta[n] for n in HASHES}
        except (OSError, ValueError, KeyError):
            pass
        hasher = MultiHasher(HASHES)
        with open(self._path(key), "rb") as f:
            while chunk := f.read(CHUNK):
                hasher.update(chunk)
        hashes = hasher.hexdigests()
        self._write_meta(key, hashes)
        return hashes

    def _write_meta(self, key: str, hashes: Mapping[str, str]) -> None:
        st = self._path(key).stat()
        meta = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, **hashes}
        with contextlib.suppress(OSError), atomic_write(self._meta(key)) as f:
            f.write(json.dumps(meta).encode())

    def _info(self, key: str, st: os.stat_result, hashes: Mapping[str, str]) -> ObjectInfo:
        modified = datetime.fromtimestamp(st.st_mtime, UTC)
        return ObjectInfo(key, st.st_size, dict(hashes), modified, hashes["sha256"], _identity(st))

    # --- copying ---------------------------------------------------------------------------

    def _copy_in(
        self,
        what: str,
        src: Path,
        dest: Path,
        expected_hashes: Mapping[str, str] | None,
        progress: ProgressFn | None,
        expected_size: int | None = None,
        *,
        to_local: bool = False,
        before_commit: BeforeCommitFn | None = None,
    ) -> tuple[dict[str, str], int]:
        """Copy ``src`` to ``dest`` atomically, hashing on the way; verify, then
        ``before_commit``, before the rename. ``to_local``: ``dest`` is the caller's disk (a get),
        not the remote's."""
        report = Progress(progress)
        hasher = MultiHasher(HASHES)
        size = 0
        with _translate(what, to_local=dest if to_local else None), open(src, "rb") as fin:
            if expected_size is None:
                expected_size = os.fstat(fin.fileno()).st_size
            with atomic_write(dest) as fout:
                while chunk := fin.read(CHUNK):
                    hasher.update(chunk)
                    fout.write(chunk)
                    size += len(chunk)
                    report(len(chunk))
                hashes = hasher.hexdigests()
                verify(
                    what,
                    expected_size=expected_size,
                    actual_size=size,
                    expected=expected_hashes,
                    actual=hashes,
                )
                if before_commit is not None:
                    before_commit()  # raising leaves atomic_write, which removes the temp file
        return hashes, size

    # --- Provider --------------------------------------------------------------------------

    def put(
        self,
        key: str,
        src_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
        before_commit: BeforeCommitFn | None = None,
    ) -> ObjectInfo:
        dest = self._path(key)
        hashes, _ = self._copy_in(
            f"put {key}",
            Path(src_path),
            dest,
            expected_hashes,
            progress,
            before_commit=before_commit,
        )
        self._write_meta(key, hashes)
        return self._info(key, dest.stat(), hashes)

    def get(
        self,
        key: str,
        dest_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
        expected_ranges: RangeHashes | None = None,  # not used: the whole file is hashed
    ) -> ObjectInfo:
        info = self.stat(key)
        wanted = {**info.hashes, **(expected_hashes or {})}
        # Compare against both: the stored hash proves the remote copy, the expected one proves
        # it is the version the caller asked for.
        verify(f"get {key}", expected=expected_hashes, actual=info.hashes)
        self._copy_in(
            f"get {key}",
            self._path(key),
            Path(dest_path),
            wanted,
            progress,
            info.size,
            to_local=True,
        )
        return info

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        with _translate(f"stat {key}"):
            st = path.stat()
            if not path.is_file():
                raise NotFound(f"{self.name}: {key} is not a file")
            return self._info(key, st, self._hashes(key, st))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            base = "" if rel == "." else rel + "/"
            if not base:
                dirnames[:] = [d for d in dirnames if d != META_DIR]
            # Prune directories that cannot hold a key with this prefix.
            dirnames[:] = sorted(
                d
                for d in dirnames
                if (base + d + "/").startswith(prefix) or prefix.startswith(base + d + "/")
            )
            for fn in sorted(filenames):
                key = base + fn
                if fn.endswith(".incomplete") or not key.startswith(prefix):
                    continue
                with contextlib.suppress(FileNotFoundError):  # deleted while listing
                    st = os.stat(os.path.join(dirpath, fn))
                    modified = datetime.fromtimestamp(st.st_mtime, UTC)
                    yield ObjectInfo(key, st.st_size, {}, modified, identity=_identity(st))

    def delete(self, key: str) -> None:
        with _translate(f"delete {key}"):
            for path in (self._path(key), self._meta(key)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        info = self.stat(src_key)
        dest = self._path(dst_key)
        what = f"copy {src_key} -> {dst_key}"
        hashes, _ = self._copy_in(what, self._path(src_key), dest, info.hashes, None, info.size)
        self._write_meta(dst_key, hashes)
        return self._info(dst_key, dest.stat(), hashes)

    def put_reusing(
        self,
        key: str,
        src_path: Path,
        reuse: Reuse,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
        before_commit: BeforeCommitFn | None = None,
    ) -> tuple[ObjectInfo, int]:
        """``put`` with the ranges ``reuse`` names copied from its source on this remote
        (providers.local_delta); returns the info and the bytes copied."""
        dest, source = self._path(key), self._path(reuse.source_key)
        what = f"put {key} reusing {reuse.source_key}"
        meta = self._meta(key)
        lock = meta.with_name(meta.stem + ".put-reusing.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        # One writer of the key's fixed temp file at a time, among agents sharing this directory.
        with _translate(what), FileLock(lock):
            hashes, copied = assemble(
                what,
                Path(src_path),
                source,
                dest,
                reuse,
                _identity,
                expected_hashes=expected_hashes,
                progress=progress,
                before_commit=before_commit,
            )
            self._write_meta(key, hashes)
            return self._info(key, dest.stat(), hashes), copied

    # --- streaming ----------------------------------------------------------------------------

    def iter_bytes(
        self,
        key: str,
        *,
        chunk_size: int = 8 * 1024 * 1024,
        progress: ProgressFn | None = None,
        start: int = 0,
    ) -> Iterator[bytes]:
        """The file's bytes from offset ``start`` (the retry layer resumes with it)."""
        path, what, report = self._path(key), f"read {key}", Progress(progress)
        with _translate(what):
            try:
                f = open(path, "rb")  # noqa: SIM115 - closed in the finally below, across yields
            except IsADirectoryError as exc:
                raise NotFound(f"{self.name}: {key} is not a file") from exc
        try:
            with _translate(what):
                f.seek(start)
            while True:
                # Read under the error table, yield outside it: an exception thrown into the
                # generator at the yield (the caller's) must not be translated as ours.
                with _translate(what):
                    chunk = f.read(chunk_size)
                if not chunk:
                    return
                report(len(chunk))
                yield chunk
        finally:
            f.close()

    # --- small objects ------------------------------------------------------------------------

    def get_bytes(self, key: str) -> tuple[bytes, ObjectInfo]:
        with _translate(f"get {key}"), self._lock(key):
            data = self._path(key).read_bytes()
            return data, self.stat(key)

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> ObjectInfo:
        path = self._path(key)
        # The lock makes check-then-write atomic among agents sharing this directory (NFS and SMB
        # honour the lock file's O_EXCL creation).
        with _translate(f"put {key}"), self._lock(key):
            exists = path.is_file()
            if if_none_match and exists:
                raise PreconditionFailed(f"{self.name}: {key} already exists")
            if if_match is not None:
                current = self.stat(key).etag if exists else None
                if current != if_match:
                    raise PreconditionFailed(f"{self.name}: {key} changed (etag {current})")
            with atomic_write(path) as f:
                f.write(data)
            hasher = MultiHasher(HASHES)
            hasher.update(data)
            hashes = hasher.hexdigests()
            self._write_meta(key, hashes)
            return self._info(key, path.stat(), hashes)

    def _lock(self, key: str) -> FileLock:
        lock_path = self._meta(key).with_suffix(".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(lock_path, timeout=60)

    def abort_incomplete_uploads(self, max_age_s: float = STALE_TEMP_S) -> int:
        """Remove the temp copies (``.<name>.<32 hex>.incomplete``, sidecars included) that
        nobody has written to for ``max_age_s``: left by a push killed with -9 or a power cut.
        A fresh one may be another machine's push in progress, so it stays (a copy in progress
        keeps its mtime fresh). Returns how many were removed."""
        removed = 0
        now = time.time()
        for dirpath, _dirs, files in os.walk(self.root):
            for fn in files:
                if not _TEMP_RE.fullmatch(fn):
                    continue
                path = os.path.join(dirpath, fn)
                with contextlib.suppress(OSError):
                    if now - os.stat(path).st_mtime > max_age_s:
                        os.unlink(path)
                        removed += 1
        return removed

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"LocalProvider({self.name!r}, {str(self.root)!r})"


@contextlib.contextmanager
def _translate(what: str, *, to_local: Path | None = None) -> Iterator[None]:
    """The error table of this backend: OSError subclasses become provider errors. A full disk
    while writing to the caller's side (``to_local``) stays an OSError: it is the local disk that
    is full, as with every other backend, not the remote. ``to_local``: the local file written."""
    try:
        yield
    except ProviderError:
        raise
    except FileNotFoundError as exc:
        raise NotFound(f"{what}: {exc.filename or exc} does not exist") from exc
    except PermissionError as exc:
        raise PermissionDenied(f"{what}: no permission for {exc.filename}") from exc
    except OSError as exc:
        if exc.errno in (28, 122) and to_local is not None:
            # the caller's disk: an OSError naming its directory, as with every other backend
            raise OSError(exc.errno, exc.strerror, exc.filename or str(to_local.parent)) from exc
        if exc.errno in (28, 122):  # ENOSPC, EDQUOT
            raise QuotaExceeded(f"{what}: the remote disk is full ({exc})") from exc
        raise


def _identity(st: os.stat_result) -> dict[str, str]:
    """A rewrite of a file changes its mtime (unless someone sets it back by hand)."""
    return {"size": str(st.st_size), "mtime_ns": str(st.st_mtime_ns)}
