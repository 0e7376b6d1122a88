"""Resumable Drive uploads driven chunk by chunk, resumed within a call and across processes.

pydrive2 uploads in one chunk and loses the session on any error, so we drive googleapiclient's
``HttpRequest.next_chunk()`` ourselves. After a failed chunk googleapiclient marks the request
"in error state" and its next call asks the server ``Content-Range: bytes */N``; the 308 reply's
``Range`` tells how much the server kept, and the upload continues from there — no byte Drive
already holds is sent twice.

Across process death the session URI lives in a journal (providers.journal, kind
``gdrive-upload``, one per key in the remote's state directory): the header holds the source's
path, size, mtime and hashes and the temporary title; each record is a session URI, the last
one current. The next
``put`` of the same file rebuilds the request with that URI and the in-error-state flag set
(``_in_error_state`` is private to googleapiclient, but it is exactly the "ask the server first"
switch we need), so the first thing it sends is the status query.

Resuming within a call is not a second retry policy: it continues one upload session while the
server keeps taking bytes, and gives up after ``chunk_retries`` consecutive failures without
progress; the TransientError then goes up to the one retry layer, whose next attempt resumes
through the journal.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from providers.errors import NotFound, ProviderError, TransientError
from providers.journal import Journal

log = logging.getLogger(__name__)

Translate = Callable[[BaseException, str], ProviderError]


@dataclass
class JournalEntry:
    key: str
    src: str
    size: int
    mtime_ns: int
    hashes: dict[str, str]
    title: str  # the temporary title the file is uploaded under
    session_uri: str | None = None


class SessionJournal(Journal):
    """What a later process needs to continue the upload session of one key."""

    def __init__(self, directory: Path, key: str) -> None:
        super().__init__(directory, "gdrive-upload", key)

    def load_any(self) -> JournalEntry | None:
        header, records = self.read()
        try:
            entry = JournalEntry(**header) if header is not None else None
        except TypeError:
            return None
        for record in records if entry is not None else ():
            uri = record.get("session_uri", "")
            if uri is None or (isinstance(uri, str) and uri):
                entry.session_uri = uri
        return entry

    def load(self, key: str, src: Path) -> JournalEntry | None:
        """The saved entry when it is for this key and this unchanged source file."""
        entry = self.load_any()
        try:
            st = src.stat()
        except OSError:
            return None
        if entry is None:
            return None
        same = (
            entry.key == key
            and entry.src == str(src.resolve())
            and (entry.size, entry.mtime_ns) == (st.st_size, st.st_mtime_ns)
        )
        return entry if same else None

    def save(self, entry: JournalEntry) -> None:
        """Record ``entry.session_uri``; the first save of an entry writes its header."""
        header = {k: v for k, v in asdict(entry).items() if k != "session_uri"}
        if self.read()[0] != header:
            self.start(header)
        self.append({"session_uri": entry.session_uri})


@dataclass(frozen=True)
class Target:
    """What an upload creates: a new file with ``metadata``, or new content for
    ``update_file_id`` (files.update), conditional on ``if_match`` (the file's etag)."""

    metadata: dict[str, Any]
    update_file_id: str | None = None
    if_match: str | None = None


class Chunking(NamedTuple):
    """Chunk size (a multiple of 256 KiB) and the in-call resume budget per stalled chunk."""

    size: int
    retries: int
    retry_wait: float


@dataclass(frozen=True)
class Session:
    """A session to continue (``uri``, None for a new one) and who is told each new URI (None
    when a session was lost and a new one starts), so the caller can journal it."""

    uri: str | None = None
    on_change: Callable[[str | None], None] = lambda uri: None


def upload_file(
    service: Any,
    src: Path | bytes,
    target: Target,
    *,
    chunking: Chunking,
    session: Session,
    progress: Callable[[int], None],
    translate: Translate,
    before_commit: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Upload ``src`` through a resumable session and return Drive's file resource.
    ``before_commit`` runs before the last chunk is handed over (the one that creates the
    file); what it raises comes out unchanged, the session left unfinished."""
    from googleapiclient.http import MediaIoBaseUpload

    metadata, update_file_id, if_match = target.metadata, target.update_file_id, target.if_match
    chunk_size, chunk_retries, chunk_retry_wait = (
        chunking.size,
        chunking.retries,
        chunking.retry_wait,
    )
    session_uri, on_session = session.uri, session.on_change

    label = src.name if isinstance(src, Path) else "in-memory object"
    with open(src, "rb") if isinstance(src, Path) else io.BytesIO(src) as fh:

        class ChunkBytes(MediaIoBaseUpload):
            # Hand googleapiclient each chunk as bytes, not as a slice of the open stream:
            # httplib2 re-sends a request once after a dropped connection, and a consumed
            # stream would then be sent empty under the old Content-Length (a hang until the
            # timeout). Costs one chunk of memory.
            def has_stream(self) -> bool:
                return False

            def getbytes(self, begin: int, length: int) -> bytes:
                if not chunk_starts:
                    chunk_starts.append(begin)
                if before_commit is not None and begin + length >= self.size() and not gated:
                    try:
                        before_commit()
                    except Exception as exc:
                        refused.append(exc)
                        raise
                    gated.append(True)
                return super().getbytes(begin, length)

        # Where the first chunk sent began: for a session resumed from the journal, how much the
        # server already held from an earlier process, which this call must not report as sent.
        chunk_starts: list[int] = []
        gated: list[bool] = []  # before_commit passed: a resent last chunk does not ask again
        refused: list[Exception] = []  # what before_commit raised, passed on untranslated

        def new_request() -> Any:
            media = ChunkBytes(
                fh, mimetype="application/octet-stream", chunksize=chunk_size, resumable=True
            )
            files = service.files()
            if update_file_id is None:
                req = files.insert(body=metadata, media_body=media)
            else:
                req = files.update(fileId=update_file_id, body=metadata, media_body=media)
            if if_match:
                req.headers["If-Match"] = if_match
            return req

        request = new_request()
        if session_uri:
            request.resumable_uri = session_uri
            request._in_error_state = True  # first ask the server how much it holds
        reported = 0
        failures = 0
        held = session_uri is not None  # the journaled session's bytes are yet to be discounted
        while True:
            uri_before = request.resumable_uri
            try:
                _status, body = request.next_chunk()
            except Exception as exc:
                if refused:
                    raise refused[0] from None
                err = translate(exc, "upload chunk")
                if isinstance(err, NotFound) and request.resumable_uri:
                    # The session expired or was never completed server-side: start again.
                    log.warning("upload session for %s lost; starting a new one", label)
                    on_session(None)
                    request = new_request()
                    reported = 0
                    held = False
                    failures += 1
                    if failures > chunk_retries:
                        raise err from exc
                    continue
                if not isinstance(err, TransientError) or failures >= chunk_retries:
                    if request.resumable_uri and request.resumable_uri != uri_before:
                        on_session(request.resumable_uri)
                    raise err from exc
                failures += 1
                log.warning(
                    "upload of %s: %s; resuming (%d/%d)", label, err, failures, chunk_retries
                )
                if request.resumable_uri:
                    request._in_error_state = True
                time.sleep(chunk_retry_wait * failures)
                continue
            if request.resumable_uri != uri_before:
                on_session(request.resumable_uri)
            done = request.resumable.size() if body is not None else request.resumable_progress
            if held:
                # no chunk sent: the server held the whole file already
                reported = chunk_starts[0] if chunk_starts else done
                held = False
                log.info("resuming upload of %s: %d bytes already on the server", label, reported)
            if done > reported:
                progress(done - reported)
                reported = done
                failures = 0  # the server is taking bytes: the budget is for stalls only
            if body is not None:
                return body
