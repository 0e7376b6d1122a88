"""A project whose model is fine-tuned by a real training script (finetune.py) and judged by a
real scorer (scoring.py), both copied into the project dir as a user would keep them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import MODEL_FILE, TOKENIZER, write_checkpoint

HERE = Path(__file__).parent

CONFIG = """\
MODEL_SAFETY:
  models_dir: models
  models:
    - name: dinesh_ai_model
      file: dinesh_ai_model.pth
      companions: [tokenizer.json]
  max_backups: 4
  min_free_space_gb: 0
  auto_backup_before_train: {auto_backup}
  validation:
    scorer: "scoring:score"
    min_score: 0.5
    max_regression: 0.05
"""


@dataclass
class GuardProject:
    root: Path

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def model(self) -> Path:
        return self.models / MODEL_FILE

    def write_config(self, auto_backup: bool = True) -> None:
        text = CONFIG.format(auto_backup=str(auto_backup).lower())
        (self.root / "config.yaml").write_text(text)

    def finetune(self, mode: str) -> list[str]:
        """The update command for ``guard -- ...``."""
        import sys

        return [sys.executable, str(self.root / "finetune.py"), mode]

    def files(self) -> dict[str, bytes]:
        """Every file in models/ (the agent's state dir aside), by name."""
        return {p.name: p.read_bytes() for p in self.models.iterdir() if p.is_file()}


@pytest.fixture
def gproject(tmp_path, monkeypatch) -> GuardProject:
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    for script in ("finetune.py", "scoring.py"):
        shutil.copy(HERE / script, root / script)
    proj = GuardProject(root)
    proj.write_config()
    write_checkpoint(proj.model, seed=1)
    (proj.models / TOKENIZER).write_text('{"vocab": 1}')
    monkeypatch.chdir(root)
    monkeypatch.delenv("MODEL_SAFETY_CONFIG", raising=False)
    return proj
