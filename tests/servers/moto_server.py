"""moto's S3 in a thread on a free loopback port: fast API tests (it accepts any credentials and
never rejects a bad checksum, so integrity, auth and resume are proven on SeaweedFS instead).

Fixtures: ``moto_s3`` (session): the endpoint URL; ``s3_moto_settings`` (function): the server
reset (``POST /moto-api/reset``) and a fresh bucket, as a ``remotes:`` entry using the ``moto``
profile from aws_credentials.py, with 5 MiB parts.
"""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers.seaweed import PART, free_ports


@pytest.fixture(scope="session")
def moto_s3(aws_profiles) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_ports(1)[0]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_moto_settings(moto_s3: str) -> dict[str, Any]:
    import boto3

    request = urllib.request.Request(f"{moto_s3}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    bucket = f"moto-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session(profile_name="moto").client(
        "s3", endpoint_url=moto_s3, region_name="us-east-1"
    )
    client.create_bucket(Bucket=bucket)
    return {
        "type": "s3",
        "bucket": bucket,
        "prefix": "mirror",
        "endpoint_url": moto_s3,
        "region": "us-east-1",
        "profile": "moto",
        "multipart_threshold": PART,
        "multipart_chunksize": PART,
        "max_request_concurrency": 4,
    }
