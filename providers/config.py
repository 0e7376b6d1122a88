"""Validation of a remote's backend settings, shared by every backend's ``from_settings``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from providers.errors import ConfigError


def check_settings(
    remote: str,
    settings: Mapping[str, Any],
    *,
    allowed: Iterable[str],
    required: Iterable[str] = (),
) -> None:
    """Unknown keys fail with the nearest valid name; missing required keys fail by name."""
    allowed = sorted(set(allowed) | set(required))
    for key in settings:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
            hint = f"did you mean {near[0]!r}?" if near else f"valid keys: {', '.join(allowed)}"
            raise ConfigError(f"remote {remote!r}: unknown setting {key!r}; {hint}")
    for key in required:
        if settings.get(key) in (None, ""):
            raise ConfigError(f"remote {remote!r}: setting {key!r} is required")


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
