"""Compressed versions under faults: kill -9 at every step of the compression ``run`` does after
compress_after_days, and a damaged ``.zst`` found and healed from an intact copy. "Lost" counts
content: a version's model bytes survive when some file holds them, plain or inside a ``.zst``
(decompressed here with the zstandard library to check)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from providers import open_provider
from tests.reliability.invariants import (
    leftover_journals,
    lost_bytes,
    sizes_remote,
    snapshot_remote,
    snapshot_remote_at,
    stray_temps,
)
from tests.reliability.test_crash import crash, ok
from tests.support import MODEL, MODEL_FILE, SyncProject, run_subprocess

OLD, NEW = "2026-11-01", "2026-11-10"


def contents(models: Path) -> dict[str, str]:
    """name -> sha256 of the model bytes every file holds (a .zst's decompressed)."""
    import zstandard

    out = {}
    for p in sorted(models.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            if p.name.endswith(".zst"):
                try:
                    reader = zstandard.ZstdDecompressor().stream_reader(fh)
                    while chunk := reader.read(1 << 20):
                        h.update(chunk)
                except zstandard.ZstdError:
                    continue  # damaged: holds nothing intact
            else:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
        out[p.name] = h.hexdigest()
    return out


def setup_versions(project) -> None:
    project.config.write_text(
        project.config.read_text() + "  compression: zstd\n  compress_after_days: 3\n"
    )
    ok(project.root, "run", "--today", OLD)
    project.write_model(seed=2)
    ok(project.root, "backup", "--kind", "version")  # today's: stays plain


@pytest.mark.parametrize(
    ("point", "state"),
    [
        ("compress-progress", "the .zst temp half written"),
        ("compress-rename", "the .zst temp written and verified, not renamed"),
        ("compress-renamed", "the .zst renamed into place, catalog not updated"),
        ("compress-catalog", "catalog names the .zst, the plain version not yet removed"),
    ],
)
def test_kill_during_compression_after_age(ledger, project, point, state):
    with ledger.case(
        fault=f"kill -9 while `run` compresses a version past compress_after_days ({state})",
        where=f"`run`, crash point {point}",
        user_sees="the process dies; the next run finishes: one .zst, the plain file gone",
    ) as case:
        setup_versions(project)
        before = {"local": contents(project.models)}
        sizes = {sha: (project.models / n).stat().st_size for n, sha in before["local"].items()}
        crash(project.root, point, "run", "--today", NEW)
        middle = contents(project.models)
        assert lost_bytes(before, {"local": middle}, sizes, by="content") == 0
        ok(project.root, "run", "--today", NEW)
        case.transfers_completed += 1
        after = contents(project.models)
        case.lost_bytes = lost_bytes(before, {"local": after}, sizes, by="content")
        assert case.lost_bytes == 0
        old = f"{MODEL}_v{OLD}.pth"
        assert old + ".zst" in after and old not in after
        assert after[old + ".zst"] == before["local"][old]
        assert stray_temps(project.models) == []
        verify = ok(project.root, "verify")
        assert verify.count(f"{MODEL}_v{OLD}") == 1  # one copy of that version, not two
        case.verified = "every version's bytes intact (the old one inside its .zst); verify exit 0"


def test_damaged_zst_is_healed_from_an_intact_copy(ledger, project):
    with ledger.case(
        fault="a compressed version's .zst damaged on disk (one byte flipped)",
        where="`verify`, then `repair` with the same content in the backup slot",
        user_sees="verify exits 3 naming the .zst; repair compresses it anew from the backup",
    ) as case:
        project.config.write_text(
            project.config.read_text() + "  compression: zstd\n  compress_after_days: 3\n"
        )
        ok(project.root, "run", "--today", OLD)
        ok(project.root, "backup")
        project.write_model(seed=2)
        ok(project.root, "run", "--today", NEW)
        before = {"local": contents(project.models)}
        sizes = {sha: (project.models / n).stat().st_size for n, sha in before["local"].items()}
        stored = project.models / f"{MODEL}_v{OLD}.pth.zst"
        data = bytearray(stored.read_bytes())
        data[len(data) // 2] ^= 0x01
        stored.write_bytes(bytes(data))
        verify = run_subprocess(["verify"], project.root)
        assert verify.returncode == 3 and stored.name in verify.stdout + verify.stderr
        out = ok(project.root, "repair")
        assert "healed" in out
        case.transfers_completed += 1
        after = {"local": contents(project.models)}
        case.lost_bytes = lost_bytes(before, after, sizes, by="content")
        assert case.lost_bytes == 0
        assert after["local"][stored.name] == before["local"][f"{MODEL}_backup.pth"]
        ok(project.root, "verify")
        case.verified = "the .zst decompresses to the version's sha256 again; verify exit 0"


@pytest.mark.parametrize(
    ("point", "state"),
    [
        ("pull-fetched", "the .zst version in place, local catalog not saved"),
        ("decompress-progress", "the current file half decompressed from the pulled .zst"),
    ],
)
def test_kill_during_a_compressed_pull(ledger, tmp_path, local_settings, point, state):
    with ledger.case(
        fault=f"kill -9 during a pull from a zstd remote onto an empty disk ({state})",
        where=f"`pull --version {OLD}` from a local remote with compression: zstd, "
        f"crash point {point}",
        user_sees="the process dies; the same pull again brings the version and the model back",
    ) as case:
        settings = {**local_settings, "compression": "zstd"}
        proj = SyncProject.create(tmp_path / "proj", settings)
        model = proj.write_model(seed=1)
        ok(proj.root, "run", "--today", OLD)  # auto_push: the .zst goes up
        remote_before = {"remote": snapshot_remote_at(settings, tmp_path / "check-state")}
        sizes = sizes_remote_by_content(settings, tmp_path / "check-state")
        zst = f"{MODEL}_v{OLD}.pth.zst"
        assert zst in remote_before["remote"]
        for p in proj.models.iterdir():
            if p.is_file():
                p.unlink()  # the disk died
        shutil.rmtree(proj.models / ".model-safety")
        crash(proj.root, point, "pull", "--version", OLD)
        ok(proj.root, "pull", "--version", OLD)
        case.transfers_completed += 1
        assert (proj.models / MODEL_FILE).read_bytes() == model
        assert zst in contents(proj.models)
        after = {"remote": snapshot_remote_at(settings, tmp_path / "check-state")}
        case.lost_bytes = lost_bytes(remote_before, after, sizes, by="content")
        assert case.lost_bytes == 0
        assert stray_temps(proj.models) == [] and leftover_journals(proj.models) == []
        ok(proj.root, "verify")
        case.verified = "the model back with its sha256, the .zst intact; verify exit 0; no temps"


def sizes_remote_by_content(settings: dict, state: Path) -> dict[str, int]:
    provider = open_provider("check", dict(settings), state_dir=state)
    try:
        snap = snapshot_remote(provider)
        sizes = sizes_remote(provider)
    finally:
        provider.close()
    return {sha: sizes[name] for name, sha in snap.items()}
