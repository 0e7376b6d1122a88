"""Retention across sides through the CLI: local retention never drops a version no remote holds
yet (unless --force), `sync` applies both policies, and `status` / `list --remote` say what a push
would send."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.support import SyncProject

MONDAY = dt.date(2026, 2, 2)


@pytest.fixture
def nas_project(tmp_path, local_settings) -> SyncProject:
    return SyncProject.create(
        tmp_path / "proj",
        local_settings,
        max_backups=2,
        auto_push=False,
        retention={"keep_last": 3},
    )


def make_weeks(ms, proj, weeks: int) -> list[str]:
    names = []
    for week in range(weeks):
        day = MONDAY + dt.timedelta(weeks=week)
        proj.write_model(seed=100 + week)
        assert ms(proj.root, "run", "--today", day.isoformat()).code == 0
        names.append(f"dinesh_ai_model_v{day}.pth")
    return names


def test_unmirrored_versions_survive_local_retention_until_forced(nas_project, ms):
    proj = nas_project
    names = make_weeks(ms, proj, 4)  # auto_push is off: nothing is on the remote yet
    local = {p.name for p in proj.models.glob("dinesh_ai_model_v*.pth")}
    assert local == set(names), "versions on no remote must not be pruned"
    res = ms(proj.root, "prune", "--dry-run")
    assert "not on any remote yet" in res.out

    res = ms(proj.root, "sync")  # push, then retention on the remote (3) and locally (2)
    assert res.code == 0, res.out + res.err
    assert {p.name for p in proj.models.glob("dinesh_ai_model_v*.pth")} == set(names[-2:])
    on_remote = {p.name for p in (proj.root.parent / "nas" / "model-backups").glob("*_v*.pth")}
    assert on_remote == set(names[-3:])

    # a version made now is on no remote: only --force lets prune delete it
    proj.write_model(seed=999)
    day = MONDAY + dt.timedelta(weeks=4)
    assert ms(proj.root, "run", "--today", day.isoformat()).code == 0
    proj.write_config(max_backups=0, auto_push=False, retention={"keep_last": 3})
    assert ms(proj.root, "prune").code == 0
    assert (proj.models / f"dinesh_ai_model_v{day}.pth").exists()
    assert ms(proj.root, "prune", "--force").code == 0
    # the floor of 2 still holds, and the newest version is kept
    left = sorted(p.name for p in proj.models.glob("dinesh_ai_model_v*.pth"))
    assert len(left) == 2 and f"dinesh_ai_model_v{day}.pth" in left


def test_status_and_list_show_what_a_push_would_send(nas_project, ms):
    proj = nas_project
    make_weeks(ms, proj, 1)
    res = ms(proj.root, "status", "--json")
    assert res.code == 0, res.err
    (remote,) = json.loads(res.out)["remotes"]
    assert remote["remote"] == "r" and remote["versions"] == []
    assert "dinesh_ai_model_v2026-02-02.pth" in remote["would_push"]
    assert remote["last_verified"] is None

    assert ms(proj.root, "push").code == 0
    assert ms(proj.root, "verify", "--remote", "r").code == 0
    res = ms(proj.root, "status", "--json")
    (remote,) = json.loads(res.out)["remotes"]
    assert remote["versions"] == ["dinesh_ai_model_v2026-02-02.pth"]
    assert remote["would_push"] == [] and remote["last_verified"]
    res = ms(proj.root, "list", "--remote", "r")
    assert res.code == 0
    assert "dinesh_ai_model_v2026-02-02.pth" in res.out and "never" not in res.out
    res = ms(proj.root, "status")
    assert "remote r (local): 1 version(s)" in res.out and "up to date" in res.out


def test_unreachable_remote_is_reported_not_fatal_for_status(tmp_path, ms):
    missing_nas = {"type": "local", "path": str(tmp_path / "not-mounted" / "nas")}
    proj = SyncProject.create(tmp_path / "proj", missing_nas)
    proj.write_model(seed=1)
    res = ms(proj.root, "status")
    assert res.code == 0
    assert "unreachable" in res.out
    res = ms(proj.root, "push")
    assert res.code == 1 and "mount it or fix path" in res.err and "Traceback" not in res.err


def test_an_unreachable_remote_that_run_does_not_push_to_only_warns(tmp_path, ms, local_settings):
    """`run` pushes to auto_push remotes; another remote, consulted only so that local retention
    keeps what it lacks, being offline (an unmounted NAS) is a warning, not a failed cron run."""
    offline = {"type": "local", "path": str(tmp_path / "not-mounted" / "nas")}
    proj = SyncProject.create(tmp_path / "proj", local_settings, extra_remotes={"offline": offline})
    proj.write_model(seed=1)
    res = ms(proj.root, "run")
    assert res.code == 0, res.out + res.err
    assert "remote 'offline'" in res.err and "remote offline" not in res.err
    assert res.err.count("remote 'offline'") == 1


def test_a_version_the_remote_expired_is_not_pushed_again_until_its_policy_keeps_it(
    tmp_path, local_settings, ms
):
    """Local keeps more versions than the remote: a run must not upload again the versions the
    remote's retention had just removed, and remove them again (a full upload per run)."""
    proj = SyncProject.create(
        tmp_path / "proj", local_settings, max_backups=5, retention={"keep_last": 2}
    )
    names = make_weeks(ms, proj, 4)  # run pushes and applies the remote's keep_last 2
    res = ms(proj.root, "push")
    assert res.code == 0, res.err
    assert "uploaded" not in res.out, res.out  # nothing the remote's policy would delete again
    nas = tmp_path / "nas" / "model-backups"
    assert {p.name for p in nas.glob("*_v*.pth")} == set(names[-2:])
    proj.write_config(max_backups=5, retention={"keep_last": 3})  # widened: one comes back
    res = ms(proj.root, "push")
    assert f"uploaded {names[1]}" in res.out, res.out
    assert {p.name for p in nas.glob("*_v*.pth")} == set(names[-3:])
