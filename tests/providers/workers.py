"""Driving tests/providers/upload_worker.py from kill -9 resume tests of any backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start_worker(
    settings: dict, key: str, src: Path, state: Path, *pause: int, mode: tuple[str, ...] = ()
) -> subprocess.Popen:
    """The upload worker; ``mode=("get",)`` makes it download ``key`` to ``src`` instead."""
    args = [sys.executable, "-m", "tests.providers.upload_worker", *mode, json.dumps(settings)]
    args += [key, str(src), str(state), *map(str, pause)]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)


def wait_for(proc: subprocess.Popen, word: str) -> str:
    """Read the worker's lines until one starts with ``word`` (bounded by the worker's output)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(word):
            return line
    raise AssertionError(f"worker ended (rc={proc.wait()}) before printing {word!r}")


def kill_when_paused(proc: subprocess.Popen) -> int:
    """Wait until a worker started with a pause point blocks there, then SIGKILL it. Returns the
    bytes it had reported moved."""
    try:
        paused = int(wait_for(proc, "paused").split()[1])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return paused


def run_to_done(proc: subprocess.Popen) -> tuple[int, str]:
    """Let a worker finish; returns (bytes it reported moved, sha256 of the object)."""
    try:
        _, moved, sha = wait_for(proc, "done").split()
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()
    return int(moved), sha
