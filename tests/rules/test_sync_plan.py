"""The push plan and the daemon's clock are pure; their rules are checked here directly."""

from __future__ import annotations

import datetime as dt

from agent.cli.daemon import next_run
from agent.rules.push_plan import Action, LocalFile, RemoteFile, plan_push


def lf(name: str, sha: str, size: int = 10, **kw) -> LocalFile:
    return LocalFile(name, size, sha, **kw)


def test_plan_sends_only_what_the_remote_lacks_and_never_bad_bytes():
    local = [
        lf("m_v2024-01-01.pth", "a"),
        lf("m_v2024-01-08.pth", "b"),
        lf("m_v2024-01-15.pth", "c", ok=False),
        lf("m.pth", "d", blocked="failed the structural check: NaN"),
        lf("m_backup.pth", "a"),
        lf("tok.json", "e"),
        lf("by_hand.json", "f"),
    ]
    remote = {
        "m_v2024-01-01.pth": RemoteFile("m_v2024-01-01.pth", 10, {"sha256": "a"}),
        "m_v2024-01-15.pth": RemoteFile("m_v2024-01-15.pth", 10, {"sha256": "c"}),
        "tok.json": RemoteFile("tok.json", 10, {"md5": "x"}, {"sha256": "e", "size": 10}),
        "by_hand.json": RemoteFile("by_hand.json", 10, {"md5": "x"}),
    }
    steps = {s.name: s for s in plan_push(local, remote, can_copy=True)}
    assert steps["m_v2024-01-01.pth"].action is Action.PRESENT
    assert steps["m_v2024-01-08.pth"].action is Action.UPLOAD
    assert steps["m_v2024-01-15.pth"].action is Action.REFUSE  # corrupted here: never sent
    assert steps["m.pth"].action is Action.REFUSE and "NaN" in steps["m.pth"].reason
    assert steps["m_backup.pth"].action is Action.COPY
    assert steps["m_backup.pth"].source == "m_v2024-01-01.pth"
    assert steps["tok.json"].action is Action.PRESENT  # the remote catalog vouches for it
    # no catalog entry and no checksum in common: it cannot be trusted, so it is sent again
    assert steps["by_hand.json"].action is Action.UPLOAD
    assert steps["by_hand.json"].reason == "remote copy cannot be compared"


def test_a_server_md5_that_disagrees_beats_a_stored_sha256():
    remote = {"m.pth": RemoteFile("m.pth", 10, {"sha256": "a", "md5": "rotten"})}
    (step,) = plan_push([lf("m.pth", "a", md5="fresh")], remote, can_copy=False)
    assert step.action is Action.UPLOAD and step.reason == "remote copy differs"


def test_without_server_side_copy_everything_new_is_uploaded():
    remote = {"a.pth": RemoteFile("a.pth", 10, {"sha256": "a"})}
    (step,) = plan_push([lf("b.pth", "a")], remote, can_copy=False)
    assert step.action is Action.UPLOAD


def test_daemon_schedule():
    now = dt.datetime(2026, 3, 1, 1, 30)
    assert next_run(now, at=dt.time(2, 0), every=None) == dt.datetime(2026, 3, 1, 2, 0)
    assert next_run(now, at=dt.time(1, 0), every=None) == dt.datetime(2026, 3, 2, 1, 0)
    assert next_run(now, at=None, every=dt.timedelta(hours=6)) == dt.datetime(2026, 3, 1, 7, 30)
