"""Google Drive plumbing: pydrive2 authentication, the Drive v2 service, and the error table.

Only this package imports pydrive2 / googleapiclient / oauth2client, and only when a
gdrive remote is opened. Authentication is pydrive2's (``GoogleAuth.ServiceAuth`` for a
service-account key file, ``LoadCredentialsFile`` for an OAuth token file); oauth2client honours
the ``token_uri`` written in either file, so an emulator or a gateway works offline.

``root_url`` (an emulator or a gateway) is applied by loading the discovery document shipped with
google-api-python-client, replacing ``rootUrl`` / ``baseUrl`` and building with
``build_from_document``. ``client_options.api_endpoint`` is not used on purpose: upload URLs would
keep ``https://www.googleapis.com``. The Http object comes from ``GoogleAuth._build_http()``
because a plain ``httplib2.Http`` follows resumable-upload 308 replies as redirects.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from providers.errors import (
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ProviderError,
    QuotaExceeded,
    TransientError,
)

log = logging.getLogger(__name__)

SCOPES = ["https://www.googleapis.com/auth/drive"]
# 403 reasons Google documents as "slow down and retry".
RATE_LIMIT_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded"})
QUOTA_REASONS = frozenset({"storageQuotaExceeded", "quotaExceeded"})


@dataclass
class DriveSession:
    auth: Any  # pydrive2.auth.GoogleAuth, with .credentials, .http and .service set
    service: Any  # googleapiclient Resource for drive v2
    identity: str  # who we are, for error messages (service-account email or "OAuth token")


def _discovery_document(root_url: str | None) -> dict[str, Any]:
    text = (
        resources.files("googleapiclient")
        .joinpath("discovery_cache/documents/drive.v2.json")
        .read_text(encoding="utf-8")
    )
    doc = json.loads(text)
    if root_url:
        root = root_url.rstrip("/") + "/"
        doc["rootUrl"] = root
        doc["baseUrl"] = root + doc["servicePath"]
    return doc


def connect(
    remote: str,
    *,
    service_account_file: Path | None,
    oauth_token_file: Path | None,
    root_url: str | None,
    http_timeout: float,
) -> DriveSession:
    """Build an authorised Drive v2 service. No request is sent: the first API call fetches the
    access token, so bad credentials surface there (and are translated by ``translate``)."""
    from googleapiclient.discovery import build_from_document
    from pydrive2.auth import GoogleAuth

    if service_account_file is not None:
        auth = GoogleAuth(
            settings={
                "client_config_backend": "service",
                "service_config": {"client_json_file_path": str(service_account_file)},
                "oauth_scope": SCOPES,
            },
            http_timeout=http_timeout,
        )
        try:
            auth.ServiceAuth()
        except (ValueError, KeyError, OSError) as exc:
            raise PermissionDenied(
                f"remote {remote!r}: cannot use service_account_file {service_account_file}: {exc}"
                " (expected a Google service-account JSON key)"
            ) from exc
        identity = getattr(auth.credentials, "service_account_email", None) or "service account"
    else:
        auth = GoogleAuth(settings={"oauth_scope": SCOPES}, http_timeout=http_timeout)
        try:
            auth.LoadCredentialsFile(str(oauth_token_file))
        except Exception as exc:
            raise PermissionDenied(
                f"remote {remote!r}: cannot read oauth_token_file {oauth_token_file}: {exc}"
            ) from exc
        if auth.credentials is None:
            raise PermissionDenied(
                f"remote {remote!r}: oauth_token_file {oauth_token_file} holds no credentials"
            )
        identity = f"the OAuth token in {oauth_token_file}"
    http = auth.credentials.authorize(auth._build_http())
    service = build_from_document(_discovery_document(root_url), http=http)
    auth.http, auth.service = http, service
    return DriveSession(auth, service, identity)


def _reason(content: bytes | str | None) -> str:
    """The first ``errors[].reason`` of a Drive error body; "" for a non-JSON body."""
    try:
        body = json.loads(content or b"{}")
        return str(body.get("error", {}).get("errors", [{}])[0].get("reason", ""))
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""


def translate(exc: BaseException, remote: str, what: str, identity: str = "") -> ProviderError:
    """The one error table: SDK / transport exception -> our error (caller chains ``from exc``)."""
    import httplib2
    from googleapiclient.errors import HttpError
    from oauth2client.client import AccessTokenRefreshError, HttpAccessTokenRefreshError

    where = f"remote {remote!r}: {what}"
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, HttpError):
        status, reason = exc.resp.status, _reason(exc.content)
        if status == 404:
            return NotFound(f"{where}: not found on Google Drive")
        if status == 412:
            return PreconditionFailed(f"{where}: the file changed since it was read (etag)")
        if status == 401:
            return PermissionDenied(f"{where}: Drive rejected the credentials of {identity}")
        if status == 403 and reason in RATE_LIMIT_REASONS:
            return TransientError(f"{where}: Drive rate limit ({reason})")
        if status == 403 and reason in QUOTA_REASONS:
            return QuotaExceeded(f"{where}: Drive storage quota exceeded ({reason}); free space")
        if status == 403:
            return PermissionDenied(
                f"{where}: permission denied ({reason or 'forbidden'}); share the folder with"
                f" {identity} as an editor"
            )
        if status in (408, 429) or status >= 500:
            return TransientError(f"{where}: Drive answered HTTP {status} {reason}".rstrip())
        return ProviderError(f"{where}: Drive answered HTTP {status} {reason}".rstrip())
    if isinstance(exc, HttpAccessTokenRefreshError) and (exc.status or 0) >= 500:
        return TransientError(f"{where}: token endpoint answered HTTP {exc.status}")
    if isinstance(exc, AccessTokenRefreshError):
        return PermissionDenied(
            f"{where}: could not get an access token for {identity} ({exc}); check the"
            " credentials file (key, client_email, token_uri)"
        )
    if isinstance(exc, json.JSONDecodeError):
        # A proxy's HTML error page where Drive JSON was expected.
        return TransientError(f"{where}: non-JSON reply from the server ({exc})")
    if isinstance(exc, httplib2.HttpLib2Error | OSError):
        return TransientError(f"{where}: network error: {exc!r}")
    return ProviderError(f"{where}: unexpected error {exc!r}")
