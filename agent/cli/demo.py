"""Create a small demo model (a real torch checkpoint and a tokenizer companion) for the Quick
start. torch is imported here only, never by the CLI itself.

    python -m agent.cli.demo [MODELS_DIR]    # default: models/ ; does nothing if the model exists
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agent.local.hashing import atomic_write_bytes, temp_path
from providers import fileio

DEMO_FILE = "dinesh_ai_model.pth"
DEMO_TOKENIZER = "tokenizer.json"


def write_checkpoint(path: Path, seed: int = 0, hidden: int = 64) -> None:
    """torch.save a small MLP's state_dict to ``path`` atomically."""
    import os

    from agent.checkpoint.torch_import import torch as _torch

    torch = _torch()
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(32, hidden), nn.ReLU(), nn.Linear(hidden, 8))
    tmp = temp_path(path)
    try:
        torch.save(model.state_dict(), tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        fileio.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def create_demo(models_dir: Path) -> bool:
    """Create the demo model if there is none; True when files were written."""
    models_dir.mkdir(parents=True, exist_ok=True)
    model = models_dir / DEMO_FILE
    if model.exists():
        return False
    tokenizer = {"vocab": {w: i for i, w in enumerate(["<pad>", "hello", "model", "safety"])}}
    atomic_write_bytes(models_dir / DEMO_TOKENIZER, json.dumps(tokenizer).encode("utf-8"))
    write_checkpoint(model)
    return True


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    models_dir = Path(args[0] if args else "models")
    if create_demo(models_dir):
        print(f"created demo model {models_dir / DEMO_FILE} and {models_dir / DEMO_TOKENIZER}")
    else:
        print(f"{models_dir / DEMO_FILE} exists; left it as it is")


if __name__ == "__main__":
    main()
