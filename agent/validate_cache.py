"""Structural checks remembered by content: a checkpoint whose sha256 passed once need not be
loaded again (loading a 50 GB model on every overnight push would cost more than the push)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from agent.hashing import atomic_write_bytes

if TYPE_CHECKING:
    from agent.store import Store

FILE = "validated.json"
MAX_REMEMBERED = 64


def structural_problem(store: Store, path: Path, sha256: str) -> str | None:
    """None when ``path`` (whose content hashes to ``sha256``) loads safely with finite values;
    otherwise why it must not be pushed."""
    cache_path = store.state_dir / FILE
    try:
        passed: list[str] = json.loads(cache_path.read_text(encoding="utf-8"))
        if not isinstance(passed, list):
            passed = []
    except (OSError, ValueError):
        passed = []
    if sha256 in passed:
        return None
    from agent.validate import check_in_child

    ok, problems = check_in_child(path)
    if not ok:
        return "failed the structural check: " + "; ".join(problems)
    passed = [*passed[-(MAX_REMEMBERED - 1) :], sha256]
    try:
        store.state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cache_path, json.dumps(passed).encode())
    except OSError:
        pass  # a read-only state dir only costs a re-check next time
    return None
