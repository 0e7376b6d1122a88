"""Progress bars for long copies and hashes: on a terminal only, and only for big files.

The callback returned may be called from worker threads (the copy pipeline); rich's Progress is
thread-safe. When stderr is not a terminal nothing at all is printed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

THRESHOLD = 100 * 1024 * 1024  # files smaller than this finish before a bar is worth drawing

Advance = Callable[[int], None]


def enabled() -> bool:
    return sys.stderr.isatty()


@contextmanager
def bar(description: str, total: int) -> Iterator[Advance | None]:
    """Yields an ``advance(n_bytes)`` callable, or None when no bar should be shown."""
    if total < THRESHOLD or not enabled():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
