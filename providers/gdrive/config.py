"""The settings of a ``gdrive`` remote, as one frozen value.

Keys (a ``remotes:`` entry): ``folder_id`` (required); exactly one of ``service_account_file`` or
``oauth_token_file``; ``root_url`` (an emulator or a gateway); ``chunk_size`` (upload chunks, a
multiple of 256 KiB, default 8 MiB) and ``download_chunk_size`` (default 16 MiB), sizes as ints
or "8MiB"; ``chunk_retries`` / ``chunk_retry_wait`` (the in-call resume budget of a stalled
chunk); ``http_timeout`` in seconds; ``page_size`` of listings; ``delete_mode`` (``trash``, the
default, or ``delete`` for good).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from providers.config import check_backend, parse_size
from providers.errors import ConfigError

MiB = 1 << 20


@dataclass(frozen=True)
class DriveSettings:
    folder_id: str
    service_account_file: Path | None = None
    oauth_token_file: Path | None = None
    root_url: str | None = None
    chunk_size: int = 8 * MiB
    download_chunk_size: int = 16 * MiB
    chunk_retries: int = 5
    chunk_retry_wait: float = 1.0
    http_timeout: float = 60.0
    page_size: int = 1000
    delete_mode: str = "trash"

    @classmethod
    def from_settings(cls, name: str, settings: Mapping[str, Any]) -> DriveSettings:
        """Check and convert one ``remotes:`` entry (the agent's keys removed)."""
        check_backend(name, "gdrive", settings)
        sa, token = settings.get("service_account_file"), settings.get("oauth_token_file")
        if bool(sa) == bool(token):
            raise ConfigError(
                f"remote {name!r}: set exactly one of service_account_file or oauth_token_file"
            )
        cred = Path(str(sa or token)).expanduser()
        if not cred.is_file():
            which = "service_account_file" if sa else "oauth_token_file"
            raise ConfigError(f"remote {name!r}: {which} {cred} does not exist")
        chunk = parse_size(settings.get("chunk_size", 8 * MiB), f"remote {name!r}: chunk_size")
        if chunk <= 0 or chunk % (256 * 1024):
            # Drive rejects resumable chunks that are not multiples of 256 KiB (except the last).
            raise ConfigError(f"remote {name!r}: chunk_size must be a multiple of 256 KiB")
        mode = settings.get("delete_mode", "trash")
        if mode not in ("trash", "delete"):
            raise ConfigError(f"remote {name!r}: delete_mode must be 'trash' or 'delete'")
        return cls(
            folder_id=str(settings["folder_id"]),
            service_account_file=cred if sa else None,
            oauth_token_file=cred if token else None,
            root_url=settings.get("root_url"),
            chunk_size=chunk,
            download_chunk_size=parse_size(
                settings.get("download_chunk_size", 16 * MiB), "download_chunk_size"
            ),
            chunk_retries=int(settings.get("chunk_retries", 5)),
            chunk_retry_wait=float(settings.get("chunk_retry_wait", 1.0)),
            http_timeout=float(settings.get("http_timeout", 60.0)),
            page_size=int(settings.get("page_size", 1000)),
            delete_mode=mode,
        )
