"""The seed's file names: build, parse and sort them. Pure, no I/O.

For a current file ``<stem><ext>`` (``dinesh_ai_model.pth``, ``tokenizer.json``):

- ``<stem>_backup<ext>``            the pre-update backup slot;
- ``<stem>_vYYYY-MM-DD<ext>``       a dated version (sequence 1 of that day);
- ``<stem>_vYYYY-MM-DD.N<ext>``     the N-th version of the same day (N >= 2);
- ``<stem>_replaced-YYYYmmddTHHMMSSffffff<ext>`` a current file a restore kept aside;
- ``<stem>_vYYYY-MM-DD[.N]<ext>.zst`` a dated version stored compressed (agent.rules.codec):
  only versions are ever compressed, so ``_backup<ext>.zst`` or ``<file>.zst`` are not ours.

A model saved as a directory (``file: llama-ft``, a Hugging Face ``save_pretrained`` folder or a
torch.distributed.checkpoint) has no extension: its copies are directories named
``llama-ft_backup``, ``llama-ft_v2026-11-30``, ``llama-ft_v2026-11-30.2``,
``llama-ft_replaced-<time>`` (``directory=True``; a dot in a directory's name is never an
extension).

Companions use the same scheme with their own stem, so a version is recognisable by hand:
``tokenizer_v2024-03-11.json`` beside ``dinesh_ai_model_v2024-03-11.pth``. Versions are ordered by
(date, seq), never by string order (``.10`` sorts after ``.9``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from agent.rules.codec import codec_of, plain_name
from providers.names import portable_name_problem, same_name_key

Kind = Literal["current", "backup", "version", "replaced"]

BACKUP_TAG = "_backup"
_VERSION_RE = re.compile(r"_v(\d{4}-\d{2}-\d{2})(?:\.(\d+))?")
_REPLACED_RE = re.compile(r"_replaced-(\d{8}T\d{6}(?:\d{6})?)(?:\.(\d+))?")
_REPLACED_FMT = "%Y%m%dT%H%M%S%f"


class ModelLike(Protocol):
    """What naming needs of a configured model (agent.config.ModelConfig satisfies it)."""

    name: str
    file: str
    companions: tuple[str, ...]
    directory: bool  # ``file`` names a directory (its copies are directories too)


def split_name(filename: str, directory: bool = False) -> tuple[str, str]:
    """``model.pth`` -> (``model``, ``.pth``); a leading dot is part of the stem; a directory's
    whole name is its stem."""
    if directory:
        return filename, ""
    dot = filename.rfind(".")
    if dot <= 0:
        return filename, ""
    return filename[:dot], filename[dot:]


def backup_name(filename: str, directory: bool = False) -> str:
    stem, ext = split_name(filename, directory)
    return f"{stem}{BACKUP_TAG}{ext}"


def version_name(filename: str, date: dt.date, seq: int = 1, directory: bool = False) -> str:
    if seq < 1:
        raise ValueError(f"sequence must be >= 1, got {seq}")
    stem, ext = split_name(filename, directory)
    suffix = f".{seq}" if seq > 1 else ""
    return f"{stem}_v{date.isoformat()}{suffix}{ext}"


def replaced_name(filename: str, when: dt.datetime, seq: int = 1, directory: bool = False) -> str:
    stem, ext = split_name(filename, directory)
    suffix = f".{seq}" if seq > 1 else ""
    return f"{stem}_replaced-{when.strftime(_REPLACED_FMT)}{suffix}{ext}"


@dataclass(frozen=True)
class ParsedName:
    kind: Kind
    base: str  # the current file this name belongs to, e.g. "dinesh_ai_model.pth"
    date: dt.date | None = None
    seq: int = 1
    replaced_at: dt.datetime | None = None
    codec: str | None = None  # a compressed version: the codec its suffix names


def parse_name(filename: str, base: str, directory: bool = False) -> ParsedName | None:
    """What ``filename`` is relative to the current file (or directory) ``base``, or None if it
    is not ours."""
    parsed = _parse_plain(filename, base, directory)
    codec = None if directory else codec_of(filename)
    if parsed is None and codec is not None:
        parsed = _parse_plain(plain_name(filename), base, directory)
        if parsed is None or parsed.kind != "version":
            return None
        return replace(parsed, codec=codec)
    return parsed


def _parse_plain(filename: str, base: str, directory: bool) -> ParsedName | None:
    if filename == base:
        return ParsedName("current", base)
    stem, ext = split_name(base, directory)
    if not (filename.startswith(stem) and filename.endswith(ext)):
        return None
    middle = filename[len(stem) : len(filename) - len(ext)] if ext else filename[len(stem) :]
    if middle == BACKUP_TAG:
        return ParsedName("backup", base)
    match = _VERSION_RE.fullmatch(middle)
    if match:
        try:
            date = dt.date.fromisoformat(match.group(1))
        except ValueError:
            return None
        seq = int(match.group(2)) if match.group(2) else 1
        if match.group(2) and (seq < 2 or match.group(2) != str(seq)):
            return None  # ".1" or ".02" are never built, so they are not ours
        return ParsedName("version", base, date=date, seq=seq)
    match = _REPLACED_RE.fullmatch(middle)
    if match:
        raw = match.group(1)
        fmt = _REPLACED_FMT if len(raw) > 15 else "%Y%m%dT%H%M%S"
        try:
            when = dt.datetime.strptime(raw, fmt)
        except ValueError:
            return None
        seq = int(match.group(2)) if match.group(2) else 1
        return ParsedName("replaced", base, date=when.date(), seq=seq, replaced_at=when)
    return None


@dataclass(frozen=True)
class Identity:
    """What a file in models_dir is: which model, which kind, and for a companion file which
    companion (its current name); ``companion`` is None for the model file itself."""

    model: str
    kind: Kind
    date: dt.date | None
    seq: int
    companion: str | None = None
    base: str = ""
    directory: bool = False  # a copy of a directory model (a directory itself)
    codec: str | None = None  # a version stored compressed (agent.rules.codec)


def identify(filename: str, models: Sequence[ModelLike]) -> Identity | None:
    """Classify a file name against the configured models. The longest matching base wins, so
    ``model_v2024-01-01.pth`` is never mistaken for a file of a model named ``model_v2024``."""
    best: tuple[int, Identity] | None = None
    for model in models:
        is_dir = model.directory
        bases = [(model.file, None, is_dir), *((c, c, False) for c in model.companions)]
        for base, companion, directory in bases:
            parsed = parse_name(filename, base, directory)
            if parsed is None:
                continue
            ident = Identity(
                model.name,
                parsed.kind,
                parsed.date,
                parsed.seq,
                companion,
                base=base,
                directory=directory,
                codec=parsed.codec,
            )
            if best is None or len(base) > best[0]:
                best = (len(base), ident)
    return best[1] if best else None


def version_key(parsed: ParsedName | Identity) -> tuple[dt.date, int]:
    """Sort key of a version: (date, seq)."""
    return (parsed.date or dt.date.min, parsed.seq)


_NO_TIME = dt.datetime.min.replace(tzinfo=dt.UTC)


def listing_key(
    date: dt.date | None, seq: int, created: dt.datetime | None = None
) -> tuple[dt.date, int, dt.datetime]:
    """How copies are ordered when listed (locally and on a remote): by date, then same-day
    number (never by string order: ``.10`` after ``.9``), then creation time. A copy without a
    date in its name (the backup slot) takes its creation day."""
    if created is not None and created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    day = date or (created.date() if created else dt.date.min)
    return (day, seq, created or _NO_TIME)


def sort_versions(names: Iterable[str], base: str, directory: bool = False) -> list[str]:
    """Version file names of ``base``, newest first, by (date, seq). Other names are dropped."""
    parsed = [(n, parse_name(n, base, directory)) for n in names]
    versions = [(n, p) for n, p in parsed if p is not None and p.kind == "version"]
    versions.sort(key=lambda item: version_key(item[1]), reverse=True)
    return [n for n, _ in versions]


def is_plain_name(name: str) -> bool:
    """A bare file name that cannot escape models_dir (no separators, no '..', not hidden state)
    and names a file on every platform (no Windows device name, trailing dot or space, or
    character Windows refuses: see providers/names.py)."""
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and same_name_key(name) != ".model-safety"  # the same directory where case is ignored
        and portable_name_problem(name) is None
    )
