"""Hugging Face ``Trainer``: ``ModelSafetyCallback`` applies the agent's rules to ``train()``.

    from agent.integrations.transformers import ModelSafetyCallback

    trainer = Trainer(..., callbacks=[ModelSafetyCallback(config="config.yaml", model="tiny-bert")])

- ``on_train_begin``: the pre-update backup (``agent.integrations.session``);
- ``on_save``: the model files of ``checkpoint-N/`` (weights, index, config, tokenizer: not the
  optimizer, scheduler, RNG and trainer state) become the configured model directory, a dated
  version when due, pushed in the background;
- ``on_evaluate``: the gate's metric is noted (``eval_loss``: ``metric="eval_loss"`` or
  ``"loss"``); an evaluation before ``train()`` is a baseline for ``max_regression``;
- ``on_train_end``: the final model (``save_pretrained``, with the processing class), the
  configured gate and the metric gate, accept or roll back, push, and wait for the push.

The configured model is a directory model (``file: tiny-bert/``): what ``save_pretrained``
writes, which is what the fine-tune starts from with ``from_pretrained("models/tiny-bert")``.
Files of it that a checkpoint does not write (a tokenizer the Trainer was not given, a README)
are carried over into each new copy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.integrations import require
from agent.integrations.gate import MetricGate
from agent.integrations.session import SessionViews, TrainingSession

if TYPE_CHECKING:
    from agent.api import ModelSafety

transformers = require("transformers", "transformers", "Hugging Face transformers")

# What a Trainer checkpoint holds besides the model: needed to resume training, not the model.
TRAINING_STATE = {
    "optimizer.pt",
    "optimizer.bin",
    "scheduler.pt",
    "scaler.pt",
    "trainer_state.json",
    "training_args.bin",
}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".distcp", ".index.json")


class ModelSafetyCallback(transformers.TrainerCallback, SessionViews):  # type: ignore[misc, name-defined]
    """``metric`` (as the Trainer reports it, with or without ``eval_``) with ``mode`` ("min":
    lower is better), ``threshold`` and ``max_regression`` adds a gate on top of the configured
    one; ``versions``: "due" (as ``model-safety run``), "every" checkpoint, or only the accepted
    result at the "end"; ``push=False`` keeps everything local.

    After ``train()``: ``result`` (the GuardResult), ``pushes`` (PushOutcomes), ``warnings``."""

    def __init__(
        self,
        config: str | os.PathLike[str] | ModelSafety | None = None,
        model: str | None = None,
        *,
        metric: str | None = None,
        mode: str = "min",
        threshold: float | None = None,
        max_regression: float | None = None,
        baseline: float | None = None,
        versions: str = "due",
        push: bool = True,
    ) -> None:
        gate = MetricGate(metric, mode, threshold, max_regression, baseline) if metric else None
        self.session = TrainingSession(
            config, model, gate=gate, versions=versions, push=push, who="transformers"
        )
        m = self.session.model
        if not m.directory:
            raise ValueError(
                f"{m.name} is configured as the file {m.file}; a Trainer saves a directory: write "
                f"`file: {Path(m.file).stem}/` in config.yaml (a save_pretrained folder)"
            )

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if self.session.active:
            self.session.finish(failed="a new training run started before the last one ended")
        self.session.begin()

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict | None = None, **kwargs: Any
    ) -> None:
        gate = self.session.gate
        if gate is None or not metrics:
            return
        value = metrics.get(gate.metric, metrics.get(f"eval_{gate.metric}"))
        self.session.observe({gate.metric: value})

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.session.active:
            return
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        current = self.session.path
        self.session.stage(lambda to: _from_checkpoint(checkpoint, current, to), checkpoint.name)

    def on_train_end(
        self,
        args: Any,
        state: Any,
        control: Any,
        model: Any = None,
        processing_class: Any = None,
        **kwargs: Any,
    ) -> None:
        if not self.session.active:
            return
        current = self.session.path

        def final(dest: Path) -> None:
            model.save_pretrained(dest)
            if processing_class is not None and hasattr(processing_class, "save_pretrained"):
                processing_class.save_pretrained(dest)
            _carry_over(current, dest)

        self.session.finish(final=final if model is not None else None)


def _from_checkpoint(checkpoint: Path, current: Path, dest: Path) -> None:
    """The model files of ``checkpoint`` into new directory ``dest``: hard links where the file
    system allows (instant on the training thread, and they outlive the Trainer deleting an old
    checkpoint; the session makes them copies of their own in the background), copies
    elsewhere."""
    if not checkpoint.is_dir():
        raise FileNotFoundError(f"{checkpoint} does not exist")
    dest.mkdir()
    for dirpath, _, names in os.walk(checkpoint):
        rel_dir = Path(dirpath).relative_to(checkpoint)
        for name in names:
            if rel_dir == Path(".") and (name in TRAINING_STATE or name.startswith("rng_state")):
                continue
            if rel_dir != Path(".") and rel_dir.parts[0].startswith("global_step"):
                continue  # DeepSpeed's optimizer shards
            out = dest / rel_dir / name
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(Path(dirpath) / name, out)
            except OSError:
                shutil.copy2(Path(dirpath) / name, out)
    _carry_over(current, dest)


def _carry_over(current: Path, dest: Path) -> None:
    """Files of the current model directory a new copy lacks, except weights (a checkpoint that
    changed from shards to one file must not keep the old shards)."""
    if not current.is_dir():
        return
    for dirpath, _, names in os.walk(current):
        for name in names:
            rel = Path(dirpath).relative_to(current) / name
            if name.endswith(WEIGHT_SUFFIXES) or name == ".metadata" or (dest / rel).exists():
                continue
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(current / rel, dest / rel)
