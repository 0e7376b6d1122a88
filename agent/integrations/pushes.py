"""Background pushes for a training run: one worker thread per remote, at most one push to it at a
time, and a request that arrives while one is queued joins it.

A push mirrors every local copy, so a queued push always sends the newest checkpoint there is
when it starts: a newer checkpoint supersedes a queued one by simply finding it queued. A failed
push is logged as a warning and recorded in ``outcomes``; nothing here raises into the training
loop.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("agent.integrations")

# How often the wait at the end of training rewrites its progress line.
PROGRESS_EVERY_S = 2.0


@dataclass(frozen=True)
class PushOutcome:
    """One push's result: ``ok`` False when it raised or reported problems; ``message`` is its
    summary line or what went wrong."""

    remote: str
    ok: bool
    message: str


class _Worker:
    def __init__(self, remote: str, push: Callable[[str], PushOutcome]) -> None:
        self.remote = remote
        self._push = push
        self._cond = threading.Condition()
        self._queued = False
        self._running_since: float | None = None
        self._closed = False
        self.outcomes: list[PushOutcome] = []
        self._thread = threading.Thread(
            target=self._loop, name=f"model-safety push to {remote}", daemon=True
        )
        self._thread.start()

    def request(self) -> None:
        with self._cond:
            self._queued = True
            self._cond.notify_all()

    def drop_queued(self) -> None:
        with self._cond:
            self._queued = False

    def state(self) -> str | None:
        """``pushing (12s)``, ``queued`` or None when idle."""
        with self._cond:
            if self._running_since is not None:
                return f"pushing ({time.monotonic() - self._running_since:.0f}s)"
            return "queued" if self._queued else None

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._queued and self._running_since is None, timeout
            )

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queued or self._closed)
                if not self._queued:
                    return
                self._queued = False
                self._running_since = time.monotonic()
            try:
                outcome = self._push(self.remote)
            except Exception as exc:  # a push must never take the training run down
                outcome = PushOutcome(self.remote, False, f"{type(exc).__name__}: {exc}")
            if not outcome.ok:
                log.warning("model-safety: push to %s failed: %s", self.remote, outcome.message)
            else:
                log.info("model-safety: pushed %s", outcome.message)
            with self._cond:
                self.outcomes.append(outcome)
                self._running_since = None
                self._cond.notify_all()


class BackgroundPushes:
    """Workers for ``remotes``; ``push(remote)`` does one push and returns its outcome."""

    def __init__(self, remotes: list[str], push: Callable[[str], PushOutcome]) -> None:
        self._workers = [_Worker(name, push) for name in remotes]

    @property
    def outcomes(self) -> list[PushOutcome]:
        return [o for w in self._workers for o in w.outcomes]

    def request(self) -> None:
        for w in self._workers:
            w.request()

    def drop_queued(self) -> None:
        """Forget pushes not started yet (the caller will ask for a newer one)."""
        for w in self._workers:
            w.drop_queued()

    def wait(self, what: str) -> None:
        """Wait until no push runs or is queued, showing which remotes are still busy."""
        shown = False
        while True:
            busy = [(w.remote, s) for w in self._workers if (s := w.state()) is not None]
            if not busy:
                break
            line = f"model-safety: {what}: " + ", ".join(f"{r} {s}" for r, s in busy)
            _show(line, final=False)
            shown = True
            busy_worker = next(w for w in self._workers if w.remote == busy[0][0])
            busy_worker.wait_idle(PROGRESS_EVERY_S)
        if shown:
            _show(f"model-safety: {what}: done", final=True)

    def close(self) -> None:
        for w in self._workers:
            w.close()


def _show(line: str, *, final: bool) -> None:
    """One progress line on stderr: rewritten in place on a terminal, one line each otherwise."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + line + ("\n" if final else ""))
    else:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()
