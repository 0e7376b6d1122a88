"""A real Lightning fine-tune of the test model (tests.support.write_checkpoint's layout: the
LightningModule wraps it as ``self.net``, so the callback must find the inner module itself).
Imported by the tests, or run as ``python lit.py ROOT EPOCHS [ascent]`` in a child process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from torch import nn

from agent.integrations.lightning import ModelSafetyCallback


class Finetune(L.LightningModule):
    def __init__(self, start: Path, ascent: bool = False, crash_at: int | None = None) -> None:
        super().__init__()
        self.crash_at = crash_at  # the epoch whose first step raises, as a bug in training would
        self.net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8))
        self.net.load_state_dict(torch.load(start, weights_only=True))
        self.sign = -1.0 if ascent else 1.0  # ascent: every step makes the model worse

    def training_step(self, batch: Any, _: int) -> torch.Tensor:
        if self.current_epoch == self.crash_at:
            raise RuntimeError("out of memory (simulated)")
        x, y = batch
        return self.sign * nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch: Any, _: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def data() -> torch.utils.data.DataLoader:
    x = torch.randn(256, 32, generator=torch.Generator().manual_seed(0))
    y = x[:, :8] * 0.5
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)


def fit(
    root: Path,
    epochs: int = 3,
    ascent: bool = False,
    crash_at: int | None = None,
    **options: Any,
) -> ModelSafetyCallback:
    torch.manual_seed(0)
    safety = ModelSafetyCallback(config=root / "config.yaml", model="dinesh_ai_model", **options)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root / "run",
        callbacks=[safety],
    )
    trainer.fit(Finetune(safety.model_path, ascent, crash_at), data(), data())
    return safety


if __name__ == "__main__":
    root, epochs = Path(sys.argv[1]), int(sys.argv[2])
    done = fit(root, epochs, ascent="ascent" in sys.argv[3:], metric="val_loss")
    print(done.result.message if done.result else "no result")
