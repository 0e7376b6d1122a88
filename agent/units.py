"""Byte counts for people: one convention everywhere (tables, summaries, warnings, progress).

Binary units with their IEC labels (KiB, MiB, GiB), as ``ls -h``, ``du -h`` and rclone show them,
so a size here matches the one the user's other tools print for the same file. ``--json`` keeps
exact byte counts.
"""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
KIB = 1024
MIB = 1024**2
GIB = 1024**3


def human_size(n: int | float) -> str:
    """``512`` -> ``512 B``; ``200001633`` -> ``190.7 MiB``."""
    if abs(n) < 1024:
        return f"{n:.0f} B"
    size = n / 1024
    for unit in UNITS[1:-1]:
        if abs(size) < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} {UNITS[-1]}"
