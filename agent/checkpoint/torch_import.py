"""torch, imported on first use only (``model-safety --help`` never pays for it).

A CPU-only install without numpy makes torch warn "Failed to initialize NumPy" at import; we
never hand tensors to numpy, so the warning would only be noise in the CLI's output.
"""

from __future__ import annotations

import warnings
from types import ModuleType


def torch() -> ModuleType:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
        import torch as module
    return module
