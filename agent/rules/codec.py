"""How a copy is stored: the codec names, their config values and their file-name suffixes.
Pure, no I/O.

A compressed copy keeps the seed's name plus the codec's suffix:
``dinesh_ai_model_v2026-11-30.pth`` stored with zstd is ``dinesh_ai_model_v2026-11-30.pth.zst``,
one standard zstd frame (content checksum on) that the stock ``zstd -d`` turns back into the
``.pth``. Only dated versions are ever compressed: the current file and the backup slot stay plain
so a restore from the backup stays one rename away.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NONE = "none"
ZSTD = "zstd"
CHOICES = (NONE, ZSTD)
SUFFIX = {ZSTD: ".zst"}
# zstd's own default level: the CLI comparisons in bench/compression.py use the same one.
ZSTD_LEVEL = 3


def check_setting(value: object, key: str) -> str:
    """The config value of ``compression:`` (None for none), or a ValueError naming ``key``."""
    if value is None or value is False:
        return NONE
    if not isinstance(value, str) or value.strip().lower() not in CHOICES:
        raise ValueError(f"{key}: must be one of {', '.join(CHOICES)}, got {value!r}")
    return value.strip().lower()


def setting(block: Mapping[str, Any], where: str, *, top: bool = False) -> str:
    """``compression:`` of a config block (the top level's, or a remote's), checked; at the top
    level ``compress_after_days`` needs it. A ValueError names the key."""
    value = check_setting(block.get("compression"), f"{where}.compression")
    if top and "compress_after_days" in block and value == NONE:
        raise ValueError(
            f"{where}.compress_after_days: set compression: zstd too (it says which versions "
            "turn compressed; with compression: none none ever do)"
        )
    return value


def codec_of(name: str) -> str | None:
    """The codec a stored file's name says it holds, None for a plain file."""
    for codec, suffix in SUFFIX.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return codec
    return None


def plain_name(name: str) -> str:
    """The model file's name without the codec suffix (``x_v2026-11-30.pth.zst`` -> ``.pth``)."""
    codec = codec_of(name)
    return name[: -len(SUFFIX[codec])] if codec else name


def stored_name(name: str, codec: str | None) -> str:
    """The name of ``name``'s copy stored with ``codec`` (``none``/None: the name itself)."""
    if codec in (None, NONE):
        return name
    return plain_name(name) + SUFFIX[codec]
