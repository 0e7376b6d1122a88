"""Fixtures of the reliability suite: the shared fault ledger (one per session), written as JSON
at the end to $MS_RELIABILITY_REPORT or, if unset, to pytest's cache dir."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import pytest
from filelock import FileLock

from tests.reliability.ledger import Case, Ledger, load

# Fixtures reused from the agent and sync suites: a project dir with a real checkpoint, a real
# small tmpfs, a local remote.

_LEDGER = Ledger()


class _TestLedger:
    """The session ledger as one test sees it: each case is tagged with the test's node id."""

    def __init__(self, ledger: Ledger, nodeid: str) -> None:
        self._ledger = ledger
        self._nodeid = nodeid

    def case(self, fault: str, where: str, user_sees: str):
        return self._ledger.case(fault, where, user_sees, test=self._nodeid)

    @property
    def cases(self) -> list[Case]:
        return [c for c in self._ledger.cases if c.test == self._nodeid]


@pytest.fixture
def ledger(request) -> _TestLedger:
    return _TestLedger(_LEDGER, request.node.nodeid)


def report_path(config: pytest.Config) -> Path:
    env = os.environ.get("MS_RELIABILITY_REPORT")
    if env:
        return Path(env)
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    if cache is None:
        return Path(tempfile.gettempdir()) / "model-safety-reliability-last-run.json"
    return Path(cache.makedir("reliability")) / "last-run.json"


_STARTED = time.monotonic()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _LEDGER.cases:
        return
    path = report_path(session.config)
    # Under pytest-xdist every worker holds a share of the rows: each merges its share into the
    # report the other workers of the same run wrote, one at a time.
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    # The lock is this run's own: where fcntl is gone (the portability lane) filelock falls back
    # to a soft lock, for which a lock file another run left behind means "held" for ever.
    lock = path.with_name(f".{path.name}.{run}.lock")
    with FileLock(str(lock)) if run else contextlib.nullcontext():
        earlier = _earlier_rows(path, run) if run else []
        Ledger(cases=[*earlier, *_LEDGER.cases]).write(
            path,
            generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            seconds=round(time.monotonic() - _STARTED, 1),
            run=run,
        )


def _earlier_rows(path: Path, run: str) -> list[Case]:
    """The rows another worker of run ``run`` already wrote to ``path`` (none from other runs)."""
    try:
        report = load(path)
    except (OSError, ValueError):
        return []
    if report.get("run") != run:
        return []
    return [Case(**row) for row in report.get("cases", [])]
