"""Models saved as directories, written by the real libraries: a Hugging Face style
``save_pretrained`` folder (safetensors shards written by the ``safetensors`` library, the index,
config and tokenizer) and a torch.distributed.checkpoint written by ``dcp.save`` in one process;
a project whose config names such a directory."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

HF = "llama-ft"
INDEX = "model.safetensors.index.json"
SHARD1 = "model-00001-of-00002.safetensors"
SHARD2 = "model-00002-of-00002.safetensors"


def hf_state(seed: int = 0, *, rows: int = 8) -> tuple[dict, dict]:
    """The tensors of the two shards (tiny, deterministic)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    first = {
        "model.embed_tokens.weight": torch.randn(rows, 4, generator=g),
        "model.layers.0.weight": torch.randn(4, 4, generator=g),
    }
    second = {
        "model.layers.1.weight": torch.randn(4, 4, generator=g),
        "lm_head.weight": torch.randn(rows, 4, generator=g),
    }
    return first, second


def write_hf(
    root: Path,
    seed: int = 0,
    *,
    rows: int = 8,
    shards: tuple[dict, dict] | None = None,
    weight_map: dict[str, str] | None = None,
) -> None:
    """A save_pretrained-style folder at ``root``: two shards, the index (with the real
    total_size), config.json, tokenizer.json."""
    from safetensors.torch import save_file

    root.mkdir(parents=True, exist_ok=True)
    first, second = shards or hf_state(seed, rows=rows)
    save_file(first, str(root / SHARD1), metadata={"format": "pt"})
    save_file(second, str(root / SHARD2), metadata={"format": "pt"})
    total = sum(t.numel() * t.element_size() for t in [*first.values(), *second.values()])
    wm = weight_map or {
        **{k: SHARD1 for k in first},
        **{k: SHARD2 for k in second},
    }
    index = {"metadata": {"total_size": total}, "weight_map": wm}
    (root / INDEX).write_text(json.dumps(index, indent=2))
    (root / "config.json").write_text(json.dumps({"model_type": "llama", "seed": seed}))
    (root / "tokenizer.json").write_text(json.dumps({"vocab": ["a", "b"], "seed": seed}))


def write_dcp(root: Path, seed: int = 0) -> None:
    """A torch.distributed.checkpoint saved by one process (``__0_0.distcp`` + ``.metadata``)."""
    import torch
    import torch.distributed.checkpoint as dcp

    g = torch.Generator().manual_seed(seed)
    state = {
        "layer.weight": torch.randn(6, 4, generator=g),
        "layer.bias": torch.randn(6, generator=g),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "assuming the intent is to save in a single process"
        dcp.save(state, checkpoint_id=str(root))


def tree_digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for fn in files:
            path = Path(dirpath) / fn
            out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def temp_dirs(models: Path) -> list[str]:
    """Hidden temp directories (ours: ``.<name>.<12 hex>.incomplete``) in the models dir."""
    from agent.local.hashing import OUR_TEMP_RE

    return sorted(p.name for p in models.iterdir() if OUR_TEMP_RE.fullmatch(p.name))


@dataclass
class DirProject:
    root: Path
    models: Path
    config: Path
    name: str = HF

    @classmethod
    def create(cls, root: Path, name: str = HF, remotes: dict | None = None, **extra) -> DirProject:
        (root / "models").mkdir(parents=True)
        proj = cls(root, root / "models", root / "config.yaml", name)
        proj.write_config(remotes=remotes, **extra)
        return proj

    def write_config(self, *, remotes: dict | None = None, max_backups: int = 4, **extra) -> None:
        block = {
            "models_dir": "models",
            "models": [{"name": self.name, "file": self.name}],
            "max_backups": max_backups,
            "min_free_space_gb": 0,
            **extra,
        }
        if remotes:
            block["remotes"] = remotes
        self.config.write_text(yaml.safe_dump({"MODEL_SAFETY": block}, sort_keys=False))

    @property
    def current(self) -> Path:
        return self.models / self.name

    def copy(self, name: str) -> Path:
        return self.models / name
