"""`verify` checks the current file's structure too: a truncated current file is exit 3, with
the newest intact copy to restore from named."""

from __future__ import annotations

import json
import os


def test_truncated_current_is_found_and_the_fix_named(project, cli):
    project.write_model(seed=1)
    assert cli("backup", "--kind", "version").code == 0
    res = cli("verify")
    assert res.code == 0 and "ok         dinesh_ai_model.pth (current)" in res.out, res
    size = project.model().stat().st_size
    os.truncate(project.model(), size // 2)
    res = cli("verify")
    assert res.code == 3, res
    assert "damaged    dinesh_ai_model.pth (current)" in res.out
    assert "model-safety restore dinesh_ai_model --yes" in res.out
    doc = json.loads(cli("verify", "--json").out)
    assert doc["ok"] is False and doc["current"][0]["state"] == "damaged"
    # the advice works
    assert cli("restore", "dinesh_ai_model", "--yes").code == 0
    assert cli("verify").code == 0
