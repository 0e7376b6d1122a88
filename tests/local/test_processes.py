"""Real processes: Ctrl-C (SIGINT) in the middle of a big copy. Lock contention (two runs, a
stale lock from kill -9) lives in tests/reliability/test_concurrency.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import MODEL_FILE, run_subprocess, start_subprocess

BIG = 1536 * 1024 * 1024  # big enough that the copy is still running when we signal it


def make_big_model(path: Path) -> list[tuple[int, bytes]]:
    """A sparse file with random islands: cheap on disk, real bytes to copy and hash."""
    samples = []
    with open(path, "wb") as fh:
        fh.truncate(BIG)
        for offset in range(0, BIG, BIG // 8):
            data = os.urandom(4096)
            fh.seek(offset)
            fh.write(data)
            samples.append((offset, data))
    return samples


def wait_for_temp(proc: subprocess.Popen, directory: Path) -> Path:
    """Poll (bounded) until the copy's temp file exists, i.e. the copy is under way."""
    for _ in range(60_000):
        temps = [p for p in directory.iterdir() if p.name.endswith(".incomplete")]
        if temps:
            return temps[0]
        if proc.poll() is not None:
            break
        time.sleep(0.001)
    _, err = proc.communicate()
    pytest.fail(f"the copy never started or finished too fast: rc={proc.returncode} {err}")


def same_samples(path: Path, samples: list[tuple[int, bytes]]) -> bool:
    with open(path, "rb") as fh:
        for offset, data in samples:
            fh.seek(offset)
            if fh.read(len(data)) != data:
                return False
    return path.stat().st_size == BIG


@pytest.mark.slow
def test_ctrl_c_during_backup_leaves_nothing_partial(project):
    samples = make_big_model(project.model())
    st = project.model().stat()
    proc = start_subprocess(["backup", "--kind", "version"], project.root)
    wait_for_temp(proc, project.models)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    left = sorted(p.name for p in project.models.iterdir() if p.name != ".model-safety")
    assert left == [MODEL_FILE, "tokenizer.json"]  # no temp, no half version
    assert project.model().stat().st_mtime_ns == st.st_mtime_ns
    assert same_samples(project.model(), samples)


@pytest.mark.slow
def test_ctrl_c_during_restore_keeps_the_current_file(project):
    samples = make_big_model(project.model())
    done = run_subprocess(["backup", "--allow-failing"], project.root, timeout=300)
    assert done.returncode == 0, done.stderr
    project.model().unlink()
    project.model().write_bytes(b"a different, small current")
    proc = start_subprocess(["restore", "--from", "backup", "--yes"], project.root)
    wait_for_temp(proc, project.models)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert project.model().read_bytes() == b"a different, small current"
    assert not [p for p in project.models.iterdir() if p.name.endswith(".incomplete")]
    assert not [p for p in project.models.iterdir() if "_replaced-" in p.name]
    assert same_samples(project.models / "dinesh_ai_model_backup.pth", samples)
