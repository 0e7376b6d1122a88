"""`status` as the seed's storage calculation on this machine: per model, the bytes stored, the
model bytes they hold, what compression saved, and whether the next version fits beside the free
space min_free_space_gb keeps; in binary units for a person, in bytes with --json."""

from __future__ import annotations

import json
import shutil

from tests.support import write_sized_checkpoint

BIG = 3 << 20


def file_sizes(project) -> int:
    return sum(p.stat().st_size for p in project.models.iterdir() if p.is_file())


def test_status_gives_stored_and_logical_bytes_and_the_next_versions_need(cli, project):
    write_sized_checkpoint(project.model(), BIG)
    assert cli("backup").code == 0
    assert cli("backup", "--kind", "version").code == 0
    report = json.loads(cli("status", "--local", "--json").out)
    (model,) = report["models"]
    local = model["storage"]["local"]
    current = project.model().stat().st_size + project.tokenizer().stat().st_size
    on_disk = file_sizes(project)  # current, backup slot, version: each with its tokenizer
    assert local["stored_bytes"] == on_disk == model["total_bytes"]
    assert local["logical_bytes"] == on_disk and local["compression_saved_bytes"] == 0
    assert local["next_version_bytes"] == current
    assert local["min_free_bytes"] == 0 and local["next_version_fits"] is True
    assert model["storage"]["remotes"] == {}

    text = cli("status", "--local").out
    stored = next(line for line in text.splitlines() if line.startswith("  stored here"))
    assert stored.split()[2:4] == ["9.0", "MiB"], stored  # 3 copies of 3 MiB and a bit
    assert "compression saved 0 B" in stored
    assert "next version 3.0 MiB: fits" in text


def test_status_says_when_the_next_version_would_not_fit(cli, project):
    free_gib = shutil.disk_usage(project.models).free / (1 << 30)
    project.write_config(min_free=round(free_gib + 1000))  # more than this disk will ever have
    report = json.loads(cli("status", "--local", "--json").out)
    local = report["models"][0]["storage"]["local"]
    assert local["next_version_fits"] is False
    assert local["free_bytes"] - local["next_version_bytes"] < local["min_free_bytes"]
    text = cli("status", "--local").out
    assert ": does NOT fit (" in text
    assert "low disk" in cli("status", "--local").err


def test_status_names_the_local_retention(cli, project):
    project.config.write_text(
        project.config.read_text() + "  retention: {keep_within_days: 30, keep_monthly: 3}\n"
    )
    report = json.loads(cli("status", "--local", "--json").out)
    assert report["retention"] == ("keep_within_days 30 (at most 4: max_backups), keep_monthly 3")
    assert "retention keep_within_days 30 (at most 4: max_backups)" in cli("status").out
