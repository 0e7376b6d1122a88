"""Fixtures for the Drive v2 emulator (tests/servers/drive_emulator.py).

- ``drive_emulator`` (session): the running emulator; tests use its hooks (``inject``,
  ``counter``, ``reset_counters``, ``create_file``, ``files_in``, ``set_quota``).
- ``drive_service_account`` (session): path of a service-account JSON key whose ``token_uri``
  points at the emulator, with a real RSA key (registered with the emulator).
- ``gdrive_emulator_settings`` (function): a ``remotes:`` entry for a fresh, empty folder, with
  small chunks so multi-chunk paths run on small files and no waits between chunk resumes.
  ``GDRIVE_TEST_CHUNK`` is that chunk size (the conformance suite's "part size").
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.drive_emulator import DriveEmulator

GDRIVE_TEST_CHUNK = 256 * 1024  # Drive's minimum chunk granularity


def make_service_account(path: Path, token_uri: str, email: str) -> bytes:
    """Write a Google-format service-account key file; return its private key PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    info = {
        "type": "service_account",
        "project_id": "model-safety-emulator",
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem.decode(),
        "client_email": email,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(info), encoding="utf-8")
    path.chmod(0o600)  # a key file kept as it should be (the agent warns about a readable one)
    return pem


@pytest.fixture(scope="session")
def drive_emulator() -> Iterator[DriveEmulator]:
    emulator = DriveEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def drive_service_account(drive_emulator: DriveEmulator, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gdrive-sa") / "service-account.json"
    email = "backup-agent@model-safety-emulator.iam.gserviceaccount.com"
    pem = make_service_account(path, drive_emulator.token_uri, email)
    drive_emulator.register_service_account(email, pem)
    return path


@pytest.fixture
def gdrive_emulator_settings(
    drive_emulator: DriveEmulator, drive_service_account: Path
) -> Iterator[dict[str, Any]]:
    drive_emulator.clear_faults()
    drive_emulator.set_quota(None)
    drive_emulator.corrupt_next_uploads(0)
    folder = drive_emulator.create_folder(f"backups-{uuid.uuid4().hex[:8]}")
    yield {
        "type": "gdrive",
        "folder_id": folder,
        "service_account_file": str(drive_service_account),
        "root_url": drive_emulator.url,
        "chunk_size": GDRIVE_TEST_CHUNK,
        "download_chunk_size": GDRIVE_TEST_CHUNK,
        "chunk_retry_wait": 0,
        "page_size": 50,
    }
    drive_emulator.clear_faults()
