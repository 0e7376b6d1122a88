"""Training-framework integrations: callbacks that apply the agent's rules from inside a training
run (pre-update backup at the start, versions and background pushes after each checkpoint, the
quality gate and a rollback at the end).

``agent.integrations.lightning`` (PyTorch Lightning) and ``agent.integrations.transformers``
(the Hugging Face ``Trainer``) each import their framework when they are imported themselves;
this package and the framework-neutral ``session`` underneath them import neither, so
``import agent`` and ``model-safety --help`` never pay for a framework.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise an ImportError that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{what} is not installed, so agent.integrations.{extra} cannot be used; install it "
            f"with `pip install 'model-safety[{extra}]'` (or `pip install {extra}`)"
        ) from exc
