"""The checker's child processes, and one started ahead of its file (the spare).

Importing torch is most of what a check of a few hundred MB costs (1-2 s of CPU here), and it
needs no file. A push of content it has never seen starts a spare as it begins, before the file
is hashed and the remote opened, so that by the time the file is handed over the import is done
and only the file's own check is left. The spare knows nothing of the file until then: it
imports torch under a CPU limit of its own, then waits for its job on stdin (agent.checks.child),
whose limits it applies before it opens the file. A spare not needed is killed.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

# A spare works beside an upload: on a machine that also runs the server receiving it (or the
# training that wrote the file), the check, whose verdict is needed only at the upload's end,
# takes the CPU they leave. Nice 10 still gets ~10% of a core against one busy process per
# core: a 2.5 CPU-second check then takes ~25 s, well inside its wall-time limit.
SPARE_NICE = 10

_lock = threading.Lock()
_spare: subprocess.Popen[bytes] | None = None
_registered = False


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    # one thread: no thread pool reserving address space; the caller is busy uploading anyway
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def spawn(nice: int = 0) -> subprocess.Popen[bytes]:
    """A checker child: it imports torch at once and then waits for its job on stdin. ``nice``:
    how much lower than ours its CPU priority is (where the system has priorities)."""
    kwargs: dict[str, Any] = {}
    if os.name == "posix":
        kwargs["start_new_session"] = True  # a kill on timeout reaches everything it started
    return subprocess.Popen(
        [sys.executable, "-m", "agent.checks.child", str(nice)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        **kwargs,
    )


def kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def start() -> None:
    """Start the spare now, unless one is waiting already."""
    global _spare, _registered
    with _lock:
        if _spare is not None and _spare.poll() is None:
            return
        _spare = spawn(SPARE_NICE)
        if not _registered:
            atexit.register(drop)
            _registered = True


def take() -> subprocess.Popen[bytes] | None:
    """The spare, for one job (it is nobody's spare any more), or None when there is none alive:
    one that died before it was given a file says nothing about any file."""
    global _spare
    with _lock:
        proc, _spare = _spare, None
    if proc is not None and proc.poll() is not None:
        _close(proc)
        return None
    return proc


def drop() -> None:
    """Kill the spare, if one is waiting: the push found nothing new to judge, or is over."""
    proc = take()
    if proc is not None:
        kill(proc)
        proc.wait()
        _close(proc)


def _close(proc: subprocess.Popen[bytes]) -> None:
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
