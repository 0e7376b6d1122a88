"""AWS credentials for the test S3 servers, the way a user supplies them: named profiles.

How credentials reach the provider (decided here, used by every S3 fixture): a session fixture
writes an AWS shared-credentials file under the session's tmp dir and points
AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE at it in ``os.environ`` for the whole session, so
child processes (the kill -9 upload worker, agent CLI runs) inherit it. Remote settings then name a
profile (``profile: seaweedfs``). Profiles:
- ``seaweedfs``: the static identity SeaweedFS is started with (auth is ON);
- ``seaweedfs-wrong-secret``: the right key id with a wrong secret (must give PermissionDenied);
- ``moto``: anything works for moto.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

SEAWEED_ACCESS_KEY = "msafety" + secrets.token_hex(6)
SEAWEED_SECRET_KEY = secrets.token_hex(20)

PROFILES = {
    "seaweedfs": (SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY),
    "seaweedfs-wrong-secret": (SEAWEED_ACCESS_KEY, "wrong" + secrets.token_hex(18)),
    "moto": ("testing", "testing"),
}


@pytest.fixture(scope="session")
def aws_profiles(tmp_path_factory) -> Iterator[dict[str, tuple[str, str]]]:
    directory = tmp_path_factory.mktemp("aws")
    creds = directory / "credentials"
    creds.write_text(
        "".join(
            f"[{name}]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n\n"
            for name, (key, secret) in PROFILES.items()
        )
    )
    config = directory / "config"
    config.write_text("".join(f"[profile {name}]\nregion = us-east-1\n\n" for name in PROFILES))
    env = {
        "AWS_SHARED_CREDENTIALS_FILE": str(creds),
        "AWS_CONFIG_FILE": str(config),
        # Never wait for an EC2 metadata endpoint on a laptop or CI box.
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield PROFILES
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
