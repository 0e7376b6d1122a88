"""Compare two checkpoints tensor by tensor, one chunk of each at a time.

Each tensor name is ``added``, ``removed``, ``reshaped`` (shape or dtype differ), ``unchanged``
(byte-identical) or ``changed`` with the relative change ``||b - a|| / ||a||`` (L2 over all the
tensor's elements, accumulated in float64 chunk by chunk). Memory: two chunks and their float64
copies, whatever the model's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.checkpoint.reader import CHUNK_BYTES, TensorInfo, open_checkpoint
from agent.checkpoint.torch_import import torch as _torch

# Structural changes first (they break loading), then the most changed, then the untouched.
_RANK = {"removed": 0, "reshaped": 1, "added": 2, "changed": 3, "unchanged": 4}


@dataclass(frozen=True)
class TensorChange:
    name: str
    status: str  # added | removed | reshaped | unchanged | changed
    before: tuple[str, tuple[int, ...]] | None  # (dtype, shape)
    after: tuple[str, tuple[int, ...]] | None
    # ||b-a|| / ||a||; inf when ||a|| is 0 and b differs; nan when a value is NaN or infinite
    relative_change: float | None = None

    def to_dict(self) -> dict[str, Any]:
        rel = self.relative_change
        return {
            "name": self.name,
            "status": self.status,
            "before": _sig(self.before),
            "after": _sig(self.after),
            # JSON has no inf/nan: null, with the reason in relative_change_note
            "relative_change": rel if rel is not None and math.isfinite(rel) else None,
            **(
                {"relative_change_note": str(rel)}
                if rel is not None and not math.isfinite(rel)
                else {}
            ),
        }

    @property
    def sort_key(self) -> tuple[int, float, str]:
        rel = self.relative_change
        magnitude = math.inf if rel is None or math.isnan(rel) else rel
        return (_RANK[self.status], -magnitude, self.name)


def _sig(sig: tuple[str, tuple[int, ...]] | None) -> dict[str, Any] | None:
    return None if sig is None else {"dtype": sig[0], "shape": list(sig[1])}


def diff_checkpoints(a: Path, b: Path, chunk_bytes: int = CHUNK_BYTES) -> list[TensorChange]:
    """Every tensor name of ``a`` and ``b``, classified and sorted (see module doc).
    Raises CheckpointError when either file cannot be read safely."""
    with open_checkpoint(a) as old, open_checkpoint(b) as new:
        before = {t.name: t for t in old.tensors}
        after = {t.name: t for t in new.tensors}
        changes = []
        for name in sorted(set(before) | set(after)):
            ta, tb = before.get(name), after.get(name)
            sa = (ta.dtype, ta.shape) if ta else None
            sb = (tb.dtype, tb.shape) if tb else None
            if ta is None:
                changes.append(TensorChange(name, "added", None, sb))
            elif tb is None:
                changes.append(TensorChange(name, "removed", sa, None))
            elif sa != sb:
                changes.append(TensorChange(name, "reshaped", sa, sb))
            else:
                rel = _relative_change(ta, tb, chunk_bytes)
                status = "unchanged" if rel is None else "changed"
                changes.append(TensorChange(name, status, sa, sb, rel))
    return sorted(changes, key=lambda c: c.sort_key)


def _as_float64(raw: Any, dtype: Any) -> Any:
    torch = _torch()
    values = raw.view(dtype)
    if dtype.is_complex:
        values = torch.view_as_real(values)
    return values.to(torch.float64)


def _relative_change(ta: TensorInfo, tb: TensorInfo, chunk_bytes: int) -> float | None:
    """None when byte-identical; else ||b-a|| / ||a||. Same dtype and shape, so both sides yield
    chunks of the same size in lockstep."""
    torch = _torch()
    dtype = ta.torch_dtype
    identical = True
    diff_sq = base_sq = 0.0
    for ca, cb in zip(ta.byte_chunks(chunk_bytes), tb.byte_chunks(chunk_bytes), strict=True):
        va = _as_float64(ca, dtype)
        base_sq += float((va * va).sum())
        if identical and torch.equal(ca, cb):
            continue  # identical so far: nothing to add to ||b-a||
        identical = False
        delta = _as_float64(cb, dtype) - va
        diff_sq += float((delta * delta).sum())
    if identical:
        return None
    if math.isnan(diff_sq) or math.isnan(base_sq) or math.isinf(base_sq):
        return math.nan
    if base_sq == 0.0:
        return math.inf if diff_sq > 0 else 0.0
    return math.sqrt(diff_sq) / math.sqrt(base_sq)
