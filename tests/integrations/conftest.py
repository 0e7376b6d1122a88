"""Projects for the training-callback tests: config.yaml with the given remotes (auto_push), and
the model the run starts from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import MODEL_FILE, write_checkpoint


@dataclass
class TrainProject:
    root: Path

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def model(self) -> Path:
        return self.models / MODEL_FILE

    def write_config(self, model: dict[str, Any], remotes: dict[str, dict[str, Any]]) -> None:
        doc = {
            "MODEL_SAFETY": {
                "models_dir": "models",
                "models": [model],
                "min_free_space_gb": 0,
                "remotes": {name: {**r, "auto_push": True} for name, r in remotes.items()},
            }
        }
        (self.root / "config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

    def names(self, pattern: str) -> list[str]:
        return sorted(p.name for p in self.models.glob(pattern))


@pytest.fixture
def nas(tmp_path) -> Path:
    (tmp_path / "nas").mkdir()
    return tmp_path / "nas" / "backups"


@pytest.fixture
def lit_project(tmp_path, nas) -> TrainProject:
    """dinesh_ai_model.pth (tests.support's layout), pushed to the local remote ``nas``."""
    proj = TrainProject(tmp_path / "proj")
    proj.models.mkdir(parents=True)
    write_checkpoint(proj.model, seed=1)
    remotes = {"nas": {"type": "local", "path": str(nas)}}
    proj.write_config({"name": "dinesh_ai_model", "file": MODEL_FILE}, remotes)
    return proj


@pytest.fixture
def hf_project(tmp_path, nas) -> TrainProject:
    """models/tiny-bert/ (a save_pretrained folder), pushed to the local remote ``nas``."""
    from tests.integrations.hf import MODEL, make_model

    proj = TrainProject(tmp_path / "proj")
    proj.models.mkdir(parents=True)
    make_model(proj.models / MODEL)
    proj.write_config(
        {"name": MODEL, "file": f"{MODEL}/"}, {"nas": {"type": "local", "path": str(nas)}}
    )
    return proj
