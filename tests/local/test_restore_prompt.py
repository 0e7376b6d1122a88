"""A restore replaces the current model: from a script it needs --yes (exit 2 without it, nothing
changed); on a terminal it asks."""

from __future__ import annotations

import os
import pty
import subprocess

from tests.support import MODEL_FILE, cli_env, model_safety_cmd


def restore_cmd(project, stdin) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*model_safety_cmd(), "restore", "--from", "backup"],
        cwd=project.root,
        env=cli_env(),
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_restore_from_a_script_without_yes_refuses_and_changes_nothing(cli, project):
    assert cli("backup").code == 0
    newer = project.write_model(seed=2)
    proc = restore_cmd(project, subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert "--yes" in proc.stderr and "terminal" in proc.stderr
    assert project.model().read_bytes() == newer
    assert not [p for p in project.models.iterdir() if "_replaced-" in p.name]


def test_restore_on_a_terminal_asks_first(cli, project):
    good = project.model().read_bytes()
    assert cli("backup").code == 0
    newer = project.write_model(seed=2)
    for answer, expected in ((b"n\n", newer), (b"y\n", good)):
        master, slave = pty.openpty()
        os.write(master, answer)
        proc = restore_cmd(project, slave)
        os.close(slave)
        os.close(master)
        assert "Replace" in proc.stdout + proc.stderr
        assert project.model().read_bytes() == expected
        assert proc.returncode == (0 if expected == good else 1), proc.stderr
    assert MODEL_FILE in os.listdir(project.models)
