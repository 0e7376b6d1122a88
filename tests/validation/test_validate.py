"""``model-safety validate`` on real checkpoints: each check, the gates, the records, exit codes."""

from __future__ import annotations

import json
import pickle
import sys

import torch

from agent.checks.records import load_records
from tests.validation import scoring
from tests.validation.conftest import SCORER, add_validation, save


def checks_of(res) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    doc = json.loads(res.out)
    (result,) = doc["results"]
    return {c["name"]: c for c in result["checks"]}


def test_good_model_passes_then_a_degraded_finetune_fails_on_regression(project, cli, good_model):
    add_validation(project, scorer=SCORER, min_score=0.5, max_regression=0.05)
    res = cli("validate", "--json")
    assert res.code == 0, res.out + res.err
    doc = json.loads(res.out)
    assert doc["passed"] is True
    (result,) = doc["results"]
    assert set(result) == {"model", "path", "sha256", "passed", "score", "reference", "checks"}
    assert [c["name"] for c in result["checks"]] == [
        "loads_safely",
        "structure",
        "finite",
        "quality",
    ]
    assert result["checks"][1]["status"] == "skip"  # no earlier copy to compare with
    good_score = result["score"]
    assert good_score == scoring.score(str(project.model()))
    # recorded by content: a version copy of these bytes shares the record
    record = load_records(project.models / ".model-safety")[result["sha256"]]
    assert record["passed"] is True and record["score"] == good_score

    assert cli("backup", "--kind", "version").code == 0
    listing = json.loads(cli("list", "--json").out)
    version_validation = listing["copies"][0]["validation"]
    assert version_validation["passed"] is True and version_validation["score"] == good_score
    model = scoring.build()
    model.load_state_dict(good_model)
    save(scoring.train(model, 20, lr=0.2, wrong=True).state_dict(), project.model())
    assert scoring.score(str(project.model())) < good_score - 0.05

    res = cli("validate")
    assert res.code == 3, res.out + res.err
    assert "compared with dinesh_ai_model_v" in res.out
    quality = next(line for line in res.out.splitlines() if "quality" in line)
    assert quality.split()[0] == "fail"
    assert "more than max_regression 0.05 below dinesh_ai_model_v" in quality
    assert "same 4 tensors as" in res.out  # structure still compared, and unchanged
    assert "FAILED quality" in res.out.splitlines()[-1]
    current_row = cli("list").out.splitlines()[1].split()  # under the header
    assert current_row[0] == "dinesh_ai_model.pth" and current_row[-2] == "FAILED"


def test_regression_gate_scores_a_reference_that_was_never_validated(project, cli, good_model):
    add_validation(project, scorer=SCORER, max_regression=0.01)
    assert cli("backup").code == 0  # the pre-update slot, never validated
    model = scoring.build()
    model.load_state_dict(good_model)
    save(scoring.train(model, 20, lr=0.2, wrong=True).state_dict(), project.model())
    res = cli("validate", "--json")
    assert res.code == 3
    doc = json.loads(res.out)["results"][0]
    assert doc["reference"] == "dinesh_ai_model_backup.pth"
    assert "below dinesh_ai_model_backup.pth's" in checks_of(res)["quality"]["detail"]


def test_min_score_gate_and_prompts_reach_the_scorer(project, cli, good_model):
    add_validation(
        project,
        scorer="tests.validation.scoring:score_with_prompts",
        test_prompts=["a", "b"],
        min_score=3,
    )
    res = cli("validate", "--json")
    assert res.code == 3
    assert checks_of(res)["quality"]["detail"] == "score 2 is below min_score 3"


def test_nan_poisoned_tensor_fails_the_finite_check(project, cli, good_model):
    add_validation(project, scorer=SCORER)
    poisoned = dict(good_model)
    poisoned["2.weight"] = poisoned["2.weight"].clone()
    poisoned["2.weight"][3, 5] = float("nan")
    save(poisoned, project.model())
    res = cli("validate", "--json")
    assert res.code == 3
    checks = checks_of(res)
    assert checks["finite"]["status"] == "fail"
    assert checks["finite"]["detail"] == "NaN or infinite values in 2.weight"
    assert checks["quality"]["status"] == "skip"  # a NaN model's score means nothing


def test_removed_and_reshaped_tensors_fail_added_only_warns(project, cli, good_model):
    assert cli("backup", "--kind", "version").code == 0
    removed = {k: v for k, v in good_model.items() if k != "0.bias"}
    save(removed, project.model())
    res = cli("validate", "--json")
    assert res.code == 3
    detail = checks_of(res)["structure"]["detail"]
    assert "removed 0.bias" in detail

    reshaped = dict(good_model, **{"2.bias": torch.zeros(9)})
    save(reshaped, project.model())
    res = cli("validate", "--json")
    assert res.code == 3
    assert "reshaped 2.bias float32[8] -> float32[9]" in checks_of(res)["structure"]["detail"]

    added = dict(good_model, extra=torch.ones(2))
    save(added, project.model())
    res = cli("validate", "--json")
    assert res.code == 0
    assert checks_of(res)["structure"]["status"] == "warn"
    assert "added extra" in checks_of(res)["structure"]["detail"]


def test_on_structure_change_warn_turns_a_removal_into_a_warning(project, cli, good_model):
    add_validation(project, on_structure_change="warn")
    assert cli("backup", "--kind", "version").code == 0
    save({k: v for k, v in good_model.items() if k != "0.bias"}, project.model())
    res = cli("validate")
    assert res.code == 0, res.out
    assert "passed (warnings: structure)" in res.out


def test_truncated_file_fails_to_load(project, cli, good_model):
    data = project.model().read_bytes()
    project.model().write_bytes(data[: len(data) // 2])
    res = cli("validate", "--json")
    assert res.code == 3
    checks = checks_of(res)
    assert checks["loads_safely"]["status"] == "fail"
    assert checks["loads_safely"]["detail"].startswith("truncated")
    assert [checks[n]["status"] for n in ("structure", "finite", "quality")] == ["skip"] * 3


class _Planted:
    """Unpickling this calls open(<path>, "w"): it would create a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.path, "w"))


def test_malicious_pickle_is_refused_and_nothing_runs(project, cli, tmp_path):
    planted = tmp_path / "pwned.txt"
    evil = project.models / "evil.pth"
    torch.save({"weight": torch.ones(2), "payload": _Planted(str(planted))}, evil)
    # the same payload as a bare pickle (legacy, non-zip)
    bare = project.models / "evil_bare.pt"
    bare.write_bytes(pickle.dumps(_Planted(str(planted))))
    assert not planted.exists()
    for path in (evil, bare):
        res = cli("validate", str(path), "--json")
        assert res.code == 3, res.err
        detail = checks_of(res)["loads_safely"]["detail"]
        assert detail == "could run code: it calls io.open", detail
        assert not planted.exists()


def test_safetensors_values_are_checked_and_a_lying_header_is_reported(project, cli):
    import struct

    def safetensors(path, header: dict, data: bytes):  # type: ignore[no-untyped-def]
        raw = json.dumps(header).encode()
        path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
        return path

    values = torch.tensor([1.0, 2.0, float("inf"), 4.0])
    data = bytes(values.untyped_storage())
    good = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    ok = safetensors(project.models / "ok.safetensors", good, data[:8])
    res = cli("validate", str(ok), "--json")
    assert res.code == 0, res.out
    inf = {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    res = cli("validate", str(safetensors(project.models / "inf.safetensors", inf, data)), "--json")
    assert checks_of(res)["finite"]["detail"] == "NaN or infinite values in w"

    lies = {
        "size": {"w": {"dtype": "F32", "shape": [100], "data_offsets": [0, 16]}},
        "outside": {"w": {"dtype": "F32", "shape": [100], "data_offsets": [0, 400]}},
        "overlap": {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
        },
    }
    for kind, header in lies.items():
        path = safetensors(project.models / f"{kind}.safetensors", header, data)
        res = cli("validate", str(path), "--json")
        assert res.code == 3
        detail = checks_of(res)["loads_safely"]["detail"]
        assert detail.startswith("the safetensors library refuses it"), (kind, detail)


def test_nested_checkpoint_tensors_get_dotted_names(project, cli, good_model):
    model = scoring.build()
    model.load_state_dict(good_model)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, scoring.IN)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}
    state["optimizer"]["state"][1]["exp_avg"][0] = float("inf")
    path = save(state, project.models / "nested.pth")
    res = cli("validate", str(path), "--json")
    assert res.code == 3
    checks = checks_of(res)
    # 4 model tensors, and step, exp_avg, exp_avg_sq for each of the 4 parameters
    assert checks["loads_safely"]["detail"] == "torch-zip, 16 tensors"
    assert checks["finite"]["detail"] == "NaN or infinite values in optimizer.state.1.exp_avg"


def test_could_not_run_exits_1(project, cli, good_model, tmp_path):
    add_validation(project, scorer="tests.validation.scoring:broken_scorer")
    res = cli("validate")
    assert res.code == 1
    assert "raised RuntimeError: the eval set is missing" in res.err

    project.write_config()
    add_validation(project, command="no-such-scorer-binary {model}")
    res = cli("validate")
    assert res.code == 1 and "cannot run validation.command" in res.err

    project.write_config()
    add_validation(project, command=f"{sys.executable} -c \"print('done')\"")
    res = cli("validate")
    assert res.code == 1 and "last line 'done' is not a number" in res.err

    project.write_config()
    res = cli("validate", str(tmp_path / "absent.pth"))
    assert res.code == 1 and "unknown model" in res.err
    project.model().unlink()
    res = cli("validate")
    assert res.code == 1 and "is missing" in res.err


def test_command_score_gets_the_model_path(project, cli, good_model):
    script = project.root / "score.py"
    lines = [
        "import sys, os",
        "print('loading', sys.argv[1])",
        "print(0.25 if os.path.isfile(sys.argv[1]) else 'x')",
    ]
    script.write_text("\n".join(lines) + "\n")
    add_validation(project, command=f"{sys.executable} score.py {{model}}", min_score=0.2)
    res = cli("validate", "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["results"][0]["score"] == 0.25


def test_a_version_is_compared_with_an_older_copy_only(project, cli, good_model):
    assert cli("backup", "--kind", "version").code == 0
    save(dict(good_model, extra=torch.ones(2)), project.model())
    assert cli("backup", "--kind", "version").code == 0
    copies = json.loads(cli("list", "--json").out)["copies"]
    second, first = (c["name"] for c in copies if c["kind"] == "version")  # newest first
    res = cli("validate", first, "--json")
    assert json.loads(res.out)["results"][0]["reference"] is None
    res = cli("validate", second, "--json")
    assert json.loads(res.out)["results"][0]["reference"] == first
    assert checks_of(res)["structure"]["detail"] == f"vs {first}: added extra"
