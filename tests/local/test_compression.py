"""Compressed local versions (``compression: zstd``, ``compress_after_days``) through the real
CLI, on real fp32, bf16 and fp16 torch checkpoints: ``run`` compresses the versions past the age
and nothing else, every command reads them transparently, the stock ``zstd -d`` restores them by
hand, and damage to a ``.zst`` is found and healed from an intact copy."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import MODEL, MODEL_FILE

DTYPES = ["float32", "bfloat16", "float16"]
OLD, NEW = "2026-11-01", "2026-11-10"


def write_dtype_checkpoint(path: Path, dtype: str, seed: int) -> bytes:
    """A real state_dict of Linear layers in ``dtype``, as a fine-tune would save it."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    module = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 256))
    state = {k: v.to(getattr(torch, dtype)) for k, v in module.state_dict().items()}
    torch.save(state, path)
    return path.read_bytes()


def compressed_config(project, after: int = 3) -> None:
    text = project.config.read_text()
    project.config.write_text(text + f"  compression: zstd\n  compress_after_days: {after}\n")


def old_and_new_version(project, cli, dtype: str) -> tuple[bytes, bytes]:
    """A version dated OLD (content A), the backup slot holding A too, and a version dated NEW
    (content B), the run of NEW compressing OLD; returns (A, B)."""
    a = write_dtype_checkpoint(project.model(), dtype, seed=1)
    assert cli("run", "--today", OLD).code == 0
    assert cli("backup").code == 0  # the pre-update slot: A, plain
    b = write_dtype_checkpoint(project.model(), dtype, seed=2)
    result = cli("run", "--today", NEW)
    assert result.code == 0, result.err
    return a, b


def zst(day: str) -> str:
    return f"{MODEL}_v{day}.pth.zst"


def plain(day: str) -> str:
    return f"{MODEL}_v{day}.pth"


def zstd_cli_decompress(path: Path, out: Path) -> bytes:
    """``zstd -d`` as a person recovering by hand runs it; without the CLI on this machine, the
    zstandard library's own decoder (the same format)."""
    if shutil.which("zstd"):
        subprocess.run(["zstd", "-q", "-d", "-f", str(path), "-o", str(out)], check=True)
        return out.read_bytes()
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())


@pytest.mark.parametrize("dtype", DTYPES)
def test_run_compresses_versions_older_than_the_age(project, cli, tmp_path, dtype):
    compressed_config(project)
    a, _ = old_and_new_version(project, cli, dtype)
    names = sorted(p.name for p in project.models.iterdir() if p.name.startswith(MODEL))
    # the old version is compressed, the new one, the backup slot and the current stay plain
    assert names == sorted([MODEL_FILE, f"{MODEL}_backup.pth", zst(OLD), plain(NEW)]), names
    stored = project.models / zst(OLD)
    assert stored.stat().st_size < len(a)
    assert zstd_cli_decompress(stored, tmp_path / "by-hand.pth") == a
    listing = json.loads(cli("list", "--json").out)
    entry = next(c for c in listing["copies"] if c["name"] == zst(OLD))
    assert entry["state"] == "ok"
    assert (entry["size"], entry["sha256"]) == (len(a), hashlib.sha256(a).hexdigest())
    assert entry["codec"] == "zstd"
    assert entry["stored_size"] == stored.stat().st_size
    assert entry["stored_sha256"] == hashlib.sha256(stored.read_bytes()).hexdigest()
    verify = cli("verify")
    assert verify.code == 0, verify.out + verify.err
    assert zst(OLD) in verify.out
    # the next run finds nothing more to do
    again = cli("run", "--today", NEW)
    assert again.code == 0 and "compressed" not in again.out


def test_restore_from_a_compressed_version(project, cli):
    compressed_config(project)
    a, _ = old_and_new_version(project, cli, "bfloat16")
    project.model().unlink()
    result = cli("restore", "--from", zst(OLD), "--yes")
    assert result.code == 0, result.err
    assert project.model().read_bytes() == a
    assert (project.models / zst(OLD)).is_file()  # the compressed copy stays
    assert not list(project.models.glob(".*.incomplete"))


def test_validate_and_diff_read_the_model_bytes(project, cli):
    compressed_config(project)
    old_and_new_version(project, cli, "float16")
    result = cli("validate", zst(OLD), "--json")
    assert result.code == 0, result.out + result.err
    assert json.loads(result.out)["passed"] is True
    diff = cli("diff", zst(OLD), plain(NEW), "--json")
    assert diff.code == 0, diff.err
    changes = json.loads(diff.out)
    assert changes, "the two versions differ in every tensor"
    assert not list((project.models / ".model-safety").glob("*.pth*")), "temps left behind"


def test_corrupted_zst_is_found_and_healed_from_an_intact_copy(project, cli, tmp_path):
    compressed_config(project)
    a, _ = old_and_new_version(project, cli, "float32")
    stored = project.models / zst(OLD)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    verify = cli("verify")
    assert verify.code == 3
    assert f"{zst(OLD)}" in verify.out + verify.err and "corrupted" in verify.out + verify.err
    repair = cli("repair")
    assert repair.code == 0, repair.out + repair.err
    assert "healed" in repair.out
    assert cli("verify").code == 0
    assert zstd_cli_decompress(stored, tmp_path / "back.pth") == a
    # the damaged bytes were kept aside, never deleted
    quarantined = list((project.models / ".model-safety" / "quarantine").iterdir())
    assert [q.read_bytes() for q in quarantined] == [bytes(data)]


def test_lost_catalog_is_rebuilt_with_the_model_bytes_identity(project, cli):
    compressed_config(project)
    a, _ = old_and_new_version(project, cli, "bfloat16")
    (project.models / ".model-safety" / "catalog.json").unlink()
    listing = json.loads(cli("list", "--json").out)
    entry = next(c for c in listing["copies"] if c["name"] == zst(OLD))
    assert entry["sha256"] == hashlib.sha256(a).hexdigest()
    assert (entry["date"], entry["state"]) == (OLD, "ok")


def test_without_compression_nothing_is_compressed(project, cli):
    old_and_new_version(project, cli, "float32")
    assert not list(project.models.glob("*.zst"))


def test_age_zero_compresses_every_version_but_never_the_backup_slot(project, cli):
    compressed_config(project, after=0)
    old_and_new_version(project, cli, "float32")
    assert (project.models / zst(OLD)).is_file() and (project.models / zst(NEW)).is_file()
    assert (project.models / f"{MODEL}_backup.pth").is_file()
    assert not list(project.models.glob(f"{MODEL}_backup*.zst"))


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("  compression: gzip\n", "compression: must be one of none, zstd, got 'gzip'"),
        ("  compress_after_days: 30\n", "compress_after_days: set compression: zstd too"),
        ("  compression: zstd\n  compress_after_days: -1\n", "compress_after_days: must be >= 0"),
    ],
)
def test_bad_compression_settings_are_one_line_errors(project, cli, lines, message):
    project.config.write_text(project.config.read_text() + lines)
    result = cli("list")
    assert result.code == 1
    assert message in result.err


def test_a_second_version_on_a_day_whose_first_is_compressed_takes_the_next_number(project, cli):
    import datetime as dt

    today = dt.date.today().isoformat()
    compressed_config(project, after=0)
    first = write_dtype_checkpoint(project.model(), "float32", seed=1)
    assert cli("run").code == 0
    assert (project.models / zst(today)).is_file()
    (project.models / ".model-safety" / "catalog.json").unlink()  # only the files say it now
    second = write_dtype_checkpoint(project.model(), "float32", seed=2)
    result = cli("backup", "--kind", "version")
    assert result.code == 0, result.err
    assert f"{MODEL}_v{today}.2.pth" in result.out
    assert cli("run").code == 0  # compresses the new one too, losing neither
    assert (project.models / f"{MODEL}_v{today}.2.pth.zst").is_file()
    listing = json.loads(cli("list", "--json").out)
    shas = {c["sha256"] for c in listing["copies"] if c["kind"] == "version"}
    assert shas == {hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()}
