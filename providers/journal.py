"""Resume journals: what a later attempt (the retry layer's, or a new process after kill -9) needs
to continue an interrupted transfer. One format serves every transfer that resumes: S3 multipart
uploads, S3 ranged downloads, Drive upload sessions and Drive downloads, the local remote's delta
puts.

Format, version 1: one JSON-lines file per transfer, named by a hash of what identifies it. Line
1 is the header, ``{"journal": "model-safety", "version": 1, "kind": KIND, "header": {...}}``,
written atomically (temp file in the same directory, fsync, rename) with mode 0600: upload ids
and Drive session URIs are bearer capabilities, whoever reads one can write to the upload. Each
later line is one record (a JSON object: a part sent, a range written, a session opened),
appended only once what it records is true.

A record is one write(2) of one line on an O_APPEND descriptor, so lines from several threads
never interleave and kill -9 leaves at worst a torn last line, which is skipped. Records are not
fsynced: a killed process keeps the page cache; a power loss may lose records (a resend) or keep
a record whose bytes were lost, which the checks after every transfer catch (whole-file hashes,
the server's list of parts).

A journal that cannot be trusted as a whole reads as absent: missing, unreadable, a torn header,
another kind (a foreign file), another version. The transfer then starts afresh and ``start``
replaces the file; nothing raises. Journals written by releases before this format (one format
per backend, without the version header) are discarded that way: an upload or download they
described restarts from its first byte.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from providers import fileio
from providers.transfer import atomic_write

FORMAT = "model-safety"
VERSION = 1
SUFFIX = ".jsonl"
DOWNLOADS = "downloads"  # the subdirectory of a remote's state dir that holds download journals
PARTIAL_KEPT_DAYS = 7  # a partial download nobody resumes for this long is removed


def journal_dir(state_dir: Path | None, backend: str, name: str) -> Path:
    """Where a remote keeps its journals: the agent's state dir when it gives one, else a
    per-user cache dir named after the backend and the remote."""
    if state_dir:
        return Path(state_dir)
    return Path.home() / ".cache" / "model-safety" / f"{backend}-{name}"


class Journal:
    """The journal of one transfer of kind ``kind`` identified by ``ident``, in ``directory``."""

    def __init__(self, directory: Path, kind: str, ident: str) -> None:
        digest = hashlib.sha256(f"{kind}\0{ident}".encode()).hexdigest()[:32]
        self.path = directory / f"{digest}{SUFFIX}"
        self.kind = kind
        self._torn = False  # the file read last ends mid-line: the next record starts a new one

    @classmethod
    def at(cls, path: Path, kind: str) -> Journal:
        journal = cls(path.parent, kind, "")
        journal.path = path
        return journal

    def read(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The header and the records on disk; (None, []) when there is no journal to trust."""
        try:
            lines = self.path.read_bytes().split(b"\n")
            envelope = json.loads(lines[0])
        except (OSError, ValueError):
            return None, []
        ours = (
            isinstance(envelope, dict)
            and envelope.get("journal") == FORMAT
            and envelope.get("version") == VERSION
            and envelope.get("kind") == self.kind
            and isinstance(envelope.get("header"), dict)
        )
        if not ours:
            return None, []
        self._torn = lines[-1] != b""
        records = []
        for line in lines[1:]:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line from a killed process, or the empty last one
            if isinstance(record, dict):
                records.append(record)
        return envelope["header"], records

    def start(self, header: Mapping[str, Any]) -> None:
        """Begin a fresh journal, replacing whatever was there: the header alone."""
        envelope = {"journal": FORMAT, "version": VERSION, "kind": self.kind, "header": header}
        self._torn = False
        with atomic_write(self.path, private=True) as f:
            f.write(json.dumps(envelope, sort_keys=True).encode() + b"\n")

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record (after ``start``, in this process or an earlier one). Opened per
        record, so no descriptor outlives a failed transfer."""
        line = json.dumps(record, sort_keys=True).encode() + b"\n"
        if self._torn:  # never glue a record onto a torn line, where it would be lost with it
            line, self._torn = b"\n" + line, False
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | fileio.BINARY)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def scan(directory: Path, kind: str) -> Iterator[tuple[Journal, dict[str, Any] | None]]:
    """Every journal file in ``directory`` with its header (None: not one we can read)."""
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        journal = Journal.at(path, kind)
        yield journal, journal.read()[0]


def resume_download(
    journal: Journal,
    header: dict[str, Any],
    dest: Path,
    temp_ok: Callable[[list[int]], bool],
) -> list[int]:
    """The marks (``{"m": n}`` records: a range index or a byte offset) of an earlier attempt at
    exactly this download (same header: same object version, size, temp file) whose temp file
    passes ``temp_ok``. Otherwise whatever an earlier attempt left is discarded (its temp file and
    journal), a fresh journal is started and the answer is []: the caller starts from scratch."""
    old, records = journal.read()
    marks = [r["m"] for r in records if type(r.get("m")) is int]
    if old == header and temp_ok(marks):
        return marks
    stale = [Path(header["temp"])]
    if old is not None and isinstance(old.get("temp"), str):
        stale.append(Path(old["temp"]))
    for path in stale:
        # Only ever a hidden ``.<dest name>.*.incomplete`` beside dest: a damaged or foreign
        # journal cannot make us delete anything else.
        ours = path.name.startswith(f".{dest.name}.") and path.name.endswith(".incomplete")
        if path.parent == dest.parent and ours:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    journal.start(header)
    return []


@dataclass(frozen=True)
class PartialDownload:
    """A download an earlier attempt left half done: its journal and the temp file it names."""

    journal: Path
    temp: Path
    size: int  # disk space the temp file takes (written ranges plus any space reserved)
    mtime: float  # when its last bytes were written


def _temp_of(journal: Path) -> Path | None:
    """The temp file a download journal's header names, if it is one of ours: a hidden
    ``.<name>.<tag>.incomplete`` file (a damaged or foreign journal names nothing we remove)."""
    try:
        envelope = json.loads(journal.read_bytes().split(b"\n", 1)[0])
    except (OSError, ValueError):
        return None
    header = envelope.get("header") if isinstance(envelope, dict) else None
    temp = header.get("temp") if isinstance(header, dict) else None
    if not isinstance(temp, str):
        return None
    path = Path(temp)
    return path if path.name.startswith(".") and path.name.endswith(".incomplete") else None


def partial_downloads(directory: Path) -> list[PartialDownload]:
    """The downloads in ``directory`` (a remote's download journals) that a later attempt could
    resume: the journal is readable and its temp file is there."""
    found = []
    for path in sorted(directory.glob(f"*{SUFFIX}")) if directory.is_dir() else []:
        temp = _temp_of(path)
        try:
            st = temp.stat() if temp is not None else None
        except OSError:
            st = None
        if temp is not None and st is not None and stat.S_ISREG(st.st_mode):
            blocks = getattr(st, "st_blocks", None)  # none on Windows: its length, then
            used = st.st_size if blocks is None else blocks * 512
            found.append(PartialDownload(path, temp, used, st.st_mtime))
    return found


def sweep_downloads(directory: Path, max_age_s: float | None = None) -> tuple[int, int]:
    """Remove the download journals in ``directory`` that nothing can resume: the temp file
    their header names is gone (the download was committed, and the process was killed before it
    cleared the journal), or the header cannot be read (``resume_download`` would start afresh).
    With ``max_age_s``, also a partial download nobody has written to for that long, its temp
    file first: its bytes are a partial copy of a remote object, which still holds them all.
    Other partial downloads stay: the next attempt at each resumes from it.

    Only for a caller that knows no download into this state dir is running (it holds the models
    dir's lock): a journal is written a moment before its temp file. Returns (journals removed,
    bytes of partial downloads removed)."""
    if not directory.is_dir():
        return 0, 0
    keep = {p.journal: p for p in partial_downloads(directory)}
    now = time.time()
    removed = freed = 0
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        partial = keep.get(path)
        if partial is not None:
            if max_age_s is None or now - partial.mtime <= max_age_s:
                continue
            with contextlib.suppress(FileNotFoundError):
                partial.temp.unlink()
                freed += partial.size
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed, freed


def mark(journal: Journal, value: int) -> None:
    """Record that a download's range ``value`` (or its bytes up to offset ``value``) is on disk."""
    journal.append({"m": value})
