"""One writer per models dir: an OS lock on ``.model-safety/lock`` plus a note of who holds it in
``.model-safety/lock.holder``.

The lock is the ``filelock`` library's, which picks the platform's own: ``flock`` on Linux and
macOS, ``msvcrt.locking`` on Windows. The OS drops either when its holder dies, even under
``kill -9`` or a power cut, so a lock left by a killed process never blocks anyone. (Where
neither exists filelock falls back to a lock file that names its owner and is taken over when
that owner is dead.) The note sits in a file of its own because Windows keeps a locked file's
bytes from every other process: a second run reads the note to name the live holder (pid,
host, command, since when). A holder empties the note before it lets go, so a note found by
whoever takes the lock next was left by a holder that died: that is reported as a stale lock
taken over.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

import filelock

from agent.errors import LockHeld

# State dirs whose lock this process holds. While we hold it no other model-safety process writes
# in that models dir, so every temp file of ours found there is a leftover (see
# Store.remove_stale_temps).
_held: set[Path] = set()


def held_by_us(state_dir: Path) -> bool:
    return Path(state_dir).resolve() in _held


class Lock:
    FILE = "lock"
    NOTE = "lock.holder"

    def __init__(self, state_dir: Path, command: str) -> None:
        self.path = state_dir / self.FILE
        self.note_path = state_dir / self.NOTE
        self.command = command
        self._lock: filelock.BaseFileLock | None = None
        self.stale: dict[str, Any] | None = None  # the note of a dead holder we took over from

    @property
    def held(self) -> bool:
        return self._lock is not None

    def _read_note(self) -> dict[str, Any]:
        try:
            data = self.note_path.read_bytes()[:4096]
            note = json.loads(data.decode("utf-8")) if data.strip() else {}
            return note if isinstance(note, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_note(self, text: str) -> None:
        # Rewritten in place, not renamed: a rename over a file another process is reading
        # fails on Windows, and a torn note only costs a "pid ?" in someone's message.
        with open(self.note_path, "w", encoding="utf-8") as fh:
            fh.write(text)

    def acquire(self) -> Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # thread_local=False: the daemon may release from another thread than the one that took it
        lock = filelock.FileLock(self.path, timeout=0, thread_local=False)
        try:
            lock.acquire()
        except filelock.Timeout:
            note = self._read_note()
            who = (
                f"pid {note.get('pid', '?')} on {note.get('host', '?')}, "
                f"`{note.get('command', '?')}` since {note.get('since', '?')}"
            )
            raise LockHeld(
                f"another model-safety process holds the lock on {self.path.parent.parent} "
                f"({who}); try again when it has finished"
            ) from None
        try:
            previous = self._read_note()
            pid = previous.get("pid")
            if isinstance(pid, int) and pid != os.getpid():
                self.stale = previous  # a live holder would still hold the lock: it died
            note = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": self.command,
                "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            self._write_note(json.dumps(note))
        except BaseException:
            lock.release()
            raise
        self._lock = lock
        _held.add(self.path.parent.resolve())
        return self

    def release(self) -> None:
        if self._lock is None:
            return
        _held.discard(self.path.parent.resolve())
        try:
            # Leave an empty note: a note that survives only when the holder died is what
            # identifies a stale lock.
            self._write_note("")
        except OSError:
            pass
        finally:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Lock:
        return self if self._lock is not None else self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
