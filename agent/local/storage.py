"""The seed's storage calculation for one model on this machine: the bytes its files take here
(stored), the model bytes they hold (logical: a copy stored compressed counts what it holds, not
its compressed file), what compression saved, and whether the next full version fits beside the
free space ``min_free_space_gb`` keeps."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.local.store import Store


def copy_bytes(store: Store, name: str, size_of: Callable[[Store, str], int]) -> tuple[int, int]:
    """(stored, logical) bytes of one file of models_dir. A copy stored compressed has its
    compressed file's size recorded as ``stored_size`` beside its model bytes (``size``); any
    other file is stored as it is, so both are what the disk holds."""
    entry = store.catalog.entries.get(name)
    # getattr: catalog entries written before compression have no such field
    stored = getattr(entry, "stored_size", None) if entry is not None else None
    if entry is not None and stored is not None:
        return int(stored), entry.size
    size = size_of(store, name)
    return size, size


def local_side(
    store: Store,
    names: Iterable[str],
    *,
    next_version: int,
    free: int,
    keep_free: int,
    size_of: Callable[[Store, str], int],
) -> dict[str, Any]:
    """``names``: the model's files here (current, companions, every copy); ``next_version``:
    the bytes a new full version takes (the current file and its companions: a new version is
    never stored compressed)."""
    stored = logical = 0
    for name in names:
        s, lg = copy_bytes(store, name, size_of)
        stored += s
        logical += lg
    return {
        "stored_bytes": stored,
        "logical_bytes": logical,
        "compression_saved_bytes": logical - stored,
        "next_version_bytes": next_version,
        "free_bytes": free,
        "min_free_bytes": keep_free,
        "next_version_fits": free - next_version >= keep_free,
    }
