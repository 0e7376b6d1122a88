"""Models saved as directories (a Hugging Face save_pretrained folder, a DCP checkpoint), driven
through the real CLI: versions are directories with the seed's names, every file verified, and
backup, list, status, verify, prune and restore mean what they mean for a file."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.dirsupport import (
    INDEX,
    SHARD1,
    SHARD2,
    DirProject,
    temp_dirs,
    tree_digest,
    write_dcp,
    write_hf,
)
from tests.support import run_cli


def today() -> str:
    """Asked at each use, not once at import: a run that crosses midnight names its versions
    with the new date."""
    return dt.date.today().isoformat()


@pytest.fixture
def proj(tmp_path) -> DirProject:
    p = DirProject.create(tmp_path / "proj")
    write_hf(p.current, seed=1)
    return p


@pytest.fixture
def ms(proj, capsys, monkeypatch):
    monkeypatch.delenv("MODEL_SAFETY_CONFIG", raising=False)
    return lambda *args: run_cli(proj.root, list(args), capsys, monkeypatch)


def catalog(proj: DirProject) -> dict[str, dict]:
    doc = json.loads((proj.models / ".model-safety" / "catalog.json").read_text())
    return {e["name"]: e for e in doc["files"]}


def test_backup_both_kinds_make_directories_with_the_seeds_names(proj, ms):
    assert ms("backup").code == 0
    assert ms("backup", "--kind", "version").code == 0
    write_hf(proj.current, seed=2)
    assert ms("backup", "--kind", "version").code == 0
    names = sorted(p.name for p in proj.models.iterdir() if not p.name.startswith("."))
    assert names == [
        "llama-ft",
        "llama-ft_backup",
        f"llama-ft_v{today()}",
        f"llama-ft_v{today()}.2",
    ]
    assert tree_digest(proj.copy(f"llama-ft_v{today()}.2")) == tree_digest(proj.current)
    assert tree_digest(proj.copy("llama-ft_backup")) != tree_digest(proj.current)
    # the catalog lists every file of a directory version with its sha256
    entry = catalog(proj)[f"llama-ft_v{today()}.2"]
    digests = tree_digest(proj.current)
    assert {p: f["sha256"] for p, f in entry["files"].items()} == digests
    assert entry["size"] == sum(f["size"] for f in entry["files"].values())
    assert temp_dirs(proj.models) == []


def test_an_unchanged_directory_is_not_copied_again(proj, ms):
    assert ms("backup", "--kind", "version").code == 0
    again = ms("backup", "--kind", "version")
    assert again.code == 0 and "nothing written" in again.out
    assert not proj.copy(f"llama-ft_v{today()}.2").exists()


def test_list_and_status_show_the_directory_size(proj, ms):
    ms("backup", "--kind", "version")
    size = sum(p.stat().st_size for p in proj.current.iterdir())
    listed = json.loads(ms("list", "--json").out)
    assert listed["current"]["size"] == size and listed["current"]["state"] == "present"
    assert [c["size"] for c in listed["copies"]] == [size]
    status = json.loads(ms("status", "--local", "--json").out)
    (m,) = status["models"]
    assert m["current_bytes"] == size and m["versions_bytes"] == size


def test_verify_names_the_damaged_and_the_missing_file(proj, ms):
    ms("backup")
    ms("backup", "--kind", "version")
    version = proj.copy(f"llama-ft_v{today()}")
    (version / SHARD2).unlink()
    backup = proj.copy("llama-ft_backup")
    with open(backup / SHARD1, "r+b") as fh:  # one flipped byte, size unchanged
        fh.seek(200)
        byte = fh.read(1)
        fh.seek(200)
        fh.write(bytes([byte[0] ^ 1]))
    result = ms("verify")
    assert result.code == 3
    assert f"llama-ft_v{today()}/{SHARD2}: missing" in result.out
    assert f"llama-ft_backup/{SHARD1}: corrupted" in result.out


def test_restore_brings_back_a_deleted_shard_and_sets_the_directory_aside(proj, ms):
    ms("backup", "--kind", "version")
    good = tree_digest(proj.current)
    (proj.current / SHARD2).unlink()
    (proj.current / "added.json").write_text("{}")
    result = ms("restore", "--yes")
    assert result.code == 0, result.err
    assert tree_digest(proj.current) == good  # the added file is gone too
    (aside,) = [p for p in proj.models.iterdir() if p.name.startswith("llama-ft_replaced-")]
    assert aside.is_dir() and (aside / "added.json").is_file() and not (aside / SHARD2).exists()
    assert ms("verify").code == 0
    assert temp_dirs(proj.models) == []


def test_restore_from_a_named_directory_version_and_the_backup_slot(proj, ms):
    ms("backup", "--kind", "version")
    first = tree_digest(proj.current)
    write_hf(proj.current, seed=5)
    ms("backup")
    second = tree_digest(proj.current)
    assert ms("restore", "--from", f"llama-ft_v{today()}", "--yes").code == 0
    assert tree_digest(proj.current) == first
    assert ms("restore", "--from", "backup", "--yes").code == 0
    assert tree_digest(proj.current) == second
    # the model directory deleted outright comes back too
    import shutil

    shutil.rmtree(proj.current)
    assert ms("restore", "--yes").code == 0
    assert tree_digest(proj.current) == second


def test_restore_skips_a_damaged_version_and_names_the_file(proj, ms):
    ms("backup", "--kind", "version")
    write_hf(proj.current, seed=3)
    ms("backup", "--kind", "version")
    write_hf(proj.current, seed=4)  # no other local file holds the newest version's shards
    newest = proj.copy(f"llama-ft_v{today()}.2")
    (newest / SHARD1).write_bytes(b"rotten")
    first = tree_digest(proj.copy(f"llama-ft_v{today()}"))
    result = ms("restore", "--yes")
    assert result.code == 0, result.err
    assert tree_digest(proj.current) == first
    explicit = ms("restore", "--from", newest.name, "--yes")
    assert explicit.code != 0 and SHARD1 in explicit.err


def test_restore_heals_a_damaged_version_from_another_local_copy(proj, ms):
    ms("backup", "--kind", "version")
    ms("backup")  # the backup slot holds the same files
    good = tree_digest(proj.current)
    write_hf(proj.current, seed=9)
    (proj.copy(f"llama-ft_v{today()}") / SHARD1).write_bytes(b"rotten")
    result = ms("restore", "--from", f"llama-ft_v{today()}", "--yes")
    assert result.code == 0, result.err
    assert (
        f"llama-ft_v{today()}/{SHARD1}: healed here (from llama-ft_backup/{SHARD1})" in result.err
    )
    assert tree_digest(proj.current) == good
    assert ms("verify").code == 0


def test_prune_removes_whole_directory_versions(proj, ms):
    proj.write_config(max_backups=2)
    for seed in range(3):
        write_hf(proj.current, seed=10 + seed)
        assert ms("backup", "--kind", "version").code == 0
    result = ms("prune", "--json")
    assert result.code == 0, result.err
    left = sorted(p.name for p in proj.models.iterdir() if p.name.startswith("llama-ft_v"))
    assert left == [f"llama-ft_v{today()}.2", f"llama-ft_v{today()}.3"]
    assert temp_dirs(proj.models) == []
    assert f"llama-ft_v{today()}" not in catalog(proj)


def test_a_lost_catalog_is_rebuilt_from_the_directories(proj, ms):
    ms("backup", "--kind", "version")
    (proj.models / ".model-safety" / "catalog.json").unlink()
    listed = json.loads(ms("list", "--json").out)
    (copy,) = listed["copies"]
    assert copy["name"] == f"llama-ft_v{today()}" and copy["state"] == "ok"
    assert set(catalog(proj)[copy["name"]]["files"]) == set(tree_digest(proj.current))


def test_a_deleted_directory_model_is_still_known_by_its_copies(proj, ms):
    ms("backup", "--kind", "version")
    import shutil

    shutil.rmtree(proj.current)
    assert ms("restore", "--yes").code == 0
    assert (proj.current / SHARD1).is_file()


def test_a_file_path_written_with_a_slash_names_a_directory_model(tmp_path, capsys, monkeypatch):
    proj = DirProject.create(tmp_path / "p")
    text = proj.config.read_text().replace("file: llama-ft", "file: llama-ft/")
    proj.config.write_text(text)
    write_hf(proj.current)
    result = run_cli(proj.root, ["backup"], capsys, monkeypatch)
    assert result.code == 0, result.err
    assert proj.copy("llama-ft_backup").is_dir()


def test_dcp_checkpoint_versions_and_restores(tmp_path, capsys, monkeypatch):
    proj = DirProject.create(tmp_path / "p", name="fsdp-ckpt")
    write_dcp(proj.current, seed=1)
    run = lambda *a: run_cli(proj.root, list(a), capsys, monkeypatch)  # noqa: E731
    result = run("backup", "--kind", "version")
    assert result.code == 0, result.err
    version = proj.copy(f"fsdp-ckpt_v{today()}")
    assert sorted(tree_digest(version)) == [".metadata", "__0_0.distcp"]
    (proj.current / "__0_0.distcp").unlink()
    assert run("restore", "--yes").code == 0
    assert tree_digest(proj.current) == tree_digest(version)


def test_an_index_naming_a_missing_tensor_is_refused_by_backup(proj, ms):
    doc = json.loads((proj.current / INDEX).read_text())
    doc["weight_map"]["model.layers.7.weight"] = SHARD2
    (proj.current / INDEX).write_text(json.dumps(doc))
    result = ms("backup", "--kind", "version")
    assert result.code == 3
    assert "model.layers.7.weight" in result.err and SHARD2 in result.err
    assert not proj.copy(f"llama-ft_v{today()}").exists()
    assert temp_dirs(proj.models) == []


class _Boom:
    """What a hostile .metadata holds: unpickling it would run a shell command."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {self.target}",))


def test_a_hostile_dcp_metadata_is_refused_without_running_it(tmp_path, capsys, monkeypatch):
    import pickle

    proj = DirProject.create(tmp_path / "p", name="fsdp-ckpt")
    write_dcp(proj.current, seed=1)
    pwned = tmp_path / "pwned"
    (proj.current / ".metadata").write_bytes(pickle.dumps(_Boom(str(pwned))))
    result = run_cli(proj.root, ["backup", "--kind", "version"], capsys, monkeypatch)
    assert result.code == 3
    assert ".metadata" in result.err and "nothing in it was run" in result.err
    assert not pwned.exists()
    assert not proj.copy(f"fsdp-ckpt_v{today()}").exists()


def test_dcp_validation_says_what_was_not_checked(tmp_path, capsys, monkeypatch):
    proj = DirProject.create(tmp_path / "p", name="fsdp-ckpt")
    write_dcp(proj.current, seed=1)
    result = run_cli(proj.root, ["validate", "--json"], capsys, monkeypatch)
    assert result.code == 0, result.err
    checks = {c["name"]: c for c in json.loads(result.out)["results"][0]["checks"]}
    assert checks["loads_safely"]["status"] == "pass"
    assert "without running pickled code" in checks["loads_safely"]["detail"]
    assert checks["finite"]["status"] == "skip" and "not checked" in checks["finite"]["detail"]
    (proj.current / "__0_0.distcp").unlink()
    missing = run_cli(proj.root, ["validate"], capsys, monkeypatch)
    assert missing.code == 3 and "__0_0.distcp" in missing.out


def test_a_companion_outside_the_directory_travels_with_it(tmp_path, capsys, monkeypatch):
    proj = DirProject.create(tmp_path / "p")
    text = proj.config.read_text().replace(
        "file: llama-ft\n", "file: llama-ft\n  companions: [notes.md]\n"
    )
    proj.config.write_text(text.replace("  companions:", "    companions:"))
    write_hf(proj.current, seed=1)
    (proj.models / "notes.md").write_text("run 1")
    run = lambda *a: run_cli(proj.root, list(a), capsys, monkeypatch)  # noqa: E731
    assert run("backup", "--kind", "version").code == 0
    assert (proj.models / f"notes_v{today()}.md").read_text() == "run 1"
    entry = catalog(proj)[f"llama-ft_v{today()}"]
    assert entry["companions"] == {"notes.md": f"notes_v{today()}.md"}
    (proj.models / "notes.md").write_text("run 2")
    (proj.current / SHARD1).unlink()
    assert run("restore", "--yes").code == 0
    assert (proj.models / "notes.md").read_text() == "run 1"
    assert (proj.current / SHARD1).is_file()
