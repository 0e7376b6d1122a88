"""`verify` checks the current file's structure too: a truncated current file is exit 3, with
the newest intact copy to restore from named."""

from __future__ import annotations

import json
import os

import pytest


@pytest.mark.parametrize(
    ("harm", "state"),
    [("truncated", "damaged"), ("deleted", "missing")],  # a bad write; an accidental `rm`
)
def test_a_harmed_current_file_is_found_and_the_fix_named(project, cli, harm, state):
    data = project.write_model(seed=1)
    assert cli("backup", "--kind", "version").code == 0
    res = cli("verify")
    assert res.code == 0 and "ok         dinesh_ai_model.pth (current)" in res.out, res
    if harm == "truncated":
        os.truncate(project.model(), project.model().stat().st_size // 2)
    else:
        project.model().unlink()
    res = cli("verify")
    assert res.code == 3, res
    assert f"{state:9}  dinesh_ai_model.pth (current)" in res.out
    assert "model-safety restore dinesh_ai_model --yes" in res.out
    doc = json.loads(cli("verify", "--json").out)
    assert doc["ok"] is False and doc["current"][0]["state"] == state
    status = json.loads(cli("status", "--local", "--json").out)["models"][0]
    assert status["current_present"] is (harm == "truncated")
    if harm == "deleted":
        assert "  current           missing" in cli("status", "--local").out
    # the advice works
    assert cli("restore", "dinesh_ai_model", "--yes").code == 0
    assert project.model().read_bytes() == data
    assert cli("verify").code == 0


def test_a_model_with_no_file_and_no_copies_is_not_a_problem(project, cli):
    """A model not written yet (or lost with its disk) has nothing to verify: exit 0, and the
    hint that a pull brings it back."""
    project.model().unlink()  # never backed up: a new model, nothing known of it
    res = cli("verify")
    assert res.code == 0, res
    assert "no current file and no local copies" in res.err and "model-safety pull" in res.err
