"""Fixtures of the reliability suite: the shared fault ledger (one per session), written as JSON
at the end to $MS_RELIABILITY_REPORT or, if unset, to pytest's cache dir."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import pytest

from tests.reliability.ledger import Case, Ledger

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
    if _LEDGER.cases:
        _LEDGER.write(
            report_path(session.config),
            generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            seconds=round(time.monotonic() - _STARTED, 1),
        )
