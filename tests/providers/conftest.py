"""The one conformance suite runs against every provider: a new provider adds one entry to
PROVIDERS and one ``<entry>_backend`` fixture here (its server in tests/servers/), not new tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from providers import open_provider
from tests.providers.helpers import MIB
from tests.servers.drive import make_service_account

PROVIDERS = ["local", "s3_seaweedfs", "s3_moto", "gdrive_emulator"]


@dataclass
class BackendUnderTest:
    """One backend as the conformance suite needs it.

    settings: a ``remotes:`` entry for a fresh, empty remote.
    bad_credentials: the same remote with credentials its server refuses (None: no credentials
    to get wrong, or a server that does not check them); ``requests()`` counts what that server
    has been asked so far; ``secret``: what must never appear in an error message.
    big_transfer: setting overrides for the kill -9 resume tests (chunks small enough that a kill
    halfway leaves a useful journal).
    """

    settings: dict[str, Any]
    bad_credentials: dict[str, Any] | None = None
    requests: Callable[[], int] = lambda: 0
    secret: str | None = None
    big_transfer: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def local_settings(tmp_path):
    return {"type": "local", "path": str(tmp_path / "remote")}


@pytest.fixture
def local_backend(local_settings) -> BackendUnderTest:
    return BackendUnderTest(local_settings)


@pytest.fixture
def s3_seaweedfs_backend(s3_seaweedfs_settings, seaweedfs, fault_proxy) -> BackendUnderTest:
    # Through the fault proxy, which counts requests; a profile with the right key id and a wrong
    # secret (tests/servers/aws_credentials.py).
    wrong = {**s3_seaweedfs_settings, "endpoint_url": fault_proxy.url}
    wrong["profile"] = "seaweedfs-wrong-secret"
    return BackendUnderTest(
        s3_seaweedfs_settings,
        bad_credentials=wrong,
        requests=lambda: sum(fault_proxy.requests.values()),
        secret=seaweedfs.secret_key,
    )


@pytest.fixture
def s3_moto_backend(s3_moto_settings) -> BackendUnderTest:
    return BackendUnderTest(s3_moto_settings)  # moto accepts any credentials


@pytest.fixture
def gdrive_emulator_backend(gdrive_emulator_settings, drive_emulator, tmp_path) -> BackendUnderTest:
    rogue = tmp_path / "rogue.json"
    make_service_account(rogue, drive_emulator.token_uri, "nobody@example.iam")  # not registered
    return BackendUnderTest(
        gdrive_emulator_settings,
        bad_credentials={**gdrive_emulator_settings, "service_account_file": str(rogue)},
        requests=lambda: drive_emulator.counter("token_requests"),
        big_transfer={"chunk_size": MIB, "download_chunk_size": MIB},
    )


@pytest.fixture(params=PROVIDERS)
def backend(request) -> BackendUnderTest:
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture
def remote_settings(backend) -> dict:
    """Settings for a fresh, empty remote of each kind (``remotes:`` entry form)."""
    return backend.settings


@pytest.fixture
def remote(remote_settings, tmp_path):
    """The backend under test as the agent sees it: through ``open_provider`` (the retry
    layer), its journals in the test's own state dir."""
    provider = open_provider("conformance", remote_settings, state_dir=tmp_path / "state")
    try:
        yield provider
    finally:
        provider.close()
