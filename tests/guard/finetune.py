"""A real (tiny) fine-tuning script for the guard tests: loads the checkpoint the guard names in
$MODEL_SAFETY_MODEL_PATH, trains it for a few steps on CPU and saves it back with torch.save.

    python finetune.py good|degrade|nan|fail-after-write|fail-before-write|slow-write [STEPS]

good: learns the task (the scorer's loss goes down); degrade: learns shuffled targets with a
large step (the loss goes up); nan: poisons one tensor; fail-after-write: writes half a file and
exits 1; fail-before-write: exits 1 without touching the model; slow-write: writes half a file,
touches $FINETUNE_READY, and sleeps, to be interrupted.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

IN, OUT = 32, 8


def task(n: int = 256, samples: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed task (one smooth function of the inputs); ``samples`` picks the inputs, so
    training (99) and scoring (0) see different samples of the same task."""
    w = torch.randn(IN, OUT, generator=torch.Generator().manual_seed(1234)) / IN**0.5
    x = torch.randn(n, IN, generator=torch.Generator().manual_seed(samples))
    return x, torch.tanh(x @ w)


def build(state: dict[str, torch.Tensor]) -> nn.Module:
    hidden = state["0.weight"].shape[0]
    module = nn.Sequential(nn.Linear(IN, hidden), nn.ReLU(), nn.Linear(hidden, OUT))
    module.load_state_dict(state)
    return module


def main() -> int:
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    return finetune(Path(os.environ["MODEL_SAFETY_MODEL_PATH"]), sys.argv[1], steps)


def finetune(path: Path, mode: str, steps: int = 60) -> int:
    print(f"fine-tuning {path.name}: {mode}", flush=True)
    if mode == "fail-before-write":
        print("out of memory (simulated)", file=sys.stderr)
        return 1
    module = build(torch.load(path, map_location="cpu", weights_only=True))
    x, y = task(samples=99)  # training data: same task, other samples
    if mode == "degrade":  # a bad data set: the wrong sign and scale, shuffled
        y = -3 * y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    opt = torch.optim.Adam(module.parameters(), lr=0.01)
    for step in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(module(x), y)
        loss.backward()
        opt.step()
        if step % 20 == 0:
            print(f"step {step} loss {loss.item():.4f}", flush=True)
    state = module.state_dict()
    if mode == "nan":
        state["2.bias"][0] = float("nan")
    data_path = path.with_name(path.name + ".new")
    torch.save(state, data_path)
    data = data_path.read_bytes()
    data_path.unlink()
    if mode in ("fail-after-write", "slow-write"):
        # a crash in the middle of writing the checkpoint in place
        with open(path, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
        if mode == "slow-write":
            Path(os.environ["FINETUNE_READY"]).touch()
            time.sleep(60)
        print("crashed while saving", file=sys.stderr)
        return 1
    path.write_bytes(data)  # in place, as many training scripts do
    print("saved", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
