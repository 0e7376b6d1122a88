"""Age-based cleanup on a remote, through the CLI, on a local remote and on SeaweedFS: a remote's
own `keep_within_days` (run and `prune --remote`), and the global one applied by `sync` on both
sides; the sides stay independent, and a push does not send back what the age rule removed."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support import SyncProject

DAYS = ["2025-06-02", "2025-09-01", "2026-01-05", "2026-01-26", "2026-02-02"]


def version(day: str) -> str:
    return f"dinesh_ai_model_v{day}.pth"


@pytest.fixture(params=["local", "s3_seaweedfs"])
def settings(request) -> dict:
    return request.getfixturevalue(f"{request.param}_settings")


def remote_versions(ms, proj) -> list[str]:
    res = ms(proj.root, "list", "--remote", "r", "--json")
    assert res.code == 0, res.err
    return sorted(
        f["name"]
        for f in json.loads(res.out)["files"]
        if f["kind"] == "version" and f["name"].startswith("dinesh_ai_model_v")
    )


def local_versions(proj) -> list[str]:
    return sorted(p.name for p in proj.models.glob("dinesh_ai_model_v*.pth"))


def make_versions(ms, proj, days: list[str]) -> None:
    for seed, day in enumerate(days):
        proj.write_model(seed=200 + seed)
        res = ms(proj.root, "run", "--today", day)
        assert res.code == 0, res.out + res.err


def test_a_remotes_own_age_rule_thins_it_as_versions_arrive(tmp_path, ms, settings):
    proj = SyncProject.create(
        tmp_path / "proj", settings, max_backups=10, retention={"keep_within_days": 30}
    )
    make_versions(ms, proj, DAYS)
    assert remote_versions(ms, proj) == sorted(version(d) for d in DAYS[2:])
    assert local_versions(proj) == sorted(version(d) for d in DAYS), "local keeps its own 10"

    dry = ms(proj.root, "prune", "--remote", "r", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    reasons = {d["name"]: d["reasons"] for d in json.loads(dry.out)["decisions"]}
    assert reasons[version("2026-01-05")] == ["within 30 days of the newest (2026-02-02) 3/10"]

    push = ms(proj.root, "push")
    assert push.code == 0, push.err
    assert "uploaded" not in push.out, "what the age rule removed is not sent back"
    assert remote_versions(ms, proj) == sorted(version(d) for d in DAYS[2:])
    assert ms(proj.root, "verify", "--remote", "r").code == 0


def test_the_global_age_rule_applies_on_both_sides_and_keeps_two(tmp_path, ms, settings):
    proj = SyncProject.create(tmp_path / "proj", settings, max_backups=10, auto_push=False)
    make_versions(ms, proj, DAYS)  # nothing pushed: every local version is pinned
    doc = yaml.safe_load(proj.config.read_text())
    doc["MODEL_SAFETY"]["max_backups"] = 4
    doc["MODEL_SAFETY"]["retention"] = {"keep_within_days": 3}
    proj.config.write_text(yaml.safe_dump(doc, sort_keys=False))

    dry = ms(proj.root, "sync", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    doomed = [d["name"] for d in json.loads(dry.out)["local_prune"] if not d["keep"]]
    assert doomed == [], "pinned: a dry run pushes nothing, so nothing local is on a remote yet"
    assert local_versions(proj) == sorted(version(d) for d in DAYS)

    res = ms(proj.root, "sync", "--json")
    assert res.code == 0, res.out + res.err
    report = json.loads(res.out)
    (remote,) = report["remotes"]
    removed = {d["name"]: d["reasons"] for d in remote["prune"] if not d["keep"]}
    assert set(removed) == {version(d) for d in DAYS[:3]}
    assert removed[version("2026-01-05")][0] == (
        "dated 28 days before the newest (2026-02-02): older than keep_within_days 3"
    )
    kept = {d["name"]: d["reasons"] for d in report["local_prune"] if d["keep"]}
    assert kept[version("2026-01-26")] == ["never fewer than 2 versions"]
    # only the newest is within 3 days; the floor keeps a second one, on each side
    expected = sorted(version(d) for d in DAYS[3:])
    assert remote_versions(ms, proj) == expected
    assert local_versions(proj) == expected
    assert ms(proj.root, "verify", "--remote", "r").code == 0
    assert ms(proj.root, "verify").code == 0
