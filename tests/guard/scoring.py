"""The quality scorer the guard tests configure (``validation.scorer: scoring:score``): the loss
of the model on a fixed batch of the fine-tuning task, as a score in (0, 1] (higher is better)."""

from __future__ import annotations

import torch
from finetune import build, task
from torch import nn


def score(model_path: str) -> float:
    state = torch.load(model_path, map_location="cpu", weights_only=True)
    x, y = task()
    with torch.no_grad():
        loss = nn.functional.mse_loss(build(state)(x), y).item()
    return 1.0 / (1.0 + loss)
