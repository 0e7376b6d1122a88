"""What we know about a checkpoint's content, keyed by its sha256: one store for the push's
structural check and for ``validate``'s results.

``<models_dir>/.model-safety/validated.json`` holds
``{"format": ..., "records": {sha256: record}}``. A record has ``structural_ok`` (loads
safely, values finite: what a push needs) and, once
``validate`` ran, ``passed``, ``score``, ``checks``, ``when``, ``reference`` and ``model``. Keying
by content means a dated version and the current file with the same bytes share one record, and a
checkpoint that passed once is never loaded again by a push (loading a 50 GB model on every
overnight push would cost more than the push). Older files were a plain list of sha256s that
passed the structural check; they are read as such.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.local.hashing import atomic_write_bytes

FILE = "validated.json"
FORMAT = "model-safety/validation"
MAX_RECORDS = 256


def load_records(state_dir: Path) -> dict[str, dict[str, Any]]:
    """sha256 -> record; an unreadable or damaged file is an empty store (a re-check, no loss)."""
    try:
        doc = json.loads((state_dir / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), dict):
        return {}
    return {str(k): v for k, v in doc["records"].items() if isinstance(v, dict)}


def save_record(state_dir: Path, sha256: str, fields: Mapping[str, Any]) -> None:
    """Merge ``fields`` into the record of ``sha256`` and write the store atomically.

    Re-reads the file first, so two commands writing different records rarely lose one; the
    loser of a true race only costs a re-check later. The oldest records beyond MAX_RECORDS go.
    """
    records = load_records(state_dir)
    records[sha256] = {**records.get(sha256, {}), **fields}
    if len(records) > MAX_RECORDS:
        newest = sorted(records, key=lambda k: str(records[k].get("when") or ""), reverse=True)
        records = {k: records[k] for k in newest[:MAX_RECORDS]}
    doc = {"format": FORMAT, "version": 1, "records": records}
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(state_dir / FILE, json.dumps(doc, indent=1).encode("utf-8"))
