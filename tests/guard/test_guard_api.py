"""The Python API a training script uses: ``with safety.guard(...)`` around a fine-tune done in
the same process, and what happens when that process is killed half-way through a save."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from agent import ModelSafety, UpdateRejected
from tests.guard.conftest import GuardProject
from tests.guard.finetune import finetune
from tests.support import cli_env, run_subprocess

ROOT = Path(__file__).resolve().parents[2]


def finetune_in_process(path, mode: str) -> None:
    """The training loop of finetune.py, run in this process as a training script would."""
    assert finetune(path, mode) == 0


def test_a_passing_update_reports_its_score(gproject):
    safety = ModelSafety.from_config("config.yaml")
    before = gproject.model.read_bytes()
    with safety.guard(version=True) as update:
        finetune_in_process(update.path, "good")
    assert update.result.outcome == "accepted"
    assert update.result.score > 0.9
    assert (gproject.models / "dinesh_ai_model_backup.pth").read_bytes() == before
    assert update.result.version in gproject.files()


def test_a_worse_model_raises_and_is_rolled_back(gproject):
    safety = ModelSafety.from_config("config.yaml")
    before = gproject.model.read_bytes()
    with pytest.raises(UpdateRejected) as info, safety.guard() as update:
        finetune_in_process(update.path, "degrade")
    assert "validation failed" in str(info.value)
    assert info.value.exit_code == 3
    assert gproject.model.read_bytes() == before
    assert info.value.result.kept_aside


def test_an_exception_in_the_block_rolls_back_and_propagates(gproject):
    safety = ModelSafety.from_config("config.yaml")
    before = gproject.model.read_bytes()
    with pytest.raises(RuntimeError, match="CUDA out of memory"), safety.guard() as update:
        update.path.write_bytes(before[:100])  # a save cut short
        raise RuntimeError("CUDA out of memory")
    assert gproject.model.read_bytes() == before
    assert update.result.outcome == "rolled-back"


def test_backup_inside_a_guard_shares_the_lock(gproject):
    safety = ModelSafety.from_config("config.yaml")
    with safety.guard(raise_on_reject=False) as update:
        made = safety.backup(kind="version", note="inside the guard")
    assert made.entries and update.result.outcome == "unchanged"
    # another process cannot write meanwhile, but can once the guard has ended
    assert run_subprocess(["backup"], gproject.root).returncode == 0


def test_a_killed_training_process_is_rolled_back_by_the_next_guard(gproject: GuardProject):
    before = gproject.model.read_bytes()
    script = textwrap.dedent(
        """
        import os, signal
        from agent import ModelSafety
        safety = ModelSafety.from_config("config.yaml")
        with safety.guard() as update:
            update.path.write_bytes(update.path.read_bytes()[:1000])  # half-way through a save
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=gproject.root, env=cli_env(), capture_output=True
    )
    assert proc.returncode == -9
    assert gproject.model.stat().st_size == 1000
    # the next guarded update starts from the good model, not from the half-written one
    proc = run_subprocess(["guard", "--", *gproject.finetune("good")], gproject.root, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "never finished" in proc.stderr
    assert (gproject.models / "dinesh_ai_model_backup.pth").read_bytes() == before
    kept = [n for n in gproject.files() if "_replaced-" in n]
    assert len(kept) == 1 and (gproject.models / kept[0]).stat().st_size == 1000
    state = torch.load(gproject.model, weights_only=True)
    assert state["0.weight"].shape == (64, 32)


def test_the_readme_example_runs_as_written(gproject):
    example = (ROOT / "examples" / "guarded_finetune.py").read_text()
    body = example[example.index("import sys") :]
    assert body.strip() in (ROOT / "README.md").read_text()  # the README shows this very code
    config = gproject.root / "config.yaml"
    config.write_text(config.read_text() + "  remotes:\n    nas: {type: local, path: nas}\n")
    (gproject.root / "nas").mkdir()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "guarded_finetune.py")],
        cwd=gproject.root,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "accepted: score 0." in proc.stdout
    assert "nas: " in proc.stdout
    pushed = {p.name for p in (gproject.root / "nas").iterdir()}
    assert {"dinesh_ai_model.pth", "dinesh_ai_model_backup.pth"} <= pushed


def test_a_rejected_first_model_is_moved_aside_not_left_under_the_real_name(gproject):
    gproject.model.unlink()
    safety = ModelSafety.from_config("config.yaml")
    with pytest.raises(UpdateRejected), safety.guard() as update:
        torch.save({"w": torch.tensor([float("nan"), 1.0])}, update.path)
    assert not gproject.model.exists()
    (kept,) = update.result.kept_aside
    assert "_replaced-" in kept
    assert torch.load(gproject.models / kept, weights_only=True)["w"].isnan().any()
    listing = run_subprocess(["list", "--json"], gproject.root)
    notes = {c["name"]: c["note"] for c in json.loads(listing.stdout)["copies"]}
    assert notes[kept] == "rejected by guard"
