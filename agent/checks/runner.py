"""Run the confined checker (agent.checks.child) on one file and read its verdict.

The caller never imports torch and never holds the file's pages: a push that runs for hours
keeps its memory flat. Whatever happens in the child (a limit hit, a crash, a hang), the caller
gets a verdict back, never an exception and never a wait without end.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.checks import limits as limits_mod
from agent.checks.pregate import Refused, inspect

# Bumped whenever what passes can change: a verdict recorded by another version is not reused.
CHECKER_VERSION = 2
CHECKS = ("pregate", "weights_only_load", "records_match", "finite")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None = None  # why it failed, for a person
    failed_check: str | None = None  # "loads_safely" or "finite" when it failed
    format: str | None = None
    tensors: dict[str, list[Any]] = field(default_factory=dict)  # name -> [dtype, shape]
    seconds: float = 0.0
    peak_rss_mb: float | None = None
    cacheable: bool = True  # False when the outcome depended on the moment (wall time)
    referenced: tuple[str, ...] = ()  # a DCP metadata file: the files it names
    checked: tuple[str, ...] = ()  # a directory: what was checked, for a person

    def to_record(self) -> dict[str, Any]:
        return {
            "checker": CHECKER_VERSION,
            "checks": list(CHECKS),
            "ok": self.ok,
            "reason": self.reason,
            "failed_check": self.failed_check,
            "format": self.format,
            "tensors": self.tensors,
        }

    @classmethod
    def from_record(cls, rec: Any) -> Verdict | None:
        if not isinstance(rec, dict) or rec.get("checker") != CHECKER_VERSION:
            return None
        tensors = rec.get("tensors")
        return cls(
            ok=rec.get("ok") is True,
            reason=rec.get("reason"),
            failed_check=rec.get("failed_check"),
            format=rec.get("format"),
            tensors=tensors if isinstance(tensors, dict) else {},
        )


def check_file(path: Path, *, safetensors: bool | None = None) -> Verdict:
    """The verdict on ``path``: the torch-free gate here, then the confined child."""
    path = Path(path)
    started = time.monotonic()
    if safetensors is None:
        safetensors = path.suffix == ".safetensors"
    try:
        inspect(path, safetensors=safetensors)
    except Refused as exc:
        return Verdict(False, str(exc), "loads_safely", seconds=time.monotonic() - started)
    size = path.stat().st_size
    lim = limits_mod.for_size(size)
    fmt = "safetensors" if safetensors else "torch"
    verdict = _run_child(path, fmt, lim)
    return dataclasses.replace(verdict, seconds=round(time.monotonic() - started, 2))


def check_dcp_metadata(path: Path) -> Verdict:
    """A torch.distributed.checkpoint ``.metadata`` file read in the confined child without
    running pickled code (agent.checks.dcp): its tensors and the files it references."""
    lim = limits_mod.for_size(Path(path).stat().st_size)
    return _run_child(Path(path), "dcp", lim)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # one thread: no thread pool reserving address space; the caller is busy uploading anyway
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run_child(path: Path, fmt: str, lim: limits_mod.Limits) -> Verdict:
    cmd = [
        sys.executable,
        "-m",
        "agent.checks.child",
        str(path),
        fmt,
        str(lim.memory_bytes),
        str(lim.cpu_seconds),
    ]
    kwargs: dict[str, Any] = {}
    if os.name == "posix":
        kwargs["start_new_session"] = True  # a kill on timeout reaches everything it started
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_child_env(),
        **kwargs,
    )
    try:
        out, err = proc.communicate(timeout=lim.wall_seconds)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.communicate()
        return Verdict(
            False,
            f"the check did not finish within its {lim.wall_seconds} s time limit",
            "loads_safely",
            cacheable=False,
        )
    except BaseException:  # Ctrl-C: the child must not outlive us
        _kill(proc)
        raise
    return _read(proc.returncode, out, err, lim)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


def _read(code: int, out: bytes, err: bytes, lim: limits_mod.Limits) -> Verdict:
    lines = out.decode("utf-8", "replace").strip().splitlines()
    try:
        doc = json.loads(lines[-1])
    except (IndexError, ValueError):
        doc = None
    if isinstance(doc, dict):
        reason = doc.get("reason")
        if doc.get("limit") == "memory":
            reason = f"the check ran out of its {lim.describe_memory()} memory limit"
        tensors = doc.get("tensors")
        ok = doc.get("ok") is True
        return Verdict(
            ok,
            None if ok else str(reason or "failed"),
            None if ok else str(doc.get("failed") or "loads_safely"),
            doc.get("format"),
            tensors if isinstance(tensors, dict) else {},
            peak_rss_mb=doc.get("peak_rss_mb"),
            referenced=tuple(str(r) for r in doc.get("referenced") or ()),
        )
    sig = -code if code < 0 else None
    cpu_kills = {getattr(signal, n) for n in ("SIGXCPU", "SIGKILL") if hasattr(signal, n)}
    if sig is not None and sig in cpu_kills:
        return Verdict(
            False, f"the check ran out of its {lim.cpu_seconds} s CPU time limit", "loads_safely"
        )
    tail = (err.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1][:200]
    if "MemoryError" in tail or "bad_alloc" in tail:
        return Verdict(
            False, f"the check ran out of its {lim.describe_memory()} memory limit", "loads_safely"
        )
    what = f"signal {signal.Signals(sig).name}" if sig else f"exit {code}"
    # torch killed by a signal on this file is a refusal of the file; a checker that exited
    # without a verdict (it could not start) says nothing about the file, so is not recorded
    reason = f"the check crashed ({what}): {tail}"
    return Verdict(False, reason, "loads_safely", cacheable=sig is not None)
