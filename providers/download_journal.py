"""The on-disk record of a download in progress, so a later process resumes it after kill -9.

One JSON-lines file per (remote object, destination) under ``<state_dir>/downloads/``: the first
line is a header naming the object version (ETag or md5), its size, the temp file and the range
size; each later line is one mark (``{"m": n}``): a finished range index for S3, a byte offset
written for Drive. A mark is appended only after its bytes were written to the temp file, so
after kill -9 (the page cache survives a killed process) every mark is backed by bytes on disk;
a power loss can break that, which the whole-file hash check before the rename catches. A torn
last line (killed mid-append) is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from providers.transfer import atomic_write


class DownloadJournal:
    def __init__(self, directory: Path, ident: str) -> None:
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
        self.path = directory / f"{digest}.jsonl"
        self._lock = threading.Lock()
        self._fd: int | None = None

    def read(self) -> tuple[dict[str, Any] | None, list[int]]:
        """The header and the marks on disk; (None, []) when there is no readable journal."""
        try:
            lines = self.path.read_bytes().split(b"\n")
            header = json.loads(lines[0])
        except (OSError, ValueError):
            return None, []
        marks = []
        for line in lines[1:]:
            try:
                marks.append(int(json.loads(line)["m"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line from a killed process, or the empty last one
        return (header if isinstance(header, dict) else None), marks

    def start(self, header: dict[str, Any]) -> None:
        """Begin a fresh journal: the header alone, written atomically."""
        self.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.path, private=True) as f:
            f.write(json.dumps(header, sort_keys=True).encode() + b"\n")

    def mark(self, value: int) -> None:
        """Append one mark. One write(2) of one short line on an O_APPEND descriptor: lines
        from several threads never interleave. No fsync: kill -9 keeps the page cache, and the
        final hash check covers a power loss."""
        line = json.dumps({"m": value}).encode() + b"\n"
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def clear(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def resume_or_start(
    journal: DownloadJournal,
    header: dict[str, Any],
    dest: Path,
    temp_ok: Callable[[list[int]], bool],
) -> list[int]:
    """The marks of an earlier attempt at exactly this download (same header: same object
    version, size, temp file, range size) whose temp file passes ``temp_ok``. Otherwise whatever
    an earlier attempt left is discarded (its temp file and journal), a fresh journal is started
    and the answer is []: the caller starts from scratch with an empty temp file."""
    old, marks = journal.read()
    if old == header and temp_ok(marks):
        return marks
    temp = Path(header["temp"])
    stale = [temp]
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
