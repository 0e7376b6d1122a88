"""A progress bar for big copies on a terminal, and nothing extra when output is not one. A bar
shows bytes moving from its first frame, in the same units as every other size shown."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from agent import progress
from agent.local.hashing import hash_file
from tests.support import MODEL_FILE, cli_env, run_subprocess, write_sized_checkpoint

BIG = 150 * 1024 * 1024  # over the 100 MiB threshold: 150.0 MiB (157.3 MB in decimal units)
ZERO_FRAME = re.compile(r"(?<![\d.])0\.0/")  # "0.0/150.0 MiB", not the "150.0/150.0" of a bar


def big_model(project) -> None:
    write_sized_checkpoint(project.models / MODEL_FILE, BIG)


def on_terminal(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """``model-safety ARGS`` with stderr on a pseudo-terminal: (exit code, stdout, what the
    terminal showed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", *args],
        cwd=cwd,
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
    code = proc.wait(timeout=120)
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return code, out, seen.decode("utf-8", "replace")


def test_no_progress_output_when_not_a_terminal(project):
    big_model(project)
    proc = run_subprocess(["backup"], project.root, env=cli_env(COLUMNS="100"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.strip() == "dinesh_ai_model: wrote dinesh_ai_model_backup.pth"


def test_progress_bar_on_a_terminal_in_binary_units(project):
    big_model(project)
    code, _, text = on_terminal(["backup"], project.root)
    assert code == 0, text
    assert f"copying {MODEL_FILE}" in text
    assert "/150.0 MiB" in text  # the size `list` shows for the same file
    assert " MB" not in text and "GB/s" not in text and "MB/s" not in text


def test_hashing_bar_advances_with_the_bytes_hashed(tmp_path):
    path = tmp_path / "big.bin"
    with open(path, "wb") as fh:
        fh.truncate(BIG)
    screen = io.StringIO()
    from rich.console import Console

    console = Console(file=screen, force_terminal=True, width=100)
    with progress.bar("hashing big.bin", BIG, console=console) as advance:
        assert advance is not None
        hash_file(path, progress=advance)
    shown = screen.getvalue()
    assert "hashing big.bin" in shown
    assert "150.0/150.0 MiB" in shown  # it reached the end
    assert not ZERO_FRAME.search(shown)  # and never sat at zero


def test_no_bar_when_nothing_needs_reading(tmp_path):
    screen = io.StringIO()
    from rich.console import Console

    console = Console(file=screen, force_terminal=True, width=100)
    with progress.bar("hashing big.bin", BIG, console=console):
        pass  # e.g. the hash came from the cache
    assert "hashing" not in screen.getvalue()


def test_a_hash_known_from_the_cache_shows_no_bar(project):
    """`list` hashes the current file once; the second time the cache knows it, and no
    "hashing ... 0.0/150.0" bar may appear and stay at zero."""
    big_model(project)
    code, _, first = on_terminal(["list"], project.root)
    assert code == 0, first
    assert f"hashing {MODEL_FILE}" in first and "150.0/150.0 MiB" in first
    assert not ZERO_FRAME.search(first)
    code, out, second = on_terminal(["list"], project.root)
    assert code == 0, second
    assert "hashing" not in second
    assert "150.0 MiB" in out
