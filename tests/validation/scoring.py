"""The tests' model, task and scorer: a 2-layer MLP regressing a fixed linear map of random
inputs. ``score`` is what ``validation.scorer: tests.validation.scoring:score`` calls: 1/(1+MSE)
on a fixed batch, so it lies in (0, 1] and a worse model scores lower."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

IN, HIDDEN, OUT = 32, 64, 8


def build() -> nn.Module:
    # The same layout as tests/local/conftest.py's write_checkpoint (0.weight ... 2.bias).
    return nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT))


def batch(seed: int = 0, n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target_map = torch.randn(IN, OUT, generator=torch.Generator().manual_seed(1234)) / IN**0.5
    x = torch.randn(n, IN, generator=gen)
    return x, x @ target_map


def train(model: nn.Module, steps: int, *, lr: float = 0.05, wrong: bool = False) -> nn.Module:
    """A few steps of SGD on the task; ``wrong``: on scrambled targets (a bad fine-tune)."""
    x, y = batch(seed=1)
    if wrong:
        y = -3 * y.flip(0)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return model


def trained(steps: int = 150, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return train(build(), steps)


def score(model_path: str) -> float:
    model = build()
    model.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=True))
    x, y = batch(seed=0)
    with torch.no_grad():
        loss = float(nn.functional.mse_loss(model(x), y))
    return 1.0 / (1.0 + loss)


def score_with_prompts(model_path: str, prompts: object) -> float:
    """Proves the prompts arrive: the score is the number of prompts."""
    assert Path(model_path).is_file()
    return float(len(prompts))  # type: ignore[arg-type]


def broken_scorer(model_path: str) -> float:
    raise RuntimeError("the eval set is missing")
