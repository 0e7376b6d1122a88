"""Bad input gets a clear error and loses nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import CONFIG, MODEL_FILE, child_pythonpath, write_checkpoint


def no_temps(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".incomplete")]


def test_missing_model_file(cli, project):
    project.model().unlink()
    result = cli("backup")
    assert result.code == 1
    assert str(project.model()) in result.err and "does not exist" in result.err
    assert "Traceback" not in result.err


def test_empty_model_file(cli, project):
    project.model().write_bytes(b"")
    result = cli("backup", "--kind", "version")
    assert result.code == 1 and "is empty" in result.err
    assert not list(project.models.glob("*_v*"))


def test_directory_where_the_model_should_be(cli, project):
    project.model().unlink()
    project.model().mkdir()
    result = cli("backup")
    assert result.code == 1 and "is a directory" in result.err


def test_companion_that_is_a_directory(cli, project):
    project.tokenizer().unlink()
    project.tokenizer().mkdir()
    result = cli("backup")
    assert result.code == 1 and "tokenizer.json is a directory" in result.err
    assert not (project.models / "dinesh_ai_model_backup.pth").exists()


def test_models_dir_missing(cli, project):
    project.write_config(models_dir="nowhere")
    result = cli("list")
    assert result.code == 1 and "models_dir" in result.err and "nowhere" in result.err


def test_not_enough_space_is_refused_before_writing(cli, project):
    project.write_config(min_free=10**6)  # a million GB
    result = cli("backup", "--kind", "version")
    assert result.code == 1 and "not enough space" in result.err
    assert sorted(p.name for p in project.models.iterdir() if p.name != ".model-safety") == [
        MODEL_FILE,
        "tokenizer.json",
    ]
    assert no_temps(project.models)


def test_garbage_yaml(cli, project):
    project.config.write_text("MODEL_SAFETY: {models: [\n  - : :\n")
    result = cli("list")
    assert result.code == 1 and "not valid YAML" in result.err and "line" in result.err


def test_unknown_option_is_a_usage_error(cli, project):
    result = cli("backup", "--knd", "version")
    assert result.code == 2 and "No such option" in result.err


def test_read_only_models_dir(tmp_path, tmpfs, cli, project):
    ro = tmpfs("20m", "ro")
    for item in project.models.iterdir():
        shutil.copy2(item, ro / item.name)
    project.write_config(models_dir=str(ro))
    assert cli("backup").code == 0
    before = {p.name: p.read_bytes() for p in ro.iterdir() if p.is_file()}
    subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
    result = cli("backup", "--kind", "version")
    assert result.code == 1 and "read-only" in result.err
    restore = cli("restore", "--from", "backup", "--yes")
    assert restore.code == 1 and "read-only" in restore.err
    assert cli("list").code == 0  # reading still works
    assert cli("verify").code == 0
    assert {p.name: p.read_bytes() for p in ro.iterdir() if p.is_file()} == before


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv to drop root")
def _code_nobody_can_run(root: Path, cmd: list[str]) -> dict[str, str]:
    """The environment in which `nobody` runs this checkout's CLI. A checkout under a private
    directory (mode 0700, like a home) is unreadable to nobody, so the code is brought along: a
    world-readable copy of agent/ and providers/. If nobody cannot run the interpreter itself
    (a virtualenv inside that private directory), the test cannot run and says why."""
    checkout = Path(__file__).resolve().parents[2]
    code = root / "code"
    for pkg in ("agent", "providers"):
        shutil.copytree(checkout / pkg, code / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [code, *code.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"}
    probe = subprocess.run(
        [*cmd, sys.executable, "-c", "import agent.cli.main"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        pytest.skip(f"the nobody user cannot run {sys.executable}: {probe.stderr.strip()[-200:]}")
    return env


def test_unreadable_model_file():
    # Root reads everything, so run the CLI as nobody (setpriv) against a file mode 000.
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to the nobody user")
    root = Path(tempfile.mkdtemp(prefix="ms-unreadable-"))
    try:
        root.chmod(0o755)
        models = root / "models"
        models.mkdir(mode=0o777)
        models.chmod(0o777)
        (root / "config.yaml").write_text(
            CONFIG.format(models_dir="models", max_backups=4, min_free=0)
        )
        write_checkpoint(models / MODEL_FILE)
        (models / MODEL_FILE).chmod(0o000)
        (models / "tokenizer.json").write_text("{}")
        (models / "tokenizer.json").chmod(0o644)
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        env = _code_nobody_can_run(root, cmd)
        proc = subprocess.run(
            [*cmd, sys.executable, "-m", "agent", "backup"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr
        assert "not readable" in proc.stderr and "Traceback" not in proc.stderr
        assert not (models / "dinesh_ai_model_backup.pth").exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def heavy_imports(root: Path, args: list[str]) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``model-safety ARGS`` in a fresh interpreter: the process, and the torch, boto3 or
    botocore modules it imported (from ``-X importtime``)."""
    env = {**os.environ, "PYTHONPATH": child_pythonpath()}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "agent", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "click" in imported, proc.stderr[-2000:]  # the check can see imports at all
    return proc, {m for m in imported if m.split(".")[0] in ("torch", "boto3", "botocore")}


def test_help_imports_neither_torch_nor_boto3(project):
    for args in (["--help"], ["backup", "--help"], ["restore", "--help"], ["status", "--help"]):
        proc, heavy = heavy_imports(project.root, args)
        assert proc.returncode == 0 and "Usage:" in proc.stdout
        assert not heavy, (args, sorted(heavy)[:5])


def test_list_and_status_import_neither_torch_nor_boto3(project, cli):
    project.write_model(seed=1)
    assert cli("backup").code == 0  # a backup slot and a catalog to show
    for args in (["list"], ["status", "--local"], ["status"]):
        proc, heavy = heavy_imports(project.root, args)
        assert proc.returncode == 0, (args, proc.stderr[-2000:])
        assert "dinesh_ai_model" in proc.stdout
        assert not heavy, (args, sorted(heavy)[:5])


def test_disk_full_during_restore_changes_nothing(tmpfs, cli, project):
    small = tmpfs("20m", "small")
    big = os.urandom(6 * 1024 * 1024)
    (small / MODEL_FILE).write_bytes(big)
    (small / "tokenizer.json").write_text("{}")
    project.write_config(models_dir=str(small))
    assert cli("backup", "--kind", "version", "--allow-failing").code == 0  # 12 MB used
    (small / MODEL_FILE).write_bytes(b"newer, small current")
    free = shutil.disk_usage(small).free
    (small / "filler").write_bytes(b"\0" * (free - 2 * 1024 * 1024))  # 2 MB left: not enough
    before = {p.name: p.read_bytes() for p in small.iterdir() if p.is_file()}
    result = cli("restore", "--yes")
    assert result.code == 1, result.err
    assert "disk full" in result.err and "Traceback" not in result.err
    assert {p.name: p.read_bytes() for p in small.iterdir() if p.is_file()} == before
    assert no_temps(small)
