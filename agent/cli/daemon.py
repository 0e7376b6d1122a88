"""``model-safety daemon``: run the periodic job once a day at a set time, or every N hours,
until stopped.

On the first stop signal (SIGTERM or Ctrl-C; Ctrl-C or Ctrl-Break on Windows, see agent/signals.py)
the daemon stops taking new work: a transfer in flight finishes, the remote catalog is written,
and it exits 0. A second signal stops at once; an interrupted
upload is checkpointed by its journal and resumes on the next run.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from types import FrameType

from agent.signals import handled, name

log = logging.getLogger(__name__)


def next_run(now: dt.datetime, *, at: dt.time | None, every: dt.timedelta | None) -> dt.datetime:
    """When the next run is due: today's ``at`` if still ahead (else tomorrow's), or ``every``
    after ``now``. Pure, so it is tested on its own."""
    if every is not None:
        return now + every
    assert at is not None
    candidate = now.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    return candidate if candidate > now else candidate + dt.timedelta(days=1)


class Daemon:
    def __init__(
        self,
        job: Callable[[Callable[[], bool]], int],
        *,
        at: dt.time | None = None,
        every: dt.timedelta | None = None,
        run_now: bool = False,
        clock: Callable[[], dt.datetime] = dt.datetime.now,
    ) -> None:
        if (at is None) == (every is None):
            raise ValueError("give exactly one of at / every")
        self.job = job
        self.at, self.every, self.run_now = at, every, run_now
        self.clock = clock
        # A plain flag, not a threading.Event: Event.set() from a signal handler can fail to wake
        # an Event.wait() in the same (main) thread, so the loop sleeps in short steps instead.
        self.stopping = False
        self.runs = 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            log.warning("second %s: stopping now", name(signum))
            raise KeyboardInterrupt
        log.warning(
            "%s received: finishing the transfer in flight, then exiting",
            name(signum),
        )
        self.stopping = True

    def serve(self) -> int:
        with handled(self._on_signal):
            return self._loop()

    def _loop(self) -> int:
        due = self.clock() if self.run_now else next_run(self.clock(), at=self.at, every=self.every)
        while not self.stopping:
            log.warning("next run at %s", due.isoformat(timespec="seconds"))
            while not self.stopping:
                wait = (due - self.clock()).total_seconds()
                if wait <= 0:
                    break
                time.sleep(min(wait, 1.0))
            if self.stopping:
                break
            self.runs += 1
            started = self.clock()
            log.warning("run %d started", self.runs)
            try:
                code = self.job(lambda: self.stopping)
            except Exception as exc:  # one bad night must not end the daemon
                log.error("run %d failed: %s", self.runs, exc)
                code = 1
            log.warning(
                "run %d finished with exit code %d in %.1fs",
                self.runs,
                code,
                (self.clock() - started).total_seconds(),
            )
            due = next_run(self.clock(), at=self.at, every=self.every)
        log.warning("stopped after %d run(s)", self.runs)
        return 0
