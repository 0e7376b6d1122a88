"""One writer per models dir: an flock on ``.model-safety/lock`` plus a note of who holds it.

The kernel drops an flock when its holder dies, even under ``kill -9``, so a lock left by a killed
process never blocks anyone; the note it left behind is only used to say that a stale lock was
taken over. A live holder is named in the error (pid, host, command, since when).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from agent.errors import LockHeld

# State dirs whose lock this process holds. While we hold it no other model-safety process writes
# in that models dir, so every temp file of ours found there is a leftover (see
# Store.remove_stale_temps).
_held: set[Path] = set()


def held_by_us(state_dir: Path) -> bool:
    return Path(state_dir).resolve() in _held


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lock:
    FILE = "lock"

    def __init__(self, state_dir: Path, command: str) -> None:
        self.path = state_dir / self.FILE
        self.command = command
        self.fd: int | None = None
        self.stale: dict[str, Any] | None = None  # the note of a dead holder we took over from

    def _read_note(self, fd: int) -> dict[str, Any]:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            data = os.read(fd, 4096)
            note = json.loads(data.decode("utf-8")) if data else {}
            return note if isinstance(note, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self) -> Lock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            note = self._read_note(fd)
            os.close(fd)
            who = (
                f"pid {note.get('pid', '?')} on {note.get('host', '?')}, "
                f"`{note.get('command', '?')}` since {note.get('since', '?')}"
            )
            raise LockHeld(
                f"another model-safety process holds the lock on {self.path.parent.parent} "
                f"({who}); try again when it has finished"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        previous = self._read_note(fd)
        pid = previous.get("pid")
        same_host = previous.get("host") == socket.gethostname()
        if isinstance(pid, int) and pid != os.getpid() and (not same_host or not _alive(pid)):
            self.stale = previous
        note = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(note).encode("utf-8"), 0)
        self.fd = fd
        _held.add(self.path.parent.resolve())
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        _held.discard(self.path.parent.resolve())
        try:
            # Leave an empty note: a note that survives only when the holder died is what
            # identifies a stale lock.
            os.ftruncate(self.fd, 0)
        except OSError:
            pass
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> Lock:
        return self if self.fd is not None else self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
