"""Healing a damaged directory copy in the models dir, file by file: each missing or damaged
file is put back from any intact local file with the same sha256 (the same shard in another
version, the current directory, a plain copy), else from ``fetch`` (the remote side's offer:
an object that holds it), each through a verified temp file renamed into place."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from agent.local.hashing import HashMismatch, copy_to_temp, fsync_dir
from agent.rules import manifest
from providers import fileio

if TYPE_CHECKING:
    from agent.local.catalog import Entry
    from agent.local.store import Store

# (sha256, size, destination) -> where it came from, or None; writes the destination atomically
Fetch = Callable[[str, int, Path], str | None]


def _local_sources(store: Store, sha: str, exclude: Path) -> list[Path]:
    found = []
    for e in store.catalog:
        if e.is_dir:
            found += [store.path(e.name) / rel for rel, (_, s) in e.files.items() if s == sha]
        elif e.sha256 == sha:
            found.append(store.path(e.name))
    for m in store.config.models:
        current = store.path(m.file)
        if m.directory and current.is_dir():
            with suppress(OSError, ValueError):
                found += [current / r for r, (_, s) in store.manifest(current).items() if s == sha]
    return [p for p in found if p != exclude and p.is_file()]


def heal_tree(
    store: Store, entry: Entry, fetch: Fetch | None = None
) -> tuple[list[str], list[str]]:
    """(lines healed, files that could not be) for directory copy ``entry``."""
    root = store.path(entry.name)
    try:
        found = store.manifest(root, fresh=True) if root.is_dir() else {}
    except OSError:
        found = {}
    diff = manifest.compare(entry.files, found)
    healed, failed = [], []
    for rel in (*diff.missing, *diff.changed):
        size, sha = entry.files[rel]
        dest = root / rel
        how = None
        for src in _local_sources(store, sha, dest):
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                temp, _ = copy_to_temp(src, dest, expected_sha256=sha)
            except (HashMismatch, OSError):
                continue  # that copy is damaged too: the next one
            fileio.replace(temp, dest)
            fsync_dir(dest.parent)
            how = f"from {src.relative_to(store.models_dir)}"
            break
        if how is None and fetch is not None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            how = fetch(sha, size, dest)
        if how is None:
            failed.append(rel)
            continue
        store.cache.remember(dest, sha)
        healed.append(f"{entry.name}/{rel}: healed here ({how})")
    return healed, failed
