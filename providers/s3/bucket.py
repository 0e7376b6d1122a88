"""The handle every S3 request of this backend goes through."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bucket:
    """The botocore client, the bucket's name and the backend's error-translating context
    manager (``with errors(what): ...`` turns botocore exceptions into provider errors)."""

    client: Any
    name: str
    errors: Callable[[str], Any]
