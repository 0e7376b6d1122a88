"""Progress bars for long copies and hashes: on a terminal only, and only for big files.

A bar is drawn from the first bytes moved, never before: work that turns out to need no reading
(a hash the cache already knows) shows nothing, and a bar on screen always shows bytes moving.
Sizes are binary (KiB, MiB, GiB) with their IEC labels, as ``ls -h``, ``du -h`` and rclone show
them, here and everywhere else in the output (``human_size``); ``--json`` keeps exact bytes.

The callback returned may be called from worker threads (the copy pipeline); rich's Progress is
thread-safe and the first call starts it under a lock. When stderr is not a terminal nothing at
all is printed.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
KIB = 1024
MIB = 1024**2
GIB = 1024**3


def human_size(n: int | float) -> str:
    """``512`` -> ``512 B``; ``200001633`` -> ``190.7 MiB``."""
    if abs(n) < 1024:
        return f"{n:.0f} B"
    size = n / 1024
    for unit in UNITS[1:-1]:
        if abs(size) < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} {UNITS[-1]}"


if TYPE_CHECKING:
    from rich.console import Console

# Files smaller than this finish before a bar is worth drawing: 100 MiB (README says so).
THRESHOLD = 100 * MIB

Advance = Callable[[int], None]


def enabled() -> bool:
    return sys.stderr.isatty()


class _LazyBar:
    """An ``advance(n_bytes)`` that starts the display on its first call with n > 0."""

    def __init__(self, description: str, total: int, console: Console) -> None:
        self._description = description
        self._total = total
        self._console = console
        self._lock = threading.Lock()
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, n: int) -> None:
        if n <= 0:
            return
        if self._progress is None:
            with self._lock:
                if self._progress is None:
                    self._start(n)
                    return
        self._progress.advance(self._task, n)

    def _start(self, completed: int) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class SpeedColumn(ProgressColumn):
            """rich's TransferSpeedColumn, in binary units like every other size shown."""

            def render(self, task: Any) -> Text:
                speed = task.finished_speed or task.speed
                shown = "?" if speed is None else f"{human_size(speed)}/s"
                return Text(shown, style="progress.data.speed")

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            SpeedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        # the task holds the first bytes before the display starts, so no frame shows zero
        self._task = progress.add_task(self._description, total=self._total, completed=completed)
        progress.start()
        self._progress = progress

    def stop(self) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.stop()


@contextmanager
def bar(
    description: str, total: int, *, console: Console | None = None
) -> Iterator[Advance | None]:
    """Yields an ``advance(n_bytes)`` callable, or None when no bar should be shown.

    ``console``: where to draw (a terminal Console is assumed); default stderr, when it is a
    terminal."""
    if total < THRESHOLD or (console is None and not enabled()):
        yield None
        return
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    lazy = _LazyBar(description, total, console)
    try:
        yield lazy
    finally:
        lazy.stop()
