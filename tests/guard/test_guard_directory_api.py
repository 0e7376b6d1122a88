"""The Python API on a model saved as a directory: the README's Hugging Face example, run as a
training script would run it (save_pretrained-style shards written by the safetensors library)."""

from __future__ import annotations

import pytest

from agent import ModelSafety, UpdateRejected
from tests.dirsupport import SHARD2, DirProject, tree_digest, write_hf


@pytest.fixture
def proj(tmp_path, monkeypatch) -> DirProject:
    p = DirProject.create(tmp_path / "proj")
    write_hf(p.current, seed=1)
    monkeypatch.chdir(p.root)
    return p


def test_a_guarded_directory_update_is_kept_or_rolled_back(proj):
    from safetensors.torch import load_file, save_file

    safety = ModelSafety.from_config("config.yaml")
    with safety.guard("llama-ft", version=True) as update:
        shard = update.path / SHARD2  # update.path is the model's directory
        tensors = {k: v * 0.999 for k, v in load_file(str(shard)).items()}
        save_file(tensors, str(shard), metadata={"format": "pt"})
    accepted = tree_digest(proj.current)
    assert update.result.version is not None
    assert tree_digest(proj.copy(update.result.version)) == accepted

    with pytest.raises(UpdateRejected), safety.guard("llama-ft") as update:
        tensors = load_file(str(update.path / SHARD2))
        tensors["lm_head.weight"][0, 0] = float("nan")
        save_file(tensors, str(update.path / SHARD2), metadata={"format": "pt"})
        (update.path / "extra.txt").write_text("added by the update")
    assert tree_digest(proj.current) == accepted  # the whole directory is back, extra.txt gone
    names = [s.entry.name for s in safety.versions("llama-ft")]
    assert "llama-ft_backup" in names and any(n.startswith("llama-ft_replaced-") for n in names)
