"""The CLI's output shapes: the one table style of the listings (local and remote ``list``), a
header line then one row per copy, columns padded to their widest cell; trailing blanks trimmed."""

from __future__ import annotations

from collections.abc import Sequence

from agent.rules.retention import Decision

# The columns both listings share, in this order; each listing adds its own after SHA256/STATE.
NAME, KIND, DATE, SIZE, SHA256, STATE, NOTE = (
    "NAME",
    "KIND",
    "DATE",
    "SIZE",
    "SHA256",
    "STATE",
    "NOTE",
)
SHA_PREFIX = 12


def render(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of the table; a cell holding a line break is shown on one line."""
    cells = [list(header), *([" ".join(str(c).split()) for c in r] for r in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]


def print_decisions(  # type: ignore[no-untyped-def]
    app,
    decisions: list[Decision],
    dry_run: bool,
    nothing: str = "no dated versions to prune",
    side: str = "",
) -> None:
    """``side``: a prefix such as ``local: `` where remote decisions are printed too."""
    for d in decisions:
        verb = "keep  " if d.keep else ("would delete" if dry_run else "delete")
        app.out(f"{side}{verb}  {d.name}: {'; '.join(d.reasons)}")
    if not decisions:
        app.out(nothing)
