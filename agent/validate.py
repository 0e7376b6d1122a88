"""Structural check of a checkpoint: does it load safely, are its values finite, and does it have
the same tensors (names and shapes) as a reference? Returns a report, never raises for a bad file.

Reading goes through ``agent.checkpoint_reader``: nothing in the file is executed and values are
checked one chunk at a time, so the check of a 2 GB model stays far below 2 GB of memory.
``python -m agent.validate PATH`` prints ``{"path", "ok", "problems"}`` as one JSON line. The push
decides most files with the torch-free ``agent.pickle_scan`` and runs this in a child process
(``check_in_child``) only for what the scan does not understand, so it never holds torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.checkpoint_reader import SAFETENSORS_EXT, CheckpointError, TensorInfo, open_checkpoint

MAX_LISTED = 5  # names listed in one problem line; the count says how many more


@dataclass
class ValidationReport:
    path: str
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "problems": self.problems,
            "tensors": {k: list(v) for k, v in self.tensors.items()},
        }


def is_finite(tensor: TensorInfo) -> bool:
    """No NaN or Inf in a floating tensor (integer tensors always are), read chunk by chunk."""
    if not tensor.floating:
        return True
    from agent.torch_import import torch as _torch

    torch = _torch()
    for chunk in tensor.value_chunks():
        if tensor.dtype.startswith("float8"):
            chunk = chunk.float()  # isfinite has no float8 kernel; chunk-sized copy
        if not bool(torch.isfinite(chunk).all()):
            return False
    return True


def listed(names: list[str]) -> str:
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def check_checkpoint(
    path: Path,
    reference: Mapping[str, tuple[int, ...]] | None = None,
    *,
    safetensors: bool | None = None,
) -> ValidationReport:
    """Check ``path``; with ``reference`` (names -> shapes, e.g. another report's ``tensors``),
    also require the same tensor names and shapes. ``safetensors``: the format, when the file
    name does not say (a temp file); by default, from the suffix."""
    path = Path(path)
    report = ValidationReport(str(path))
    try:
        ckpt = open_checkpoint(path, safetensors=safetensors)
    except CheckpointError as exc:
        report.fail(str(exc))
        return report
    with ckpt:
        bad = []
        for tensor in ckpt.tensors:
            report.tensors[tensor.name] = tensor.shape
            try:
                if not is_finite(tensor):
                    bad.append(tensor.name)
            except CheckpointError as exc:
                report.fail(f"tensor {tensor.name}: {exc}")
        if bad:
            report.fail(f"NaN or infinite values in {listed(bad)}")
    if reference is not None:
        missing = sorted(set(reference) - set(report.tensors))
        extra = sorted(set(report.tensors) - set(reference))
        if missing:
            report.fail(f"missing tensors: {listed(missing)}")
        if extra:
            report.fail(f"unexpected tensors: {listed(extra)}")
        for name in sorted(set(reference) & set(report.tensors)):
            if tuple(reference[name]) != report.tensors[name]:
                report.fail(
                    f"tensor {name} has shape {list(report.tensors[name])}, "
                    f"expected {list(reference[name])}"
                )
    return report


def check_in_child(path: Path, *, timeout: float | None = None) -> tuple[bool, list[str]]:
    """``check_checkpoint`` in a short-lived child process: the caller (a push that may run for
    hours) never holds torch or the checkpoint's pages, so its memory stays flat whatever the
    model's size. Returns (ok, problems)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "agent.validate", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    try:
        doc = json.loads(proc.stdout.strip().splitlines()[-1])
        return bool(doc["ok"]), [str(p) for p in doc["problems"]]
    except (IndexError, ValueError, KeyError, TypeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return False, [f"the check itself failed (exit {proc.returncode}): {tail}"[:300]]


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1])
    result = check_checkpoint(target, safetensors=target.suffix == SAFETENSORS_EXT).to_dict()
    result.pop("tensors")
    print(json.dumps(result))
