"""Run an update command under a Guard: its output streamed, Ctrl-C and SIGTERM turned into a
clean stop (the command is given time to exit, then the model is judged and rolled back if it
changed), so the model is never left half-written."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO

from agent.errors import AgentError
from agent.guard.result import GuardResult, signals_ignored
from agent.guard.update import Guard
from agent.signals import handled, stop_child, stop_signals

ENV_MODEL_PATH = "MODEL_SAFETY_MODEL_PATH"  # tells the command which file it is updating
GRACE_SECONDS = 30.0  # how long an interrupted command gets to exit before it is terminated


class _Terminated(BaseException):
    """SIGTERM (systemd stopping us, say) or Ctrl-Break arrived: handled like Ctrl-C."""


def run_guarded(
    guard: Guard,
    argv: Sequence[str],
    *,
    stdout: IO[str] | None = None,
    grace: float = GRACE_SECONDS,
) -> GuardResult:
    """``guard.begin()``, run ``argv``, ``guard.finish()``. ``stdout``: where the command's
    standard output goes (default: ours; ``--json`` sends it to stderr)."""
    if not argv:
        raise AgentError("no update command given; put it after --, e.g. -- python train.py")
    guard.begin()
    env = dict(os.environ, **{ENV_MODEL_PATH: str(guard.store.path(guard.model.file).resolve())})
    with _sigterm_as_exception():
        try:
            proc = subprocess.Popen(list(argv), stdout=stdout, env=env)
        except OSError as exc:
            return guard.finish(failed=f"cannot start {argv[0]}: {exc.strerror or exc}")
        try:
            code = proc.wait()
        except (KeyboardInterrupt, _Terminated):
            with signals_ignored():
                code = stop_child(proc, grace)
            return guard.finish(failed="interrupted", command_exit=code, interrupted=True)
    failed = None if code == 0 else _describe_exit(code)
    return guard.finish(failed=failed, command_exit=code)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


@contextmanager
def _sigterm_as_exception() -> Iterator[None]:
    """SIGTERM (a service manager stopping us) and Ctrl-Break (Windows) stop the command as
    Ctrl-C does; Ctrl-C itself arrives as KeyboardInterrupt."""

    def handler(signum: int, frame: object) -> None:
        raise _Terminated()

    with handled(handler, [s for s in stop_signals() if s != signal.SIGINT]):
        yield
