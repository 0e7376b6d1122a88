"""PyTorch Lightning: ``ModelSafetyCallback`` applies the agent's rules to ``Trainer.fit``.

    from agent.integrations.lightning import ModelSafetyCallback

    safety = ModelSafetyCallback(config="config.yaml", model="dinesh_ai_model")
    trainer = Trainer(callbacks=[safety])

- training starts: the pre-update backup (``agent.integrations.session``);
- after each checkpoint file is written (the strategy's checkpoint IO is wrapped for the run, so
  the callback runs once the file exists; ``on_save_checkpoint`` runs before it is written): the
  module's weights go to the configured model file, a dated version is made when due, and the
  ``auto_push`` remotes get it in the background;
- training ends: the final weights, the configured gate and the metric gate (``metric=``), accept
  or roll back, push, and wait for the push.

The configured model holds the weights the ``.ckpt`` holds under ``state_dict``, without the
optimizer and loop state: the LightningModule's ``state_dict()``, or that of the one child module
whose tensor names match the existing model file (a LightningModule that wraps ``self.model``
then exports the inner model's keys, as the file was written). ``module="model"`` names it;
``export=`` replaces it with any writer.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.integrations import require
from agent.integrations.gate import MetricGate
from agent.integrations.session import SessionViews, TrainingSession

if TYPE_CHECKING:
    import torch

    from agent.api import ModelSafety

log = logging.getLogger("agent.integrations")


def _framework() -> Any:
    """``lightning.pytorch`` (the ``lightning`` package), else the standalone
    ``pytorch_lightning``."""
    try:
        return importlib.import_module("lightning.pytorch")
    except ImportError:
        pass
    return require("pytorch_lightning", "lightning", "PyTorch Lightning")


pl = _framework()
_CheckpointIO = importlib.import_module(f"{pl.__name__}.plugins").CheckpointIO


class ModelSafetyCallback(pl.Callback, SessionViews):  # type: ignore[misc, name-defined]
    """``metric`` (e.g. ``"val_loss"``, read from ``trainer.callback_metrics``) with ``mode``
    ("min": lower is better), ``threshold`` and ``max_regression`` adds a gate on top of the
    configured one; ``versions``: "due" (as ``model-safety run``), "every" checkpoint, or only
    the accepted result at the "end"; ``push=False`` keeps everything local.

    After ``fit``: ``result`` (the GuardResult: accepted or rolled back, and why), ``pushes``
    (one PushOutcome per push) and ``warnings``."""

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
        module: str | None = None,
        export: Callable[[Any, Path], None] | None = None,
    ) -> None:
        super().__init__()
        gate = MetricGate(metric, mode, threshold, max_regression, baseline) if metric else None
        self.session = TrainingSession(
            config, model, gate=gate, versions=versions, push=push, who="lightning"
        )
        m = self.session.model
        if m.directory and export is None:
            raise ValueError(
                f"{m.name} is a directory model; pass export=fn(pl_module, path) to write the "
                "weights in the layout it uses (save_pretrained, say)"
            )
        self._module_attr = module
        self._export = export
        self._source: Any = None
        self._wrapped: tuple[Any, Any] | None = None  # (strategy, its own checkpoint IO)
        self._trainer: Any = None

    # -- hooks -----------------------------------------------------------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit" and trainer.is_global_zero and self._wrapped is None:
            strategy = trainer.strategy
            inner = strategy.checkpoint_io
            strategy.checkpoint_io = _NotifyingIO(inner, self._saved)
            self._wrapped = (strategy, inner)
        self._trainer = trainer

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self._wrapped is not None:
            strategy, inner = self._wrapped
            strategy.checkpoint_io = inner
            self._wrapped = None
        if self.session.active:  # fit ended without on_train_end or on_exception
            self.session.finish(failed="training stopped before it ended")

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        if self.session.active:
            self.session.finish(failed="a new training run started before the last one ended")
        self._source = self._pick_source(pl_module)
        self.session.begin()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.session.observe(trainer.callback_metrics)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.session.observe(trainer.callback_metrics)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.session.active:
            return
        self.session.observe(trainer.callback_metrics)
        self.session.finish(final=lambda path: self._write(pl_module, path))

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.session.active:
            self.session.finish(failed=f"{type(exception).__name__}: {exception}"[:200])

    # -- export ----------------------------------------------------------------------------
    def _saved(self, path: Any) -> None:
        """Called by the wrapped checkpoint IO once a checkpoint file has been written."""
        trainer = self._trainer
        if not self.session.active or trainer is None:
            return
        module = trainer.lightning_module
        self.session.stage(lambda dest: self._write(module, dest), Path(str(path)).name)

    def _write(self, pl_module: Any, dest: Path) -> None:
        if self._export is not None:
            self._export(pl_module, dest)
            return
        source = self._source if self._source is not None else pl_module
        state = {k: v.detach().cpu() for k, v in source.state_dict().items()}
        _save_state(state, dest)

    def _pick_source(self, pl_module: Any) -> Any:
        if self._export is not None:
            return None
        if self._module_attr is not None:
            return getattr(pl_module, self._module_attr)
        existing = _tensor_names(self.session.path)
        if existing is None or set(pl_module.state_dict()) == existing:
            return pl_module
        for name, child in pl_module.named_children():
            if set(child.state_dict()) == existing:
                log.info("model-safety: exporting %s's weights (its names match the model)", name)
                return child
        log.warning(
            "model-safety: the tensor names of %s match neither the LightningModule nor one of "
            "its children; exporting the whole module (pass module= to choose)",
            self.session.path.name,
        )
        return pl_module


class _NotifyingIO(_CheckpointIO):  # type: ignore[misc, valid-type]
    """The strategy's checkpoint IO, with a call after each checkpoint it has written."""

    def __init__(self, inner: Any, saved: Callable[[Any], None]) -> None:
        self.inner = inner
        self._saved = saved

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        self.inner.save_checkpoint(checkpoint, path, storage_options=storage_options)
        self._saved(path)

    def load_checkpoint(self, path: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.inner.load_checkpoint(path, *args, **kwargs)

    def remove_checkpoint(self, path: Any) -> None:
        self.inner.remove_checkpoint(path)

    def teardown(self) -> None:
        self.inner.teardown()


def _tensor_names(path: Path) -> set[str] | None:
    """The tensor names of the model file as it is, or None (absent, not a flat state dict)."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                return set(fh.keys())
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # absent or unreadable: the export then simply writes the whole module
        return None
    if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
        return set(state)
    return None


def _save_state(state: dict[str, torch.Tensor], dest: Path) -> None:
    if dest.suffix == ".safetensors":
        from safetensors.torch import save_file

        # safetensors refuses tensors that share memory (tied weights): each gets its own copy
        save_file({k: v.contiguous().clone() for k, v in state.items()}, str(dest))
        return
    import torch

    torch.save(state, dest)
