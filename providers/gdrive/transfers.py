"""Byte movement for the Drive backend: atomic, Range-resumed downloads and small uploads.

A mixin of DriveProvider (which supplies ``session``, ``_translate``, ``_files`` and the chunk
settings), kept apart so each module stays small.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from providers import fileio
from providers.base import STREAM_CHUNK, ObjectInfo, ProgressFn
from providers.errors import IntegrityError, PreconditionFailed, TransientError
from providers.gdrive.upload import Chunking, Session, Target, upload_file
from providers.journal import DOWNLOADS, Journal, mark, resume_download
from providers.transfer import (
    CHUNK,
    MultiHasher,
    Progress,
    check_key,
    commit_temp,
    temp_path_for,
    verify,
)


class _Buffer:
    """What MediaIoBaseDownload writes to: holds one chunk until it is handed on."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def take(self) -> bytes:
        out, self.data = bytes(self.data), bytearray()
        return out


class DriveIO:
    """Mixin: DriveProvider supplies these (declared here so the dependency is visible)."""

    _resolve: Callable[[str], dict[str, Any]]
    _candidates: Callable[[str], list[dict[str, Any]]]
    _info: Callable[[str, Mapping[str, Any]], ObjectInfo]
    _call: Callable[..., Any]
    _remove: Callable[..., None]
    _replace_older: Callable[[str, str], None]
    session: Any
    download_chunk_size: int
    chunk_size: int
    chunk_retries: int
    chunk_retry_wait: float
    folder_id: str
    name: str
    state_dir: Path
    _pending_downloads: dict[Path, tuple[Journal, Path]]

    def _translate(self, exc: BaseException, what: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _files(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _chunks(
        self, file_id: str, key: str, *, size: int, chunk_size: int, start: int = 0
    ) -> Iterator[bytes]:
        """The file's bytes from ``start`` in Range chunks of ``chunk_size``. A failed chunk is
        asked for again from the first missing byte (MediaIoBaseDownload keeps its offset), up
        to ``chunk_retries`` times in a row, so an interruption costs at most one chunk. Raises
        IntegrityError when the server serves more or fewer bytes than ``size``."""
        from googleapiclient.http import MediaIoBaseDownload

        what = f"download {key!r}"
        if start >= size:  # nothing left; a Range past the end would be answered with 416
            if start > size:
                raise ValueError(f"{what}: start {start} is beyond the file's {size} bytes")
            return
        buf = _Buffer()
        download = MediaIoBaseDownload(
            buf, self._files().get_media(fileId=file_id), chunksize=chunk_size
        )
        download._progress = start  # the resume offset; googleapiclient has no public setter
        offset, failures = start, 0
        bound = (self.chunk_retries + 2) * (size // max(chunk_size, 1) + 2)
        for _ in range(bound):  # each pass moves a chunk or uses up one of a chunk's retries
            try:
                _status, done = download.next_chunk()
            except Exception as exc:
                err = self._translate(exc, what)
                if not isinstance(err, TransientError) or failures >= self.chunk_retries:
                    raise err from exc
                failures += 1
                time.sleep(self.chunk_retry_wait * failures)
                continue
            chunk = buf.take()
            offset += len(chunk)
            if offset > size or (done and offset < size):
                # Drive's fileSize and the bytes it serves disagree (or Range was ignored).
                raise IntegrityError(f"{what}: got {offset} bytes of a {size}-byte file")
            if chunk:
                failures = 0
                yield chunk
            if done or offset == size:
                return
        raise TransientError(f"{what}: no progress at byte {offset} of {size}; giving up")

    def _download(
        self,
        file_id: str,
        key: str,
        info: ObjectInfo,
        dest: Path,
        expected_hashes: Mapping[str, str] | None,
        progress: Progress,
    ) -> None:
        """Download into a temp file beside ``dest``, hashing on the way; checked against Drive's
        size and md5Checksum and the caller's hashes before the rename; on any failure no file
        appears at ``dest``. The temp name is deterministic and the bytes written so far are
        journaled, so a later attempt -- the retry layer's, or a new process after kill -9 --
        continues from there (one Range request) as long as Drive still holds the same file
        version (id, md5Checksum, fileSize)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest = Path(os.path.abspath(dest))
        md5 = info.hashes.get("md5") or ""
        tag = hashlib.sha256(f"{file_id}\0{md5}\0{info.size}".encode()).hexdigest()[:16]
        temp = temp_path_for(dest, tag)
        header = {"id": file_id, "key": key, "md5": md5, "size": info.size, "dest": str(dest),
                  "temp": str(temp)}  # fmt: skip
        ident = f"{self.folder_id}\0{key}\0{dest}"
        journal = Journal(self.state_dir / DOWNLOADS, "gdrive-download", ident)

        def temp_ok(marks: list[int]) -> bool:
            end = max(marks, default=0)
            return 0 <= end <= info.size and temp.is_file() and temp.stat().st_size >= end

        start = max(resume_download(journal, header, dest, temp_ok), default=0)
        pending = self._pending_downloads
        pending[dest] = journal, temp
        what = f"download of {key!r} from remote {self.name!r}"
        try:
            got, count = self._fill(temp, start, file_id, info, journal, progress)
            verify(what, expected_size=info.size, actual_size=count)
            verify(what, expected=info.hashes, actual=got)
            verify(what, expected=expected_hashes, actual=got)
            commit_temp(temp, dest)
        except TransientError:
            raise  # temp and journal stay: the next attempt resumes from them
        except Exception:
            _discard_download(pending, dest)  # definitive: integrity, not found, caller's error
            raise
        except BaseException:
            raise  # interrupted (Ctrl-C, SIGTERM): temp and journal stay, the next run resumes
        _discard_download(pending, dest)

    def _fill(
        self, temp: Path, start: int, file_id: str, info: ObjectInfo, journal: Journal,
        progress: Progress,
    ) -> tuple[dict[str, str], int]:  # fmt: skip
        """Write bytes ``start``.. into ``temp``, journaling each chunk after it is written.
        Returns the md5 and sha256 of the whole file (the first ``start`` bytes are re-read
        from the temp file: a local read) and its length."""
        hasher = MultiHasher(("md5", "sha256"))
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | fileio.BINARY, 0o644)
        try:
            os.ftruncate(fd, start)  # bytes past the journaled end are of unknown content
            buf = bytearray(CHUNK)
            offset = 0
            while offset < start:
                n = fileio.preadinto(fd, memoryview(buf)[: min(CHUNK, start - offset)], offset)
                if not n:
                    break  # cannot happen after ftruncate; the size check below would fail
                hasher.update(memoryview(buf)[:n])
                offset += n
            for chunk in self._chunks(
                file_id, info.key, size=info.size, chunk_size=self.download_chunk_size, start=start
            ):
                fileio.pwrite_all(fd, chunk, offset)
                offset += len(chunk)
                hasher.update(chunk)
                mark(journal, offset)
                progress(len(chunk))
        finally:
            os.close(fd)
        return hasher.hexdigests(), offset

    def iter_bytes(
        self,
        key: str,
        *,
        chunk_size: int = STREAM_CHUNK,
        progress: ProgressFn | None = None,
        start: int = 0,
    ) -> Iterator[bytes]:
        """Range chunks from byte ``start`` (the retry layer resumes with it)."""
        res = self._resolve(key)
        report = Progress(progress)
        size = int(res.get("fileSize") or 0)
        for chunk in self._chunks(res["id"], key, size=size, chunk_size=chunk_size, start=start):
            report(len(chunk))
            yield chunk

    def _upload_bytes(
        self, data: bytes, metadata: dict[str, Any], file_id: str | None, if_match: str | None
    ) -> dict[str, Any]:
        """One small object through a resumable session (the only upload type pydrive2 and our
        emulator share); updates ``file_id`` in place under If-Match when given."""
        self._files()
        return upload_file(
            self.session.service,
            data,
            Target(metadata, file_id, if_match),
            chunking=self._chunking(),
            session=Session(),
            progress=lambda n: None,
            translate=self._translate,
        )

    def _chunking(self) -> Chunking:
        return Chunking(self.chunk_size, self.chunk_retries, self.chunk_retry_wait)

    # -- small objects, the remote catalog (uses DriveProvider's _resolve, _candidates, _info) ---
    def get_bytes(self, key: str) -> tuple[bytes, ObjectInfo]:
        res = self._resolve(key)
        data = self._call(
            self._files().get_media(fileId=res["id"]), f"read {key!r}", json_reply=False
        )
        info = self._info(key, res)
        verify(f"read of {key!r}", expected_size=info.size, actual_size=len(data))
        verify(f"read of {key!r}", expected=info.hashes, actual=_hashes(data))
        return data, info

    def put_bytes(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> ObjectInfo:
        """``if_match`` is enforced by Drive (If-Match on the etag, 412). Drive has no
        create-if-absent, so ``if_none_match`` is optimistic: check, insert, then look again; if
        another file with this title was created before ours, ours is removed and we lose."""
        check_key(key)
        found = self._candidates(key)
        if if_none_match and found:
            raise PreconditionFailed(f"remote {self.name!r}: {key!r} already exists")
        if if_match is not None and (not found or found[0].get("etag") != if_match):
            raise PreconditionFailed(f"remote {self.name!r}: {key!r} changed since it was read")
        hashes = _hashes(data)
        meta = {"title": key, "parents": [{"id": self.folder_id}],
                "properties": [{"key": "sha256", "value": hashes["sha256"],
                                "visibility": "PRIVATE"}]}  # fmt: skip
        res = self._upload_bytes(data, meta, found[0]["id"] if if_match else None, if_match)
        verify(f"write of {key!r}", expected={"md5": hashes["md5"]},
               actual={"md5": res.get("md5Checksum")})  # fmt: skip
        if if_none_match:
            rivals = [f for f in self._candidates(key) if f["id"] != res["id"]]
            if any((r.get("createdDate", ""), r["id"]) < (res.get("createdDate", ""), res["id"])
                   for r in rivals):  # fmt: skip
                self._remove(res["id"], f"withdraw losing write of {key!r}", permanent=True)
                raise PreconditionFailed(f"remote {self.name!r}: {key!r} was created meanwhile")
        else:
            self._replace_older(key, res["id"])
        return self._info(key, res)

    def close(self) -> None:
        # Downloads kept for a retry that never came (a killed process keeps them: it resumes).
        pending = self._pending_downloads
        for dest in list(pending):
            _discard_download(pending, dest)
        session = getattr(self, "_session", None)
        if session is not None:
            for conn in list(getattr(session.auth.http, "connections", {}).values()):
                with contextlib.suppress(Exception):
                    conn.close()


def _discard_download(pending: dict[Path, tuple[Journal, Path]], dest: Path) -> None:
    journal, temp = pending.pop(dest)
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    journal.clear()


def _hashes(data: bytes) -> dict[str, str]:
    return {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}
