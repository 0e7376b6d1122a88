"""The one conformance suite runs against every provider: a new provider adds one entry here and a
``<entry>_settings`` fixture (in tests/servers/ or below), not new tests."""

from __future__ import annotations

import pytest

PROVIDERS = ["local", "s3_seaweedfs", "s3_moto", "gdrive_emulator"]


@pytest.fixture
def local_settings(tmp_path):
    return {"type": "local", "path": str(tmp_path / "remote")}


@pytest.fixture(params=PROVIDERS)
def remote_settings(request) -> dict:
    """Settings for a fresh, empty remote of each kind (``remotes:`` entry form)."""
    return request.getfixturevalue(f"{request.param}_settings")
