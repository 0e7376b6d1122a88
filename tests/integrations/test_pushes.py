"""The background push workers on their own: one push at a time per remote, requests made while
one runs fold into a single next push (the newest checkpoint supersedes a queued one), and a
push that raises becomes a failed outcome, never an exception in the caller."""

from __future__ import annotations

import threading

from agent.integrations.pushes import BackgroundPushes, PushOutcome


def test_requests_during_a_push_fold_into_one_next_push_and_failures_are_outcomes(capfd):
    started = threading.Semaphore(0)
    release = threading.Event()
    running = []  # remotes with a push in progress, to catch two at once
    calls: list[str] = []

    def push(remote: str) -> PushOutcome:
        assert remote not in running, "two pushes to one remote at once"
        running.append(remote)
        calls.append(remote)
        started.release()
        release.wait()
        running.remove(remote)
        if remote == "down":
            raise ConnectionError("connection refused")
        return PushOutcome(remote, True, f"{remote}: 1 file(s)")

    pushes = BackgroundPushes(["nas", "down"], push)
    pushes.request()
    assert started.acquire(timeout=60) and started.acquire(timeout=60)  # both remotes pushing
    for _ in range(5):  # five more checkpoints while those pushes run
        pushes.request()
    release.set()
    pushes.wait("pushing")
    pushes.close()

    assert sorted(calls) == ["down", "down", "nas", "nas"]  # one push now, one for the five
    outcomes = pushes.outcomes
    assert [o.ok for o in outcomes if o.remote == "nas"] == [True, True]
    failed = [o for o in outcomes if o.remote == "down"]
    assert [o.ok for o in failed] == [False, False]
    assert "connection refused" in failed[0].message
    assert "pushing: done" in capfd.readouterr().err
