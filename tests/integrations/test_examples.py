"""examples/lightning_finetune.py and examples/transformers_finetune.py, run as a user would:
from the project directory, with the repository's agent importable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import cli_env

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(script: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_lightning_example_runs(lit_project, nas):
    before = lit_project.model.read_bytes()
    proc = _run("lightning_finetune.py", lit_project.root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "update accepted" in proc.stdout
    assert lit_project.model.read_bytes() != before
    assert (nas / "dinesh_ai_model.pth").read_bytes() == lit_project.model.read_bytes()
    assert lit_project.names("dinesh_ai_model_v*.pth")


def test_the_transformers_example_runs(hf_project, nas):
    import shutil

    shutil.rmtree(hf_project.models / "tiny-bert")  # the example makes its own tiny model
    proc = _run("transformers_finetune.py", hf_project.root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "update accepted" in proc.stdout
    assert (nas / "tiny-bert" / "model.safetensors").is_file()
    assert hf_project.names("tiny-bert_v*")
