"""Byte movement for the Drive backend: atomic, Range-resumed downloads and small uploads.

A mixin of DriveProvider (which supplies ``session``, ``_translate``, ``_files`` and the chunk
settings), kept apart so each module stays small.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from providers.base import ObjectInfo
from providers.errors import TransientError
from providers.gdrive_upload import upload_file
from providers.transfer import MultiHasher, Progress, commit_temp, temp_path_for, verify


class _HashingWriter:
    """What MediaIoBaseDownload writes to: the temp file, hashing each chunk as it passes."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.hasher = MultiHasher(("md5", "sha256"))
        self.count = 0

    def write(self, data: bytes) -> int:
        self.fh.write(data)
        self.hasher.update(data)
        self.count += len(data)
        return len(data)


class DriveIO:
    session: Any
    download_chunk_size: int
    chunk_size: int
    chunk_retries: int
    chunk_retry_wait: float
    folder_id: str
    name: str

    def _translate(self, exc: BaseException, what: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _files(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _download(
        self,
        file_id: str,
        key: str,
        info: ObjectInfo,
        dest: Path,
        expected_hashes: Mapping[str, str] | None,
        progress: Progress,
    ) -> None:
        """Download in Range chunks into a unique temp file beside ``dest``; a failed chunk is
        asked for again from the first missing byte (MediaIoBaseDownload keeps its offset), so an
        interruption costs at most one chunk. Checked against Drive's size and md5Checksum and
        the caller's hashes before the rename; on any failure no file appears at ``dest``."""
        from googleapiclient.http import MediaIoBaseDownload

        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = temp_path_for(dest)
        try:
            with open(temp, "xb") as fh:
                writer = _HashingWriter(fh)
                request = self._files().get_media(fileId=file_id)
                download = MediaIoBaseDownload(writer, request, chunksize=self.download_chunk_size)
                done, failures, reported = False, 0, 0
                while not done:
                    try:
                        _status, done = download.next_chunk()
                    except Exception as exc:
                        err = self._translate(exc, f"download {key!r}")
                        if not isinstance(err, TransientError) or failures >= self.chunk_retries:
                            raise err from exc
                        failures += 1
                        time.sleep(self.chunk_retry_wait * failures)
                        continue
                    if writer.count > reported:
                        progress(writer.count - reported)
                        reported, failures = writer.count, 0
            what = f"download of {key!r} from remote {self.name!r}"
            got = writer.hasher.hexdigests()
            verify(what, expected_size=info.size, actual_size=writer.count)
            verify(what, expected=info.hashes, actual=got)
            verify(what, expected=expected_hashes, actual=got)
            commit_temp(temp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def _upload_bytes(
        self, data: bytes, metadata: dict[str, Any], file_id: str | None, if_match: str | None
    ) -> dict[str, Any]:
        """One small object through a resumable session (the only upload type pydrive2 and our
        emulator share); updates ``file_id`` in place under If-Match when given."""
        self._files()
        return upload_file(
            self.session.service,
            data,
            metadata=metadata,
            chunk_size=self.chunk_size,
            session_uri=None,
            on_session=lambda uri: None,
            progress=lambda n: None,
            translate=self._translate,
            chunk_retries=self.chunk_retries,
            chunk_retry_wait=self.chunk_retry_wait,
            update_file_id=file_id,
            if_match=if_match,
        )

    def close(self) -> None:
        session = getattr(self, "_session", None)
        if session is not None:
            for conn in list(getattr(session.auth.http, "connections", {}).values()):
                with contextlib.suppress(Exception):
                    conn.close()
