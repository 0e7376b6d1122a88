"""A quality gate on a metric the training framework reports (``val_loss``, ``eval_accuracy``):
an absolute threshold and a largest regression from the previous good value.

The previous good value is, in order: the ``baseline`` the caller gives; the value recorded when
the last run through a callback was accepted (``.model-safety/training-metrics.json``); the
first value this run reported (an evaluation before training, or the first one during it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from agent.local.hashing import atomic_write_bytes

METRICS_FILE = "training-metrics.json"


@dataclass(frozen=True)
class MetricGate:
    metric: str
    mode: str = "min"  # "min": lower is better (a loss); "max": higher is better (accuracy)
    threshold: float | None = None  # the worst acceptable value
    max_regression: float | None = None  # how much worse than the previous good value
    baseline: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not {self.mode!r}")

    def _worse(self, value: float, than: float) -> float:
        """How much worse ``value`` is than ``than`` (negative: better)."""
        return value - than if self.mode == "min" else than - value

    def judge(self, value: float | None, previous: float | None) -> str | None:
        """Why the result fails the gate, or None when it passes."""
        if value is None:
            return f"{self.metric} was never reported, so the result could not be judged"
        if not math.isfinite(value):
            return f"{self.metric} is {value}"
        if self.threshold is not None and self._worse(value, self.threshold) > 0:
            side = "above" if self.mode == "min" else "below"
            return f"{self.metric} {value:.4g} is {side} the threshold {self.threshold:.4g}"
        if self.max_regression is not None and previous is not None:
            worse = self._worse(value, previous)
            if worse > self.max_regression:
                return (
                    f"{self.metric} {value:.4g} is {worse:.4g} worse than the previous good "
                    f"{previous:.4g} (at most {self.max_regression:.4g} allowed)"
                )
        return None

    def describe(self, value: float | None, previous: float | None) -> str:
        prev = f", previous good {previous:.4g}" if previous is not None else ""
        shown = f"{value:.4g}" if value is not None else "not reported"
        return f"{self.metric} {shown}{prev}"


def recorded_value(state_dir: Path, model: str, metric: str) -> float | None:
    try:
        doc = json.loads((state_dir / METRICS_FILE).read_text(encoding="utf-8"))
        value = doc[model][metric]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def record_value(state_dir: Path, model: str, metric: str, value: float) -> None:
    """Remember an accepted run's value as the next run's previous good one."""
    path = state_dir / METRICS_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc = doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        doc = {}
    entry = doc.get(model) if isinstance(doc.get(model), dict) else {}
    doc[model] = {**entry, metric: value}
    atomic_write_bytes(path, json.dumps(doc, indent=1, sort_keys=True).encode())
