"""Disk full during a backup and during a pull, on a real small tmpfs. The free space is set to
the byte so that the up-front space check passes (it counts file sizes) but the last 4 KiB page
of the model cannot be written: a genuine ENOSPC in the middle of the copy, no mocked write."""

from __future__ import annotations

import shutil
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
from tests.support import MODEL_FILE, TOKENIZER, SyncProject, in_portability_lane, run_subprocess

PAGE = 4096


def write_sources(models: Path, seed: int) -> int:
    """A ~2 MiB real checkpoint and a tokenizer of one page and one byte. Returns the free space
    that passes the up-front check (file sizes, rounded up to a page) but is one page short of
    what the copies occupy: the tokenizer's second page wastes 4095 bytes and the model's last
    page some more, together over a page."""
    import torch

    torch.manual_seed(seed)
    torch.save({"weight": torch.randn(512, 1024)}, models / MODEL_FILE)
    model = (models / MODEL_FILE).stat().st_size
    assert model % PAGE, "the model must not end on a page boundary"
    head = f'{{"seed": {seed}, "pad": "'
    (models / TOKENIZER).write_text(head + "x" * (PAGE + 1 - len(head) - 2) + '"}')
    assert (models / TOKENIZER).stat().st_size == PAGE + 1
    # + one page: the lock note the command writes before its space check; in the portability
    # lane one more: without flock, filelock's own lock file holds its owner's name
    lock_pages = 2 if in_portability_lane() else 1
    return -(-(model + PAGE + 1) // PAGE) * PAGE + lock_pages * PAGE


def leave_free(directory: Path, free: int) -> None:
    """Fill the file system until exactly ``free`` bytes (a page multiple) are left."""
    filler = directory / "filler.bin"
    now = shutil.disk_usage(directory).free
    assert now > free, (now, free)
    filler.write_bytes(b"\0" * (now - free))
    assert shutil.disk_usage(directory).free == free


def test_disk_full_during_backup(ledger, tmpfs, project):
    small = tmpfs("12m", "small")
    project.write_config(models_dir=str(small))
    write_sources(small, seed=1)
    with ledger.case(
        fault="disk full during a local backup",
        where="tmpfs with room for the model's bytes but not its last page plus the tokenizer",
        user_sees="exit 1, one line 'disk full while writing ...; nothing was changed'",
    ) as case:
        first = run_subprocess(["backup", "--kind", "version"], project.root)
        assert first.returncode == 0, first.stderr
        leave_free(small, write_sources(small, seed=2))  # a changed model
        before = {"local": snapshot_dir(small)}
        before["local"].pop("filler.bin")  # the user deletes it below to free space
        sizes = sizes_dir(small)
        full = run_subprocess(["backup", "--kind", "version"], project.root)
        assert full.returncode == 1, (full.returncode, full.stderr)
        lines = full.stderr.strip().splitlines()
        assert len(lines) == 1 and "disk full" in lines[0], full.stderr
        assert str(small) in lines[0], "the message names the full file system"
        assert "Traceback" not in full.stderr
        untouched = snapshot_dir(small)
        untouched.pop("filler.bin")
        assert untouched == before["local"]  # sources and the old version untouched
        assert stray_temps(small) == []
        (small / "filler.bin").unlink()  # the user frees space
        again = run_subprocess(["backup", "--kind", "version"], project.root)
        assert again.returncode == 0, again.stderr
        case.transfers_completed += 1
        after = {"local": snapshot_dir(small)}
        case.lost_bytes = lost_bytes(before, after, sizes)
        assert case.lost_bytes == 0
        assert stray_temps(small) == []
        said = lines[0].replace(str(small), "<models_dir>")
        case.verified = f"files unchanged, no temp; said: {said}; next backup exit 0"


@pytest.mark.parametrize("kind", ["local", "s3_seaweedfs"])
def test_disk_full_during_pull(ledger, tmpfs, tmp_path, request, kind):
    settings = request.getfixturevalue(f"{kind}_settings")
    small = tmpfs("12m", "small")
    proj = SyncProject.create(tmp_path / "proj", settings)
    proj.models = small
    proj.write_config()
    cfg = proj.config.read_text().replace("models_dir: models", f"models_dir: {small}")
    proj.config.write_text(cfg)
    free = write_sources(small, seed=3)
    with ledger.case(
        fault=f"disk full during a pull from a {kind.split('_')[0]} remote",
        where="tmpfs with room for the model's bytes but not its last page plus the tokenizer",
        user_sees="exit 1, one line 'disk full ...'; the remote untouched",
    ) as case:
        assert run_subprocess(["push"], proj.root).returncode == 0
        provider = open_provider("r", settings, state_dir=tmp_path / "check")
        remote_before = snapshot_remote(provider)
        sizes = sizes_dir(small)
        for name in (MODEL_FILE, TOKENIZER):
            (small / name).unlink()  # lost locally
        leave_free(small, free)
        full = run_subprocess(["pull"], proj.root)
        assert full.returncode == 1, (full.returncode, full.stdout, full.stderr)
        lines = [line for line in full.stderr.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and "disk full" in lines[0], full.stderr
        assert str(small) in lines[0], "the message names the full file system"
        assert "Traceback" not in full.stderr
        assert snapshot_remote(provider) == remote_before
        assert stray_temps(small) == [] and leftover_journals(small) == []
        (small / "filler.bin").unlink()
        again = run_subprocess(["pull"], proj.root)
        assert again.returncode == 0, again.stderr
        case.transfers_completed += 1
        after = {"local": snapshot_dir(small), "remote": snapshot_remote(provider)}
        provider.close()
        assert after["local"][MODEL_FILE] == remote_before[MODEL_FILE]
        case.lost_bytes = lost_bytes({"remote": remote_before}, after, sizes)
        assert case.lost_bytes == 0
        assert stray_temps(small) == []
        said = lines[0].replace(str(small), "<models_dir>")
        case.verified = f"remote unchanged, no temp; said: {said}; next pull exit 0"
