"""model-safety: keeps every version of a model checkpoint safe, locally and on remotes.

``from agent import ModelSafety`` is the Python API (agent/api.py); it is imported on first use,
so the CLI's start-up does not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ModelSafety", "UpdateRejected", "__version__"]

if TYPE_CHECKING:
    from agent.api import ModelSafety
    from agent.guard.result import UpdateRejected


def __getattr__(name: str) -> Any:
    if name == "ModelSafety":
        from agent.api import ModelSafety

        return ModelSafety
    if name == "UpdateRejected":
        from agent.guard.result import UpdateRejected

        return UpdateRejected
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
