"""Stop signals, as each platform delivers them.

- Linux and macOS: Ctrl-C is SIGINT; a service manager (systemd, launchd) or ``kill`` sends
  SIGTERM.
- Windows: Ctrl-C is SIGINT (Python raises KeyboardInterrupt) and Ctrl-Break is SIGBREAK; no
  service manager sends SIGTERM (Task Scheduler ends a task by terminating it outright), and a
  child process can be sent only SIGTERM, which terminates it.

Handlers are installed only for the signals that exist here, and only from the main thread
(Python refuses anywhere else); a signal that cannot be handled is left as it is.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Handler = Callable[[int, Any], Any] | int | signal.Handlers | None


def stop_signals() -> list[int]:
    """The signals that ask this process to stop: SIGINT, SIGTERM and, on Windows, SIGBREAK."""
    names = ("SIGINT", "SIGTERM", "SIGBREAK")
    return [getattr(signal, n) for n in names if hasattr(signal, n)]


@contextmanager
def handled(handler: Handler, signals: list[int] | None = None) -> Iterator[list[int]]:
    """Install ``handler`` for ``signals`` (default: every stop signal) for the block; yields the
    signals it could install, and puts the previous handlers back at the end."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in stop_signals() if signals is None else signals:
            try:
                previous[sig] = signal.signal(sig, handler)
            except (ValueError, OSError):
                continue  # not a signal this platform lets us handle
    try:
        yield list(previous)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def escalation(grace: float) -> list[tuple[int | None, float]]:
    """How to stop a child we were interrupted while waiting for: (signal to send first or None,
    seconds to wait for it). A terminal's Ctrl-C reached the child already, so the first wait
    sends nothing. POSIX then passes SIGINT on (a signal sent to us alone), then SIGTERM;
    Windows can only terminate a child, so it waits out the grace period first."""
    if hasattr(signal, "SIGBREAK"):  # Windows
        return [(None, grace), (signal.SIGTERM, 5.0)]
    return [(None, 0.5), (signal.SIGINT, grace), (signal.SIGTERM, 5.0)]


def stop_child(proc: subprocess.Popen[Any], grace: float) -> int:
    """Let an interrupted child finish writing; escalate only when it does not exit."""
    for sig, wait in escalation(grace):
        if sig is not None and proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    proc.kill()
    return proc.wait()
