"""The settings of an ``s3`` remote, as one frozen value (s3transfer's ``TransferConfig`` is the
model, and its key names are kept), and the botocore client they describe.

Keys (a ``remotes:`` entry): ``bucket`` (required), ``prefix``, ``region``, ``endpoint_url``,
``profile`` (a profile of the AWS shared credentials/config files; otherwise boto3's usual chain:
environment, files, instance role), ``aws_access_key_id`` / ``aws_secret_access_key`` /
``aws_session_token`` (write them as ``${ENV_VAR}`` references, never literally),
``storage_class``, ``sse`` (``AES256`` or ``aws:kms``), ``sse_kms_key_id``, and transfer settings
with s3transfer's names: ``multipart_threshold``, ``multipart_chunksize`` (both default 8 MiB;
sizes may be written "8MiB"), ``max_request_concurrency`` (default 10); ``connect_timeout`` /
``read_timeout`` in seconds.

``part_checksum`` (``crc32`` or ``md5``, default ``crc32``): the checksum sent with every uploaded
part and single-part object, which the server verifies before it stores the bytes (a corrupted
request is rejected, never stored). ``crc32`` is sent as ``x-amz-checksum-crc32`` and costs far
less CPU; choose ``md5`` (sent as ``Content-MD5``) for an older S3-compatible server that does
not support the ``x-amz-checksum-*`` headers. Changing it does not break a resumed upload: an
interrupted upload made with the other checksum is aborted and started again.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from providers.config import check_backend, parse_size
from providers.errors import ConfigError

MIB = 1024**2
SINGLE_PUT_LIMIT = 64 * MIB  # above this, multipart even if multipart_threshold is larger
# Per-part checksum algorithms: CRC32 (zlib, ~3 GB/s) is the default; MD5 (~650 MB/s) is for
# S3-compatible servers that predate the flexible-checksum headers.
PART_CHECKSUMS = ("crc32", "md5")
_SIZES = ("multipart_threshold", "multipart_chunksize")


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    storage_class: str | None = None
    sse: str | None = None
    sse_kms_key_id: str | None = None
    multipart_threshold: int = 8 * MIB
    multipart_chunksize: int = 8 * MIB
    max_request_concurrency: int = 10
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    part_checksum: str = "crc32"
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None

    def __post_init__(self) -> None:
        if self.part_checksum not in PART_CHECKSUMS:
            raise ConfigError(
                f"part_checksum must be {' or '.join(PART_CHECKSUMS)}, not {self.part_checksum!r}"
            )

    @classmethod
    def from_settings(cls, name: str, settings: Mapping[str, Any]) -> S3Settings:
        """Check and convert one ``remotes:`` entry (the agent's keys removed)."""
        check_backend(name, "s3", settings)
        values: dict[str, Any] = {k: v for k, v in settings.items() if v not in (None, "")}
        checksum = str(values.get("part_checksum", "crc32")).lower()
        if checksum not in PART_CHECKSUMS:
            raise ConfigError(
                f"remote {name!r}: part_checksum must be {' or '.join(PART_CHECKSUMS)}, "
                f"not {settings['part_checksum']!r}"
            )
        values["part_checksum"] = checksum
        for key in ("multipart_threshold", "multipart_chunksize"):
            if key in values:
                values[key] = parse_size(values[key], name)
        converters: dict[str, Callable[[Any], Any]] = {
            "max_request_concurrency": int, "connect_timeout": float, "read_timeout": float,
        }  # fmt: skip
        for key, value in values.items():
            values[key] = converters.get(key, str)(value) if key not in _SIZES else value
        return cls(**values)

    @property
    def key_prefix(self) -> str:
        """``prefix`` as prepended to keys: no leading slash, one trailing slash (or empty)."""
        prefix = self.prefix.strip("/")
        return prefix + "/" if prefix else ""

    @property
    def threshold(self) -> int:
        """The size above which a put is a multipart upload."""
        return min(self.multipart_threshold, SINGLE_PUT_LIMIT)

    @property
    def concurrency(self) -> int:
        return max(1, self.max_request_concurrency)

    @property
    def put_args(self) -> dict[str, str]:
        """Extra arguments of every request that creates an object."""
        extra: dict[str, str] = {}
        if self.storage_class:
            extra["StorageClass"] = self.storage_class
        if self.sse:
            extra["ServerSideEncryption"] = self.sse
        if self.sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.sse_kms_key_id
        return extra

    @property
    def etag_may_be_md5(self) -> bool:
        """A plain (single-part) ETag is the md5 of the bytes, except under SSE-KMS / SSE-C."""
        return self.sse in (None, "AES256")


def make_client(name: str, settings: S3Settings) -> Any:
    """The botocore S3 client for ``settings``; no request is sent. botocore's own retries are
    off (one attempt): retrying is the job of providers.retry."""
    _import_botocore_without_pyopenssl()
    import boto3  # lazily: only an opened s3 remote needs boto3
    import botocore.config
    import botocore.exceptions

    config = botocore.config.Config(
        region_name=settings.region,
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=settings.max_request_concurrency + 2,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        # S3-compatible servers are addressed by path; AWS picks virtual hosts itself.
        # payload_signing_enabled=False: over plain http botocore would otherwise sha256 every
        # request body for the signature (~0.35 s CPU per 400 MB), which protects nothing our
        # server-verified per-part checksum does not (over https it already sends
        # UNSIGNED-PAYLOAD with a checksum).
        s3={
            "addressing_style": "path" if settings.endpoint_url else "auto",
            "payload_signing_enabled": False,
        },
        # We send our own checksum per part; botocore's default extra CRC32 would cost a
        # second pass over every byte for no added protection.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    try:
        session = boto3.session.Session(
            profile_name=settings.profile,
            region_name=settings.region,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            aws_session_token=settings.aws_session_token,
        )
        return session.client("s3", endpoint_url=settings.endpoint_url, config=config)
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigError(f"remote {name!r}: {exc}; fix profile:") from exc


def _import_botocore_without_pyopenssl() -> None:
    """Import botocore.httpsession without urllib3.contrib.pyopenssl: botocore imports it only to
    get back the standard library's ``ssl.SSLContext`` (its fallback, urllib3.util.ssl_, gives
    the same class), and where pyOpenSSL is installed (pydrive2 brings it) that import loads
    pyOpenSSL and cryptography: ~30 ms of the start-up of every command that opens an s3 remote.
    The block is lifted at once, so anything else may still import the module."""
    name = "urllib3.contrib.pyopenssl"
    if "botocore.httpsession" in sys.modules or name in sys.modules:
        return
    sys.modules[name] = None  # type: ignore[assignment]  # makes `import` raise ImportError
    try:
        import botocore.httpsession  # noqa: F401
    finally:
        if sys.modules.get(name, 0) is None:
            del sys.modules[name]
