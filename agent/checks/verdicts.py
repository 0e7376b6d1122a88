"""The one verdict per content: checked once, recorded by sha256 with the checker's version.

``verdict_for`` is what every command asks. A verdict recorded by another checker version is
ignored (checked again); one that depended on the moment (the wall-time limit on a busy
machine) is not recorded; a file that changed while it was checked is not recorded either.
"""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from agent.checks.records import load_records, save_record
from agent.checks.runner import Verdict, check_file
from agent.local.hashing import hash_file

if TYPE_CHECKING:
    from agent.config import ModelConfig
    from agent.local.store import Store

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")


def is_checkpoint(name: str, model: ModelConfig | None, *, companion: str | None) -> bool:
    """Files the checker judges: every copy of a model file, and companions that are
    checkpoints by their name (an optimizer state, an adapter); not a tokenizer or a config."""
    if companion is None and model is not None:
        return True
    return Path(companion or name).suffix.lower() in CHECKPOINT_SUFFIXES


def judged(store: Store, name: str) -> bool:
    """Whether the file ``name`` in models_dir is one the checker judges (see is_checkpoint)."""
    from agent.rules.naming import identify

    ident = identify(name, store.config.models)
    model = next((m for m in store.config.models if ident and m.name == ident.model), None)
    return is_checkpoint(name, model, companion=ident.companion if ident else name)


def refusal(store: Store, name: str, sha256: str, path: Path | None = None) -> str | None:
    """Why the file ``name`` in models_dir (content ``sha256``) must not leave the machine, or
    None: the one question push, sync, run and repair ask before an upload or a copy. ``path``
    holds the bytes when they are not (or no longer) under ``name``: a heal from another copy."""
    if not judged(store, name):
        return None
    verdict = verdict_for(store, path or store.path(name), sha256)
    return None if verdict.ok else f"fails the check: {verdict.reason}"


def recorded(store: Store, sha256: str) -> Verdict | None:
    return Verdict.from_record(load_records(store.state_dir).get(sha256, {}).get("verdict"))


def verdict_for(
    store: Store, path: Path, sha256: str, *, safetensors: bool | None = None
) -> Verdict:
    """The verdict on ``path``, whose content hashes to ``sha256``."""
    known = recorded(store, sha256)
    if known is not None:
        return known
    from agent.local.stored import plain_path

    before = _stamp(path)
    with plain_path(store, path, sha256) as plain:  # a .zst copy is judged by its model bytes
        verdict = check_file(plain, safetensors=safetensors)
    if verdict.cacheable and before is not None and _stamp(path) == before:
        fields = {"verdict": verdict.to_record(), "when": _now()}
        with suppress(OSError):  # a read-only state dir only costs a check next time
            save_record(store.state_dir, sha256, fields)
    return verdict


def content_sha256(store: Store, path: Path) -> str:
    """The hash cache is keyed by file name in models_dir; a file elsewhere is hashed fresh. A
    compressed copy's content is its model bytes' (recorded in its entry, else decompressed)."""
    from agent.local.stored import model_sha256

    known = model_sha256(store, path)
    if known is not None:
        return known
    if path.resolve().parent == store.models_dir.resolve():
        sha = store.sha256(path)
        store.cache.save()
        return sha
    return hash_file(path)["sha256"]


def verdict_of_path(store: Store, path: Path) -> Verdict:
    """``verdict_for`` a file given by path alone (hashed, or its hash taken from the cache)."""
    path = Path(path)
    return verdict_for(
        store, path, content_sha256(store, path), safetensors=path.suffix == ".safetensors"
    )


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
