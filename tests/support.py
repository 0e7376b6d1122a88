"""The tests' shared helpers, in one home: the model names, real checkpoints written with
torch.save, the project layouts (one with and one without a remote), the one in-process CLI
runner, child-process runners, and the list of remote backends the end-to-end tests run on.
Fixtures built on these live in tests/conftest.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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


def write_layered_checkpoint(
    path: Path, *, layers: int = 12, layer_bytes: int = 4 << 20, tuned: int = 0, seed: int = 0
) -> None:
    """A checkpoint of ``layers`` float32 weight tensors of ``layer_bytes`` each, as torch.save
    lays them out (in order, each at an offset fixed by the ones before); ``tuned``: how many of
    the last layers a partial fine-tune changed (the others are byte-identical to seed's)."""
    import torch

    n = layer_bytes // 4
    state = {}
    for i in range(layers):
        g = torch.Generator().manual_seed(seed * 1000 + i)
        t = torch.randn(n, generator=g)
        if i >= layers - tuned:
            t = t * 0.999 + 0.001  # the fine-tune's update
        state[f"layers.{i}.weight"] = t
    torch.save(state, path)


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


def run_cli(root: Path, args: list[str], capsys, monkeypatch) -> Result:  # type: ignore[no-untyped-def]
    """``model-safety ARGS`` in this process, in project ``root``, through the real entry point
    (exit code and both streams captured). The one in-process runner: ``cli`` and ``ms`` use it."""
    from agent.cli.main import main

    monkeypatch.chdir(root)
    capsys.readouterr()
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    else:  # pragma: no cover - main always exits
        code = 0
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def model_safety_cmd() -> list[str]:
    return [sys.executable, "-m", "agent"]


# The portability lane (``pytest --portability``, tests/portability/sitecustomize.py): with this
# variable set, every Python child gets the lane's directory on its path, so the POSIX-only APIs
# are gone in the CLI and workers too, not only in the test process.
NO_POSIX_ENV = "MODEL_SAFETY_TEST_NO_POSIX"
PORTABILITY_SITE = Path(__file__).resolve().parent / "portability"


def in_portability_lane() -> bool:
    return os.environ.get(NO_POSIX_ENV) == "1"


def child_pythonpath(code: Path | None = None) -> str:
    """PYTHONPATH for a Python child: ``code`` (default: this checkout), preceded in the
    portability lane by the lane's directory."""
    parts = [str(code or Path(__file__).resolve().parents[1])]
    if in_portability_lane():
        parts.insert(0, str(PORTABILITY_SITE))
    return os.pathsep.join(parts)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for ``model-safety`` in a child process: this checkout importable, no
    config override from the caller's shell."""
    env = {**os.environ, "PYTHONPATH": child_pythonpath(), **extra}
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


REMOTE_KINDS = ["local", "s3_seaweedfs", "gdrive_emulator"]


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
