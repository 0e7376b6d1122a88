"""A progress bar for big copies on a terminal, and nothing extra when output is not one."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from tests.agent.conftest import MODEL_FILE, cli_env, run_subprocess

BIG = 150 * 1024 * 1024  # over the 100 MB threshold


def big_model(project) -> None:
    with open(project.models / MODEL_FILE, "wb") as fh:
        fh.truncate(BIG)
        fh.write(b"not all zeros")


def test_no_progress_output_when_not_a_terminal(project):
    big_model(project)
    proc = run_subprocess(["backup"], project.root, env=cli_env(COLUMNS="100"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.strip() == "dinesh_ai_model: wrote dinesh_ai_model_backup.pth"


def test_progress_bar_on_a_terminal(project):
    big_model(project)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "backup"],
        cwd=project.root,
        env=cli_env(COLUMNS="100"),
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    seen = b""
    while True:  # bounded: ends when the child closes the terminal
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0
    proc.stdout.close()
    text = seen.decode("utf-8", "replace")
    assert f"copying {MODEL_FILE}" in text
    assert "MB" in text  # the bar shows bytes moved
