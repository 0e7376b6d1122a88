"""The quality score of a checkpoint: ``validation.scorer`` or ``validation.command``.

The scorer runs in this process, on purpose: it is the user's own code (it may import torch and
their model classes), and a training script calling ``ModelSafety.validate`` expects it to run
there, with its GPU and its imports. The CLI is itself a short-lived process, so nothing of the
scorer outlives a command. Use ``validation.command`` to run the scoring in a separate process.

A scorer that raises, a command that is missing, fails or prints no number: the score could not
be measured. That is ``CannotValidate`` (exit 1), never a failed check: a broken scorer says
nothing about the model.
"""

from __future__ import annotations

import importlib
import math
import shlex
import subprocess
import sys
from pathlib import Path

from agent.config import Config
from agent.errors import AgentError


class CannotValidate(AgentError):
    """Validation could not run (missing file, broken scorer or command); exit code 1."""


def base_dir(config: Config) -> Path:
    """Where a scorer module is imported from and a command runs: the config file's directory."""
    return config.path.parent if config.path is not None else Path.cwd()


def measure_score(config: Config, model_path: Path) -> float | None:
    """The score of ``model_path``, or None when neither a scorer nor a command is configured."""
    v = config.validation
    if v.scorer:
        return _call_scorer(config, v.scorer, model_path)
    if v.command:
        return _run_command(config, v.command, model_path)
    return None


def _as_score(value: object, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CannotValidate(f"{source} returned {value!r}, not a number")
    if not math.isfinite(value):
        raise CannotValidate(f"{source} returned {value!r}; a score must be a finite number")
    return float(value)


def _call_scorer(config: Config, spec: str, model_path: Path) -> float:
    module_name, _, func_name = spec.partition(":")
    where = str(base_dir(config))
    if where not in sys.path:
        sys.path.insert(0, where)  # the user's scorer module lives beside config.yaml
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CannotValidate(
            f"cannot import scorer module {module_name!r} (from {where}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise CannotValidate(f"scorer {spec!r}: {module_name} has no function {func_name!r}")
    prompts = config.validation.test_prompts
    args = (str(model_path),) if prompts is None else (str(model_path), prompts)
    try:
        value = func(*args)
    except Exception as exc:
        raise CannotValidate(f"scorer {spec!r} raised {type(exc).__name__}: {exc}") from exc
    return _as_score(value, f"scorer {spec!r}")


def _run_command(config: Config, command: str, model_path: Path) -> float:
    # shlex-split and no shell: a model path with spaces or quotes cannot become shell syntax
    argv = [part.replace("{model}", str(model_path)) for part in shlex.split(command)]
    if not argv:
        raise CannotValidate("validation.command is empty")
    try:
        proc = subprocess.run(argv, cwd=base_dir(config), capture_output=True, text=True)
    except OSError as exc:
        raise CannotValidate(f"cannot run validation.command {argv[0]!r}: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no error output"])[-1]
        raise CannotValidate(f"validation.command exited with {proc.returncode}: {tail[:200]}")
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if not lines:
        raise CannotValidate("validation.command printed nothing; its last line must be the score")
    try:
        value = float(lines[-1])
    except ValueError:
        raise CannotValidate(
            f"validation.command's last line {lines[-1][:80]!r} is not a number"
        ) from None
    return _as_score(value, "validation.command")
