"""Faults on models saved as directories (safetensors shards written by the safetensors library,
the index, config and tokenizer): kill -9 of a real CLI process while a directory version is
staged, renamed into place, restored or pruned; a deleted shard; an index that names a shard or
a tensor that is not there. Losses are counted file by file, by content: every file of every
directory that existed before must be intact somewhere in the models dir afterwards."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from tests.dirsupport import (
    INDEX,
    SHARD1,
    SHARD2,
    DirProject,
    temp_dirs,
    tree_digest,
    write_hf,
)
from tests.reliability.invariants import lost_bytes
from tests.reliability.test_crash import crash, ok
from tests.support import run_subprocess


def today() -> str:
    """Asked at each use, not once at import: a run that crosses midnight names its versions
    with the new date."""
    return dt.date.today().isoformat()


@pytest.fixture
def proj(tmp_path) -> DirProject:
    p = DirProject.create(tmp_path / "proj")
    write_hf(p.current, seed=1, rows=64)
    return p


def content(models: Path) -> tuple[dict[str, str], dict[str, int]]:
    """(path -> sha256, sha256 -> size) of every file of every directory in the models dir,
    the state dir and our temps aside."""
    snap, sizes = {}, {}
    for top in sorted(models.iterdir()):
        if top.name.startswith(".") or not top.is_dir():
            continue
        for rel, sha in tree_digest(top).items():
            snap[f"{top.name}/{rel}"] = sha
            sizes[sha] = (top / rel).stat().st_size
    return snap, sizes


def dir_versions(models: Path) -> list[str]:
    return sorted(p.name for p in models.iterdir() if p.name.startswith("llama-ft_v"))


@pytest.mark.parametrize("nth", [1, 3])
def test_kill_while_a_directory_version_is_staged(ledger, proj, nth):
    with ledger.case(
        fault=f"kill -9 while a directory version is staged ({nth} of 5 files copied)",
        where=f"`backup --kind version` of a save_pretrained folder, crash point "
        f"tree-file-copied:{nth}",
        user_sees="the process dies; no version directory appears; the next backup removes "
        "the hidden temp directory and writes a complete version",
    ) as case:
        before, sizes = content(proj.models)
        crash(proj.root, f"tree-file-copied:{nth}", "backup", "--kind", "version")
        assert dir_versions(proj.models) == []
        assert len(temp_dirs(proj.models)) == 1
        ok(proj.root, "backup", "--kind", "version")
        case.transfers_completed += 1
        assert dir_versions(proj.models) == [f"llama-ft_v{today()}"]
        assert tree_digest(proj.copy(f"llama-ft_v{today()}")) == tree_digest(proj.current)
        after, _ = content(proj.models)
        case.lost_bytes = lost_bytes({"local": before}, {"local": after}, sizes, by="content")
        assert case.lost_bytes == 0
        assert temp_dirs(proj.models) == []
        ok(proj.root, "verify")
        case.verified = "no partial version; temp directory removed; version == source; verify 0"


def test_kill_after_a_directory_version_is_renamed_into_place(ledger, proj):
    with ledger.case(
        fault="kill -9 right after a directory version is renamed into place (catalog not saved)",
        where="`backup --kind version`, crash point backup-commit",
        user_sees="the process dies; the version is complete and the next command catalogues it",
    ) as case:
        before, sizes = content(proj.models)
        crash(proj.root, "backup-commit", "backup", "--kind", "version")
        assert dir_versions(proj.models) == [f"llama-ft_v{today()}"]
        listed = json.loads(run_subprocess(["list", "--json"], proj.root).stdout)
        assert [(c["name"], c["state"]) for c in listed["copies"]] == [
            (f"llama-ft_v{today()}", "ok")
        ]
        ok(proj.root, "verify")
        case.transfers_completed += 1
        assert tree_digest(proj.copy(f"llama-ft_v{today()}")) == tree_digest(proj.current)
        after, _ = content(proj.models)
        case.lost_bytes = lost_bytes({"local": before}, {"local": after}, sizes, by="content")
        assert case.lost_bytes == 0
        assert temp_dirs(proj.models) == []
        case.verified = "the version is whole (every file's sha256 == source); verify exit 0"


def test_kill_while_the_backup_slot_directory_is_replaced(ledger, proj):
    with ledger.case(
        fault="kill -9 while a new backup slot directory takes the place of the old one",
        where="`backup` over an existing llama-ft_backup/, crash point tree-exchanged",
        user_sees="the process dies with the new slot in place; the next backup finds it "
        "holds the current content; the old slot's temp is removed",
    ) as case:
        ok(proj.root, "backup")
        write_hf(proj.current, seed=2, rows=64)
        before, sizes = content(proj.models)
        crash(proj.root, "tree-exchanged", "backup")
        assert len(temp_dirs(proj.models)) == 1  # the old slot, swapped out in one rename
        assert tree_digest(proj.copy("llama-ft_backup")) == tree_digest(proj.current)
        ok(proj.root, "backup")
        case.transfers_completed += 1
        ok(proj.root, "verify")
        assert temp_dirs(proj.models) == []
        after, _ = content(proj.models)
        # the old slot's content was replaced on purpose; everything else survives
        old_slot = {k: v for k, v in before.items() if k.startswith("llama-ft_backup/")}
        rest = {k: v for k, v in before.items() if k not in old_slot}
        case.lost_bytes = lost_bytes({"local": rest}, {"local": after}, sizes, by="content")
        assert case.lost_bytes == 0
        case.verified = "slot == current; verify exit 0; no temp directory left"


def test_kill_while_a_directory_is_restored(ledger, proj):
    with ledger.case(
        fault="kill -9 during a directory restore (current set aside, copy not yet in place)",
        where="`restore --yes` of a directory model with a deleted shard, crash point "
        "restore-switch",
        user_sees="the process dies; the next restore puts the version in place; the damaged "
        "directory is kept as llama-ft_replaced-<time>/",
    ) as case:
        ok(proj.root, "backup", "--kind", "version")
        good = tree_digest(proj.current)
        (proj.current / SHARD2).unlink()
        (proj.current / "notes.txt").write_text("written after the version")
        before, sizes = content(proj.models)
        crash(proj.root, "restore-switch", "restore", "--yes")
        ok(proj.root, "restore", "--yes")
        case.transfers_completed += 1
        assert tree_digest(proj.current) == good
        after, _ = content(proj.models)
        case.lost_bytes = lost_bytes({"local": before}, {"local": after}, sizes, by="content")
        assert case.lost_bytes == 0
        assert temp_dirs(proj.models) == []
        ok(proj.root, "verify")
        case.verified = "current == version; notes.txt kept in the set-aside directory; verify 0"


def test_kill_while_a_directory_version_is_pruned(ledger, proj):
    with ledger.case(
        fault="kill -9 while local retention deletes a directory version",
        where="`prune` with max_backups 2 and 3 directory versions, crash point tree-remove",
        user_sees="the process dies; the version being deleted is gone from its name at once "
        "(renamed away first); the next run removes the rest",
    ) as case:
        proj.write_config(max_backups=2)
        for seed in range(3):
            write_hf(proj.current, seed=10 + seed, rows=64)
            ok(proj.root, "backup", "--kind", "version")
        kept = {n: tree_digest(proj.copy(n)) for n in dir_versions(proj.models)[1:]}
        crash(proj.root, "tree-remove", "prune")
        assert dir_versions(proj.models) == sorted(kept)
        assert len(temp_dirs(proj.models)) == 1
        ok(proj.root, "prune")
        ok(proj.root, "verify")
        assert temp_dirs(proj.models) == []
        case.transfers_completed += 1
        assert {n: tree_digest(proj.copy(n)) for n in kept} == kept
        case.lost_bytes = 0  # the one version deleted was deleted on purpose; the rest compared
        case.verified = "the 2 kept versions intact; no partial version under a version name"


def test_a_deleted_shard_is_restored(ledger, proj):
    with ledger.case(
        fault="a shard of the current model directory deleted",
        where="rm llama-ft/model-00002-of-00002.safetensors",
        user_sees="`verify` names the shard the index misses (exit 3); `restore --yes` brings "
        "it back; the damaged directory is kept aside",
    ) as case:
        ok(proj.root, "backup", "--kind", "version")
        good = tree_digest(proj.current)
        before, sizes = content(proj.models)
        (proj.current / SHARD2).unlink()
        seen = run_subprocess(["verify"], proj.root)
        assert seen.returncode == 3 and SHARD2 in seen.stdout
        ok(proj.root, "restore", "--yes")
        case.transfers_completed += 1
        assert tree_digest(proj.current) == good
        after, _ = content(proj.models)
        case.lost_bytes = lost_bytes({"local": before}, {"local": after}, sizes, by="content")
        assert case.lost_bytes == 0
        ok(proj.root, "verify")
        case.verified = "verify named the shard; after restore every file == the version"


@pytest.mark.parametrize("missing", ["shard", "tensor"])
def test_an_index_naming_what_is_not_there_is_refused(ledger, proj, missing):
    with ledger.case(
        fault=f"model.safetensors.index.json names a {missing} that is not there",
        where="the index edited by hand (a shard renamed / a tensor mapped to the wrong shard)",
        user_sees=f"`validate` and `backup` fail naming the {missing} (exit 3); nothing written",
    ) as case:
        doc = json.loads((proj.current / INDEX).read_text())
        if missing == "shard":
            os.rename(proj.current / SHARD1, proj.current / "renamed.safetensors")
            name = SHARD1
        else:
            doc["weight_map"]["lm_head.weight"] = SHARD1  # it lives in shard 2
            (proj.current / INDEX).write_text(json.dumps(doc))
            name = "lm_head.weight"
        checked = run_subprocess(["validate"], proj.root)
        assert checked.returncode == 3 and name in checked.stdout, checked.stdout
        refused = run_subprocess(["backup", "--kind", "version"], proj.root)
        assert refused.returncode == 3 and name in refused.stderr, refused.stderr
        assert dir_versions(proj.models) == [] and temp_dirs(proj.models) == []
        case.lost_bytes = 0
        case.verified = f"validate and backup exit 3 naming {name}; no version, no temp"


def _fresh_machine(proj: DirProject, settings: dict) -> DirProject:
    """Another machine with the same config.yaml and an empty models dir."""
    other = DirProject.create(proj.root.parent / "other", remotes={"r": settings})
    return other


def test_kill_while_a_directory_version_is_pushed(ledger, proj, local_settings):
    with ledger.case(
        fault="kill -9 while a directory version is pushed (2 of 5 files on the remote)",
        where="`push` to a local remote, crash point tree-push-file:2",
        user_sees="the process dies; the remote lists no such version and `pull` elsewhere "
        "fetches nothing half-pushed; the next push completes it, manifest last",
    ) as case:
        proj.write_config(remotes={"r": local_settings})
        ok(proj.root, "backup", "--kind", "version")
        want = tree_digest(proj.current)
        before, sizes = content(proj.models)
        crash(proj.root, "tree-push-file:2", "push")
        other = _fresh_machine(proj, local_settings)
        early = run_subprocess(["pull", "--version", "all"], other.root)
        assert early.returncode != 0, early.stdout
        assert [p.name for p in other.models.iterdir() if not p.name.startswith(".")] == []
        ok(proj.root, "push")
        case.transfers_completed += 1
        ok(other.root, "pull", "--version", "all")
        assert tree_digest(other.copy(f"llama-ft_v{today()}")) == want
        assert tree_digest(other.current) == want
        ok(other.root, "verify")
        ok(proj.root, "verify", "--remote", "r")
        after = {**content(proj.models)[0], **content(other.models)[0]}
        case.lost_bytes = lost_bytes({"local": before}, {"local": after}, sizes, by="content")
        assert case.lost_bytes == 0
        case.verified = (
            "half-pushed version invisible to pull; after the next push a new machine pulls "
            "every file with the version's sha256; verify and verify --remote exit 0"
        )


def test_kill_while_a_directory_version_is_pulled(ledger, proj, local_settings):
    with ledger.case(
        fault="kill -9 while a directory version is pulled (2 of 5 files fetched)",
        where="`pull --version all` onto an empty machine, crash point tree-pull-file:2",
        user_sees="the process dies; no partial directory appears under a copy's name; the "
        "next pull removes the temp directory and brings the whole version",
    ) as case:
        proj.write_config(remotes={"r": local_settings})
        ok(proj.root, "backup", "--kind", "version")
        ok(proj.root, "push")
        want = tree_digest(proj.current)
        other = _fresh_machine(proj, local_settings)
        crash(other.root, "tree-pull-file:2", "pull", "--version", "all")
        assert [p.name for p in other.models.iterdir() if not p.name.startswith(".")] == []
        assert len(temp_dirs(other.models)) == 1
        before, sizes = content(proj.models)
        ok(other.root, "pull", "--version", "all")
        case.transfers_completed += 1
        assert temp_dirs(other.models) == []
        assert tree_digest(other.copy(f"llama-ft_v{today()}")) == want
        ok(other.root, "verify")
        after = {**content(proj.models)[0], **content(other.models)[0]}
        case.lost_bytes = lost_bytes({"local": before}, {"local": after}, sizes, by="content")
        assert case.lost_bytes == 0
        case.verified = "no partial directory; the next pull made it whole; no temp left"
