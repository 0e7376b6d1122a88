"""The records store: one file for the push's structural cache and validate's results."""

from __future__ import annotations

import json

from agent.config import load_config
from agent.store import Store
from agent.validate_cache import (
    FILE,
    MAX_RECORDS,
    load_records,
    save_record,
    structural_problem,
)


def test_old_list_format_is_read_and_records_merge(tmp_path):
    state = tmp_path / ".model-safety"
    state.mkdir()
    (state / FILE).write_text(json.dumps(["aa", "bb"]))  # written by an older push
    assert load_records(state) == {"aa": {"structural_ok": True}, "bb": {"structural_ok": True}}
    save_record(state, "aa", {"passed": False, "score": 0.1, "when": "2024-01-01T00:00:00"})
    records = load_records(state)
    assert records["aa"] == {
        "structural_ok": True,
        "passed": False,
        "score": 0.1,
        "when": "2024-01-01T00:00:00",
    }
    assert records["bb"] == {"structural_ok": True}
    (state / FILE).write_text("{not json")
    assert load_records(state) == {}  # damaged: a re-check later, never an error


def test_oldest_records_go_beyond_the_limit(tmp_path):
    for i in range(MAX_RECORDS + 3):
        save_record(tmp_path, f"sha{i}", {"when": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}"})
    records = load_records(tmp_path)
    assert len(records) == MAX_RECORDS
    assert "sha0" not in records and f"sha{MAX_RECORDS + 2}" in records


def test_push_check_uses_and_fills_the_records(project, cli, good_model):
    store = Store(load_config(project.config))
    sha = store.sha256(project.model())
    assert cli("validate").code == 0  # records structural_ok for these bytes
    assert load_records(store.state_dir)[sha]["structural_ok"] is True
    # a recorded pass is trusted without loading: prove it by asking about garbage bytes
    garbage = project.root / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    assert structural_problem(store, garbage, sha) is None
    problem = structural_problem(store, garbage, "0" * 64)
    assert problem is not None and problem.startswith("failed the structural check")
    assert "0" * 64 not in load_records(store.state_dir)
    assert structural_problem(store, project.model(), "f" * 64) is None  # decided by the scan
    assert load_records(store.state_dir)["f" * 64] == {"structural_ok": True}
