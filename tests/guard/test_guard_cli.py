"""``model-safety guard -- COMMAND``: a real training script updates a real checkpoint; the guard
keeps a better model and rolls back a worse, broken, crashed or interrupted one."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time

import torch

from tests.guard.conftest import GuardProject
from tests.support import MODEL, run_subprocess, start_subprocess


def guard(proj: GuardProject, *args: str, mode: str) -> subprocess.CompletedProcess:
    return run_subprocess(["guard", *args, "--", *proj.finetune(mode)], proj.root, timeout=180)


def aside(proj: GuardProject) -> list[str]:
    return sorted(n for n in proj.files() if "_replaced-" in n)


def test_a_better_model_is_kept_scored_and_versioned(gproject):
    before = gproject.model.read_bytes()
    proc = guard(gproject, "--version", "--json", mode="good")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["outcome"] == "accepted"
    assert result["score"] > 0.9  # the scorer's loss went down
    assert "step 0 loss" in proc.stderr  # the command's output streamed (to stderr with --json)
    files = gproject.files()
    assert files["dinesh_ai_model_backup.pth"] == before
    version = f"dinesh_ai_model_v{dt.date.today().isoformat()}.pth"
    assert result["version"] == version
    assert files[version] == files["dinesh_ai_model.pth"] != before


def test_a_degraded_fine_tune_is_rolled_back_and_kept_aside(gproject):
    before = gproject.model.read_bytes()
    proc = guard(gproject, MODEL, mode="degrade")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "validation failed" in proc.stderr
    # the line names the model once, at its start
    (line,) = [x for x in proc.stderr.splitlines() if "validation failed" in x]
    assert line.startswith(f"{MODEL}: validation failed: ") and f": {MODEL}: " not in line
    assert "restored dinesh_ai_model.pth from dinesh_ai_model_backup.pth" in proc.stderr
    assert gproject.model.read_bytes() == before
    kept = aside(gproject)
    assert len(kept) == 1 and kept[0] in proc.stderr
    # the rejected model is intact for inspection, and it really is worse
    state = torch.load(gproject.models / kept[0], weights_only=True)
    assert set(state) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    listing = run_subprocess(["list", "--json"], gproject.root)
    notes = {c["name"]: c["note"] for c in json.loads(listing.stdout)["copies"]}
    assert "rejected by guard" in notes[kept[0]]


def test_nan_weights_are_rejected_and_discarded_on_request(gproject):
    before = gproject.model.read_bytes()
    proc = guard(gproject, "--discard-failed", mode="nan")
    assert proc.returncode == 3
    assert "finite" in proc.stdout + proc.stderr
    assert gproject.model.read_bytes() == before
    assert aside(gproject) == []


def test_a_command_that_crashes_while_saving_is_rolled_back(gproject):
    before = gproject.model.read_bytes()
    proc = guard(gproject, mode="fail-after-write")
    assert proc.returncode == 3
    assert "the update failed (exit 1)" in proc.stderr
    assert gproject.model.read_bytes() == before
    kept = aside(gproject)
    assert len(kept) == 1 and (gproject.models / kept[0]).stat().st_size < len(before)


def test_a_command_that_fails_before_writing_changes_nothing(gproject):
    before = gproject.files()
    proc = guard(gproject, mode="fail-before-write")
    assert proc.returncode == 3
    assert "was not changed" in proc.stderr
    assert "out of memory (simulated)" in proc.stderr
    after = gproject.files()
    assert after.pop("dinesh_ai_model_backup.pth") == before["dinesh_ai_model.pth"]
    after.pop("tokenizer_backup.json")
    assert after == before


def test_ctrl_c_during_the_update_restores_the_model(gproject, tmp_path):
    before = gproject.model.read_bytes()
    ready = tmp_path / "ready"
    args = ["guard", "--", *gproject.finetune("slow-write")]
    proc = start_subprocess(args, gproject.root, FINETUNE_READY=str(ready))
    deadline = time.monotonic() + 120
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), proc.communicate()
    assert gproject.model.read_bytes() != before  # half written right now
    # a signal to the guard alone (a terminal would send it to the script as well)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "interrupted" in err
    assert gproject.model.read_bytes() == before
    assert len(aside(gproject)) == 1
    assert not [n for n in os.listdir(gproject.models) if n.endswith(".incomplete")]


def test_without_auto_backup_and_no_copy_the_update_does_not_start(gproject):
    gproject.write_config(auto_backup=False)
    before = gproject.model.read_bytes()
    proc = guard(gproject, mode="good")
    assert proc.returncode == 1
    assert "auto_backup_before_train is off" in proc.stderr
    assert "fine-tuning" not in proc.stdout + proc.stderr  # the command never ran
    assert gproject.model.read_bytes() == before


def test_guard_without_a_command_is_a_usage_error(gproject):
    proc = run_subprocess(["guard", MODEL], gproject.root)
    assert proc.returncode == 2
    assert "after --" in proc.stderr
