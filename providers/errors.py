"""Provider errors: one family, each also a builtin where one fits.

Only a backend (providers.local, providers.s3, providers.gdrive) translates SDK exceptions into
these, always with the SDK's exception chained (``raise NotFound(...) from exc``), so callers
never import boto3 or pydrive2 exception types and still get ``FileNotFoundError`` /
``PermissionError`` semantics.
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base of every error a provider raises on purpose."""


class ConfigError(ProviderError, ValueError):
    """The remote's settings are wrong or its SDK is not installed; the message says what to fix."""


class NotFound(ProviderError, FileNotFoundError):
    """The key (or the bucket / folder) does not exist."""


class PermissionDenied(ProviderError, PermissionError):
    """Credentials are wrong or lack a permission. Never retried."""


class QuotaExceeded(ProviderError):
    """The remote is full or the account's storage quota is used up. Never retried."""


class TransientError(ProviderError):
    """A failure worth retrying: timeout, reset connection, 5xx, throttling, rate limit."""


class IntegrityError(ProviderError):
    """Size or checksum of transferred bytes does not match what was expected."""


class PreconditionFailed(ProviderError):
    """A conditional write lost the race: the object changed (or appeared) since it was read."""


class NotSupported(ProviderError):
    """The server lacks an operation the provider's capabilities offered (an S3-compatible
    server without UploadPartCopy, say): the caller falls back to the plain operation."""
