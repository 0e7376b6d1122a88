"""Age-based cleanup through the CLI (`retention: {keep_within_days: N}`, the seed's "delete
versions older than 30 days"): versions dated on given days by `run --today`, then `prune`
(`--dry-run` says why per version) and `run` applying it; the newest good version and the floor
of 2 hold whatever the age says; max_backups caps the age rule."""

from __future__ import annotations

import json

from tests.support import CONFIG, MODEL_FILE

# far enough apart that only the newest three are within 30 days of the newest
DAYS = ["2025-06-02", "2025-09-01", "2026-01-05", "2026-01-26", "2026-02-02"]


def version(day: str) -> str:
    return f"dinesh_ai_model_v{day}.pth"


def configure(project, *, max_backups: int, interval: int = 7, retention: str = "") -> None:
    text = CONFIG.format(models_dir="models", max_backups=max_backups, min_free=0)
    text = text.replace("backup_interval_days: 7", f"backup_interval_days: {interval}")
    project.config.write_text(text + (f"  retention: {retention}\n" if retention else ""))


def make_versions(cli, project, days: list[str]) -> None:
    for seed, day in enumerate(days):
        project.write_model(seed=100 + seed)
        res = cli("run", "--today", day)
        assert res.code == 0, res.out + res.err
        assert (project.models / version(day)).exists()


def versions_on_disk(project) -> list[str]:
    return sorted(p.name for p in project.models.glob("dinesh_ai_model_v*.pth"))


def test_keep_within_days_removes_versions_older_than_the_window(cli, project):
    configure(project, max_backups=10)
    make_versions(cli, project, DAYS)
    # the seed's config, with its fix for a full disk added
    configure(project, max_backups=4, retention="{keep_within_days: 30}")

    dry = cli("prune", "--dry-run")
    assert dry.code == 0, dry.err
    lines = dry.out.splitlines()
    assert (
        f"keep    {version('2026-02-02')}: within 30 days of the newest (2026-02-02) 1/4; "
        "newest good version"
    ) in lines
    assert (
        f"keep    {version('2026-01-05')}: within 30 days of the newest (2026-02-02) 3/4" in lines
    )
    assert (
        f"would delete  {version('2025-09-01')}: dated 154 days before the newest (2026-02-02): "
        "older than keep_within_days 30; "
        "outside policy (keep_within_days 30 (at most 4: max_backups))"
    ) in lines, "max_backups as a rule of its own would have kept it: one of the four newest"
    assert versions_on_disk(project) == sorted(version(d) for d in DAYS), (
        "a dry run deletes nothing"
    )

    as_json = json.loads(cli("prune", "--dry-run", "--json").out)
    doomed = {d["name"]: d["reasons"] for d in as_json["decisions"] if not d["keep"]}
    assert set(doomed) == {version("2025-06-02"), version("2025-09-01")}
    assert doomed[version("2025-06-02")][0].startswith("dated 245 days before the newest")

    res = cli("prune")
    assert res.code == 0, res.err
    assert versions_on_disk(project) == sorted(version(d) for d in DAYS[2:])
    tokenizers = sorted(p.name for p in project.models.glob("tokenizer_v*.json"))
    assert tokenizers == [f"tokenizer_v{d}.json" for d in DAYS[2:]], "companions go with them"
    assert (project.models / MODEL_FILE).exists()
    assert cli("verify").code == 0


def test_max_backups_caps_the_age_rule(cli, project):
    """Daily versions and a 30-day window: an age limit added for a full disk never keeps more
    than max_backups; the reason names the cap."""
    days = [f"2026-01-{d:02d}" for d in range(10, 16)]
    configure(project, max_backups=10, interval=1)
    make_versions(cli, project, days)
    configure(project, max_backups=3, interval=1, retention="{keep_within_days: 30}")
    res = cli("prune", "--json")
    assert res.code == 0, res.err
    decisions = {d["name"]: d for d in json.loads(res.out)["decisions"]}
    assert versions_on_disk(project) == [version(d) for d in days[-3:]]
    assert decisions[version("2026-01-12")]["reasons"][0] == (
        "within 30 days of the newest (2026-01-15) but not among the 3 newest of those "
        "(max_backups 3 caps keep_within_days)"
    )


def test_the_newest_good_version_and_two_versions_survive_any_age(cli, project):
    """Every version is older than the window but the newest; the newest is damaged, so the
    window counts from the newest good one; the floor of 2 good versions still holds."""
    days = ["2025-01-06", "2025-06-02", "2025-11-03", "2026-01-05"]
    configure(project, max_backups=10)
    make_versions(cli, project, days)
    configure(project, max_backups=4, retention="{keep_within_days: 7}")
    newest = project.models / version(days[-1])
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))

    res = cli("prune", "--json")
    assert res.code == 0, res.err
    decisions = {d["name"]: d for d in json.loads(res.out)["decisions"]}
    assert decisions[version(days[-1])]["keep"], "a damaged copy is left for repair"
    assert "corrupted" in decisions[version(days[-1])]["reasons"][0]
    assert decisions[version(days[2])]["reasons"] == [
        "within 7 days of the newest (2025-11-03) 1/4",
        "newest good version",
    ]
    assert decisions[version(days[1])]["reasons"] == ["never fewer than 2 versions"]
    assert versions_on_disk(project) == sorted(version(d) for d in days[1:])


def test_run_applies_the_age_rule_and_says_why(cli, project):
    configure(project, max_backups=4, retention="{keep_within_days: 14}")
    make_versions(cli, project, ["2026-01-05", "2026-01-12", "2026-01-19"])
    project.write_model(seed=7)
    res = cli("run", "--today", "2026-02-09")
    assert res.code == 0, res.out + res.err
    # the new version is the reference; 2026-01-19, 21 days before it, stays only as the 2nd
    assert (
        f"local: deleted {version('2026-01-12')}: dated 28 days before the newest (2026-02-09): "
        "older than keep_within_days 14"
    ) in res.out
    assert versions_on_disk(project) == [version("2026-01-19"), version("2026-02-09")]


def test_init_starter_config_offers_the_age_rule(cli, project):
    from agent.config import load_config
    from agent.config_retention import local_policy

    project.config.unlink()
    assert cli("init").code == 0
    text = project.config.read_text()
    assert "  # retention:" in text and "  #   keep_within_days: 30" in text
    project.config.write_text(
        text.replace("  # retention:", "  retention:").replace(
            "  #   keep_within_days: 30", "    keep_within_days: 30"
        )
    )
    policy = local_policy(load_config(project.config))
    assert (policy.keep_within_days, policy.within_cap, policy.keep_last) == (30, 4, 0)
