"""compress_after_days: dated versions turn compressed once they are that many days old.

``run`` calls ``compress_due``. Each version goes through the same discipline as every write:
the ``.zst`` is written to a temp beside it, fsynced, read back and decompressed to check it
holds the version's sha256, renamed into place, the catalog updated; only then is the plain file
removed. A ``kill -9`` at any step leaves the plain file, or both (the next run finds the
``.zst``, checks it and finishes), never neither. The current file, the backup slot, companions
and directory models stay as they are.
"""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from agent.errors import AgentError
from agent.faultpoints import crash_point
from agent.local.catalog import Entry, entry_for_compressed, with_digests
from agent.local.copies import quarantine
from agent.local.hashing import fsync_dir
from agent.local.stored import transcode
from agent.progress import human_size
from agent.rules.codec import ZSTD, stored_name
from agent.rules.naming import identify
from providers import fileio

if TYPE_CHECKING:
    from agent.local.store import Store

log = logging.getLogger(__name__)


@dataclass
class Compressed:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    saved: int = 0  # bytes


def due(store: Store, today: dt.date) -> list[Entry]:
    """Plain dated versions (model files) old enough to compress, oldest first."""
    if store.config.compression != ZSTD:
        return []
    limit = today - dt.timedelta(days=store.config.compress_after_days)
    out = []
    for m in store.config.models:
        if m.directory:
            continue
        for entry in store.catalog.of_model(m.name, "version"):
            if entry.codec is None and not entry.is_dir and entry.date and entry.date <= limit:
                out.append(entry)
    return sorted(out, key=lambda e: e.sort_key)


def compress_due(store: Store, today: dt.date | None = None) -> Compressed:
    result = Compressed()
    for entry in due(store, today or dt.date.today()):
        try:
            saved = compress_version(store, entry)
        except (OSError, AgentError) as exc:  # a full disk too: the plain version stays
            result.problems.append(f"{entry.name}: not compressed: {exc}")
            continue
        if saved is not None:
            result.saved += saved
            name = stored_name(entry.name, ZSTD)
            result.lines.append(f"compressed {entry.name} -> {name} ({human_size(saved)} saved)")
    return result


def compress_version(store: Store, entry: Entry) -> int | None:
    """Replace plain version ``entry`` by its verified ``.zst``; the bytes saved, or None when
    the plain copy is not intact (left for ``repair``, never compressed)."""
    plain = store.path(entry.name)
    dest = store.path(stored_name(entry.name, ZSTD))
    done = _finished_before(store, entry, dest)
    if done is None:
        if store.state_of(entry).state != "ok":
            log.warning("%s is not intact; left plain for repair", entry.name)
            return None
        store.check_space(entry.size)  # the .zst is written before the plain file goes
        temp, digests = transcode(store, plain, dest, entry.sha256)
        try:
            crash_point("compress-rename")  # test-only: verified temp written, not renamed
            fileio.replace(temp, dest)
            fsync_dir(dest.parent)
            crash_point("compress-renamed")  # test-only: .zst in place, catalog not updated
        finally:
            with suppress(FileNotFoundError):
                temp.unlink()
        done = with_digests(entry, dest.name, digests)
    store.cache.remember(dest, done.stored_sha256 or "")
    store.catalog.remove(entry.name)
    store.catalog.add(replace(done, source=entry.source, note=entry.note, created=entry.created))
    store.save()
    crash_point("compress-catalog")  # test-only: catalog names the .zst, plain file still there
    with suppress(FileNotFoundError):
        plain.unlink()
    fsync_dir(plain.parent)
    store.cache.forget(entry.name)
    return entry.size - (done.stored_size or entry.size)


def _finished_before(store: Store, entry: Entry, dest: Path) -> Entry | None:
    """A ``.zst`` an interrupted run already put in place for ``entry``: its entry when it holds
    the same bytes; a damaged one is quarantined (never deleted) and compressed anew."""
    if not dest.is_file():
        return None
    known = store.catalog.get(dest.name)
    ident = identify(dest.name, store.config.models)
    try:
        if ident is None:
            raise OSError("not ours")
        found = entry_for_compressed(dest, ident, source=entry.source)
    except OSError:
        found = None
    if found is not None and found.sha256 == entry.sha256 and found.size == entry.size:
        return found
    if known is not None:
        store.catalog.remove(dest.name)
    quarantine(store, dest.name)
    return None
