"""The seed's storage calculation on a remote, per model: the bytes its objects take there
(stored), the model bytes they hold (logical: an object stored compressed has both sizes in the
remote catalog), what compression saved, and what a push would send now."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent.rules.naming import identify

if TYPE_CHECKING:
    from agent.remote.connect import Remote
    from agent.rules.push_plan import Step


def _empty() -> dict[str, int]:
    return {"stored_bytes": 0, "logical_bytes": 0, "compression_saved_bytes": 0}


def remote_side(
    remote: Remote, pending: Sequence[Step], dirs: Sequence[tuple[str, int]]
) -> dict[str, dict[str, Any]]:
    """Per configured model: stored, logical and saved bytes on ``remote``, and
    ``would_push_bytes`` (``pending``: the files a push would send, ``dirs``: the directory
    copies, as planned without deltas: an upper bound)."""
    models = remote.store.config.models
    out: dict[str, dict[str, Any]] = {m.name: {**_empty(), "would_push_bytes": 0} for m in models}

    def add(model: str | None, stored: int, logical: int) -> None:
        if model in out:
            out[model]["stored_bytes"] += stored
            out[model]["logical_bytes"] += logical
            out[model]["compression_saved_bytes"] += logical - stored

    for obj in remote.objects.values():
        stored = obj.info.size  # what the remote holds, whatever the catalog says
        # a compressed object's entry, as the remote's objects carry it (compressed.stored_view),
        # holds the model bytes' size as model_size (size is the object's own)
        rec = obj.recorded or {}
        logical = rec.get("model_size", rec.get("size")) if rec.get("codec") else None
        add(obj.ident.model, stored, logical if isinstance(logical, int) else stored)
    for tree in remote.catalog.trees.values():
        size = int(tree.get("size") or 0)
        stored = tree.get("stored_size")
        add(tree.get("model"), int(stored) if stored is not None else size, size)
    for name, size in [*((s.name, s.size) for s in pending), *dirs]:
        ident = identify(name.rstrip("/"), models)
        if ident is not None and ident.model in out:
            out[ident.model]["would_push_bytes"] += size
    return out
