"""Where else a content lives on this machine, and healing a local copy from it.

A copy is known by its content: a damaged or missing ``dinesh_ai_model_v2026-11-02.pth`` can come
back from the current file, the backup slot, another version, a set-aside file or a quarantined
one, whichever holds the same sha256 and size. A candidate's cached hash counts only while its
size, mtime and inode are unchanged (agent.local.hashing.HashCache), and the copy re-hashes every
byte it reads: a source whose bytes fail their sha256 is reported and passed over, never used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent.local.hashing import HashMismatch, fsync_dir
from agent.local.stored import remember_healed
from providers import fileio

if TYPE_CHECKING:
    from agent.local.store import Store

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"


@dataclass(frozen=True)
class LocalCopy:
    path: Path
    what: str  # for messages: "the current file x.pth", "x_v2026-11-02.pth", ...


@dataclass
class Healed:
    """What one heal did: the source it took the bytes from, and sources found bad on the way."""

    source: str | None = None
    bad_sources: list[str] = field(default_factory=list)


def local_copies(
    store: Store, sha256: str, size: int, *, exclude: str | None = None
) -> Iterator[LocalCopy]:
    """Files on this machine that hold ``sha256`` (``size`` bytes), cheapest to trust first:
    catalogued copies and current files whose hash is known, then quarantined files of that
    size (hashed on demand). ``exclude`` is the name being healed."""
    seen: set[Path] = set()

    def fresh_enough(path: Path) -> bool:
        try:
            st = path.stat()
        except OSError:
            return False
        if st.st_size != size or path in seen:
            return False
        seen.add(path)
        try:
            return store.cache.sha256(path) == sha256
        except OSError:
            return False

    for entry in store.catalog:
        if entry.sha256 == sha256 and entry.name != exclude and entry.size == size:
            path = store.path(entry.name)
            if fresh_enough(path):
                yield LocalCopy(path, entry.name)
    for m in store.config.models:
        for name in [m.file, *m.companions]:
            path = store.path(name)
            if name != exclude and fresh_enough(path):
                yield LocalCopy(path, f"the current file {name}")
    qdir = store.state_dir / QUARANTINE
    if qdir.is_dir():
        for path in sorted(qdir.iterdir()):
            if path.is_file() and fresh_enough(path):
                yield LocalCopy(path, f"quarantined {path.name}")


def heal_from_local(store: Store, name: str, sha256: str, size: int) -> Healed:
    """Put ``sha256`` back under ``name`` in the models dir from another local file holding it.
    A file in the way (damaged) is moved into quarantine first, never deleted. ``source`` is
    None when no intact local copy exists."""
    healed = Healed()
    dest = store.path(name)
    for copy in local_copies(store, sha256, size, exclude=name):
        try:
            temp, _ = store._copy(copy.path, dest, sha256)
        except HashMismatch:
            store.cache.forget(copy.path.name)
            healed.bad_sources.append(f"{copy.what}: its bytes no longer hash to its sha256")
            log.warning("%s does not hold what its hash said; not used", copy.path)
            continue
        except OSError as exc:
            healed.bad_sources.append(f"{copy.what}: cannot be read ({exc})")
            continue
        try:
            if dest.exists():
                quarantine(store, name)
            fileio.replace(temp, dest)
            fsync_dir(dest.parent)
        finally:
            with suppress(FileNotFoundError):
                temp.unlink()
        remember_healed(store, dest, sha256)
        healed.source = copy.what
        return healed
    return healed


def quarantine(store: Store, name: str) -> Path:
    """Move a damaged local file out of the way (never delete bytes): into
    ``.model-safety/quarantine/``, on the same filesystem, so it is a rename."""
    import datetime as dt

    qdir = store.state_dir / QUARANTINE
    qdir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
    dest = qdir / f"{name}.{stamp}"
    fileio.replace(store.path(name), dest)
    store.cache.forget(name)
    return dest
