"""The keys a remote entry may hold, per backend, and their validation.

This is the one list of each backend's settings: the config loader checks a ``remotes:`` entry
against it when the file is read (every command, even one that never opens the remote), and each
backend's ``from_settings`` checks against it again. It imports no SDK, so checking a config
never loads boto3 or pydrive2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from providers.errors import ConfigError

# Keys of every remote entry that belong to the agent, not to the backend.
COMMON_KEYS = ("type", "auto_push", "retention", "retry", "compression")
# The keys of a remote's ``retry:`` mapping (providers.retry.RetryPolicy's fields).
RETRY_KEYS = ("attempts", "max_delay", "initial_wait", "max_wait", "jitter")


@dataclass(frozen=True)
class BackendKeys:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def allowed(self) -> tuple[str, ...]:
        return (*self.required, *self.optional)


BACKEND_KEYS: dict[str, BackendKeys] = {
    "local": BackendKeys(required=("path",)),
    "s3": BackendKeys(
        required=("bucket",),
        optional=(
            "prefix",
            "region",
            "endpoint_url",
            "profile",
            "storage_class",
            "sse",
            "sse_kms_key_id",
            "multipart_threshold",
            "multipart_chunksize",
            "max_request_concurrency",
            "connect_timeout",
            "read_timeout",
            "part_checksum",
            # Credentials in the config are meant as ${ENV_VAR} references (agent.secrets warns
            # about a literal secret in a file others can read); without them boto3's chain applies.
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
        ),
    ),
    "gdrive": BackendKeys(
        required=("folder_id",),
        optional=(
            "service_account_file",
            "oauth_token_file",
            "root_url",
            "chunk_size",
            "download_chunk_size",
            "chunk_retries",
            "chunk_retry_wait",
            "http_timeout",
            "page_size",
            "delete_mode",
        ),
    ),
}


def remote_problem(settings: Mapping[str, Any]) -> str | None:
    """What is wrong with the keys of one ``remotes:`` entry (``type`` included), as a phrase
    without the remote's name, or None. Values are the backends' business."""
    kind = settings.get("type")
    types = ", ".join(sorted(BACKEND_KEYS))
    if kind is None:
        # a misspelt ``type`` is more likely than a missing one: name it
        every = {*COMMON_KEYS, *(k for b in BACKEND_KEYS.values() for k in b.allowed)}
        return unknown_key_problem(settings, every) or f"'type' is required: one of {types}"
    if not isinstance(kind, str) or kind not in BACKEND_KEYS:
        near = difflib.get_close_matches(str(kind), list(BACKEND_KEYS), n=1, cutoff=0.5)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return f"unknown type {kind!r}{hint}; valid types: {types}"
    keys = BACKEND_KEYS[kind]
    problem = unknown_key_problem(settings, (*COMMON_KEYS, *keys.allowed))
    if problem:
        return problem
    for key in keys.required:
        if settings.get(key) in (None, ""):
            return f"missing required key {key!r} (required for type {kind})"
    retry = settings.get("retry")
    if isinstance(retry, Mapping):
        problem = unknown_key_problem(retry, RETRY_KEYS)
        if problem:
            return f"retry: {problem}"
    return None


def unknown_key_problem(settings: Mapping[str, Any], valid: Iterable[str]) -> str | None:
    """``unknown key 'x' (did you mean 'y'?)`` for the first key not in ``valid``, or None."""
    valid = sorted(set(valid))
    for key in settings:
        if key not in valid:
            near = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
            hint = f"did you mean {near[0]!r}?" if near else f"valid keys: {', '.join(valid)}"
            return f"unknown key {key!r} ({hint})"
    return None


def check_remote(name: str, settings: Mapping[str, Any]) -> None:
    """Raise a ConfigError naming remote ``name`` when its entry's keys are wrong."""
    problem = remote_problem(settings)
    if problem:
        raise ConfigError(f"remote {name!r}: {problem}")


def check_backend(name: str, kind: str, settings: Mapping[str, Any]) -> None:
    """A backend's own check of its settings (the agent's keys already removed), for callers that
    open a provider without going through the config loader."""
    check_remote(name, {**settings, "type": kind})


def parse_size(value: Any, what: str) -> int:
    """Sizes as ints or strings with a binary suffix: 8388608, "8MiB", "8MB" (treated as MiB)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().lower().replace(" ", "")
    units = {"kib": 1 << 10, "kb": 1 << 10, "k": 1 << 10, "mib": 1 << 20, "mb": 1 << 20}
    units |= {"m": 1 << 20, "gib": 1 << 30, "gb": 1 << 30, "g": 1 << 30, "b": 1, "": 1}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            number = text[: len(text) - len(suffix)]
            try:
                return int(float(number) * units[suffix])
            except ValueError:
                break
    raise ConfigError(f"{what}: cannot read {value!r} as a size (e.g. 8388608 or '8MiB')")
