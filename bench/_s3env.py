"""Plumbing for bench/sync_s3.py: AWS profile files, SeaweedFS, child processes measured with
wait4 (wall time and that one child's peak RSS), checkpoints and agent projects on disk."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers.aws_credentials import PROFILES  # noqa: E402
from tests.servers.proxy import FaultProxy  # noqa: E402, F401 - for sync_s3.py
from tests.servers.seaweed import SeaweedServer, start_seaweedfs, stop_seaweedfs  # noqa: E402

CLI = str(Path(sys.executable).with_name("model-safety"))
MODEL = "dinesh_ai_model"
MODEL_FILE = f"{MODEL}.pth"


def write_aws_profiles(directory: Path) -> dict[str, str]:
    """The same profiles the test fixtures write, in ``directory``; returns the environment that
    points boto3 (ours and every child's) at them."""
    creds, config = directory / "credentials", directory / "config"
    creds.write_text(
        "".join(
            f"[{name}]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n\n"
            for name, (key, secret) in PROFILES.items()
        )
    )
    config.write_text("".join(f"[profile {name}]\nregion = us-east-1\n\n" for name in PROFILES))
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(creds),
        "AWS_CONFIG_FILE": str(config),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@contextlib.contextmanager
def seaweedfs(directory: Path):  # type: ignore[no-untyped-def]
    directory.mkdir(parents=True, exist_ok=True)
    server = start_seaweedfs(directory)
    try:
        yield server
    finally:
        stop_seaweedfs(server)  # by PID; also removes its /tmp/seaweedfs-*-grpc-PORT.sock


@dataclass
class Child:
    code: int
    seconds: float
    maxrss_mb: float  # peak RSS of the child and the children it waited for (wait4)
    out: str
    err: str
    killed_at: Any = None  # what kill_when returned when it fired
    cpu_s: float = 0.0  # user + system CPU seconds of the child and its waited-for children


# Runs one command; writes its wall time and peak RSS as JSON to the fd in argv[1]. Why a small
# process in between: Linux keeps the RSS high-water mark across fork and execve, so a child
# forked (or vforked, as subprocess does) from this benchmark, which holds torch and a
# checkpoint, would report this process's peak instead of its own.
_MEASURE = """
import json, os, sys, time
fd, argv = int(sys.argv[1]), sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.close(fd)
    os.execv(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
os.write(fd, json.dumps([seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime]).encode())
sys.exit(os.waitstatus_to_exitcode(status))
"""


def child_env() -> dict[str, str]:
    """This process's environment for a timed command, as a user's shell would give it: no
    MODEL_SAFETY_CONFIG, and Python allowed to cache bytecode (some machines, this project's
    CI VMs among them, set PYTHONDONTWRITEBYTECODE, which makes every start of a Python CLI
    compile its own modules again: ~80 ms of model-safety's start-up that a user never pays)."""
    drop = {"MODEL_SAFETY_CONFIG", "PYTHONDONTWRITEBYTECODE"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def run_child(
    args: list[str],
    *,
    cwd: Path,
    kill_when: Callable[[], Any] | None = None,
    timeout: float = 900,
    env: dict[str, str] | None = None,
) -> Child:
    """Run one process: its wall time from fork to exit and its own peak RSS (wait4). With
    ``kill_when``, poll it every 2 ms and SIGKILL the process (by PID) the first time it returns
    something truthy; that process is started directly and its RSS is not reported. ``env``
    adds to (or overrides) this process's environment."""
    env = child_env() | (env or {})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        if kill_when is None:
            read_fd, write_fd = os.pipe()
            cmd = [sys.executable, "-c", _MEASURE, str(write_fd), *args]
            try:
                proc = subprocess.Popen(
                    cmd, cwd=cwd, stdout=out, stderr=err, env=env, pass_fds=(write_fd,)
                )
            finally:
                os.close(write_fd)
            with os.fdopen(read_fd, "rb") as report:
                code = proc.wait(timeout=timeout)
                seconds, maxrss_kib, cpu = json.loads(report.read() or b"[0, 0, 0]")
            fired = None
        else:
            start = time.perf_counter()
            proc = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=err, env=env)
            fired = _kill_when(proc, kill_when, start + timeout)
            code = proc.wait(timeout=timeout)
            seconds, maxrss_kib, cpu = time.perf_counter() - start, 0, 0.0
        out.seek(0)
        err.seek(0)
        return Child(
            code,
            seconds,
            maxrss_kib / 1024,  # KiB on Linux
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            fired,
            cpu,
        )


def _kill_when(proc: subprocess.Popen, condition: Callable[[], Any], deadline: float) -> Any:
    while proc.poll() is None and time.perf_counter() < deadline:
        if fired := condition():
            os.kill(proc.pid, signal.SIGKILL)
            return fired
        time.sleep(0.002)
    return None


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a running process (all its threads) has used so far: the
    server's share of a transfer is the difference around it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cli(root: Path, *args: str, **kw: Any) -> Child:
    return run_child([CLI, *args], cwd=root, **kw)


def make_checkpoint(path: Path, size_mb: int, seed: int = 0) -> None:
    """A real torch.save file of a state_dict of random fp32 tensors, about ``size_mb`` MB."""
    import warnings

    with warnings.catch_warnings():  # a CPU build without numpy says so at import; not news
        warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
        import torch

    gen = torch.Generator().manual_seed(seed)
    n = max(8, size_mb * 1024 * 1024 // 4 // 8)
    state = {f"layer{i}.weight": torch.randn(n, generator=gen) for i in range(8)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def s3_remote(server: SeaweedServer, prefix: str, **extra: Any) -> dict[str, Any]:
    """A remote with the provider's default transfer settings (8 MiB parts, 10 connections): the
    same defaults as boto3's TransferConfig, which is what it is compared with."""
    return {
        "type": "s3",
        "bucket": server.bucket,
        "prefix": prefix,
        "endpoint_url": server.endpoint_url,
        "region": "us-east-1",
        "profile": server.profile,
        **extra,
    }


def write_project(
    root: Path, remote: dict[str, Any], *, max_backups: int = 4, keep_last: int | None = None
) -> Path:
    """config.yaml with one model (no companions) and one remote called ``s3``; returns the
    models dir (not created)."""
    root.mkdir(parents=True, exist_ok=True)
    remote = dict(remote, auto_push=True)
    if keep_last is not None:
        remote["retention"] = {"keep_last": keep_last}
    doc = {
        "MODEL_SAFETY": {
            "models_dir": "models",
            "models": [{"name": MODEL, "file": MODEL_FILE}],
            "max_backups": max_backups,
            "backup_interval_days": 7,
            "min_free_space_gb": 0,
            "remotes": {"s3": remote},
        }
    }
    (root / "config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root / "models"


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(8 * 1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def settle(seconds: float) -> None:
    """Flush dirty pages and pause: every timing starts from an idle disk (see local_backup)."""
    os.sync()
    time.sleep(seconds)
