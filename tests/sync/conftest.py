"""A project whose config.yaml has one remote, of each kind, on the real test servers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.agent.conftest import (
    MODEL_FILE,
    TOKENIZER,
    Result,
    cli_env,
    model_safety_cmd,
    run_subprocess,
    write_checkpoint,
)

REMOTE_KINDS = ["local", "s3_seaweedfs", "gdrive_emulator"]


@pytest.fixture
def local_settings(tmp_path) -> dict[str, Any]:
    (tmp_path / "nas").mkdir()
    return {"type": "local", "path": str(tmp_path / "nas" / "model-backups")}


@dataclass
class SyncProject:
    root: Path
    models: Path
    config: Path
    remote: dict[str, Any]

    @classmethod
    def create(cls, root: Path, remote: dict[str, Any], **config: Any) -> SyncProject:
        """A project dir at ``root`` with config.yaml naming ``remote`` as remote ``r``."""
        root.mkdir(parents=True)
        proj = cls(root, root / "models", root / "config.yaml", remote)
        proj.write_config(**config)
        return proj

    def write_config(
        self,
        *,
        max_backups: int = 4,
        retention: dict | None = None,
        auto_push: bool = True,
        extra_remotes: dict | None = None,
        models: list[dict] | None = None,
    ) -> None:
        remote = dict(self.remote)
        remote["auto_push"] = auto_push
        if retention:
            remote["retention"] = retention
        doc = {
            "MODEL_SAFETY": {
                "models_dir": "models",
                "models": models
                or [{"name": "dinesh_ai_model", "file": MODEL_FILE, "companions": [TOKENIZER]}],
                "max_backups": max_backups,
                "backup_interval_days": 7,
                "min_free_space_gb": 0,
                "remotes": {"r": remote, **(extra_remotes or {})},
            }
        }
        self.config.write_text(yaml.safe_dump(doc, sort_keys=False))

    def write_model(self, seed: int, hidden: int = 64) -> bytes:
        self.models.mkdir(parents=True, exist_ok=True)
        data = write_checkpoint(self.models / MODEL_FILE, seed=seed, hidden=hidden)
        (self.models / TOKENIZER).write_text(f'{{"vocab": "seed {seed}"}}')
        return data


@pytest.fixture(params=REMOTE_KINDS)
def remote_kind(request) -> str:
    return request.param


@pytest.fixture
def sync_project(tmp_path, request, remote_kind) -> SyncProject:
    settings = request.getfixturevalue(f"{remote_kind}_settings")
    proj = SyncProject.create(tmp_path / "proj", settings)
    proj.write_model(seed=1)
    return proj


@pytest.fixture
def ms(monkeypatch, capsys):
    """Run ``model-safety ARGS`` in-process against a given project root."""
    from agent.cli import main

    monkeypatch.delenv("MODEL_SAFETY_CONFIG", raising=False)

    def run(root: Path, *args: str) -> Result:
        monkeypatch.chdir(root)
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover
            code = 0
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def agent_cli(root: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``model-safety ARGS`` as a separate process in project ``root`` (output captured)."""
    return run_subprocess(list(args), root, timeout=timeout)


def kill_agent_when(root: Path, *args: str, reached: Callable[[], bool]) -> None:
    """Start ``model-safety ARGS`` in ``root`` and SIGKILL it as soon as ``reached()`` is true
    (or when it ended by itself, which the caller's asserts then catch). Bounded to 120 s."""
    # cli_env: this checkout's agent, not whichever one the interpreter has installed
    proc = subprocess.Popen([*model_safety_cmd(), *args], cwd=root, env=cli_env())
    deadline = time.monotonic() + 120
    try:
        while not reached() and proc.poll() is None:
            assert time.monotonic() < deadline, f"`{' '.join(args)}` made no progress"
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
