"""The local files a push mirrors, in push order, each with the catalog entry the remote will
record for it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from agent.config import ModelConfig
from agent.local.catalog import Entry
from agent.rules.push_plan import LocalFile

if TYPE_CHECKING:
    from agent.local.store import Store


def _catalog_dict(entry: Entry) -> dict[str, Any]:
    data = entry.to_dict()
    data.pop("md5", None)  # filled from what the remote reports after the transfer
    return data


def local_files(store: Store) -> Iterator[tuple[LocalFile, dict[str, Any]]]:
    """Every local file worth mirroring, in push order: per model, the dated versions oldest
    first, then the backup slot, then the current files; companions before their model file, so
    a model file under a name on the remote means its whole version is there."""
    for m in store.config.models:
        copies = sorted(
            (e for e in store.catalog.of_model(m.name) if e.kind in ("version", "backup")),
            key=lambda e: (e.kind == "backup", e.sort_key),
        )
        for entry in copies:
            parts = [store.catalog.get(n) for n in entry.companions.values()]
            for part in [*parts, entry]:
                if part is None or not store.path(part.name).is_file():
                    continue
                ok = store.state_of(part).state == "ok"
                yield LocalFile(part.name, part.size, part.sha256, ok=ok), _catalog_dict(part)
        yield from _current_files(store, m)


def _current_files(store: Store, m: ModelConfig) -> Iterator[tuple[LocalFile, dict[str, Any]]]:
    names = [*m.companions, m.file]
    for name in names:
        path = store.path(name)
        if not path.is_file():
            continue
        st = path.stat()
        sha = store.sha256(path)
        entry = {
            "name": name,
            "model": m.name,
            "kind": "current",
            "date": None,
            "seq": 1,
            "created": dt.datetime.fromtimestamp(st.st_mtime, dt.UTC).isoformat(),
            "size": st.st_size,
            "sha256": sha,
            "companion": None if name == m.file else name,
            "companions": {c: c for c in m.companions} if name == m.file else {},
        }
        yield LocalFile(name, st.st_size, sha), entry
