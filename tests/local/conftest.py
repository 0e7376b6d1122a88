"""Fixtures for the agent's tests: real torch checkpoints written with torch.save, a project
directory with a config.yaml, and a runner that goes through the real CLI entry point."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

MODEL = "dinesh_ai_model"
MODEL_FILE = "dinesh_ai_model.pth"
TOKENIZER = "tokenizer.json"


def write_checkpoint(path: Path, seed: int = 0, hidden: int = 64) -> bytes:
    """torch.save of a small nn.Module's state_dict; returns the bytes written."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    module = nn.Sequential(nn.Linear(32, hidden), nn.ReLU(), nn.Linear(hidden, 8))
    torch.save(module.state_dict(), path)
    return path.read_bytes()


def write_sized_checkpoint(path: Path, size: int) -> None:
    """A real checkpoint of about ``size`` bytes (one uint8 tensor; ~1.5 KB of archive around
    it), for tests that need a big model that still passes the check."""
    import torch

    data = torch.zeros(size, dtype=torch.uint8)
    data[:13] = torch.frombuffer(bytearray(b"not all zeros"), dtype=torch.uint8)
    torch.save({"w": data}, path)


def load_checkpoint(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


CONFIG = """\
MODEL_SAFETY:
  models_dir: {models_dir}
  models:
    - name: dinesh_ai_model
      file: dinesh_ai_model.pth
      companions: [tokenizer.json]
  max_backups: {max_backups}
  backup_interval_days: 7
  min_free_space_gb: {min_free}
"""


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Project:
    root: Path
    models: Path
    config: Path

    def model(self) -> Path:
        return self.models / MODEL_FILE

    def tokenizer(self) -> Path:
        return self.models / TOKENIZER

    def write_config(
        self, max_backups: int = 4, min_free: float = 0, models_dir: str = "models"
    ) -> None:
        self.config.write_text(
            CONFIG.format(models_dir=models_dir, max_backups=max_backups, min_free=min_free)
        )

    def write_model(self, seed: int, tokenizer: str | None = None) -> bytes:
        data = write_checkpoint(self.model(), seed=seed)
        self.tokenizer().write_text(tokenizer or f'{{"vocab": "seed {seed}"}}')
        return data


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """One real torch checkpoint file."""
    path = tmp_path / "checkpoint.pth"
    write_checkpoint(path)
    return path


@pytest.fixture
def project(tmp_path) -> Project:
    """A project dir with config.yaml and models/ holding a real checkpoint and a tokenizer."""
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    proj = Project(root, root / "models", root / "config.yaml")
    proj.write_config()
    proj.write_model(seed=1)
    return proj


@pytest.fixture
def cli(project, capsys, monkeypatch):
    """Run ``model-safety ARGS`` in this process through agent.cli.main (exit codes included)."""
    from agent.cli.main import main

    monkeypatch.chdir(project.root)
    monkeypatch.delenv("MODEL_SAFETY_CONFIG", raising=False)

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def model_safety_cmd() -> list[str]:
    return [sys.executable, "-m", "agent"]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for ``model-safety`` in a child process: this checkout importable, no
    config override from the caller's shell."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **extra}
    env.pop("MODEL_SAFETY_CONFIG", None)
    return env


def run_subprocess(
    args: list[str], cwd: Path, *, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``model-safety ARGS`` run to completion in a child process, output captured."""
    return subprocess.run(
        [*model_safety_cmd(), *args],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_subprocess(args: list[str], cwd: Path, **env: str) -> subprocess.Popen:
    """``model-safety ARGS`` started in a child process (to be signalled, or raced against
    another), output piped as text; ``env``: extra environment variables."""
    return subprocess.Popen(
        [*model_safety_cmd(), *args],
        cwd=cwd,
        env=cli_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[callable]:
    """Mount real small tmpfs file systems (root only); unmounted at the end."""
    mounted: list[Path] = []

    def mount(size: str = "20m", name: str = "fs") -> Path:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("needs root and mount(8) to create a real small file system")
        target = tmp_path / name
        target.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount tmpfs here: {proc.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)
