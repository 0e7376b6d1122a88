"""The S3 error table, row by row, with real botocore exception objects (the wire tests in
test_s3.py prove the common rows end to end on SeaweedFS)."""

from __future__ import annotations

import botocore.exceptions as bex
import pytest

from providers.errors import (
    IntegrityError,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ProviderError,
    QuotaExceeded,
    TransientError,
)
from providers.s3.errors import s3_errors


def client_error(code: str, status: int) -> bex.ClientError:
    response = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return bex.ClientError(response, "PutObject")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (client_error("NoSuchKey", 404), NotFound),
        (client_error("404", 404), NotFound),
        (client_error("NoSuchBucket", 404), NotFound),
        (client_error("AccessDenied", 403), PermissionDenied),
        (client_error("InvalidAccessKeyId", 403), PermissionDenied),
        (client_error("SignatureDoesNotMatch", 403), PermissionDenied),
        (client_error("PreconditionFailed", 412), PreconditionFailed),
        (client_error("SlowDown", 503), TransientError),
        (client_error("InternalError", 500), TransientError),
        (client_error("WhateverBroke", 502), TransientError),
        (client_error("TooManyRequests", 429), TransientError),
        (client_error("RequestTimeout", 400), TransientError),
        (client_error("BadDigest", 400), IntegrityError),
        (client_error("QuotaExceeded", 403), QuotaExceeded),
        (client_error("InvalidArgument", 400), ProviderError),
        (bex.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), TransientError),
        (bex.ReadTimeoutError(endpoint_url="http://x"), TransientError),
        (bex.ConnectionClosedError(endpoint_url="http://x"), TransientError),
        (ConnectionResetError(104, "reset"), TransientError),
        (bex.NoCredentialsError(), PermissionDenied),
    ],
)
def test_error_table(exc, expected):
    with pytest.raises(expected) as info, s3_errors("backup", "models", "put a.pth"):
        raise exc
    assert info.value.__cause__ is exc
    assert "remote 'backup'" in str(info.value)


def test_messages_say_what_to_fix():
    missing = "bucket 'models' does not exist: create it or fix bucket:"
    with pytest.raises(NotFound, match=missing), s3_errors("backup", "models", "list"):
        raise client_error("NoSuchBucket", 404)
    denied = "check the credentials for remote 'backup'"
    with pytest.raises(PermissionDenied, match=denied), s3_errors("backup", "models", "put"):
        raise client_error("SignatureDoesNotMatch", 403)


def test_unknown_exceptions_pass_through():
    with pytest.raises(KeyError), s3_errors("backup", "models", "x"):
        raise KeyError("bug")
