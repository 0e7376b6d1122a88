"""Fixtures for validate/diff: the agent tests' project and CLI runner (reused, not copied), and
a project whose config has a validation block."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import Project

SCORER = "tests.validation.scoring:score"


def add_validation(proj: Project, **settings: object) -> None:
    """Append a ``validation:`` block to the project's config.yaml."""
    lines = ["  validation:"]
    for key, value in settings.items():
        if isinstance(value, list):
            lines.append(f"    {key}: [{', '.join(repr(v) for v in value)}]")
        else:
            lines.append(f"    {key}: {value}")
    with proj.config.open("a") as fh:
        fh.write("\n".join(lines) + "\n")


def save(state: dict, path: Path) -> Path:
    import torch

    torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def trained_state() -> dict:
    """Trained once per session: the training is the slow part of these tests."""
    from tests.validation import scoring

    return scoring.trained().state_dict()


@pytest.fixture
def good_model(project, trained_state) -> dict:
    """The project's current model replaced by the trained one; returns a copy of its state."""
    state = {k: v.clone() for k, v in trained_state.items()}
    save(state, project.model())
    return state
