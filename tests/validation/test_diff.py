"""``model-safety diff``: classification, the relative-change numbers against a hand computation,
chunked comparison, and the CLI's names for checkpoints."""

from __future__ import annotations

import json
import math

import torch

from agent.checkpoint.diff import diff_checkpoints
from tests.validation.conftest import save


def _pair(tmp_path):  # type: ignore[no-untyped-def]
    base = [3.0, -4.0, 0.5, 2.0, 1.0, -1.0, 0.0, 6.0]
    delta = [0.5, 0.0, -0.25, 0.0, 0.0, 1.0, 0.0, -0.5]
    a = {
        "w": torch.tensor(base),
        "same": torch.arange(10, dtype=torch.int64),
        "gone": torch.ones(3),
        "shape": torch.zeros(2, 2),
        "small": torch.tensor([10.0, 0.0]),
    }
    b = {
        "w": torch.tensor([x + d for x, d in zip(base, delta, strict=True)]),
        "same": torch.arange(10, dtype=torch.int64),
        "new": torch.ones(1),
        "shape": torch.zeros(4),
        "small": torch.tensor([10.0, 0.1]),
    }
    expected_w = math.sqrt(sum(d * d for d in delta)) / math.sqrt(sum(x * x for x in base))
    return save(a, tmp_path / "a.pth"), save(b, tmp_path / "b.pth"), expected_w


def test_classification_and_relative_change_by_hand(tmp_path):
    a, b, expected_w = _pair(tmp_path)
    # 8-byte chunks: the float64 sums are accumulated over several chunks per tensor
    for chunk in (8, 1 << 20):
        changes = {c.name: c for c in diff_checkpoints(a, b, chunk_bytes=chunk)}
        assert {n: c.status for n, c in changes.items()} == {
            "w": "changed",
            "same": "unchanged",
            "gone": "removed",
            "new": "added",
            "shape": "reshaped",
            "small": "changed",
        }
        assert math.isclose(changes["w"].relative_change, expected_w, rel_tol=1e-6)
        assert math.isclose(changes["small"].relative_change, 0.01, rel_tol=1e-5)
        assert changes["same"].relative_change is None
    order = [c.name for c in diff_checkpoints(a, b)]
    # structural changes first, then the larger change, then the unchanged
    assert order == ["gone", "shape", "new", "w", "small", "same"]
    assert expected_w > 0.01


def test_cli_diff_names_versions_current_and_paths(project, cli, tmp_path):
    assert cli("backup", "--kind", "version").code == 0
    (version,) = (p.name for p in project.models.glob("dinesh_ai_model_v*.pth"))
    state = torch.load(project.model(), weights_only=True)
    state["2.bias"] = state["2.bias"] * 2  # ||2b - b|| / ||b|| = 1
    save(state, project.model())
    res = cli("diff", version, "current", "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["counts"] == {"changed": 1, "unchanged": 3}
    top = doc["tensors"][0]
    assert top["name"] == "2.bias" and math.isclose(top["relative_change"], 1.0, rel_tol=1e-6)
    assert top["before"] == {"dtype": "float32", "shape": [8]}

    res = cli("diff", str(project.models / version), "current")
    assert res.code == 0
    lines = res.out.splitlines()
    assert lines[0].split() == ["tensor", "status", "change", "before", "->", "after"]
    assert lines[1].split()[:3] == ["2.bias", "changed", "1"]
    assert lines[-1] == "1 changed, 3 unchanged"

    res = cli("diff", "nope.pth", "current")
    assert res.code == 1 and "nope.pth: no such file" in res.err


def test_diff_refuses_an_unsafe_file(project, cli, tmp_path):
    from tests.validation.test_validate import _Planted

    planted = tmp_path / "pwned"
    evil = save({"w": torch.ones(2), "x": _Planted(str(planted))}, tmp_path / "evil.pth")
    res = cli("diff", "current", str(evil))
    assert res.code == 3 and "could run code: it calls io.open" in res.err
    assert not planted.exists()
