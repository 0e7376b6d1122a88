"""What ``verify --deep`` found, remembered in the state dir so a later shallow command acts on it.

A deep verify reads every object back; damage it finds under an unchanged identity (an object
rewritten with its old metadata, bit rot on the server) is invisible to a listing. Each finding is
kept by remote and name with the object's identity at the time: ``verify`` and ``repair`` without
``--deep`` treat the object as corrupted while its identity is the same, and forget the finding
once the object is replaced, healed or found intact.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.local.hashing import atomic_write_bytes

log = logging.getLogger(__name__)

FILE = "remote-findings.json"


@dataclass
class Findings:
    path: Path
    # remote -> name -> {"identity": {...}, "detail": str, "found_at": iso}
    by_remote: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    dirty: bool = False

    @classmethod
    def load(cls, state_dir: Path) -> Findings:
        path = state_dir / FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable (%s); starting without earlier findings", path, exc)
            return cls(path)
        remotes = doc.get("remotes") if isinstance(doc, dict) else None
        if not isinstance(remotes, dict):
            return cls(path)
        return cls(path, {r: dict(v) for r, v in remotes.items() if isinstance(v, dict)})

    def damage(self, remote: str, name: str, identity: Mapping[str, str]) -> str | None:
        """What a deep verify found wrong with this object, while it is still the same object."""
        found = self.by_remote.get(remote, {}).get(name)
        if not found or not identity or dict(found.get("identity") or {}) != dict(identity):
            return None
        return f"{found.get('detail')} (found by `verify --deep` at {found.get('found_at')})"

    def note(self, remote: str, name: str, identity: Mapping[str, str], detail: str, when: str):  # type: ignore[no-untyped-def]
        entry = {"identity": dict(identity), "detail": detail, "found_at": when}
        if self.by_remote.get(remote, {}).get(name) != entry:
            self.by_remote.setdefault(remote, {})[name] = entry
            self.dirty = True

    def clear(self, remote: str, name: str) -> None:
        if self.by_remote.get(remote, {}).pop(name, None) is not None:
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        remotes = {r: dict(sorted(v.items())) for r, v in sorted(self.by_remote.items()) if v}
        doc = {"format": "model-safety/remote-findings", "version": 1, "remotes": remotes}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, (json.dumps(doc, indent=1) + "\n").encode("utf-8"))
        self.dirty = False
