"""Fixtures shared by every test folder (their helpers: tests/support.py). Real servers live in
tests/servers/ as pytest plugins, one module each, so that provider conformance tests and agent
end-to-end tests start the same real servers."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    NO_POSIX_ENV,
    PORTABILITY_SITE,
    REMOTE_KINDS,
    Project,
    SyncProject,
    in_portability_lane,
    run_cli,
    write_checkpoint,
)

# A test run started in the background (`./scripts/test &`, nohup) has SIGINT ignored, and a
# child inherits an ignored signal: Python in it then installs no KeyboardInterrupt handler, and
# the tests that send Ctrl-C to a CLI process would fail for the runner's sake. A handled signal
# is reset to its default in a child, so handling it here gives every child a terminal's Ctrl-C.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

pytest_plugins = [
    "tests.servers.seaweed",
    "tests.servers.moto_server",
    "tests.servers.drive",
    "tests.servers.proxy",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--portability",
        action="store_true",
        help="the portability lane: run with the POSIX-only APIs removed (fcntl, os.pwrite, "
        "os.pread(v), os.posix_fallocate, os.fdatasync, os.O_DIRECTORY), in this process and "
        "every Python process the tests start (tests/portability/sitecustomize.py)",
    )


def _enter_portability_lane() -> None:
    """Take the POSIX-only APIs away in this process (as tests/portability/sitecustomize.py
    does at startup in every child, which the environment set here reaches)."""
    # The agent, providers and filelock must first be imported after the removal, or they would
    # keep what they found (filelock picks its lock class at import).
    early = sorted(m for m in sys.modules if m.split(".")[0] in ("agent", "providers", "filelock"))
    if early:
        raise pytest.UsageError(f"--portability: already imported before the lane began: {early}")
    os.environ[NO_POSIX_ENV] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PORTABILITY_SITE), os.environ.get("PYTHONPATH")) if p
    )
    spec = importlib.util.spec_from_file_location(
        "_portability_site", PORTABILITY_SITE / "sitecustomize.py"
    )
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


# Here, at import, not in pytest_configure: this file is the first conftest pytest imports, and
# the folders' conftests and test modules it imports next import the agent.
if "--portability" in sys.argv[1:] and not in_portability_lane():
    _enter_portability_lane()


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--portability") and hasattr(os, "pwrite"):
        # pytest.main(["--portability"]) from a process that imported the agent already
        raise pytest.UsageError("--portability: give it on the pytest command line")


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.getoption("--portability"):
        return "portability lane: fcntl, os.pwrite/pread/preadv/posix_fallocate/O_DIRECTORY gone"
    return None


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """One real torch checkpoint file."""
    path = tmp_path / "checkpoint.pth"
    write_checkpoint(path)
    return path


@pytest.fixture
def project(tmp_path) -> Project:
    """A project dir with config.yaml and models/ holding a real checkpoint and a tokenizer."""
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    proj = Project(root, root / "models", root / "config.yaml")
    proj.write_config()
    proj.write_model(seed=1)
    return proj


@pytest.fixture
def cli(project, capsys, monkeypatch):
    """Run ``model-safety ARGS`` in the ``project`` fixture's directory (see run_cli), with no
    config override from the caller's shell (a test may set one)."""
    monkeypatch.delenv("MODEL_SAFETY_CONFIG", raising=False)
    return lambda *args: run_cli(project.root, list(args), capsys, monkeypatch)


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[callable]:
    """Mount real small tmpfs file systems (root only); unmounted at the end."""
    mounted: list[Path] = []

    def mount(size: str = "20m", name: str = "fs") -> Path:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("needs root and mount(8) to create a real small file system")
        target = tmp_path / name
        target.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount tmpfs here: {proc.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture
def local_settings(tmp_path) -> dict[str, Any]:
    (tmp_path / "nas").mkdir()
    return {"type": "local", "path": str(tmp_path / "nas" / "model-backups")}


@pytest.fixture(params=REMOTE_KINDS)
def remote_kind(request) -> str:
    return request.param


@pytest.fixture
def sync_project(tmp_path, request, remote_kind) -> SyncProject:
    settings = request.getfixturevalue(f"{remote_kind}_settings")
    proj = SyncProject.create(tmp_path / "proj", settings)
    proj.write_model(seed=1)
    return proj


@pytest.fixture
def ms(capsys, monkeypatch):
    """Run ``model-safety ARGS`` in a given project directory (see run_cli)."""
    monkeypatch.delenv("MODEL_SAFETY_CONFIG", raising=False)
    return lambda root, *args: run_cli(root, list(args), capsys, monkeypatch)
