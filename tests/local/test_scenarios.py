"""The seed's three recovery scenarios, end to end through the CLI on real torch checkpoints,
plus list / verify / prune / status / run as a user sees them."""

from __future__ import annotations

import hashlib
import json

from agent.local import hashing
from tests.support import TOKENIZER, load_checkpoint


def flip_byte(path, offset=200):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


def names(project):
    return sorted(p.name for p in project.models.iterdir() if not p.name.startswith("."))


def test_degraded_fine_tune_restores_the_pre_update_backup(cli, project):
    good = project.model().read_bytes()
    good_tok = project.tokenizer().read_text()
    result = cli("backup", "--note", "before fine-tune")
    assert result.code == 0, result.err
    assert "dinesh_ai_model_backup.pth" in result.out
    assert (project.models / "tokenizer_backup.json").read_text() == good_tok

    degraded = project.write_model(seed=2, tokenizer='{"vocab": "broken"}')
    result = cli("restore", "--from", "backup", "--yes")
    assert result.code == 0, result.err
    assert project.model().read_bytes() == good
    assert project.tokenizer().read_text() == good_tok  # companion restored with it
    # The degraded model existed nowhere else, so it was kept aside, not destroyed.
    aside = [n for n in names(project) if n.startswith("dinesh_ai_model_replaced-")]
    assert len(aside) == 1 and (project.models / aside[0]).read_bytes() == degraded
    assert aside[0] in result.out
    assert load_checkpoint(project.model())["0.weight"].shape == (64, 32)


def test_discard_current_does_not_keep_it_aside(cli, project):
    cli("backup")
    project.write_model(seed=2)
    assert cli("restore", "--from", "backup", "--yes", "--discard-current").code == 0
    assert not [n for n in names(project) if "_replaced-" in n]


def test_corrupted_current_restores_newest_intact_copy_skipping_corrupted(cli, project):
    assert cli("backup").code == 0  # seed 1 in the backup slot
    project.write_model(seed=2)
    assert cli("backup", "--kind", "version").code == 0
    seed2 = project.model().read_bytes()
    project.write_model(seed=3)
    result = cli("backup", "--kind", "version")
    assert result.code == 0 and ".2.pth" in result.out  # same day: the suffix
    newest = result.out.split("wrote ")[1].strip()
    flip_byte(project.models / newest)  # bit rot in the newest version
    # and the current gets truncated
    project.model().write_bytes(project.model().read_bytes()[:3000])

    result = cli("restore", "--yes")
    assert result.code == 0, result.err
    assert f"skipped {newest}: corrupted" in result.err
    assert project.model().read_bytes() == seed2
    assert load_checkpoint(project.model())  # loads with weights_only
    verify = cli("verify")
    assert verify.code == 3
    assert f"corrupted  {newest}" in verify.out


def test_deleted_current_is_restored_from_any_copy(cli, project):
    original = project.model().read_bytes()
    assert cli("run").code == 0  # the periodic job makes the first dated version
    project.model().unlink()
    project.tokenizer().unlink()
    listing = json.loads(cli("list", "--json").out)
    assert listing["current"]["state"] == "missing"
    result = cli("restore", "--yes")
    assert result.code == 0, result.err
    assert project.model().read_bytes() == original
    assert project.tokenizer().exists()
    assert not [n for n in names(project) if "_replaced-" in n]


def test_restore_works_without_the_catalog(cli, project):
    original = project.model().read_bytes()
    cli("backup", "--kind", "version")
    state = project.models / ".model-safety"
    (state / "catalog.json").write_text("{ damaged")
    (state / "hashes.json").unlink()
    project.model().unlink()
    result = cli("restore", "--yes")
    assert result.code == 0, result.err
    assert project.model().read_bytes() == original
    assert json.loads((state / "catalog.json").read_text())["files"]  # rebuilt


def test_restore_from_date_and_from_file_name(cli, project):
    cli("backup", "--kind", "version")
    first = project.model().read_bytes()
    project.write_model(seed=5)
    day = json.loads(cli("list", "--json").out)["copies"][0]["date"]
    assert cli("restore", "--from", day, "--yes").code == 0
    assert project.model().read_bytes() == first
    bad = cli("restore", "--from", "notes.txt", "--yes")
    assert bad.code == 1 and "is not backup, latest, a date" in bad.err
    comp = cli("restore", "--from", f"tokenizer_v{day}.json", "--yes")
    assert comp.code == 1 and "companion" in comp.err
    missing = cli("restore", "--from", "backup", "--yes")
    assert missing.code == 1 and "no copy" in missing.err


def test_explicit_corrupted_source_is_refused(cli, project):
    cli("backup")
    project.write_model(seed=9)  # no other file holds the backup's bytes: nothing to heal from
    before = project.model().read_bytes()
    flip_byte(project.models / "dinesh_ai_model_backup.pth")
    result = cli("restore", "--from", "backup", "--yes")
    assert result.code == 1 and "corrupted" in result.err
    assert project.model().read_bytes() == before


def test_identical_version_same_day_is_a_no_op(cli, project):
    assert cli("backup", "--kind", "version").code == 0
    again = cli("backup", "--kind", "version")
    assert again.code == 0 and "already holds this content" in again.out
    assert len([n for n in names(project) if "_v" in n and n.endswith(".pth")]) == 1
    project.tokenizer().write_text('{"vocab": "changed"}')  # a companion change is a change
    assert "wrote" in cli("backup", "--kind", "version").out


def test_list_verify_prune_status(cli, project):
    for seed in range(2, 7):
        project.write_model(seed=seed)
        assert cli("backup", "--kind", "version").code == 0
    listing = json.loads(cli("list", "--json").out)
    versions = [c for c in listing["copies"] if c["kind"] == "version"]
    assert [c["seq"] for c in versions] == [5, 4, 3, 2, 1]  # newest first, by (date, seq)
    assert all(c["state"] == "ok" for c in versions)
    assert versions[0]["companions"] == {
        TOKENIZER: versions[0]["name"]
        .replace("dinesh_ai_model", "tokenizer")
        .replace(".pth", ".json")
    }
    assert cli("verify", "--json").code == 0

    dry = cli("prune", "--dry-run")
    assert dry.code == 0
    assert "would delete" in dry.out and "keep_last 1/4" in dry.out
    assert len(names(project)) == 2 + 2 * 5  # nothing deleted by a dry run
    done = cli("prune", "--json")
    decisions = json.loads(done.out)["decisions"]
    assert [d["keep"] for d in decisions] == [True, True, True, True, False]
    assert len([n for n in names(project) if n.endswith(".pth") and "_v" in n]) == 4
    assert len([n for n in names(project) if n.startswith("tokenizer_v")]) == 4

    status = json.loads(cli("status", "--json").out)
    model = status["models"][0]
    assert model["versions"] == 4
    assert (
        model["current_bytes"]
        == project.model().stat().st_size + project.tokenizer().stat().st_size
    )
    assert status["free_bytes"] > 0
    assert any("no pre-update backup" in w for w in status["warnings"])
    human = cli("status")
    assert "next version due" in human.out


def test_prune_never_goes_below_two(cli, project):
    project.write_config(max_backups=0)
    for seed in (2, 3, 4):
        project.write_model(seed=seed)
        cli("backup", "--kind", "version")
    cli("prune")
    assert len([n for n in names(project) if n.endswith(".pth") and "_v" in n]) == 2


def test_second_run_reads_no_model_bytes(cli, project):
    first = cli("run")
    assert first.code == 0 and "wrote" in first.out
    before = hashing.bytes_read()
    second = cli("run")
    assert second.code == 0 and "next dated version due" in second.out
    assert hashing.bytes_read() == before
    # Neither does a manual backup of an unchanged model into a slot that already holds it.
    cli("backup")
    before = hashing.bytes_read()
    assert "already holds" in cli("backup").out
    assert hashing.bytes_read() == before


def test_run_reports_a_missing_model(cli, project):
    project.model().unlink()
    result = cli("run")
    assert result.code == 3 and "does not exist" in result.err


def test_repair_without_remotes_heals_a_copy_from_another_local_file(cli, project):
    cli("backup")
    backup = project.models / "dinesh_ai_model_backup.pth"
    good = backup.read_bytes()
    flip_byte(backup)
    assert cli("verify").code == 3
    result = cli("repair")
    assert result.code == 0, result.err
    assert "dinesh_ai_model_backup.pth: healed here (copied from the current file" in result.out
    assert backup.read_bytes() == good
    assert cli("verify").code == 0


def test_prune_forgets_the_range_hashes_of_content_no_copy_holds(cli, project):
    """Range hashes are kept by content for delta pushes; a pruned version's go with it, so a
    models dir that sees a fine-tune a day does not collect them forever."""
    ranges = project.models / ".model-safety" / "ranges"
    shas = []
    for seed in range(2, 7):
        project.write_model(seed=seed)
        assert cli("backup", "--kind", "version").code == 0
        shas.append(hashlib.sha256(project.model().read_bytes()).hexdigest())
    assert {f"{s}.json" for s in shas} <= {p.name for p in ranges.iterdir()}
    assert cli("prune").code == 0
    kept = {p.name for p in ranges.iterdir()}
    assert f"{shas[0]}.json" not in kept  # the pruned version's
    assert {f"{s}.json" for s in shas[1:]} <= kept  # the 4 kept versions' (the newest: current)
