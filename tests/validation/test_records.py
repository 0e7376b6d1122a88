"""The records store: one file for the checker's verdicts and validate's results."""

from __future__ import annotations

import json

from agent.checks.records import FILE, MAX_RECORDS, load_records, save_record
from agent.checks.runner import CHECKER_VERSION
from agent.checks.verdicts import verdict_for
from agent.config import load_config
from agent.local.store import Store


def test_records_merge_and_damage_is_an_empty_store(tmp_path):
    state = tmp_path / ".model-safety"
    state.mkdir()
    (state / FILE).write_text(json.dumps(["aa", "bb"]))  # an older format: not trusted
    assert load_records(state) == {}
    save_record(state, "aa", {"passed": False, "score": 0.1})
    save_record(state, "aa", {"when": "2024-01-01T00:00:00"})
    assert load_records(state)["aa"] == {
        "passed": False,
        "score": 0.1,
        "when": "2024-01-01T00:00:00",
    }
    (state / FILE).write_text("{not json")
    assert load_records(state) == {}  # damaged: a re-check later, never an error


def test_oldest_records_go_beyond_the_limit(tmp_path):
    for i in range(MAX_RECORDS + 3):
        save_record(tmp_path, f"sha{i}", {"when": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}"})
    records = load_records(tmp_path)
    assert len(records) == MAX_RECORDS
    assert "sha0" not in records and f"sha{MAX_RECORDS + 2}" in records


def test_one_verdict_per_content_shared_by_validate_and_push(project, cli, good_model):
    store = Store(load_config(project.config))
    sha = store.sha256(project.model())
    assert cli("validate").code == 0
    rec = load_records(store.state_dir)[sha]["verdict"]
    assert rec["ok"] is True and rec["checker"] == CHECKER_VERSION
    assert "weights_only_load" in rec["checks"] and "finite" in rec["checks"]
    # a recorded verdict is trusted without loading: prove it by asking about garbage bytes
    garbage = project.root / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    assert verdict_for(store, garbage, sha).ok
    refused = verdict_for(store, garbage, "0" * 64)
    assert not refused.ok and "not a torch checkpoint" in (refused.reason or "")
    assert load_records(store.state_dir)["0" * 64]["verdict"]["ok"] is False  # refusals too
    # a verdict of another checker version is not trusted: the file is checked again
    save_record(store.state_dir, "0" * 64, {"verdict": {**rec, "checker": CHECKER_VERSION - 1}})
    assert not verdict_for(store, garbage, "0" * 64).ok
