"""The S3 error table: botocore exceptions in, provider errors out, cause chained.

Decisions worth knowing:
- 5xx, SlowDown / throttling, RequestTimeout, connection errors and timeouts are transient.
- 403 and bad keys are permanent and say which remote's credentials to check; the message never
  includes a key id or secret.
- BadDigest (a part's Content-MD5 / x-amz-checksum does not match) is an IntegrityError, not
  transient: we hash exactly the bytes we send, so a mismatch means the file changed under us or
  something on the path rewrites data; retrying would hide that, so the caller is told.
- NoSuchBucket is NotFound with a message that says to create the bucket or fix ``bucket:``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import botocore.exceptions as bex

from providers.errors import (
    IntegrityError,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ProviderError,
    QuotaExceeded,
    TransientError,
)

_PERMISSION = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
    "AccountProblem",
}
_TRANSIENT = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
}
_INTEGRITY = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
_QUOTA = {"QuotaExceeded", "StorageQuotaExceeded", "EntityTooLarge", "InsufficientStorage"}


def error_code(exc: bex.ClientError) -> tuple[str, int]:
    err = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(err.get("Code", status)), int(status or 0)


def translate(exc: BaseException, *, remote: str, bucket: str, what: str) -> BaseException:
    """Map one botocore / network exception to our family; unknown ones pass through."""
    prefix = f"remote {remote!r}: {what}"
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
        return PermissionDenied(
            f"{prefix}: no AWS credentials found; set profile: for remote {remote!r} or the "
            "AWS_* environment variables"
        )
    if isinstance(exc, bex.ClientError):
        code, status = error_code(exc)
        if code == "NoSuchBucket":
            return NotFound(f"{prefix}: bucket {bucket!r} does not exist: create it or fix bucket:")
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412:
            return PreconditionFailed(f"{prefix}: the object changed or exists ({code})")
        if code in ("NoSuchKey", "NotFound", "NoSuchUpload") or status == 404:
            return NotFound(f"{prefix}: not found ({code})")
        if code in _QUOTA:  # before 403: some servers send quota errors with status 403
            return QuotaExceeded(
                f"{prefix}: storage quota exceeded ({code}): free space or raise it"
            )
        if code in _PERMISSION or status in (401, 403):
            return PermissionDenied(
                f"{prefix}: access denied ({code}): check the credentials for remote {remote!r}"
            )
        if code in _INTEGRITY:
            return IntegrityError(f"{prefix}: the server rejected a checksum ({code})")
        if code in _TRANSIENT or status >= 500 or status == 429:
            return TransientError(f"{prefix}: server busy or failing ({code}, HTTP {status})")
        return ProviderError(f"{prefix}: S3 error {code} (HTTP {status})")
    if isinstance(
        exc,
        bex.HTTPClientError  # connection refused/reset/closed, timeouts, proxy errors
        | bex.ResponseStreamingError
        | bex.IncompleteReadError
        | ConnectionError
        | TimeoutError,
    ):
        return TransientError(f"{prefix}: network error: {exc}")
    if isinstance(exc, bex.ProfileNotFound):
        return PermissionDenied(f"{prefix}: {exc}; fix profile: for remote {remote!r}")
    if isinstance(exc, bex.EndpointConnectionError | bex.ConnectionError):
        return TransientError(f"{prefix}: network error: {exc}")
    return exc


@contextlib.contextmanager
def s3_errors(remote: str, bucket: str, what: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = translate(exc, remote=remote, bucket=bucket, what=what)
        if mapped is exc:
            raise
        raise mapped from exc
