"""Keeping credentials out of sight: redaction of everything the CLI prints or logs, and a warning
when a config file holding a literal secret can be read by other users.

Which config keys count as secrets (documented in docs/SECURITY.md): any key whose name contains
``secret``, ``password``, ``passwd``, ``private_key``, ``session_token``, ``access_token``,
``refresh_token`` or ``api_key``, or is exactly ``token`` -- e.g. ``aws_secret_access_key`` and
``aws_session_token`` of an s3 remote. Keys naming a file (``*_file``, ``*_path``) or an id
(``*_id``: ``aws_access_key_id``, ``sse_kms_key_id``) are not secrets. A value that is only a
``${ENV_VAR}`` reference is not a literal secret; anything else is.

The credential files a remote names (``service_account_file``, ``oauth_token_file``) hold a
private key or a refresh token, so they get the same permission check.

Redaction masks, in every line the CLI writes and every log record: the values of the secret
keys above after ``${ENV}`` expansion, the AWS secret and session token from the environment, and
patterns that are bearer capabilities whoever prints them (URL query signatures and upload
session ids, ``Bearer`` tokens, Google access tokens, PEM private keys).
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

MASK = "***"
MIN_SECRET_LEN = 6  # shorter values would mask ordinary words
_SECRET_NAME = re.compile(
    r"secret|password|passwd|private_key|session_token|access_token|refresh_token|api_key|^token$",
    re.IGNORECASE,
)
_NOT_SECRET_SUFFIX = ("_file", "_path", "_id", "_url")
_ENV_ONLY = re.compile(r"\s*\$\{[A-Za-z_][A-Za-z0-9_]*\}\s*")
CREDENTIAL_FILE_KEYS = ("service_account_file", "oauth_token_file")
ENV_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

_PATTERNS = [
    # query parameters that authorise a request on their own (presigned S3 URLs, Drive upload
    # session URIs, OAuth tokens in a URL)
    re.compile(
        r"(?i)\b((?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|upload_id"
        r"|access_token|refresh_token|client_secret|assertion)=)([^&\s'\"<>]+)"
    ),
    re.compile(r"(?i)\b(Bearer\s+)([A-Za-z0-9._~+/=-]{8,})"),
    re.compile(r"()(ya29\.[A-Za-z0-9._-]+)"),  # a Google OAuth access token
    re.compile(r"(?i)(\"?(?:aws_)?secret_access_key\"?\s*[:=]\s*\"?)([^\s\"',}]+)"),
]
_PEM = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL
)
_PEM_ESCAPED = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:\\n|[A-Za-z0-9+/=\s])*?-----END [A-Z ]*PRIVATE KEY-----"
)

_lock = threading.Lock()
_known: set[str] = set()


def is_secret_key(key: str) -> bool:
    k = str(key).lower()
    return not k.endswith(_NOT_SECRET_SUFFIX) and bool(_SECRET_NAME.search(k))


def register(values: Iterable[Any]) -> None:
    """Remember secret values so that every later redact() masks them."""
    with _lock:
        for value in values:
            if isinstance(value, str) and len(value.strip()) >= MIN_SECRET_LEN:
                _known.add(value.strip())


def forget(values: Iterable[Any]) -> None:
    """Stop masking these values (tests; a long-lived process whose config changed)."""
    with _lock:
        for value in values:
            if isinstance(value, str):
                _known.discard(value.strip())


def secret_values(settings: Any) -> list[str]:
    """The values of every secret key in ``settings`` (nested mappings and lists included)."""
    found: list[str] = []
    if isinstance(settings, Mapping):
        for key, value in settings.items():
            if is_secret_key(str(key)) and isinstance(value, str):
                found.append(value)
            else:
                found.extend(secret_values(value))
    elif isinstance(settings, list):
        for value in settings:
            found.extend(secret_values(value))
    return found


def register_environment() -> None:
    register(os.environ.get(name, "") for name in ENV_SECRETS)


def redact(text: str) -> str:
    """``text`` with every known secret and every bearer-capability pattern masked."""
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    text = _PEM.sub(MASK, text)
    text = _PEM_ESCAPED.sub(MASK, text)
    for pattern in _PATTERNS:
        text = pattern.sub(rf"\g<1>{MASK}", text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter: the formatted message (and traceback) of every record is redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


# -- config permissions -----------------------------------------------------------------------
def literal_secrets(block: Any, where: str = "MODEL_SAFETY") -> list[str]:
    """Dotted paths of secret keys in the raw (unexpanded) config block that hold a literal
    value instead of a ``${ENV_VAR}`` reference."""
    found: list[str] = []
    if isinstance(block, Mapping):
        for key, value in block.items():
            path = f"{where}.{key}"
            if is_secret_key(str(key)) and isinstance(value, str | int) and str(value).strip():
                if not _ENV_ONLY.fullmatch(str(value)):
                    found.append(path)
            else:
                found.extend(literal_secrets(value, path))
    elif isinstance(block, list):
        for i, value in enumerate(block):
            found.extend(literal_secrets(value, f"{where}[{i}]"))
    return found


def _readable_by_others(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) and bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def permission_warnings(
    config_file: Path, raw_block: Any, remotes: Iterable[Any] = ()
) -> list[str]:
    """Warnings for secrets other users can read: ``config_file`` holding a literal secret, and
    any credential file a remote names (``remotes``: RemoteConfig-like, with ``.settings``)."""
    warnings = []
    literal = literal_secrets(raw_block)
    if literal and _readable_by_others(config_file):
        mode = stat.S_IMODE(config_file.stat().st_mode)
        warnings.append(
            f"{config_file} holds a literal secret ({', '.join(literal)}) and is readable by "
            f"other users (mode {mode:o}): run `chmod 600 {config_file}`, or better, use "
            "${ENV_VAR} or a credentials profile instead"
        )
    for remote in remotes:
        for key in CREDENTIAL_FILE_KEYS:
            value = remote.settings.get(key)
            if isinstance(value, str) and value and _readable_by_others(Path(value)):
                mode = stat.S_IMODE(Path(value).stat().st_mode)
                warnings.append(
                    f"remote {remote.name}: {key} {value} holds credentials and is readable by "
                    f"other users (mode {mode:o}): run `chmod 600 {value}`"
                )
    return warnings


def config_warnings(config: Any) -> list[str]:
    """permission_warnings for a loaded agent Config (the file is read again, unexpanded, so a
    ``${ENV_VAR}`` reference is told apart from a literal)."""
    import yaml

    path = Path(config.path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return []
    block = doc.get("MODEL_SAFETY") if isinstance(doc, Mapping) else None
    return permission_warnings(path, block, config.remotes)


ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: Any, where: str) -> Any:
    """Expand ${VAR} in every string of a config value, recursively (``where``: its key, for
    the error naming an unset variable)."""
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            var = match.group(1)
            if var not in os.environ:
                raise ConfigError(f"{where}: environment variable ${{{var}}} is not set")
            return os.environ[var]

        return ENV_RE.sub(repl, value)
    if isinstance(value, Mapping):
        return {k: expand_env(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value
