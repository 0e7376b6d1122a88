"""Damaged resume journals: a push or a pull killed with -9 leaves a journal (S3 multipart upload,
ranged download); a bit flip or a truncation in it must never produce a wrong object. The next
run completes and the result's sha256 is right."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from providers import open_provider
from tests.reliability.invariants import (
    leftover_journals,
    lost_bytes,
    sizes_dir,
    snapshot_dir,
    snapshot_remote,
    stray_temps,
)
from tests.remote.test_processes import big_checkpoint
from tests.support import MODEL_FILE, SyncProject, agent_cli, kill_agent_when

MB = 24  # five 5 MiB parts / ranges: some done at the kill, some not


def lines_in(directory: Path) -> int:
    files = list(directory.glob("*.jsonl")) if directory.is_dir() else []
    return sum(f.read_bytes().count(b"\n") for f in files)


def the_journal(directory: Path) -> Path:
    (journal,) = directory.glob("*.jsonl")
    return journal


def flip_part_value(journal: Path, field: str) -> str:
    """Bit flip in the first recorded part/range line: one bit of one character of ``field``
    (a character of the part's checksum, or the range index), keeping the line valid JSON."""
    lines = journal.read_text().splitlines(keepends=True)
    rec = json.loads(lines[1])
    if field == "m":
        rec["m"] ^= 4  # e.g. range 0 -> 4, the last: claims a range not yet written
    else:
        value = rec[field]
        rec[field] = chr(ord(value[0]) ^ 1) + value[1:]
    lines[1] = json.dumps(rec) + "\n"
    journal.write_text("".join(lines))
    return f"{field} of line 2"


def cut_mid_line(journal: Path) -> str:
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) * 2 // 3])
    return "cut at 2/3, mid-line"


def direct_snapshot(seaweedfs, settings: dict, tmp_path: Path) -> dict[str, str]:
    provider = open_provider(
        "r", seaweedfs.settings(prefix=settings["prefix"]), state_dir=tmp_path / "chk"
    )
    try:
        return snapshot_remote(provider)
    finally:
        provider.close()


def pushed_project(tmp_path: Path, seaweedfs) -> tuple[dict, SyncProject, bytes]:
    """A project whose checkpoint (MB MiB) and tokenizer were pushed to SeaweedFS."""
    settings = seaweedfs.settings()
    proj = SyncProject.create(tmp_path / "proj", settings)
    proj.models.mkdir()
    data = big_checkpoint(proj.models / MODEL_FILE, mb=MB)
    (proj.models / "tokenizer.json").write_text("{}")
    assert agent_cli(proj.root, "push").returncode == 0
    return settings, proj, data


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["bit flip", "truncation"])
def test_damaged_upload_journal(ledger, tmp_path, seaweedfs, damage):
    with ledger.case(
        fault=f"{damage} in an S3 multipart upload journal",
        where="state dir remotes/r/uploads/*.jsonl after kill -9 mid-push",
        user_sees="the next `push` exits 0; damaged part records are sent again",
    ) as case:
        settings = seaweedfs.settings()
        proj = SyncProject.create(tmp_path / "proj", settings)
        proj.models.mkdir()
        big_checkpoint(proj.models / MODEL_FILE, mb=MB)
        (proj.models / "tokenizer.json").write_text("{}")
        before = {"local": snapshot_dir(proj.models)}
        sizes = sizes_dir(proj.models)
        uploads = proj.models / ".model-safety" / "remotes" / "r" / "uploads"
        kill_agent_when(proj.root, "push", reached=lambda: lines_in(uploads) >= 2)
        journal = the_journal(uploads)  # the kill left it: the upload never completed
        how = flip_part_value(journal, "crc32") if damage == "bit flip" else cut_mid_line(journal)
        case.faults_injected += 1  # the kill, then the damage
        second = agent_cli(proj.root, "push")
        assert second.returncode == 0, second.stderr
        case.transfers_completed += 1
        remote = direct_snapshot(seaweedfs, settings, tmp_path)
        assert remote == before["local"], "the resumed upload produced a different object"
        assert stray_temps(proj.models) == [] and leftover_journals(proj.models) == []
        case.lost_bytes = lost_bytes(before, {"remote": remote}, sizes)
        assert case.lost_bytes == 0
        case.verified = f"journal {how}; the object's sha256 equals the file's; no journal left"


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["bit flip", "truncation"])
def test_damaged_download_journal(ledger, tmp_path, seaweedfs, damage):
    with ledger.case(
        fault=f"{damage} in an S3 download journal",
        where="state dir remotes/r/downloads/*.jsonl after kill -9 mid-pull",
        user_sees="the next `pull` exits 0 with the right bytes (a range it cannot trust is "
        "fetched again)",
    ) as case:
        settings, proj, data = pushed_project(tmp_path, seaweedfs)
        before = {"remote": direct_snapshot(seaweedfs, settings, tmp_path)}
        sizes = sizes_dir(proj.models)
        for p in proj.models.iterdir():
            if p.is_file():
                p.unlink()  # the disk died
        downloads = proj.models / ".model-safety" / "remotes" / "r" / "downloads"
        kill_agent_when(proj.root, "pull", reached=lambda: lines_in(downloads) >= 2)
        journal = the_journal(downloads)
        how = flip_part_value(journal, "m") if damage == "bit flip" else cut_mid_line(journal)
        case.faults_injected += 1
        second = agent_cli(proj.root, "pull")
        assert second.returncode == 0, second.stderr
        case.transfers_completed += 1
        assert (proj.models / MODEL_FILE).read_bytes() == data
        after = {"local": snapshot_dir(proj.models)}
        case.lost_bytes = lost_bytes(before, after, sizes)
        assert case.lost_bytes == 0
        assert stray_temps(proj.models) == [] and leftover_journals(proj.models) == []
        case.verified = f"journal {how}; the pulled file's sha256 is right; no temp left"


def killed_pull(tmp_path: Path, seaweedfs) -> tuple[SyncProject, bytes, dict, dict, Path, Path]:
    """A pushed project whose model file was deleted and whose `pull` of it was killed with -9
    after its first range: (project, the model's bytes, sizes and snapshot of the models dir
    before, the download's journal, the temp file its header names)."""
    _, proj, data = pushed_project(tmp_path, seaweedfs)
    sizes = sizes_dir(proj.models)
    before = {"local": snapshot_dir(proj.models)}
    (proj.models / MODEL_FILE).unlink()
    downloads = proj.models / ".model-safety" / "remotes" / "r" / "downloads"
    kill_agent_when(proj.root, "pull", reached=lambda: lines_in(downloads) >= 2)
    journal = the_journal(downloads)
    temp = Path(json.loads(journal.read_bytes().split(b"\n", 1)[0])["header"]["temp"])
    assert temp.parent == proj.models
    return proj, data, sizes, before, journal, temp


@pytest.mark.slow
def test_download_journal_outliving_its_file(ledger, tmp_path, seaweedfs):
    with ledger.case(
        fault="kill -9 between a pull's rename of the finished file and the journal's removal",
        where="state dir remotes/r/downloads/*.jsonl naming a temp file that is gone",
        user_sees="the next `pull` exits 0, fetches nothing, and removes the journal",
    ) as case:
        proj, data, sizes, before, _, temp = killed_pull(tmp_path, seaweedfs)
        # the instant the kill would have to hit: the temp was renamed over the model file (it
        # holds all the bytes), the journal not yet removed
        temp.unlink()
        (proj.models / MODEL_FILE).write_bytes(data)
        case.faults_injected += 1
        second = agent_cli(proj.root, "pull", "--json")
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["bytes_received"] == 0  # the file was already whole
        case.transfers_completed += 1
        assert leftover_journals(proj.models) == [] and stray_temps(proj.models) == []
        case.lost_bytes = lost_bytes(before, {"local": snapshot_dir(proj.models)}, sizes)
        assert case.lost_bytes == 0
        case.verified = "nothing fetched; the orphaned journal is gone; every file intact"


@pytest.mark.slow
def test_a_partial_download_nobody_resumes(ledger, tmp_path, seaweedfs):
    with ledger.case(
        fault="kill -9 mid-pull, then no pull for 8 days (the model came back another way)",
        where="a hidden .<model>.<tag>.incomplete in models/, its journal in remotes/r/downloads",
        user_sees="`status` names the partial download and its size; `run` keeps it for a resume "
        "for 7 days, then removes it with a warning; the remote still serves the model",
    ) as case:
        proj, data, sizes, before, journal, temp = killed_pull(tmp_path, seaweedfs)
        case.faults_injected += 1
        assert temp.is_file()
        status = agent_cli(proj.root, "status", "--local")
        assert "partial download" in status.stderr and temp.name in status.stderr, status.stderr
        (proj.models / MODEL_FILE).write_bytes(data)  # the user copied it back by hand

        kept = agent_cli(proj.root, "run")
        assert kept.returncode == 0, kept.stderr
        assert temp.is_file() and journal.is_file()  # a day-old partial waits for its resume
        eight_days_ago = time.time() - 8 * 86400
        os.utime(temp, (eight_days_ago, eight_days_ago))
        expired = agent_cli(proj.root, "run")
        assert expired.returncode == 0, expired.stderr
        assert "partial downloads nobody resumed for 7 days" in expired.stderr, expired.stderr
        assert not temp.exists() and not journal.exists()
        assert stray_temps(proj.models) == [] and leftover_journals(proj.models) == []

        shutil.rmtree(proj.models)  # and the remote still holds every byte
        pulled = agent_cli(proj.root, "pull")
        assert pulled.returncode == 0, pulled.stderr
        case.transfers_completed += 1
        case.lost_bytes = lost_bytes(before, {"local": snapshot_dir(proj.models)}, sizes)
        assert case.lost_bytes == 0
        case.verified = "status named it; kept at a day old; removed at 8; the pull is whole"
