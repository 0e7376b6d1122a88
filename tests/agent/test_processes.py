"""Real processes: Ctrl-C (SIGINT) in the middle of a big copy, and lock contention including a
lock left behind by a process killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.agent.conftest import MODEL_FILE, cli_env, run_subprocess

BIG = 1536 * 1024 * 1024  # big enough that the copy is still running when we signal it


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "agent", *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


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
    proc = start(["backup", "--kind", "version"], project.root)
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
    done = run_subprocess(["backup"], project.root, timeout=300)
    assert done.returncode == 0, done.stderr
    project.model().unlink()
    project.model().write_bytes(b"a different, small current")
    proc = start(["restore", "--from", "backup", "--yes"], project.root)
    wait_for_temp(proc, project.models)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert project.model().read_bytes() == b"a different, small current"
    assert not [p for p in project.models.iterdir() if p.name.endswith(".incomplete")]
    assert not [p for p in project.models.iterdir() if "_replaced-" in p.name]
    assert same_samples(project.models / "dinesh_ai_model_backup.pth", samples)


HOLDER = """
import sys
from pathlib import Path
from agent.lock import Lock
lock = Lock(Path(sys.argv[1]), "test holder").acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def test_second_run_is_told_who_holds_the_lock_and_stale_locks_are_taken_over(project):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project.models / ".model-safety")],
        env=cli_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        blocked = run_subprocess(["run"], project.root)
        assert blocked.returncode == 4
        assert f"pid {holder.pid}" in blocked.stderr and "test holder" in blocked.stderr
        assert not list(project.models.glob("*_v*"))  # the blocked run did nothing
    finally:
        holder.kill()  # SIGKILL: the holder never gets to clean up its note
        holder.wait(timeout=30)
    after = run_subprocess(["run"], project.root)
    assert after.returncode == 0, after.stderr
    assert "stale lock" in after.stderr and str(holder.pid) in after.stderr
    assert list(project.models.glob("dinesh_ai_model_v*.pth"))


def test_two_overlapping_runs_never_both_write(project):
    """Two real `run` processes started together: every outcome is either success or the lock
    exit code, and exactly one dated version exists afterwards."""
    procs = [start(["run"], project.root) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert all(code in (0, 4) for code, _ in results), results
    assert len(list(project.models.glob("dinesh_ai_model_v*.pth"))) == 1
