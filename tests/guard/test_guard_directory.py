"""``guard`` on a model saved as a directory: the whole directory is rolled back with renames,
including files the update added or removed, and the rejected directory is kept aside whole."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

from tests.dirsupport import DirProject, temp_dirs, tree_digest, write_hf
from tests.support import run_cli, run_subprocess

SCRIPT = Path(__file__).with_name("finetune_dir.py")


@pytest.fixture
def proj(tmp_path) -> DirProject:
    p = DirProject.create(tmp_path / "proj")
    write_hf(p.current, seed=1)
    return p


@pytest.fixture
def ms(proj, capsys, monkeypatch):
    monkeypatch.delenv("MODEL_SAFETY_CONFIG", raising=False)
    return lambda *args: run_cli(proj.root, list(args), capsys, monkeypatch)


def guard(proj: DirProject, mode: str, *options: str):
    """``guard`` in a child process: the update command inherits its real stdout."""
    args = ["guard", *options, "--json", "--", sys.executable, str(SCRIPT), mode]
    return run_subprocess(args, proj.root)


@pytest.mark.parametrize("mode", ["nan", "crash"])
def test_a_rejected_update_rolls_the_whole_directory_back(proj, ms, mode):
    before = tree_digest(proj.current)
    result = guard(proj, mode)
    assert result.returncode == 3, result.stdout + result.stderr
    assert tree_digest(proj.current) == before  # the added file gone, the removed one back
    (aside,) = [p for p in proj.models.iterdir() if p.name.startswith("llama-ft_replaced-")]
    kept = tree_digest(aside)
    assert "training_args.json" in kept and "tokenizer.json" not in kept
    assert temp_dirs(proj.models) == []
    assert ms("verify").code == 0


def test_a_rejected_update_is_discarded_on_request(proj, ms):
    before = tree_digest(proj.current)
    assert guard(proj, "nan", "--discard-failed").returncode == 3
    assert tree_digest(proj.current) == before
    assert not [p for p in proj.models.iterdir() if "_replaced-" in p.name]


def test_an_accepted_update_is_kept_and_versioned(proj, ms):
    before = tree_digest(proj.current)
    result = guard(proj, "tune", "--version")
    assert result.returncode == 0, result.stdout + result.stderr
    after = tree_digest(proj.current)
    assert after != before and "training_args.json" in after
    version = proj.copy(f"llama-ft_v{dt.date.today().isoformat()}")
    assert tree_digest(version) == after
    assert tree_digest(proj.copy("llama-ft_backup")) == before
    assert json.loads(result.stdout)["outcome"] == "accepted"
