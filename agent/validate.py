"""Structural check of a checkpoint: does it load safely, are its values finite, and does it have
the same tensors (names and shapes) as a reference? Returns a report, never raises for a bad file.

Checkpoints are never unpickled with arbitrary code: ``.pth``/``.pt`` files go through
``torch.load(weights_only=True)``; ``.safetensors`` files are read by parsing their JSON header
(and, when the ``safetensors`` package is installed, their tensors). torch is imported here only.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAFETENSORS_EXT = ".safetensors"
MAX_HEADER = 100 * 1024 * 1024


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


def _flatten(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    """Tensors of a (possibly nested) state dict, keyed by dotted path."""
    from agent.torch_import import torch as _torch

    torch = _torch()

    if isinstance(obj, torch.Tensor):
        out[prefix or "<root>"] = obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            _flatten(value, f"{prefix}.{i}" if prefix else str(i), out)


def _load_torch(path: Path, report: ValidationReport) -> dict[str, Any] | None:
    from agent.torch_import import torch as _torch

    torch = _torch()

    try:
        try:
            # mmap: tensors stay in the page cache instead of a private copy of a 50 GB model
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy format
    except Exception as exc:  # torch raises many types for damaged or unsafe files
        report.fail(f"cannot load safely (weights_only): {type(exc).__name__}: {exc}"[:300])
        return None
    tensors: dict[str, Any] = {}
    _flatten(obj, "", tensors)
    if not tensors:
        report.fail("no tensors found in the checkpoint")
    return tensors


def _load_safetensors(path: Path, report: ValidationReport) -> dict[str, Any] | None:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            report.fail("too short for a safetensors file")
            return None
        (length,) = struct.unpack("<Q", raw)
        if length > min(size - 8, MAX_HEADER):
            report.fail("safetensors header length is larger than the file (truncated?)")
            return None
        try:
            header = json.loads(fh.read(length))
        except ValueError:
            report.fail("safetensors header is not valid JSON")
            return None
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        report.tensors[name] = tuple(info.get("shape", ()))
        end = max(end, int(info.get("data_offsets", [0, 0])[1]))
    if 8 + length + end > size:
        report.fail(f"file is {size} bytes but its tensors need {8 + length + end} (truncated)")
        return None
    try:
        from safetensors.torch import load_file
    except ImportError:
        return {}  # header checks only; values are checked when safetensors is installed
    try:
        return dict(load_file(str(path)))
    except Exception as exc:
        report.fail(f"cannot read tensors: {exc}"[:300])
        return None


FINITE_CHUNK = 16 * 1024 * 1024  # elements: bounds the temporary mask to 16 MB


def _all_finite(torch: Any, tensor: Any) -> bool:
    """isfinite over a tensor in slices, so a huge tensor never needs a mask of its full size."""
    flat = tensor.reshape(-1)
    return all(bool(torch.isfinite(part).all()) for part in flat.split(FINITE_CHUNK))


def check_checkpoint(
    path: Path,
    reference: Mapping[str, tuple[int, ...]] | None = None,
    *,
    safetensors: bool | None = None,
) -> ValidationReport:
    """Check ``path``; with ``reference`` (names -> shapes, e.g. another report's ``tensors``),
    also require the same tensor names and shapes. ``safetensors``: the format, when the file
    name does not say (a temp file); by default, from the suffix."""
    from agent.torch_import import torch as _torch

    torch = _torch()

    path = Path(path)
    report = ValidationReport(str(path))
    if not path.is_file() or path.stat().st_size == 0:
        report.fail("missing, empty or not a file")
        return report
    if safetensors is None:
        safetensors = path.suffix == SAFETENSORS_EXT
    loader = _load_safetensors if safetensors else _load_torch
    tensors = loader(path, report)
    if tensors is None:
        return report
    for name, tensor in tensors.items():
        report.tensors[name] = tuple(tensor.shape)
        floating = tensor.is_floating_point() or tensor.is_complex()
        if floating and not _all_finite(torch, tensor):
            report.fail(f"tensor {name} has NaN or infinite values")
    if reference is not None:
        missing = sorted(set(reference) - set(report.tensors))
        extra = sorted(set(report.tensors) - set(reference))
        if missing:
            report.fail(f"missing tensors: {', '.join(missing[:5])}")
        if extra:
            report.fail(f"unexpected tensors: {', '.join(extra[:5])}")
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

    result = check_checkpoint(Path(sys.argv[1])).to_dict()
    result.pop("tensors")
    print(json.dumps(result))
