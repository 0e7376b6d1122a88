"""Google Drive backend (pydrive2 auth + the Drive v2 API it builds).

Layout: every key is the *title* of one file directly inside ``folder_id``; ``/`` in a key stays
a literal character of the title (Drive allows it), so ``.model-safety/catalog.json`` is a file
titled exactly that, next to the model files. One flat folder keeps listing to one paged query
and avoids duplicate-subfolder ambiguity; anyone can still download by name from the Drive UI.

Drive allows several files with one title. Rules, applied everywhere:
- titles match exactly (Drive's ``title =`` is case-insensitive; we filter client-side), trashed
  files and folders are ignored;
- when several files hold one key, the one with the newest ``modifiedDate`` (then newest
  ``createdDate``, then greatest id) is *the* object, and a warning names the others;
- ``put`` uploads under a temporary title (``<key>.ms-upload-<token>.partial``, hidden from
  ``list``), checks Drive's md5Checksum and size, renames it to the key and then moves the older
  duplicates to the trash; ``delete`` trashes every file with that title (``delete_mode: delete``
  removes them for good instead).

Hashes: ``md5`` is Drive's own ``md5Checksum``. ``sha256`` is stored by us in a private file
property at upload; it is only as trustworthy as the writer and is absent on files uploaded by
other tools (``stat`` then returns md5 only).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pydrive2  # noqa: F401  (cheap; a missing SDK fails here, where open_provider names it)

from providers.base import BeforeCommitFn, Capabilities, ObjectInfo, ProgressFn
from providers.errors import (
    IntegrityError,
    NotFound,
    TransientError,
)
from providers.gdrive.client import DriveSession, connect, translate
from providers.gdrive.config import DriveSettings
from providers.gdrive.transfers import DriveIO
from providers.gdrive.upload import JournalEntry, Session, SessionJournal, Target, upload_file
from providers.journal import Journal as _Journal
from providers.journal import journal_dir
from providers.ranges import RangeHashes
from providers.transfer import Progress, check_key, hash_file, verify

log = logging.getLogger(__name__)

FOLDER_MIME = "application/vnd.google-apps.folder"
PARTIAL_MARK = ".ms-upload-"
MiB = 1 << 20


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class DriveProvider(DriveIO):
    def __init__(self, name: str, settings: DriveSettings, *, state_dir: Path) -> None:
        self.name = name
        self.config = settings
        self.folder_id = settings.folder_id
        self._creds = (settings.service_account_file, settings.oauth_token_file)
        self.root_url = settings.root_url
        self.state_dir = state_dir
        self.chunk_size = settings.chunk_size
        self.download_chunk_size = settings.download_chunk_size
        self.chunk_retries = settings.chunk_retries
        self.chunk_retry_wait = settings.chunk_retry_wait
        self.http_timeout = settings.http_timeout
        self.page_size = settings.page_size
        self.delete_mode = settings.delete_mode
        self._session: DriveSession | None = None
        self._folder_checked = False
        # Downloads whose temp file and journal are kept for the next attempt (transfers.py).
        self._pending_downloads: dict[Path, tuple[_Journal, Path]] = {}
        # No abort_incomplete_uploads: an upload this agent abandoned is a file under a temporary
        # title, removed by the next put of its key; Drive expires the session itself.
        self.capabilities = Capabilities(
            hashes=frozenset({"md5", "sha256"}),
            conditional_write=True,
            resumable=True,
            copy=self.copy,
            get_bytes=self.get_bytes,
            put_bytes=self.put_bytes,
            iter_bytes=self.iter_bytes,
        )

    @classmethod
    def from_settings(
        cls, name: str, settings: Mapping[str, Any], *, state_dir: Path | None = None
    ) -> DriveProvider:
        config = DriveSettings.from_settings(name, settings)
        return cls(name, config, state_dir=journal_dir(state_dir, "gdrive", name))

    # -- connection and error edge ------------------------------------------------------------
    @property
    def session(self) -> DriveSession:
        if self._session is None:
            sa, token = self._creds
            self._session = connect(
                self.name,
                service_account_file=sa,
                oauth_token_file=token,
                root_url=self.root_url,
                http_timeout=self.http_timeout,
            )
        return self._session

    def _translate(self, exc: BaseException, what: str):  # -> ProviderError
        return translate(exc, self.name, what, self._session.identity if self._session else "")

    def _call(self, request: Any, what: str, *, json_reply: bool = True) -> Any:
        try:
            result = request.execute()
        except Exception as exc:
            raise self._translate(exc, what) from exc
        if json_reply and not isinstance(result, dict):
            # googleapiclient hands back the raw text when a 2xx body is not JSON (an HTML page
            # from a proxy or captive portal); pydrive2 would raise JSONDecodeError here.
            raise TransientError(f"remote {self.name!r}: {what}: non-JSON reply from the server")
        return result

    def _files(self) -> Any:
        self._check_folder()
        return self.session.service.files()

    def _check_folder(self) -> None:
        if self._folder_checked:
            return
        service = self.session.service
        try:
            folder = self._call(service.files().get(fileId=self.folder_id), "open folder")
        except NotFound as exc:
            raise NotFound(
                f"remote {self.name!r}: Drive folder {self.folder_id!r} does not exist or is not"
                f" shared with {self.session.identity}; fix folder_id or share the folder"
            ) from exc.__cause__
        if folder.get("mimeType") != FOLDER_MIME or folder.get("labels", {}).get("trashed"):
            raise NotFound(
                f"remote {self.name!r}: folder_id {self.folder_id!r} is not a folder (or is in"
                " the trash); set folder_id to the id of a Drive folder"
            )
        self._folder_checked = True

    # -- resolving keys to files --------------------------------------------------------------
    def _query(self, q: str) -> Iterator[dict[str, Any]]:
        files, token = self._files(), None
        for _ in range(1_000_000):  # bounded: a million pages is far beyond any folder
            page = self._call(
                files.list(q=q, maxResults=self.page_size, pageToken=token), "list folder"
            )
            yield from page.get("items", [])
            token = page.get("nextPageToken")
            if not token:
                return

    def _base_query(self) -> str:
        return f"{_quote(self.folder_id)} in parents and trashed = false"

    def _candidates(self, key: str) -> list[dict[str, Any]]:
        """Live files titled exactly ``key``, best first (see the module docstring)."""
        q = f"{self._base_query()} and title = {_quote(key)}"
        found = [
            f
            for f in self._query(q)
            if f.get("title") == key
            and f.get("mimeType") != FOLDER_MIME
            and not f.get("labels", {}).get("trashed")
        ]
        found.sort(
            key=lambda f: (f.get("modifiedDate", ""), f.get("createdDate", ""), f["id"]),
            reverse=True,
        )
        return found

    def _resolve(self, key: str) -> dict[str, Any]:
        found = self._candidates(check_key(key))
        if not found:
            raise NotFound(f"remote {self.name!r}: {key!r} not found in folder {self.folder_id}")
        if len(found) > 1:
            log.warning(
                "remote %r: %d files titled %r; using the newest (%s), ignoring %s",
                self.name, len(found), key, found[0]["id"], [f["id"] for f in found[1:]],
            )  # fmt: skip
        return found[0]

    def _info(self, key: str, res: Mapping[str, Any]) -> ObjectInfo:
        hashes = {}
        if res.get("md5Checksum"):
            hashes["md5"] = res["md5Checksum"]
        props = {p.get("key"): p.get("value") for p in res.get("properties") or []}
        if props.get("sha256"):
            hashes["sha256"] = props["sha256"]
        # Drive's etag also changes with metadata (a rename, a property): only the content's
        # checksum and head revision say the bytes were replaced.
        identity = {}
        if res.get("md5Checksum"):
            identity["md5"] = res["md5Checksum"]
        if res.get("headRevisionId"):
            identity["revision"] = res["headRevisionId"]
        return ObjectInfo(
            key=key,
            size=int(res.get("fileSize") or 0),
            hashes=hashes,
            modified=_parse_time(res.get("modifiedDate")),
            etag=res.get("etag"),
            identity=identity,
        )

    # -- the Provider interface ---------------------------------------------------------------
    def stat(self, key: str) -> ObjectInfo:
        return self._info(key, self._resolve(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        best: dict[str, dict[str, Any]] = {}
        for f in self._query(self._base_query()):
            title = f.get("title", "")
            if f.get("mimeType") == FOLDER_MIME or PARTIAL_MARK in title:
                continue
            if not title.startswith(prefix):
                continue
            rank = (f.get("modifiedDate", ""), f.get("createdDate", ""), f["id"])
            old = best.get(title)
            if old is None or rank > (
                old.get("modifiedDate", ""),
                old.get("createdDate", ""),
                old["id"],
            ):
                best[title] = f
        for title in sorted(best):
            yield self._info(title, best[title])

    def delete(self, key: str) -> None:
        for f in self._candidates(check_key(key)):
            self._remove(f["id"], f"delete {key!r}")

    def _remove(self, file_id: str, what: str, *, permanent: bool = False) -> None:
        files = self._files()
        erase = permanent or self.delete_mode == "delete"
        request = files.delete(fileId=file_id) if erase else files.trash(fileId=file_id)
        with contextlib.suppress(NotFound):  # already gone: deleting is idempotent
            self._call(request, what, json_reply=not erase)  # files.delete answers 204, empty

    def _remove_title(self, title: str, what: str) -> None:
        for f in self._candidates(title):
            self._remove(f["id"], what, permanent=True)

    def _replace_older(self, key: str, keep_id: str) -> None:
        for f in self._candidates(key):
            if f["id"] != keep_id:
                self._remove(f["id"], f"remove older duplicate of {key!r}")

    def put(
        self,
        key: str,
        src_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
        before_commit: BeforeCommitFn | None = None,
    ) -> ObjectInfo:
        if PARTIAL_MARK in check_key(key):
            raise ValueError(f"invalid key {key!r}: {PARTIAL_MARK!r} marks our temporary uploads")
        src = Path(src_path)
        files = self._files()
        journal = SessionJournal(self.state_dir / "gdrive-uploads", key)
        entry = journal.load(key, src)
        stale = journal.load_any() if entry is None else None
        if stale is not None:
            # The source changed since an earlier attempt: that attempt's upload may have
            # completed under its temporary title; do not leave it behind.
            self._remove_title(stale.title, "remove an abandoned upload")
            journal.clear()
        if entry is None:
            st = src.stat()
            entry = JournalEntry(
                key=key,
                src=str(src.resolve()),
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                hashes=hash_file(src, ("md5", "sha256")),
                title=f"{key}{PARTIAL_MARK}{uuid.uuid4().hex[:12]}.partial",
            )
        # A source that is not what the caller expects is never uploaded.
        verify(f"{src} (local source of {key!r})", expected=expected_hashes, actual=entry.hashes)

        def on_session(uri: str | None) -> None:
            entry.session_uri = uri
            journal.save(entry)

        metadata = {
            "title": entry.title,
            "parents": [{"id": self.folder_id}],
            "mimeType": "application/octet-stream",
            "properties": [{"key": "sha256", "value": entry.hashes["sha256"],
                            "visibility": "PRIVATE"}],
        }  # fmt: skip

        def gate() -> None:
            assert before_commit is not None
            try:
                before_commit()
            except Exception:
                journal.clear()  # refused: the unfinished session is never resumed
                raise

        res = upload_file(
            self.session.service,
            src,
            Target(metadata),
            chunking=self._chunking(),
            session=Session(entry.session_uri, on_session),
            progress=Progress(progress),
            translate=self._translate,
            before_commit=gate if before_commit is not None else None,
        )
        try:
            verify(
                f"upload of {key!r} to remote {self.name!r}",
                expected_size=entry.size,
                actual_size=int(res.get("fileSize") or 0),
                expected={"md5": entry.hashes["md5"]},
                actual={"md5": res.get("md5Checksum")},
            )
        except IntegrityError:
            self._remove(res["id"], f"discard bad upload of {key!r}", permanent=True)
            journal.clear()
            raise
        final = self._call(files.patch(fileId=res["id"], body={"title": key}), f"name {key!r}")
        journal.clear()
        self._replace_older(key, res["id"])
        return self._info(key, final)

    def get(
        self,
        key: str,
        dest_path: Path,
        *,
        expected_hashes: Mapping[str, str] | None = None,
        progress: ProgressFn | None = None,
        expected_ranges: RangeHashes | None = None,  # not used: the whole file is hashed
    ) -> ObjectInfo:
        res = self._resolve(key)
        info = self._info(key, res)
        self._download(res["id"], key, info, Path(dest_path), expected_hashes, Progress(progress))
        return info

    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        check_key(dst_key)
        src = self._resolve(src_key)
        body = {"title": dst_key, "parents": [{"id": self.folder_id}]}
        res = self._call(self._files().copy(fileId=src["id"], body=body), f"copy {src_key!r}")
        verify(f"copy of {src_key!r} to {dst_key!r}", expected={"md5": src.get("md5Checksum")},
               actual={"md5": res.get("md5Checksum")})  # fmt: skip
        self._replace_older(dst_key, res["id"])
        return self._info(dst_key, res)


__all__ = ["DriveProvider"]
