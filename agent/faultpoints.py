"""Test-only crash points: ``crash_point("backup-commit")`` kills this process with SIGKILL when
the environment variable ``MODEL_SAFETY_TEST_CRASH_AT`` names that point, so the reliability
suite (tests/reliability/test_crash.py) can stop a real CLI process at an exact step that is too
short to hit by watching byte counts (a rename, a catalog write, a delete between two files).

``MODEL_SAFETY_TEST_CRASH_AT=name`` crashes at the first time the point is reached,
``name:N`` at the N-th. Never set it outside tests. When unset, a crash point costs one
comparison with None; the variable is read once, at import.
"""

from __future__ import annotations

import os
import signal

ENV = "MODEL_SAFETY_TEST_CRASH_AT"


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, nth = value.partition(":")
    return name, int(nth) if nth.isdigit() and int(nth) > 0 else 1


_TARGET = _parse(os.environ.get(ENV))
_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process here if the test asked for it (see the module docstring)."""
    if _TARGET is None or _TARGET[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= _TARGET[1]:
        # Windows has no SIGKILL; os.kill with SIGTERM there terminates the process outright
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
