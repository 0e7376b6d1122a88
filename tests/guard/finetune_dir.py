"""A fine-tune of a model saved as a directory, as a user's script would do it: it rewrites a
shard through the safetensors library and may add or remove files. The mode is the first
argument; the directory is in $MODEL_SAFETY_MODEL_PATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

SHARD = "model-00002-of-00002.safetensors"


def main(mode: str) -> int:
    root = Path(os.environ["MODEL_SAFETY_MODEL_PATH"])
    tensors = load_file(str(root / SHARD))
    if mode == "nan":
        tensors["lm_head.weight"][0, 0] = float("nan")
    else:
        tensors = {k: v * 0.999 for k, v in tensors.items()}
    save_file(tensors, str(root / SHARD), metadata={"format": "pt"})
    (root / "training_args.json").write_text('{"lr": 1e-5}')  # a file the update adds
    (root / "tokenizer.json").unlink()  # and one it removes
    if mode == "crash":
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
